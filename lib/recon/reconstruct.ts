/**
 * Reconstruction of a quantized model, unit by unit in network order (AdaRound layer-wise, BRECQ
 * and QDrop block-wise, Pack-PTQ pack-wise). For each unit:
 *  1. its inputs and target: the unit's input and output in the FP model (x_fp, y_fp) and its input
 *     in the model quantized so far (x_q: every earlier unit final, later ones FP), over the whole
 *     calibration set, captured batch by batch;
 *  2. its graph: the unit's nodes with an AdaRound op on every quantized weight (V initialised so
 *     that h(V) is the fractional part of W/s) and a learned-step quantizer (LsqQuant) on every
 *     quantized activation read inside it;
 *  3. the native loop (native/recon) on a worker thread: thousands of iterations, progress a few
 *     times a second, cancellable;
 *  4. hard rounding: codes = clamp(⌊W/s⌋ + [V ≥ 0] + z); the learned activation steps are kept.
 */
import { writeHalf } from './half';
import { AbortError } from '../errors';
import { Subset, subsetBatch } from '../data/subset';
import { Model } from '../engine/model';
import { lower } from '../engine/lower';
import { yieldToEventLoop } from '../engine/yield';
import { Structure } from '../graph/blocks';
import { Graph, Node, Tensor } from '../graph/ir';
import { specialize } from '../graph/specialize';
import { native } from '../native';
import { simulatedGraphAsync } from '../quant/simulate';
import { channelInner, forEachChannelRun } from '../quant/channel-runs';
import { ActQuant, QuantizedGraph, WeightQuant } from '../quant/types';
import { ReconUnit, reconUnits } from './units';

export interface ReconConfig {
  iters: number;
  batch: number;
  lrRound: number;
  lrAct: number;
  lambda: number;
  /** QDrop: probability that an activation element skips its quantizer during reconstruction. */
  dropProb: number;
  /** Pack-PTQ: probability that a unit-input element comes from the quantized prefix (else FP). */
  inputQuantProb: number;
  seed: number;
  threads: number;
  warmup?: number;
  /**
   * Storage of the cached unit inputs and targets (the calibration set through the FP model and
   * the quantized prefix): 'float32' (default) or 'float16', half the memory at a rounding of the
   * cached values to 11 significant bits.
   */
  cacheDtype?: CacheDtype;
}

export type CacheDtype = 'float32' | 'float16';

export interface UnitReport {
  name: string;
  kind: ReconUnit['kind'];
  layers: string[];
  iters: number;
  seconds: number;
  /** Reconstruction loss (mean over the last report interval) at the start and at the end. */
  lossStart: number;
  lossEnd: number;
  curve: { iter: number; recLoss: number; regLoss: number }[];
  /** Bytes of this unit's cache (quantized inputs, FP inputs when mixing, FP target) and its storage. */
  cacheBytes: number;
  cacheDtype: CacheDtype;
}

export interface ReconProgressEvent {
  unit: string;
  unitIndex: number;
  units: number;
  iter: number;
  iters: number;
  loss: number;
  /** Seconds left in this unit at the current speed. */
  eta: number;
}

export interface ReconOptions extends ReconConfig {
  granularity: 'layer' | 'block';
  packs?: number[][];
  signal?: AbortSignal;
  onProgress?: (e: ReconProgressEvent) => void;
  /**
   * Called when a unit is finished (checkpointing): `q` is the model quantized so far, `finished`
   * the quantizers this unit finished, `report` undefined for a unit with nothing to train.
   */
  onUnitDone?: (index: number, q: QuantizedGraph, report: UnitReport | undefined, finished: QuantizedGraph) => void;
  /**
   * Units already finished by an earlier run (resumption): they are skipped and `initial` must hold
   * their finished quantizers. Nothing random is carried from unit to unit (each unit seeds from
   * (seed, unit index) alone), so a resumed run ends with the bits of an uninterrupted one.
   */
  startUnit?: number;
}

// The per-element loops below (every weight of a unit) call these through module constants: in a
// vm context (jest's) each lookup of the global Math goes through the context's interceptor, which
// made those loops hold the event loop for 100-200 ms per unit.
const { floor, log, min, max } = Math;

/** V such that h(V) = clamp(σ(V)·1.2 − 0.1, 0, 1) equals the fractional part r of W/s. */
function initialV(r: number): number {
  const h = min(max(r, 1e-4), 1 - 1e-4);
  return -log(1.2 / (h + 0.1) - 1);
}

/** Values of a unit: sample shapes from a batch-1 specialisation of the graph. */
function sampleShapes(g: Graph, model: Model, names: string[]): number[][] {
  const s = specialize(g, { inputShapes: { [model.input.name]: model.inputShapeFor(1) } });
  return names.map((n) => s.values.get(n)!.shape.slice(1));
}

interface UnitGraph {
  graph: Graph;
  trainable: string[];
  kinds: ('round' | 'act')[];
  weights: WeightQuant[];
  acts: ActQuant[];
}

async function unitGraph(model: Model, unit: ReconUnit, weights: Map<string, WeightQuant>, acts: ActQuant[], seed: number): Promise<UnitGraph> {
  const g = model.graph;
  const layers = new Set(unit.layers);
  const nodes: Node[] = unit.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] }));
  const init = new Map<string, Tensor>();
  for (const n of nodes) for (const i of n.inputs) { const t = g.initializers.get(i); if (t) init.set(i, t); }
  const trainable: string[] = [], kinds: ('round' | 'act')[] = [];
  const unitWeights: WeightQuant[] = [], unitActs: ActQuant[] = [];
  const extra: Node[] = [];
  for (const n of nodes) {
    const w = layers.has(n.name) ? weights.get(n.name) : undefined;
    if (!w) continue;
    const t = g.initializers.get(w.weight)!;
    const p = w.params;
    const channels = p.scale.length;
    const V = new Float32Array(t.data.length);
    const W = t.data;
    await forEachChannelRun(V.length, channelInner(p, t.dims, V.length), channels, (from, to, ch) => {
      const s = p.scale[ch];
      for (let i = from; i < to; i++) {
        const x = W[i] / s;
        V[i] = initialV(x - floor(x));
      }
    });
    const base = `${n.name}::adaround`;
    init.set(`${base}.V`, { dtype: 'float32', dims: [...t.dims], data: V });
    init.set(`${base}.scale`, { dtype: 'float32', dims: [channels], data: Float32Array.from(p.scale) });
    init.set(`${base}.zero`, { dtype: 'float32', dims: [channels], data: Float32Array.from(p.zeroPoint) });
    extra.push({
      name: base, opType: 'AdaRound', domain: 'packptq', inputs: [w.weight, `${base}.V`, `${base}.scale`, `${base}.zero`], outputs: [`${base}.W`],
      attrs: { axis: { type: 'int', value: p.axis ?? 0 }, qmin: { type: 'int', value: p.qmin }, qmax: { type: 'int', value: p.qmax } },
    });
    n.inputs = n.inputs.map((i) => (i === w.weight ? `${base}.W` : i));
    trainable.push(`${base}.V`);
    kinds.push('round');
    unitWeights.push(w);
  }
  acts.forEach((a, k) => {
    const readers = nodes.filter((n) => layers.has(n.name) && a.consumers.includes(n.name));
    if (!readers.length) return;
    const base = `${a.tensor}::lsq`;
    init.set(`${base}.s`, { dtype: 'float32', dims: [1], data: Float32Array.of(a.params.scale[0]) });
    extra.push({
      name: base, opType: 'LsqQuant', domain: 'packptq', inputs: [a.tensor, `${base}.s`], outputs: [`${base}.y`],
      attrs: {
        zero_point: { type: 'int', value: a.params.zeroPoint[0] }, qmin: { type: 'int', value: a.params.qmin },
        qmax: { type: 'int', value: a.params.qmax }, seed: { type: 'int', value: (seed * 1000003 + k) % 2147483647 },
      },
    });
    for (const r of readers) r.inputs = r.inputs.map((i) => (i === a.tensor ? `${base}.y` : i));
    trainable.push(`${base}.s`);
    kinds.push('act');
    unitActs.push(a);
  });
  const graph: Graph = {
    name: unit.name, opset: g.opset, nodes: [...extra, ...nodes],
    inputs: unit.inputs.map((name) => ({ name, dtype: 'float32' as const })),
    outputs: [{ name: unit.output, dtype: 'float32' }],
    initializers: init, valueInfo: new Map(),
  };
  return { graph, trainable, kinds, weights: unitWeights, acts: unitActs };
}

/** Hard codes from the learned rounding: clamp(⌊W/s⌋ + [V ≥ 0] + z, qmin, qmax). */
async function hardCodes(w: WeightQuant, W: Float32Array | Float64Array, V: Float32Array, dims: number[]): Promise<Int32Array> {
  const p = w.params;
  const codes = new Int32Array(W.length);
  const { qmin, qmax } = p;
  await forEachChannelRun(W.length, channelInner(p, dims, W.length), p.scale.length, (from, to, c) => {
    const s = p.scale[c], z = p.zeroPoint[c];
    for (let i = from; i < to; i++) {
      const q = floor(W[i] / s) + (V[i] >= 0 ? 1 : 0) + z;
      codes[i] = min(qmax, max(qmin, q));
    }
  });
  return codes;
}

/**
 * Runs `graph` (outputs = `values`) over the calibration subset and concatenates each value, as
 * float32 or as half bit patterns (converted batch by batch, so no float32 copy of the whole set).
 */
async function capture(model: Model, graph: Graph, values: string[], calib: Subset, batch: number, threads: number, dtype: CacheDtype, signal?: AbortSignal): Promise<(Float32Array | Uint16Array)[]> {
  const m = Model.fromGraph(graph, model.file);
  const program = await m.captureProgramAsync(batch, values, { threads });
  const n = calib.indices.length;
  const sizes = program.info.outputShapes.map((s) => s.slice(1).reduce((a, b) => a * b, 1));
  const out = sizes.map((s) => (dtype === 'float16' ? new Uint16Array(s * n) : new Float32Array(s * n)));
  for (let start = 0; start < n; start += batch) {
    if (signal?.aborted) throw new AbortError();
    const count = Math.min(batch, n - start);
    const res = await program.run([subsetBatch(calib, start, count, batch)]);
    res.forEach((r, k) => {
      const part = r.subarray(0, sizes[k] * count);
      const dst = out[k];
      if (dst instanceof Uint16Array) writeHalf(part, dst, start * sizes[k]);
      else dst.set(part, start * sizes[k]);
    });
  }
  return out;
}

export async function reconstructModel(model: Model, s: Structure, initial: QuantizedGraph, calib: Subset, o: ReconOptions): Promise<{ quantized: QuantizedGraph; units: UnitReport[] }> {
  const g = model.graph;
  const units = reconUnits(g, s, { granularity: o.granularity, packs: o.packs });
  const weights = new Map(initial.weights.map((w) => [w.layer, { ...w }]));
  const acts = initial.acts.map((a) => ({ ...a, params: { ...a.params, scale: Float32Array.from(a.params.scale) } }));
  const finalWeights = new Map<string, WeightQuant>();
  const finalActs = new Set<ActQuant>();
  const reports: UnitReport[] = [];
  const current = (): QuantizedGraph => ({ weights: [...finalWeights.values()], acts: acts.filter((a) => finalActs.has(a)) });

  for (let ui = 0; ui < units.length; ui++) {
    const unit = units[ui];
    // Building a unit's graphs and programs is JavaScript and synchronous native set-up; the
    // awaits below give the event loop a turn between the pieces (and let an abort in).
    await yieldToEventLoop();
    if (o.signal?.aborted) throw new AbortError();
    const ug = await unitGraph(model, unit, weights, acts.filter((a) => !finalActs.has(a)), o.seed + ui);
    if (ui < (o.startUnit ?? 0) || !ug.trainable.length) {
      for (const w of ug.weights) finalWeights.set(w.layer, weights.get(w.layer)!);
      for (const a of ug.acts) finalActs.add(a);
      if (ui >= (o.startUnit ?? 0)) o.onUnitDone?.(ui, current(), undefined, { weights: [], acts: [] });
      continue;
    }
    // Inputs and target: FP values, and the input as the model quantized so far computes it.
    const dtype = o.cacheDtype ?? 'float32';
    const mixing = o.inputQuantProb < 1;
    const [fpOut, ...fpIns] = await capture(model, g, [unit.output, ...(mixing ? unit.inputs : [])], calib, o.batch, o.threads, dtype, o.signal);
    await yieldToEventLoop();
    const qIns = await capture(model, await simulatedGraphAsync(g, current()), unit.inputs, calib, o.batch, o.threads, dtype, o.signal);
    const cacheBytes = [fpOut, ...fpIns, ...qIns].reduce((a, t) => a + t.byteLength, 0);
    const shapes = sampleShapes(g, model, unit.inputs);
    const spec = specialize(ug.graph, { inputShapes: Object.fromEntries(unit.inputs.map((n, k) => [n, [o.batch, ...shapes[k]]])) });
    // The differentiable executor runs activations as their own ops: no fused epilogues.
    const desc = lower(spec, { fuseActivations: false });
    const ids = ug.trainable.map((name) => desc.tensors.findIndex((t) => t.name === name));
    await yieldToEventLoop();
    if (o.signal?.aborted) throw new AbortError();
    const job = new (native().ReconJob)({ ...desc, isa: undefined }, { trainable: ids, kinds: ug.kinds });
    const abort = () => job.cancel();
    o.signal?.addEventListener('abort', abort);
    let res;
    try {
      res = await job.run(
        { inputsQ: qIns, inputsFp: mixing ? fpIns : undefined, target: fpOut, samples: calib.indices.length },
        { iters: o.iters, batch: o.batch, lrRound: o.lrRound, lrAct: o.lrAct, lambda: o.lambda, dropProb: o.dropProb, inputQuantProb: o.inputQuantProb, seed: o.seed + ui, threads: o.threads, warmup: o.warmup ?? 0.2 },
        (p: { iter: number; iters: number; recLoss: number; seconds: number }) => o.onProgress?.({
          unit: unit.name, unitIndex: ui, units: units.length, iter: p.iter, iters: p.iters, loss: p.recLoss,
          eta: p.iter ? (p.seconds / p.iter) * (p.iters - p.iter) : 0,
        }),
      );
    } finally {
      o.signal?.removeEventListener('abort', abort);
    }
    if (res.cancelled || o.signal?.aborted) throw new AbortError();
    await yieldToEventLoop();
    let pk = 0;
    const finished: QuantizedGraph = { weights: [], acts: ug.acts };
    for (const w of ug.weights) {
      const t = g.initializers.get(w.weight)!;
      const codes = await hardCodes(w, t.data, res.params[pk++], t.dims);
      const done = { ...w, codes };
      weights.set(w.layer, done);
      finalWeights.set(w.layer, done);
      finished.weights.push(done);
    }
    for (const a of ug.acts) {
      a.params.scale[0] = res.params[pk++][0];
      finalActs.add(a);
    }
    const curve = res.curve.map((c: { iter: number; recLoss: number; regLoss: number }) => ({ iter: c.iter, recLoss: c.recLoss, regLoss: c.regLoss }));
    const report: UnitReport = {
      name: unit.name, kind: unit.kind, layers: unit.layers, iters: res.itersDone, seconds: res.seconds,
      lossStart: curve[0]?.recLoss ?? 0, lossEnd: curve[curve.length - 1]?.recLoss ?? 0, curve, cacheBytes, cacheDtype: dtype,
    };
    reports.push(report);
    o.onUnitDone?.(ui, current(), report, finished);
  }
  // Anything no unit touched (cannot happen for planned quantizers, but keep them) stays as initialised.
  for (const [layer, w] of weights) if (!finalWeights.has(layer)) finalWeights.set(layer, w);
  for (const a of acts) finalActs.add(a);
  return { quantized: current(), units: reports };
}

