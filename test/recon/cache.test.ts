/**
 * The reconstruction cache: the fp16 option stores unit inputs and targets as IEEE half patterns.
 * toHalfBits is checked against the definition of binary16 (an independent decoder and the nearest-
 * value property, ties to even); a short QDrop run with the fp16 cache reports half the cache bytes
 * of the fp32 run and reaches nearly the same unit losses.
 */
import { loadDataset } from '../../lib/data/dataset';
import { Model } from '../../lib/engine/model';
import { quantize } from '../../lib/pipeline/quantize';
import { halfBitsToNumber, toHalfBits } from '../../lib/recon/half';
import { shipped } from '../helpers/fixtures';

test('toHalfBits: exact values, limits, specials', () => {
  expect(toHalfBits(1)).toBe(0x3c00);
  expect(toHalfBits(-2)).toBe(0xc000);
  expect(toHalfBits(0)).toBe(0);
  expect(toHalfBits(-0)).toBe(0x8000);
  expect(toHalfBits(65504)).toBe(0x7bff); // largest finite half
  expect(toHalfBits(65520)).toBe(0x7c00); // halfway to 2^16 rounds (to even) up to inf
  expect(toHalfBits(1e9)).toBe(0x7c00);
  expect(toHalfBits(-Infinity)).toBe(0xfc00);
  expect(toHalfBits(NaN) & 0x7c00).toBe(0x7c00);
  expect(toHalfBits(NaN) & 0x3ff).not.toBe(0);
  expect(toHalfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
  expect(toHalfBits(2 ** -25)).toBe(0); // a tie between 0 and 2^-24: to even (0)
  expect(toHalfBits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 subnormal steps: to even (2)
  expect(toHalfBits(2 ** -14)).toBe(0x0400); // smallest normal
  expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie: to even
  expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: to even (up)
});

test('toHalfBits gives the nearest half for random floats of every magnitude', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const f = new Float32Array(1);
  for (let i = 0; i < 5000; i++) {
    f[0] = (rand() - 0.5) * 2 ** Math.floor(rand() * 44 - 28);
    const x = f[0];
    const h = toHalfBits(x);
    const v = halfBitsToNumber(h);
    // Neighbours of h in value order (same sign): the nearest half is no farther than either.
    for (const n of [h - 1, h + 1]) {
      if ((n & 0x7fff) === 0x7fff || n < 0 || ((n ^ h) & 0x8000)) continue;
      const w = halfBitsToNumber(n);
      if (!Number.isFinite(w)) continue;
      expect(Math.abs(v - x)).toBeLessThanOrEqual(Math.abs(w - x));
    }
  }
});

test('an fp16 cache halves the cache bytes and reconstructs nearly as well as fp32', async () => {
  const model = Model.load(shipped('resnet20.onnx'));
  const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), mean: [0.286], std: [0.353] });
  const base = { wBits: 4, aBits: 4, calib, calibSize: 64, batch: 16, threads: 1, method: 'qdrop', iters: 40, seed: 1 } as const;
  const a = await quantize(model, { ...base, cacheDtype: 'float32' });
  const b = await quantize(model, { ...base, cacheDtype: 'float16' });
  expect(a.units.length).toBe(b.units.length);
  a.units.forEach((u, k) => {
    expect(u.cacheDtype).toBe('float32');
    expect(b.units[k].cacheDtype).toBe('float16');
    expect(u.cacheBytes).toBeGreaterThan(0);
    expect(b.units[k].cacheBytes * 2).toBe(u.cacheBytes);
  });
  // The first block: (quantized input + FP target) × 64 samples × 16×28×28 floats.
  expect(a.units[1].cacheBytes).toBe(2 * 64 * 16 * 28 * 28 * 4);
  // Same seed, same draws: only the cached values' rounding (11 significant bits) differs, so the
  // learned rounding and steps nearly coincide. (Unit losses are sampled by time, so not compared.)
  let same = 0, total = 0;
  a.quantized.weights.forEach((w, k) => {
    const c = b.quantized.weights[k].codes;
    for (let i = 0; i < w.codes.length; i++) same += w.codes[i] === c[i] ? 1 : 0;
    total += w.codes.length;
  });
  expect(same / total).toBeGreaterThan(0.97);
  a.quantized.acts.forEach((x, k) => expect(Math.abs(b.quantized.acts[k].params.scale[0] / x.params.scale[0] - 1)).toBeLessThan(0.02));
}, 300000);
