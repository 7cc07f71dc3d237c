/**
 * Reconstruction end to end on the shipped resnet20, with short runs (the full 20k-iteration
 * results live in benchmarks/results): losses fall, the result is deterministic for a seed,
 * cancellation is prompt and leaves nothing behind, and the final weights are hard-rounded codes.
 */
import { loadDataset } from '../../lib/data/dataset';
import { Model } from '../../lib/engine/model';
import { AbortError } from '../../lib/errors';
import { quantize } from '../../lib/pipeline/quantize';
import { shipped } from '../helpers/fixtures';

const NORM = { mean: [0.286], std: [0.353] };
const model = Model.load(shipped('resnet20.onnx'));
const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), ...NORM });
const short = { wBits: 4, aBits: 4, calib, calibSize: 64, batch: 16, threads: 2 } as const;

test('QDrop W4A4 (short): block losses fall; codes are integers on the grid; same seed → identical weights', async () => {
  const a = await quantize(model, { ...short, method: 'qdrop', iters: 120, seed: 3 });
  expect(a.units).toHaveLength(11); // stem conv, 9 blocks, fc
  const blocks = a.units.filter((u) => u.kind === 'block');
  expect(blocks).toHaveLength(9);
  expect(blocks.filter((u) => u.lossEnd < u.lossStart).length).toBeGreaterThanOrEqual(7);
  for (const w of a.quantized.weights)
    for (const c of w.codes) expect(Number.isInteger(c) && c >= w.params.qmin && c <= w.params.qmax).toBe(true);
  const b = await quantize(model, { ...short, method: 'qdrop', iters: 120, seed: 3 });
  a.quantized.weights.forEach((w, k) => expect(Buffer.from(w.codes.buffer).equals(Buffer.from(b.quantized.weights[k].codes.buffer))).toBe(true));
  a.quantized.acts.forEach((x, k) => expect(x.params.scale[0]).toBe(b.quantized.acts[k].params.scale[0]));
}, 300000);

test('AdaRound is layer-wise: one unit per layer', async () => {
  const r = await quantize(model, { ...short, method: 'adaround', iters: 10 });
  expect(r.units).toHaveLength(22);
  expect(r.units.every((u) => u.kind === 'layer' && u.layers.length === 1)).toBe(true);
});

test('an AbortSignal stops a reconstruction promptly with an AbortError', async () => {
  const ctl = new AbortController();
  let started = 0;
  const t0 = Date.now();
  const run = quantize(model, {
    ...short, method: 'brecq', iters: 1000000, signal: ctl.signal,
    onProgress: (e) => { if (e.phase === 'reconstruct' && !started) { started = Date.now(); ctl.abort(); } },
  });
  await expect(run).rejects.toThrow(AbortError);
  expect(started).toBeGreaterThan(0);
  expect(Date.now() - started).toBeLessThan(5000);
  expect(Date.now() - t0).toBeLessThan(120000);
});
