/**
 * Timing helpers shared by `packptq bench` (lib/bench/machine.ts) and the benchmark scripts in
 * benchmarks/, so that every figure packptq prints about speed is measured the same way. These
 * machines are shared, so every helper keeps the best of several rounds (load spikes only ever
 * slow a round down) and callers report ratios measured side by side where they can.
 */
import { fromNative } from '../engine/program';
import { native } from '../native';

/** A deterministic pattern in [-1, 1) (an LCG), so kernel inputs are the same on every run. */
export function fillPattern(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2147483648 - 1;
  }
  return a;
}

/**
 * Best seconds per call of run(reps) (which returns the total native seconds of `reps` calls): one
 * call to calibrate and warm up, then `rounds` rounds of ~budget seconds each.
 */
export function bestSeconds(run: (reps: number) => number, budget: number, rounds: number): number {
  const first = run(1);
  if (first * rounds >= budget * 2) return first; // slow (scalar on big layers): one timed call is enough
  const reps = Math.max(1, Math.round(budget / Math.max(first, 1e-7)));
  let best = first;
  for (let r = 0; r < rounds; r++) best = Math.min(best, run(reps) / reps);
  return best;
}

/** Calls per second of `fn` over about `seconds` of wall time, after one warm-up call. */
export function callsPerSecond(fn: () => unknown, seconds: number): number {
  fn();
  let n = 0, elapsed = 0;
  const t0 = process.hrtime.bigint();
  while (elapsed < seconds) {
    fn();
    n++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  return n / elapsed;
}

/**
 * The best rate of each function over `rounds` alternating rounds of `seconds` each: alternating
 * makes a load spike on the shared machine hit every contender alike, so their ratio stays fair.
 */
export function bestRatesAlternating(fns: (() => unknown)[], seconds: number, rounds: number): number[] {
  const best = fns.map(() => 0);
  for (let r = 0; r < rounds; r++) fns.forEach((fn, k) => { best[k] = Math.max(best[k], callsPerSecond(fn, seconds)); });
  return best;
}

/** The ISAs this CPU runs for timing (the scalar reference included, test-only variants not). */
export function timedIsas(): string[] {
  const variants: { name: string; supported: boolean; testOnly: boolean }[] = native().kernels.variants();
  return variants.filter((v) => v.supported && !v.testOnly).map((v) => v.name);
}

/** The ISA programs use unless told otherwise (the best this CPU runs, or PACKPTQ_SIMD). */
export function defaultIsa(): string {
  return native().kernels.defaultIsa();
}

/**
 * Measured FMA peak in GFLOP/s of an ISA on `threads` threads: the best of 5 ms bursts over about
 * `seconds`. Short bursts, like the best single call bestSeconds keeps for a kernel, fit between
 * the preemptions of a loaded machine; one long run would average them in and understate the peak.
 */
export function peakGflops(isa: string, threads: number, seconds: number): number {
  const burst = 0.005;
  let best = 0;
  try {
    for (let i = 0; i < Math.max(1, Math.ceil(seconds / burst)); i++) best = Math.max(best, native().kernels.peakGflops(isa, threads, burst));
  } catch (err) {
    throw fromNative(err, 'peak measurement');
  }
  return best;
}

/** GFLOP/s of the SIMD GEMM C = A·B (M×K by K×N, row-major), best of `rounds` rounds of ~budget s. */
export function gemmGflops(isa: string, M: number, N: number, K: number, threads: number, budget: number, rounds: number): number {
  const A = fillPattern(M * K, 1), B = fillPattern(K * N, 2), C = new Float32Array(M * N);
  const k = native().kernels;
  try {
    const sec = bestSeconds((reps) => k.timeGemm(isa, false, false, M, N, K, A, K, B, N, C, N, false, threads, reps), budget, rounds);
    return (2 * M * N * K) / sec / 1e9;
  } catch (err) {
    throw fromNative(err, `gemm ${M}x${N}x${K}`);
  }
}
