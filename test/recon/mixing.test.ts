/**
 * Pack-PTQ's input mixing inside the native reconstruction loop: each element of a unit's input
 * comes from the quantized prefix with probability inputQuantProb, else from the FP model. The unit
 * here is a Relu with nothing to train, the quantized input all zeros and the FP input all ones, so
 * each step's loss Σy² (mean over the batch, target 0) counts the FP elements: the binomial law
 * gives the expected value and spread independently of how the coins are drawn.
 */
import { native } from '../../lib/native';
import { Builder, input, randArray } from '../train/helpers';

const N = 4096; // elements per sample
const B = 8;
const SAMPLES = 16;
const STEPS = 24;

function run(p: number, seed: number, half = false, isa?: string, threads = 1): Promise<{ curve: { recLoss: number }[] }> {
  const b = new Builder();
  const x = b.add(input([B, N], new Float64Array(B * N)));
  b.output(...b.op('Relu', [x], [[B, N]]));
  const job = new (native().ReconJob)({ ...b.desc, isa }, { trainable: [], kinds: [] });
  const q = half ? new Uint16Array(SAMPLES * N) : new Float32Array(SAMPLES * N);
  const fp = half ? new Uint16Array(SAMPLES * N).fill(0x3c00) : new Float32Array(SAMPLES * N).fill(1); // 0x3c00: binary16 1.0
  const target = new Float32Array(SAMPLES * N);
  return job.run(
    { inputsQ: [q], inputsFp: [fp], target, samples: SAMPLES },
    { iters: STEPS, batch: B, inputQuantProb: p, seed, threads, progressSeconds: 0, lrRound: 0, lrAct: 0, lambda: 0 },
  );
}

const fpShares = (r: { curve: { recLoss: number }[] }) => r.curve.map((c) => c.recLoss / N);

test.each([[0.5, false], [0.25, false], [0.9, true]])('quantized with probability %p (fp16 cache: %p): the FP share follows the binomial law', async (p, half) => {
  const r = await run(p, 7, half);
  expect(r.curve).toHaveLength(STEPS);
  const shares = fpShares(r);
  const sd = Math.sqrt((p * (1 - p)) / (N * B)); // of one step's mean share
  for (const s of shares) expect(Math.abs(s - (1 - p))).toBeLessThan(5 * sd);
  const mean = shares.reduce((a, s) => a + s, 0) / STEPS;
  expect(Math.abs(mean - (1 - p))).toBeLessThan((5 * sd) / Math.sqrt(STEPS));
  // Fresh coins every step: the counts are not all the same.
  expect(new Set(shares).size).toBeGreaterThan(STEPS / 2);
});

test('the coins replay for a seed and change with it; probability 0 and 1 take all FP / all quantized', async () => {
  const a = fpShares(await run(0.5, 11));
  expect(fpShares(await run(0.5, 11))).toEqual(a);
  expect(fpShares(await run(0.5, 11, false, undefined, 2))).toEqual(a); // two threads split the samples, same coins
  expect(fpShares(await run(0.5, 11, true, undefined, 2))).toEqual(a); // fp16 cache: same coins
  expect(fpShares(await run(0.5, 12))).not.toEqual(a);
  expect(fpShares(await run(0, 1)).every((s) => s === 1)).toBe(true);
  expect(fpShares(await run(1, 1)).every((s) => s === 0)).toBe(true);
});

test('every SIMD path draws the same coins as the scalar reference', async () => {
  const supported = native().simdInfo().supported as Record<string, boolean>;
  const isas = ['scalar', 'avx2', 'avx512'].filter((isa) => supported[isa]);
  expect(isas.length).toBeGreaterThan(1);
  for (const half of [false, true]) {
    const runs = await Promise.all(isas.map((isa) => run(0.3, 5, half, isa)));
    for (const r of runs.slice(1)) expect(fpShares(r)).toEqual(fpShares(runs[0]));
  }
});

test('the loss is Σ(y − target)² per sample on every ISA (one cached sample, so every draw is known)', async () => {
  const n = 1027; // not a multiple of any vector width
  const x = Float32Array.from(randArray(n, 21, -1, 2));
  const t = Float32Array.from(randArray(n, 22, -1, 2));
  let want = 0;
  for (let i = 0; i < n; i++) want += (Math.max(0, x[i]) - t[i]) ** 2;
  const supported = native().simdInfo().supported as Record<string, boolean>;
  for (const isa of ['scalar', 'avx2', 'avx512'].filter((k) => supported[k])) {
    const b = new Builder();
    const xi = b.add(input([4, n], new Float64Array(4 * n)));
    b.output(...b.op('Relu', [xi], [[4, n]]));
    const job = new (native().ReconJob)({ ...b.desc, isa }, { trainable: [], kinds: [] });
    const r = await job.run({ inputsQ: [x], target: t, samples: 1 }, { iters: 3, batch: 4, inputQuantProb: 1, seed: 1, threads: 1, progressSeconds: 0 });
    for (const c of r.curve) expect(Math.abs(c.recLoss - want)).toBeLessThan(1e-5 * want);
  }
});
