/**
 * Calibrated round-to-nearest end to end on the shipped resnet20: accuracy against the FP model,
 * and the exported QDQ model in onnxruntime against packptq's simulation of it.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { loadDataset } from '../../lib/data/dataset';
import { argmaxRows } from '../../lib/engine/evaluate';
import { Model } from '../../lib/engine/model';
import { BadOptionError } from '../../lib/errors';
import { writeQdqModel } from '../../lib/export/qdq';
import { quantize } from '../../lib/pipeline/quantize';
import { shipped } from '../helpers/fixtures';

const NORM = { mean: [0.286], std: [0.353] };
const model = Model.load(shipped('resnet20.onnx'));
const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), ...NORM });
const test2000 = loadDataset({ data: shipped('test-2000-images-idx3-ubyte.gz'), ...NORM });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-rtn-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function ortPredictions(file: string): Promise<Int32Array> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2 });
  const pred = new Int32Array(test2000.samples);
  for (let start = 0; start < test2000.samples; start += 200) {
    const x = test2000.batch(start, 200);
    const y = (await s.run({ input: new ort.Tensor('float32', x, [200, 1, 28, 28]) })).logits.data as Float32Array;
    pred.set(argmaxRows(y, 200, 10), start);
  }
  await s.release();
  return pred;
}

function packptqPredictions(m: Model): Int32Array {
  const pred = new Int32Array(test2000.samples);
  for (let start = 0; start < test2000.samples; start += 200) pred.set(argmaxRows(m.runSync(test2000.batch(start, 200), 200, { threads: 2 }), 200, 10), start);
  return pred;
}

const accuracy = (pred: Int32Array) => pred.reduce((a, p, i) => a + (p === test2000.labels![i] ? 1 : 0), 0) / pred.length;

test('W8A8 (per-channel weights, MSE init) is within 0.3 pt of FP; W6A6 within 1.5 pt', async () => {
  const w8 = await quantize(model, { wBits: 8, aBits: 8, calib, eval: test2000, threads: 2 });
  expect(w8.fp!.accuracy!).toBeCloseTo(0.937, 4);
  expect(w8.fp!.accuracy! - w8.quant!.accuracy!).toBeLessThanOrEqual(0.003);
  expect(w8.avgWeightBits).toBe(8);
  const w6 = await quantize(model, { wBits: 6, aBits: 6, calib, eval: test2000, threads: 2 });
  expect(w6.fp!.accuracy! - w6.quant!.accuracy!).toBeLessThanOrEqual(0.015);
  expect(w6.weightBytes).toBeLessThan(w8.weightBytes);
});

test.each([[8, 8], [4, 8], [4, 4]])('W%iA%i export: onnxruntime agrees with the simulation (>= 99.5 %% top-1, accuracy within 0.2 pt)', async (w, a) => {
  const r = await quantize(model, { wBits: w, aBits: a, calib, calibSize: 512, threads: 2 });
  const file = path.join(tmp, `r20-w${w}a${a}.onnx`);
  writeQdqModel(file, model.graph, r.quantized, { wBits: w, aBits: a });
  const sim = packptqPredictions(Model.fromGraph(r.simulated, 'simulated'));
  const theirs = await ortPredictions(file);
  const agree = sim.reduce((n, p, i) => n + (p === theirs[i] ? 1 : 0), 0) / sim.length;
  expect(agree).toBeGreaterThanOrEqual(0.995);
  expect(Math.abs(accuracy(sim) - accuracy(theirs))).toBeLessThanOrEqual(0.002);
  // The export loads back into packptq and reproduces the simulation.
  const back = packptqPredictions(Model.load(file));
  expect(Array.from(back)).toEqual(Array.from(sim));
});

test('bad options are refused before any work starts', async () => {
  let progressed = false;
  const onProgress = () => { progressed = true; };
  await expect(quantize(model, { wBits: 1, aBits: 8, calib, onProgress })).rejects.toThrow(BadOptionError);
  await expect(quantize(model, { wBits: 4, aBits: 9, calib, onProgress })).rejects.toThrow(/--a-bits/);
  await expect(quantize(model, { wBits: 4, aBits: 8, calib, method: 'magic' as 'rtn', onProgress })).rejects.toThrow(/--method/);
  await expect(quantize(model, { wBits: 4, aBits: 8, calib, exclude: ['/no/such/*'], onProgress })).rejects.toThrow(/matches no layer/);
  await expect(quantize(model, { wBits: 4, aBits: 8, calib, init: 'guess' as 'mse', onProgress })).rejects.toThrow(/--init/);
  expect(progressed).toBe(false);
});

const mobilenet = require('../helpers/fixtures').fixtureModels().find((f: { name: string }) => f.name === 'mobilenetv2');
(mobilenet ? test : test.skip)('mobilenetv2 W4A4 export (ReLU6 before 4-bit activations) loads in onnxruntime and agrees', async () => {
  const m = Model.load(mobilenet.file);
  const r = await quantize(m, { wBits: 4, aBits: 4, calib, calibSize: 256, threads: 2 });
  const file = path.join(tmp, 'mnv2-w4a4.onnx');
  writeQdqModel(file, m.graph, r.quantized, { wBits: 4, aBits: 4 });
  const sim = packptqPredictions(Model.fromGraph(r.simulated, 'simulated'));
  const theirs = await ortPredictions(file);
  expect(sim.reduce((n, p, i) => n + (p === theirs[i] ? 1 : 0), 0) / sim.length).toBeGreaterThanOrEqual(0.995);
});
