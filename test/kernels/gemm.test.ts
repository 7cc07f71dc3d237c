/**
 * sgemm: every SIMD variant against the scalar reference over a sweep of shapes, transposes, leading
 * dimensions, accumulate and thread counts; the reference itself against a JS loop; argument
 * checking; and PACKPTQ_SIMD selecting the path in a fresh process.
 *
 * Error bound (per element of C): |C_simd - C_ref| <= 1e-5 * sum_k |a_ik| |b_kj| + 2^-22 * |C0_ij|.
 * Float32 summation in any order errs by at most about K * 2^-24 * sum|a||b| in the worst case and
 * by ~sqrt(K) * 2^-24 * sum|a||b| in practice; 1e-5 leaves room for K in the thousands while still
 * catching any wrong or missing term (each term is ~1/K of the sum). The reference accumulates in
 * double, so it contributes only its final rounding.
 */
import { spawnSync } from 'child_process';
import * as path from 'path';
import { allVariants, bitwiseEqual, kernels, randomArray, rng, simdVariants, skipReason } from './helpers';

interface GemmCase {
  M: number;
  N: number;
  K: number;
}

// Odd sizes, 1xNx1 and friends, exact tile multiples (6x16 AVX2, 14x32 AVX-512), K past one KC
// block (256), M past one MC block (120 / 112), N past one NC block (3072), and the skinny shapes
// of the models (attention 50x24x50, im2col 16x144x784), and batch-1 fully connected layers.
const SHAPES: GemmCase[] = [
  { M: 1, N: 1, K: 1 },
  { M: 1, N: 37, K: 1 },
  { M: 37, N: 1, K: 1 },
  { M: 5, N: 1, K: 7 },
  { M: 1, N: 19, K: 23 },
  { M: 7, N: 13, K: 5 },
  { M: 6, N: 16, K: 8 },
  { M: 14, N: 32, K: 33 },
  { M: 29, N: 47, K: 31 },
  { M: 50, N: 50, K: 24 },
  // The unpacked small-product path (gemm_impl.h small_nopack): exact tiles, and a last column
  // vector and a last row block that overlap the ones before them.
  { M: 50, N: 24, K: 50 },
  { M: 12, N: 32, K: 3 },
  { M: 13, N: 17, K: 256 },
  { M: 100, N: 100, K: 100 },
  { M: 16, N: 784, K: 144 },
  { M: 97, N: 65, K: 300 },
  { M: 130, N: 70, K: 257 },
  { M: 3, N: 3100, K: 5 },
  // The skinny path (at most 2 rows of op(A), B read in place): vector bodies, 4-row groups, tails.
  { M: 1, N: 301, K: 2305 },
  { M: 2, N: 130, K: 70 },
  // Big enough for two threads with several column chunks: op(A) packed once up front, partial
  // row panel, two K blocks.
  { M: 67, N: 530, K: 300 },
];

interface RunSpec extends GemmCase {
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
  threads: number;
  pad: number; // extra elements per row in lda, ldb, ldc
}

function makeOperands(s: RunSpec, seed: number) {
  const next = rng(seed);
  const aRows = s.transA ? s.K : s.M, aCols = s.transA ? s.M : s.K;
  const bRows = s.transB ? s.N : s.K, bCols = s.transB ? s.K : s.N;
  const lda = Math.max(1, aCols + s.pad), ldb = Math.max(1, bCols + s.pad), ldc = Math.max(1, s.N + s.pad);
  const A = randomArray(Math.max(1, aRows * lda), next);
  const B = randomArray(Math.max(1, bRows * ldb), next);
  const C0 = randomArray(Math.max(1, s.M * ldc), next);
  return { A, B, C0, lda, ldb, ldc };
}

function runGemm(isa: string, s: RunSpec, o: ReturnType<typeof makeOperands>): Float32Array {
  const C = Float32Array.from(o.C0);
  kernels.gemm(isa, s.transA, s.transB, s.M, s.N, s.K, o.A, o.lda, o.B, o.ldb, C, o.ldc, s.accumulate, s.threads);
  return C;
}

const abs = (a: Float32Array) => a.map(Math.abs);

/** Returns a description of the first element out of bounds, or undefined. Also checks ld padding is untouched. */
function compare(s: RunSpec, o: ReturnType<typeof makeOperands>, got: Float32Array, ref: Float32Array): string | undefined {
  // sum_k |a_ik||b_kj| for every element, by the reference (itself checked against a JS loop below).
  const mag = runGemm('scalar', { ...s, accumulate: false }, { ...o, A: abs(o.A), B: abs(o.B) });
  for (let i = 0; i < s.M; i++) {
    for (let j = 0; j < o.ldc; j++) {
      const at = i * o.ldc + j;
      if (j >= s.N) {
        if (got[at] !== o.C0[at]) return `C[${i}][${j}] lies in the ldc padding but was written`;
        continue;
      }
      const bound = 1e-5 * mag[at] + (s.accumulate ? 2 ** -22 * Math.abs(o.C0[at]) : 0);
      const d = Math.abs(got[at] - ref[at]);
      if (!(d <= bound)) return `C[${i}][${j}] = ${got[at]} but the reference gives ${ref[at]} (|diff| ${d} > bound ${bound})`;
    }
  }
  return undefined;
}

describe('scalar reference sgemm', () => {
  // An independent computation: the contract of gemm.h written as a JS loop in double, rounded once.
  function jsGemm(s: RunSpec, o: ReturnType<typeof makeOperands>): Float32Array {
    const C = Float32Array.from(o.C0);
    for (let i = 0; i < s.M; i++)
      for (let j = 0; j < s.N; j++) {
        let sum = 0;
        for (let k = 0; k < s.K; k++) {
          const a = s.transA ? o.A[k * o.lda + i] : o.A[i * o.lda + k];
          const b = s.transB ? o.B[j * o.ldb + k] : o.B[k * o.ldb + j];
          sum += a * b;
        }
        C[i * o.ldc + j] = Math.fround(s.accumulate ? C[i * o.ldc + j] + sum : sum);
      }
    return C;
  }

  test.each([
    [3, 4, 5, false, false, false],
    [4, 3, 6, true, false, true],
    [2, 5, 3, false, true, false],
    [5, 2, 4, true, true, true],
  ])('matches a JS loop exactly for M=%i N=%i K=%i transA=%s transB=%s accumulate=%s', (M, N, K, transA, transB, accumulate) => {
    const s: RunSpec = { M, N, K, transA, transB, accumulate, threads: 1, pad: 2 };
    const o = makeOperands(s, 7 + M * 31 + N);
    // Same products, same order, double accumulation, one final rounding: bit-identical.
    expect(bitwiseEqual(runGemm('scalar', s, o), jsGemm(s, o))).toBe(true);
  });

  test('a hand-computed 2x2 product', () => {
    const A = new Float32Array([1, 2, 3, 4]), B = new Float32Array([5, 6, 7, 8]), C = new Float32Array(4);
    kernels.gemm('scalar', false, false, 2, 2, 2, A, 2, B, 2, C, 2, false, 1);
    expect(Array.from(C)).toEqual([19, 22, 43, 50]);
  });
});

describe.each(simdVariants.map((v) => [v.name, v] as const))('%s sgemm vs the scalar reference', (name, v) => {
  const why = skipReason(v);
  if (why) {
    test.skip(`skipped: ${why}`, () => undefined);
    // eslint-disable-next-line no-console
    console.warn(`[gemm.test] SKIPPING ${name}: ${why}`);
    return;
  }

  test.each(SHAPES.map((s) => [s.M, s.N, s.K]))('M=%i N=%i K=%i, all transposes, accumulate, ld padding, 1 and 2 threads', (M, N, K) => {
    let seed = M * 1000003 + N * 1009 + K;
    const problems: string[] = [];
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const accumulate of [false, true])
          for (const threads of [1, 2]) {
            const s: RunSpec = { M, N, K, transA, transB, accumulate, threads, pad: (seed++ % 3) * 3 };
            const o = makeOperands(s, seed);
            const bad = compare(s, o, runGemm(name, s, o), runGemm('scalar', s, o));
            if (bad) problems.push(`transA=${transA} transB=${transB} accumulate=${accumulate} threads=${threads} pad=${s.pad}: ${bad}`);
          }
    expect(problems).toEqual([]);
  });

  test('K = 0 writes zeros, or leaves C alone when accumulating', () => {
    const C = new Float32Array([1, 2, 3, 4, 5, 6]);
    kernels.gemm(name, false, false, 2, 3, 0, new Float32Array(0), 1, new Float32Array(0), 3, C, 3, true, 2);
    expect(Array.from(C)).toEqual([1, 2, 3, 4, 5, 6]);
    kernels.gemm(name, false, false, 2, 3, 0, new Float32Array(0), 1, new Float32Array(0), 3, C, 3, false, 2);
    expect(Array.from(C)).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('is deterministic: same bits on every run and for 1 or 2 threads', () => {
    // Each element is summed by one work item in a fixed order, whatever the partition of C.
    const s: RunSpec = { M: 177, N: 291, K: 600, transA: false, transB: true, accumulate: true, threads: 2, pad: 0 };
    const o = makeOperands(s, 99);
    const two = runGemm(name, s, o);
    expect(bitwiseEqual(two, runGemm(name, s, o))).toBe(true);
    expect(bitwiseEqual(two, runGemm(name, { ...s, threads: 1 }, o))).toBe(true);
  });
});

describe('sgemm argument checking', () => {
  const A = new Float32Array(6), B = new Float32Array(6), C = new Float32Array(4);
  const call = (...over: unknown[]) => {
    const args: unknown[] = ['scalar', false, false, 2, 2, 3, A, 3, B, 2, C, 2, false, 1];
    over.forEach((v, i) => {
      if (v !== undefined) args[i] = v;
    });
    return () => kernels.gemm(...args);
  };

  test('accepts a valid call', () => expect(call()).not.toThrow());
  test('A too short for M, K and lda', () => expect(call(undefined, undefined, undefined, 3)).toThrow(/A has 6 elements but .* needs 9/));
  test('lda smaller than the row length', () => expect(call(undefined, undefined, undefined, undefined, undefined, undefined, undefined, 2)).toThrow(/Expected an integer in \[3, .*\] for lda but received 2/));
  test('transposed B too short', () => expect(call(undefined, undefined, true, undefined, 4, undefined, undefined, undefined, undefined, 3, new Float32Array(8), 4)).toThrow(/B has 6 elements/));
  test('C too short', () => expect(call(undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, new Float32Array(3))).toThrow(/C has 3 elements but M=2 N=2 K=3 ldc=2 needs 4/));
  test('not a Float32Array', () => expect(call(undefined, undefined, undefined, undefined, undefined, undefined, new Float64Array(6))).toThrow(/Expected a Float32Array for A/));
  test('non-integer and negative sizes', () => {
    expect(call(undefined, undefined, undefined, 1.5)).toThrow(/for M but received 1.5/);
    expect(call(undefined, undefined, undefined, undefined, -1)).toThrow(/for N but received -1/);
  });
  test('threads must be >= 1', () => expect(call(undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined, 0)).toThrow(/for threads/));
  test('C overlapping A is refused', () => {
    const buf = new Float32Array(16);
    expect(() => kernels.gemm('avx2', false, false, 2, 2, 2, buf.subarray(0, 4), 2, B, 2, buf.subarray(2, 6), 2, false, 1)).toThrow(/C must not share memory with A/);
  });
  test('missing arguments give an error, not a crash', () => {
    expect(() => kernels.gemm()).toThrow(/Expected/);
    expect(() => kernels.gemm('scalar')).toThrow(/for transA but received undefined/);
  });
  test('errors carry a code', () => {
    try {
      call(undefined, undefined, undefined, 3)();
      throw new Error('no error');
    } catch (e) {
      expect((e as { code?: string }).code).toBe('SHAPE_MISMATCH');
    }
  });
  test('unknown ISA names are rejected', () => {
    expect(call('sse9')).toThrow(/Expected "scalar", "avx2", "avx512", "avx512-logic" or "default" for isa but received "sse9"/);
    expect(() => kernels.isaSupported('sse9')).toThrow(/for isa/);
  });
  test('forcing an ISA the CPU lacks is an error, not a fallback', () => {
    const missing = allVariants.filter((v) => !v.supported);
    if (missing.length === 0) {
      // eslint-disable-next-line no-console
      console.warn('[gemm.test] every variant is supported on this CPU: no unsupported ISA to force');
      return;
    }
    for (const v of missing) {
      expect(kernels.isaSupported(v.name)).toBe(false);
      expect(call(v.name)).toThrow(new RegExp(`isa ${v.name} is not supported by this CPU`));
      expect(() => kernels.peakGflops(v.name, 1, 0.01)).toThrow(/not supported/);
    }
  });
});

describe('PACKPTQ_SIMD selects the kernel path', () => {
  const addon = process.env.PACKPTQ_ADDON ?? path.join(__dirname, '..', '..', 'build', 'Release', 'packptq.node');
  // The child runs the same GEMM on "default" and on each explicit variant: the default path must
  // produce exactly the bits of the variant PACKPTQ_SIMD names (the variants round differently).
  const script = `
    const k = require(${JSON.stringify(addon)}).kernels;
    let s = 12345; const r = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) * 2 - 1;
    const M = 37, N = 41, K = 300, A = Float32Array.from({ length: M * K }, r), B = Float32Array.from({ length: K * N }, r);
    const run = (isa) => { const C = new Float32Array(M * N); k.gemm(isa, false, false, M, N, K, A, K, B, N, C, N, false, 1); return Buffer.from(C.buffer).toString('hex'); };
    try {
      const d = run('default');
      const same = {};
      for (const v of k.variants()) if (v.supported) same[v.name] = run(v.name) === d;
      console.log(JSON.stringify({ default: k.defaultIsa(), same }));
    } catch (e) { console.log(JSON.stringify({ error: e.message, code: e.code })); }`;
  const child = (simd: string) => {
    const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, PACKPTQ_SIMD: simd }, encoding: 'utf8', timeout: 60000 });
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout.trim());
  };

  test('PACKPTQ_SIMD=scalar runs the reference', () => {
    const out = child('scalar');
    expect(out.default).toBe('scalar');
    expect(out.same.scalar).toBe(true);
    if ('avx2' in out.same) expect(out.same.avx2).toBe(false);
  });

  test('PACKPTQ_SIMD=avx2 runs the AVX2 kernels', () => {
    if (!kernels.isaSupported('avx2')) {
      // eslint-disable-next-line no-console
      console.warn('[gemm.test] SKIPPING PACKPTQ_SIMD=avx2: this CPU has no AVX2+FMA');
      return;
    }
    const out = child('avx2');
    expect(out.default).toBe('avx2');
    expect(out.same.avx2).toBe(true);
    expect(out.same.scalar).toBe(false);
  });

  test('an unknown or unsupported PACKPTQ_SIMD is an error', () => {
    expect(child('bogus')).toMatchObject({ code: 'BAD_OPTION', error: expect.stringMatching(/PACKPTQ_SIMD/) });
    if (!kernels.isaSupported('avx512')) expect(child('avx512')).toMatchObject({ code: 'BAD_OPTION', error: expect.stringMatching(/does not support avx512/) });
  });
});

describe('FMA peak probe', () => {
  test.each(allVariants.filter((v) => v.supported && !v.testOnly).map((v) => [v.name]))('%s returns a plausible GFLOP/s', (name) => {
    const g = kernels.peakGflops(name, 1, 0.05);
    expect(g).toBeGreaterThan(0.1);
    expect(g).toBeLessThan(1e4);
  });
  test('the test-only variant has no peak', () => {
    if (!kernels.isaSupported('avx512-logic')) return;
    expect(() => kernels.peakGflops('avx512-logic', 1, 0.01)).toThrow(/test-only/);
  });
});
