/**
 * The public API as a program using packptq meets it (through lib/index.ts): loadModel on good and
 * bad files, quantize → exportModel → onnxruntime (the independent judge of the written file),
 * exportModel's no-partial-file guarantee, cancellation, and analyze's determinism.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import {
  AbortError, BadOptionError, IoError, Model, OnnxDecodeError, ProgressEvent, analyze, evaluate, exportModel, loadDataset, loadModel, quantize,
} from '../../lib/index';
import { argmaxRows } from '../../lib/engine/evaluate';
import { shipped } from '../helpers/fixtures';

const NORM = { mean: [0.286], std: [0.353] };
const MODEL = shipped('resnet20.onnx');
const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), ...NORM });
const test2000 = loadDataset({ data: shipped('test-2000-images-idx3-ubyte.gz'), ...NORM });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-api-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('loadModel', () => {
  test('loads the fixture: the same graph and the same logits as the synchronous Model.load', async () => {
    const m = await loadModel(MODEL);
    expect(m).toBeInstanceOf(Model);
    expect(m.file).toBe(MODEL);
    const ref = Model.load(MODEL);
    expect(m.graph.nodes.map((n) => n.opType)).toEqual(ref.graph.nodes.map((n) => n.opType));
    const x = test2000.batch(0, 8);
    expect(Array.from(m.runSync(x, 8))).toEqual(Array.from(ref.runSync(x, 8)));
  });

  test('a missing file is an IoError (code IO) naming the file', async () => {
    const missing = path.join(tmp, 'nope.onnx');
    const err = await loadModel(missing).catch((e) => e);
    expect(err).toBeInstanceOf(IoError);
    expect(err.code).toBe('IO');
    expect(err.message).toContain(missing);
    expect(err.message).toContain('no such file');
  });

  test('a corrupt file is an OnnxDecodeError (code ONNX_DECODE) naming the file', async () => {
    const bytes = fs.readFileSync(MODEL);
    const truncated = path.join(tmp, 'truncated.onnx');
    fs.writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 3)));
    const garbage = path.join(tmp, 'garbage.onnx');
    fs.writeFileSync(garbage, Buffer.from('this is not a protobuf message at all \u00ff\u00fe'));
    for (const file of [truncated, garbage]) {
      const err = await loadModel(file).catch((e) => e);
      expect(err).toBeInstanceOf(OnnxDecodeError);
      expect(err.code).toBe('ONNX_DECODE');
      expect(err.message).toContain(file);
    }
  });

  test('bad arguments and an aborted signal are refused with their typed errors', async () => {
    await expect(loadModel('')).rejects.toBeInstanceOf(BadOptionError);
    const ac = new AbortController();
    ac.abort();
    const err = await loadModel(MODEL, { signal: ac.signal }).catch((e) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(err.code).toBe('ABORT_ERR');
  });
});

async function ortPredictions(file: string): Promise<Int32Array> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
  const pred = new Int32Array(test2000.samples);
  for (let start = 0; start < test2000.samples; start += 200) {
    const y = (await s.run({ input: new ort.Tensor('float32', test2000.batch(start, 200), [200, 1, 28, 28]) })).logits.data as Float32Array;
    pred.set(argmaxRows(y, 200, 10), start);
  }
  await s.release();
  return pred;
}

describe('quantize → exportModel → onnxruntime', () => {
  let model: Model;
  let result: Awaited<ReturnType<typeof quantize>>;
  const events: ProgressEvent[] = [];
  beforeAll(async () => {
    model = await loadModel(MODEL);
    result = await quantize(model, {
      method: 'rtn', wBits: 4, aBits: 4, calib, eval: test2000, calibSize: 256, threads: 2, onProgress: (e) => events.push(e),
    });
  }, 300000);

  test('progress events are structured: a phase and done ≤ total, growing within a phase', () => {
    expect(new Set(events.map((e) => e.phase))).toEqual(new Set(['calibrate', 'evaluate']));
    for (const e of events) {
      expect(Number.isInteger(e.done) && Number.isInteger(e.total)).toBe(true);
      expect(e.done).toBeGreaterThan(0);
      expect(e.done).toBeLessThanOrEqual(e.total);
    }
    const evals = events.filter((e) => e.phase === 'evaluate');
    expect(evals[evals.length - 1].done).toBe(evals[evals.length - 1].total);
    for (let k = 1; k < evals.length; k++) expect(evals[k].done).toBeGreaterThan(evals[k - 1].done);
  });

  test('the written file runs in onnxruntime with ≥ 99.5 % top-1 agreement and the accuracy quantize measured', async () => {
    const file = path.join(tmp, 'w4a4.onnx');
    const exportEvents: ProgressEvent[] = [];
    await exportModel(result, model, file, { onProgress: (e) => exportEvents.push(e) });
    expect(exportEvents.map((e) => `${e.phase} ${e.done}/${e.total}`)).toEqual(['export 0/2', 'export 1/2', 'export 2/2']);
    expect(fs.readdirSync(tmp).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const ortPred = await ortPredictions(file);
    // packptq's own predictions with the simulated model, the one result.quant measured.
    const sim = Model.fromGraph(result.simulated, 'simulated');
    const ours = new Int32Array(test2000.samples);
    for (let s = 0; s < test2000.samples; s += 200) ours.set(argmaxRows(sim.runSync(test2000.batch(s, 200), 200, { threads: 2 }), 200, 10), s);
    let agree = 0, correct = 0;
    for (let i = 0; i < ours.length; i++) {
      if (ours[i] === ortPred[i]) agree++;
      if (ortPred[i] === test2000.labels![i]) correct++;
    }
    expect(agree / ours.length).toBeGreaterThanOrEqual(0.995);
    expect(Math.abs(correct / ours.length - result.quant!.accuracy!)).toBeLessThanOrEqual(0.005);
    // And the quantized model is not the FP one (the test would pass vacuously otherwise).
    expect(result.quant!.accuracy).not.toBe(result.fp!.accuracy);
  }, 120000);

  test('the written file reloads with loadModel and evaluates to the same accuracy in packptq', async () => {
    const file = path.join(tmp, 'w4a4-reload.onnx');
    await exportModel(result, model, file);
    const back = await loadModel(file);
    const r = await evaluate(back, test2000, { threads: 2 });
    expect(Math.abs(r.accuracy! - result.quant!.accuracy!)).toBeLessThanOrEqual(0.005);
  }, 120000);

  test('into a folder that does not exist: IoError naming the file, and no file anywhere', async () => {
    const dir = path.join(tmp, 'missing-dir');
    const file = path.join(dir, 'out.onnx');
    const before = fs.readdirSync(tmp);
    const err = await exportModel(result, model, file).catch((e) => e);
    expect(err).toBeInstanceOf(IoError);
    expect(err.code).toBe('IO');
    expect(err.message).toContain(file);
    expect(fs.existsSync(dir)).toBe(false);
    expect(fs.readdirSync(tmp)).toEqual(before);
  });

  test('over a folder (rename fails after the temp file was written): IoError, temp file removed', async () => {
    const target = path.join(tmp, 'a-folder.onnx');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x'); // a non-empty folder cannot be renamed over
    const before = fs.readdirSync(tmp).sort();
    const err = await exportModel(result, model, target).catch((e) => e);
    expect(err).toBeInstanceOf(IoError);
    expect(err.message).toContain(target);
    expect(fs.readdirSync(tmp).sort()).toEqual(before);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });

  test('an aborted signal: AbortError and no file; a result of another model: BadOptionError', async () => {
    const file = path.join(tmp, 'aborted.onnx');
    const ac = new AbortController();
    ac.abort();
    const err = await exportModel(result, model, file, { signal: ac.signal }).catch((e) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(err.code).toBe('ABORT_ERR');
    expect(fs.existsSync(file)).toBe(false);
    const foreign = { ...result, quantized: { ...result.quantized, weights: [{ ...result.quantized.weights[0], weight: 'not-a-weight' }] } };
    await expect(exportModel(foreign, model, file)).rejects.toBeInstanceOf(BadOptionError);
    expect(fs.existsSync(file)).toBe(false);
  });
});

test('quantize cancelled mid-run rejects promptly with AbortError', async () => {
  const model = await loadModel(MODEL);
  const ac = new AbortController();
  let reconstructEvents = 0;
  const run = quantize(model, {
    method: 'qdrop', wBits: 4, aBits: 4, calib, calibSize: 64, batch: 16, iters: 1_000_000, threads: 1,
    signal: ac.signal,
    onProgress: (e) => { if (e.phase === 'reconstruct' && ++reconstructEvents === 1) ac.abort(); },
  });
  const err = await run.catch((e) => e);
  expect(err).toBeInstanceOf(AbortError);
  expect(err.code).toBe('ABORT_ERR');
  // Cancelled in the first unit: a million iterations were never run to the end.
  expect(reconstructEvents).toBeGreaterThanOrEqual(1);
}, 300000);

describe('analyze', () => {
  const options = { wBits: 3, aBits: 3, calib, calibSize: 32, batch: 16, threads: 2, seed: 5 };
  test("scores resnet20's 9 blocks, packs them in order, and gives the same result for the same seed", async () => {
    const model = await loadModel(MODEL);
    const phases = new Set<string>();
    const a = await analyze(model, { ...options, mixedPrecision: true, budgetBits: 3.5, onProgress: (e) => phases.add(e.phase) });
    expect(a.blocks).toHaveLength(9);
    expect(a.scores).toHaveLength(9);
    expect(a.scores.map((s) => s.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    for (const s of a.scores) {
      expect(Number.isFinite(s.score) && Number.isFinite(s.omega)).toBe(true);
      expect(s.loss).toBeGreaterThan(0); // a W3A3 block changes the output distribution
    }
    expect(a.packs.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(a.bits).toHaveLength(a.packs.length);
    for (const b of a.bits!) expect([2, 3, 4]).toContain(b);
    expect(phases).toEqual(new Set(['calibrate', 'score']));
    const again = await analyze(model, { ...options, mixedPrecision: true, budgetBits: 3.5 });
    expect(again.scores.map((s) => [s.score, s.omega])).toEqual(a.scores.map((s) => [s.score, s.omega]));
    expect(again.packs).toEqual(a.packs);
    expect(again.bits).toEqual(a.bits);
  }, 300000);

  test('bad options are refused before any work', async () => {
    const model = await loadModel(MODEL);
    await expect(analyze(model, { ...options, threads: 0 })).rejects.toBeInstanceOf(BadOptionError);
    await expect(analyze(model, { ...options, calib: undefined as never })).rejects.toBeInstanceOf(BadOptionError);
    const ac = new AbortController();
    ac.abort();
    await expect(analyze(model, { ...options, signal: ac.signal })).rejects.toBeInstanceOf(AbortError);
  });
});
