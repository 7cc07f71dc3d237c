/**
 * The calibration set: a seeded random choice of `size` samples from a data set (all of it when it
 * is not larger), served in fixed-size batches. The same seed gives the same samples.
 */
import { expected } from '../errors';
import { Dataset } from './dataset';

export function seededRandom(seed: number): () => number {
  // mulberry32: small, fast, and good enough to shuffle indices reproducibly.
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Subset {
  ds: Dataset;
  indices: Int32Array;
  sampleSize: number;
}

export function chooseSubset(ds: Dataset, size: number, seed: number): Subset {
  if (!Number.isInteger(size) || size < 1) throw expected('a positive integer', '--calib-size', size);
  const sampleSize = ds.sampleShape.reduce((a, b) => a * b, 1);
  const all = Int32Array.from({ length: ds.samples }, (_, i) => i);
  if (size >= ds.samples) return { ds, indices: all, sampleSize };
  const rnd = seededRandom(seed);
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return { ds, indices: all.slice(0, size).sort(), sampleSize };
}

/** Samples [start, start + count) of the subset as one array (zero-padded up to `padTo` samples). */
export function subsetBatch(s: Subset, start: number, count: number, padTo = count): Float32Array {
  const out = new Float32Array(padTo * s.sampleSize);
  for (let k = 0; k < count; k++) out.set(s.ds.batch(s.indices[start + k], 1), k * s.sampleSize);
  return out;
}
