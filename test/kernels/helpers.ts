/**
 * Shared by the kernel tests: the addon's kernel API, a seeded generator, and the list of variants
 * to compare against the scalar reference (with the reason when one cannot run here).
 */
import { native } from '../../lib/native';

export const kernels = native().kernels;

export interface Variant {
  name: string;
  supported: boolean;
  testOnly: boolean;
  lanes: number;
}

export const allVariants: Variant[] = kernels.variants();

/** SIMD variants compared with the reference; unsupported ones are reported, not silently dropped. */
export const simdVariants = allVariants.filter((v) => v.name !== 'scalar');

export function skipReason(v: Variant): string | undefined {
  if (v.supported) return undefined;
  return `${v.name} kernels cannot run on this CPU (no AVX-512F/BW/VL/DQ in cpuid); their logic is tested through avx512-logic`;
}

/** mulberry32: small, deterministic, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [-1, 1). */
export function randomArray(n: number, next: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = next() * 2 - 1;
  return a;
}

export function bitwiseEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}
