/**
 * Calibration: initial quantizer parameters from the weights themselves and from the activations
 * the calibration set produces in the FP model.
 *
 * - minmax: the observed range. percentile: activations clipped to the p-th and (100−p)-th
 *   percentiles (weights use min-max). mse (default, the BRECQ recipe): 80 clipping ratios from 1.00
 *   down to 0.21 of the range, the one with the lowest L_2.4 error wins — per output channel for
 *   weights, per tensor for activations.
 * - Activations are streamed batch by batch (the MSE search takes two passes: the global range,
 *   then the error of every candidate), so the set's activations are never all in memory.
 * Every quantizer is asymmetric (an unsigned grid with a zero point); 0 is always representable.
 */
import { AbortError, BadOptionError } from '../errors';
import { Graph, numel } from '../graph/ir';
import { Model } from '../engine/model';
import { native } from '../native';
import { Subset, subsetBatch } from '../data/subset';
import { QuantPlan } from './plan';
import { yieldToEventLoop } from '../engine/yield';
import { HistogramMse } from './histogram-mse';
import { ActQuant, QuantParams, WeightQuant, grid } from './types';

export type InitMethod = 'minmax' | 'mse' | 'percentile';
export const INIT_METHODS: InitMethod[] = ['mse', 'minmax', 'percentile'];

export interface CalibrationOptions {
  init: InitMethod;
  /** Percentile kept by the 'percentile' method (default 99.99). */
  percentile?: number;
  batch: number;
  threads: number;
  /** Samples used for activation ranges (default: the whole calibration subset). */
  actSamples?: number;
  /**
   * How activations' MSE search runs: 'histogram' (default; see histogram-mse.ts) or 'exact' (every
   * element scored for every candidate: ~10 ns per element and candidate, minutes on a full set).
   */
  actSearch?: 'histogram' | 'exact';
  signal?: AbortSignal;
  onProgress?: (e: { phase: 'calibrate'; done: number; total: number }) => void;
}

function q(): any {
  return native().quant;
}

/** Channel layout of a weight for a per-channel (axis) or per-tensor (undefined) quantizer. */
function layoutOf(dims: number[], axis: number | undefined): { outer: number; channels: number; inner: number } {
  if (axis === undefined) return { outer: 1, channels: 1, inner: numel(dims) };
  return { outer: numel(dims.slice(0, axis)), channels: dims[axis], inner: numel(dims.slice(axis + 1)) };
}

export function checkInit(init: string): asserts init is InitMethod {
  if (!INIT_METHODS.includes(init as InitMethod))
    throw new BadOptionError(`Expected one of ${INIT_METHODS.join(', ')} for --init but received "${init}"`);
}

/**
 * Quantizes one weight tensor with fresh parameters (nearest rounding). The search and the codes
 * run on a worker thread: a layer's 80-candidate search takes up to tens of milliseconds, a model's
 * seconds, which would otherwise hold the event loop.
 */
export async function quantizeWeight(data: Float32Array, dims: number[], bits: number, axis: number | undefined, init: InitMethod, threads = 1): Promise<{ params: QuantParams; codes: Int32Array }> {
  const g = grid(bits, false);
  const layout = layoutOf(dims, axis);
  let scale: Float32Array, zero: Int32Array;
  if (init === 'mse') {
    const r = await q().mseSearchAsync('default', data, layout, { bits, signed: false, symmetric: false, p: 2.4, candidates: 80, threads });
    scale = r.scale;
    zero = r.zero;
  } else {
    // One pass over the weights: microseconds, not worth a thread hop.
    const mm = q().minMax(data, layout, { threads });
    const p = q().params(mm.min, mm.max, { bits, signed: false, symmetric: false });
    scale = p.scale;
    zero = p.zero;
  }
  const codes: Int32Array = await q().quantizeAsync('default', data, layout, scale, zero, g.qmin, g.qmax, { threads, type: 'int32' });
  return { params: { ...g, scale, zeroPoint: Int32Array.from(zero), axis }, codes };
}

export async function calibrateWeights(g: Graph, plan: QuantPlan, init: InitMethod, threads = 1, signal?: AbortSignal): Promise<WeightQuant[]> {
  const out: WeightQuant[] = [];
  for (const l of plan.layers) {
    if (!l.weight || l.wBits === undefined) continue;
    if (signal?.aborted) throw new AbortError();
    const t = g.initializers.get(l.weight)!;
    const data = t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    const { params, codes } = await quantizeWeight(data, t.dims, l.wBits, l.weightAxis, init, threads);
    out.push({ layer: l.layer, weight: l.weight, params, codes });
  }
  return out;
}

export async function calibrateActivations(model: Model, plan: QuantPlan, calib: Subset, opts: CalibrationOptions): Promise<ActQuant[]> {
  const acts = plan.acts;
  if (!acts.length) return [];
  const pct = opts.percentile ?? 99.99;
  if (opts.init === 'percentile' && !(pct > 50 && pct <= 100)) throw new BadOptionError(`Expected a number in (50, 100] for --percentile but received ${pct}`);
  const program = await model.captureProgramAsync(opts.batch, acts.map((a) => a.tensor), { threads: opts.threads });
  const n = Math.min(calib.indices.length, opts.actSamples ?? calib.indices.length);
  const exact = opts.actSearch === 'exact';
  const passes = opts.init === 'mse' ? 2 : 1;
  const streams: ActStream[] = opts.init !== 'mse' ? []
    : exact ? acts.map((a) => exactStream(new (q().MseStream)('default', { bits: a.bits, signed: false, symmetric: false, p: 2.4, candidates: 80, threads: opts.threads })))
      : acts.map(() => new HistogramMse());
  const hists = opts.init === 'percentile' ? acts.map(() => new (q().Histogram)({ abs: false })) : [];
  const lo = new Float32Array(acts.length).fill(Infinity), hi = new Float32Array(acts.length).fill(-Infinity);
  for (let pass = 0; pass < passes; pass++) {
    for (let start = 0; start < n; start += opts.batch) {
      if (opts.signal?.aborted) throw new AbortError();
      const count = Math.min(opts.batch, n - start);
      const outs = await program.run([subsetBatch(calib, start, count, opts.batch)]);
      for (let k = 0; k < outs.length; k++) {
        const full = outs[k];
        // Drop the zero padding of a short last batch: it is not calibration data.
        const x = count === opts.batch ? full : full.subarray(0, (full.length / opts.batch) * count);
        if (opts.init === 'mse') {
          // On a worker thread, one activation after the other (each stream owns its sums).
          if (pass === 0) await streams[k].observe(x);
          else await streams[k].accumulate(x);
        } else {
          if (opts.init === 'percentile') {
            hists[k].add(x);
          } else {
            const mm = q().minMax(x, { outer: 1, channels: 1, inner: x.length });
            lo[k] = Math.min(lo[k], mm.min[0]);
            hi[k] = Math.max(hi[k], mm.max[0]);
          }
          // A millisecond or so per activation, but a model has dozens of them per batch.
          await yieldToEventLoop();
        }
      }
      opts.onProgress?.({ phase: 'calibrate', done: pass * n + start + count, total: passes * n });
    }
  }
  const out: ActQuant[] = [];
  for (let k = 0; k < acts.length; k++) {
    if (opts.signal?.aborted) throw new AbortError();
    const a = acts[k];
    const g = grid(a.bits, false);
    let scale: Float32Array, zero: Int32Array;
    if (opts.init === 'mse') {
      const r = await streams[k].result(a.bits);
      scale = r.scale;
      zero = r.zero;
    } else {
      if (opts.init === 'percentile') {
        lo[k] = hists[k].percentile(100 - pct).value;
        hi[k] = hists[k].percentile(pct).value;
      }
      const p = q().params(Float32Array.of(lo[k]), Float32Array.of(hi[k]), { bits: a.bits, signed: false, symmetric: false });
      scale = p.scale;
      zero = p.zero;
    }
    out.push({ tensor: a.tensor, consumers: a.consumers, params: { ...g, scale: Float32Array.from(scale), zeroPoint: Int32Array.from(zero) } });
  }
  return out;
}

/** One activation's two-pass MSE search, histogram or exact, with its arithmetic off the event loop. */
interface ActStream {
  observe(x: Float32Array): Promise<void>;
  accumulate(x: Float32Array): Promise<void>;
  result(bits: number): Promise<{ scale: Float32Array; zero: Int32Array }>;
}

/** The exact stream (native MseStream): its grid is fixed at construction, and result() is 80 numbers. */
function exactStream(st: any): ActStream {
  return {
    observe: (x) => st.observeAsync(x),
    accumulate: (x) => st.accumulateAsync(x),
    result: async () => st.result(),
  };
}
