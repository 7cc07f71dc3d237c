/**
 * The optional equalization step before quantization (`--equalize`): measure, on the calibration
 * set, the per-channel range r_c of every activation that a link of lib/graph/passes/equalize.ts
 * feeds, and rescale the link with s_c = r_c^α / w_c^(1−α) (w_c: the largest |weight| of B's input
 * channel c; s normalised to geometric mean 1, clamped to [1/100, 100] of it). α = 1 gives every
 * channel the same range (all of the spread goes into B's weights); α = 0.5 splits it as
 * SmoothQuant does. The result is a new Model, FP-equivalent to the old one up to float rounding,
 * that quantize, export and analyze take like any other.
 */
import { AbortError, BadOptionError } from '../errors';
import { cloneGraph, numel } from '../graph/ir';
import { EqualizeLink, applyEqualization, findEqualizeLinks } from '../graph/passes/equalize';
import { inputChannels } from '../graph/passes/util';
import { specialize } from '../graph/specialize';
import { Model } from '../engine/model';
import { native } from '../native';
import { Subset, subsetBatch } from '../data/subset';

export interface EqualizeOptions {
  /** Migration strength α in (0, 1] (default 1: activations fully equalized). */
  alpha?: number;
  batch?: number;
  threads?: number;
  /** Calibration samples measured (default: the whole subset). */
  samples?: number;
  signal?: AbortSignal;
}

/** What equalization did to one link, for reports. */
export interface EqualizedLink extends EqualizeLink {
  /** Largest over smallest per-channel range of the value, before and after (channels never active excluded). */
  spreadBefore: number;
  spreadAfter: number;
  /** Channels left unscaled because they were never nonzero on the calibration set. */
  deadChannels: number;
  /** The scale s_c of every channel (A's output channel divided by it, B's input channel multiplied). */
  scales: number[];
}

export interface EqualizeResult {
  model: Model;
  alpha: number;
  links: EqualizedLink[];
}

export function checkAlpha(alpha: unknown): asserts alpha is number {
  if (typeof alpha !== 'number' || !(alpha > 0 && alpha <= 1))
    throw new BadOptionError(`Expected a number in (0, 1] for --equalize (the migration strength α) but received ${JSON.stringify(alpha)}`);
}

function spread(r: ArrayLike<number>): number {
  let lo = Infinity, hi = 0;
  for (let c = 0; c < r.length; c++) if (r[c] > 0) { lo = Math.min(lo, r[c]); hi = Math.max(hi, r[c]); }
  return hi > 0 ? hi / lo : 1;
}

/** Per-channel max |x| of each link's value over the calibration subset. */
async function channelRanges(model: Model, links: EqualizeLink[], calib: Subset, o: Required<Pick<EqualizeOptions, 'batch' | 'threads'>> & EqualizeOptions): Promise<Float64Array[]> {
  const batch = o.batch;
  const values = links.map((l) => l.value);
  const shapes = specialize({ ...model.graph, outputs: values.map((name) => ({ name, dtype: 'float32' as const })) },
    { inputShapes: { [model.input.name]: model.inputShapeFor(batch) } }).values;
  const program = await model.captureProgramAsync(batch, values, { threads: o.threads });
  const ranges = links.map((l) => new Float64Array(l.channels));
  const n = Math.min(calib.indices.length, o.samples ?? calib.indices.length);
  for (let start = 0; start < n; start += batch) {
    if (o.signal?.aborted) throw new AbortError();
    const count = Math.min(batch, n - start);
    const outs = await program.run([subsetBatch(calib, start, count, batch)]);
    links.forEach((l, k) => {
      const dims = shapes.get(l.value)!.shape;
      // Only the real samples of a short last batch (the rest is zero padding).
      const x = outs[k].subarray(0, (outs[k].length / batch) * count);
      const layout = { outer: (numel(dims.slice(0, l.axis)) / batch) * count, channels: dims[l.axis], inner: numel(dims.slice(l.axis + 1)) };
      const mm = native().quant.minMax(x, layout, { threads: o.threads });
      for (let c = 0; c < l.channels; c++) ranges[k][c] = Math.max(ranges[k][c], Math.abs(mm.min[c]), Math.abs(mm.max[c]));
    });
  }
  return ranges;
}

/** Largest |weight| of B's input channel c, for the α < 1 split. */
function inputColumnMax(model: Model, l: EqualizeLink): Float64Array {
  const b = model.graph.nodes.find((n) => n.name === l.consumer)!;
  const w = model.graph.initializers.get(b.inputs[1])!;
  const channelOf = inputChannels(b, w)!.of;
  const out = new Float64Array(l.channels);
  for (let i = 0; i < w.data.length; i++) out[channelOf(i)] = Math.max(out[channelOf(i)], Math.abs(w.data[i]));
  return out;
}

/**
 * Equalizes every link of `model` (see the file comment) and returns the rescaled model. A model
 * with no link comes back as a model equal to it, with `links` empty.
 */
export async function equalizeActivations(model: Model, calib: Subset, opts: EqualizeOptions = {}): Promise<EqualizeResult> {
  const alpha = opts.alpha ?? 1;
  checkAlpha(alpha);
  const o = { ...opts, batch: opts.batch ?? 32, threads: opts.threads ?? 1 };
  const links = findEqualizeLinks(model.graph);
  const ranges = links.length ? await channelRanges(model, links, calib, o) : [];
  const g = cloneGraph(model.graph);
  const done: EqualizedLink[] = links.map((l, k) => {
    const r = ranges[k];
    const w = alpha < 1 ? inputColumnMax(model, l) : undefined;
    const s = new Float64Array(l.channels);
    let dead = 0, logSum = 0, live = 0;
    for (let c = 0; c < l.channels; c++) {
      if (!(r[c] > 0) || (w && !(w[c] > 0))) { dead++; continue; }
      s[c] = w ? Math.pow(r[c], alpha) / Math.pow(w[c], 1 - alpha) : r[c];
      logSum += Math.log(s[c]);
      live++;
    }
    const mean = live ? Math.exp(logSum / live) : 1;
    for (let c = 0; c < l.channels; c++) s[c] = s[c] > 0 ? Math.min(100, Math.max(0.01, s[c] / mean)) : 1;
    applyEqualization(g, l, s);
    return { ...l, spreadBefore: spread(r), spreadAfter: spread(Array.from(r, (x, c) => x / s[c])), deadChannels: dead, scales: Array.from(s) };
  });
  return { model: Model.fromGraph(g, model.file), alpha, links: done };
}

/** What equalization did, without the model: the form reports and the run directory keep. */
export function equalizationRecord(e: EqualizeResult): { alpha: number; links: EqualizedLink[] } {
  return { alpha: e.alpha, links: e.links };
}

/** The model with stored scales applied again (a run directory's equalization.json, for export). */
export function reapplyEqualization(model: Model, links: readonly Pick<EqualizedLink, 'producer' | 'consumer' | 'value' | 'axis' | 'channels' | 'scales'>[]): Model {
  const g = cloneGraph(model.graph);
  for (const l of links) applyEqualization(g, l, Float64Array.from(l.scales));
  return Model.fromGraph(g, model.file);
}
