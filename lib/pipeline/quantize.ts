/**
 * The quantize job: plan the quantizers, calibrate them, (later: reconstruct unit by unit), and
 * measure. Every method is a composition of the same steps; `rtn` is calibrated round-to-nearest,
 * the onnxruntime quantize_static baseline and the starting point of every reconstruction method.
 */
import { AbortError, BadOptionError } from '../errors';
import { Dataset } from '../data/dataset';
import { chooseSubset } from '../data/subset';
import { EvaluateResult, evaluate } from '../engine/evaluate';
import { Model } from '../engine/model';
import { DiscoverOptions, discoverBlocks } from '../graph/blocks';
import { Graph, numel } from '../graph/ir';
import { InitMethod, calibrateActivations, calibrateWeights, checkInit } from '../quant/calibrate';
import { PlanOptions, QuantPlan, planQuantization } from '../quant/plan';
import { simulatedGraph } from '../quant/simulate';
import { QuantizedGraph } from '../quant/types';
import { UnitReport, reconstructModel } from '../recon/reconstruct';

export const METHODS = ['rtn', 'adaround', 'brecq', 'qdrop'] as const;
export type Method = (typeof METHODS)[number];

export interface ProgressEvent {
  phase: 'calibrate' | 'evaluate' | 'reconstruct' | 'score' | 'export';
  done: number;
  total: number;
  unit?: string;
  unitIndex?: number;
  units?: number;
  loss?: number;
  eta?: number;
}

export interface QuantizeOptions extends PlanOptions, DiscoverOptions {
  method?: Method;
  init?: InitMethod;
  percentile?: number;
  calib: Dataset;
  /** Evaluated before and after quantization when given. */
  eval?: Dataset;
  calibSize?: number;
  /** Calibration samples used for activation ranges (default: all of the calibration subset). */
  actCalibSize?: number;
  /** Activation MSE search on a histogram (default) or exactly. */
  actSearch?: 'histogram' | 'exact';
  seed?: number;
  batch?: number;
  threads?: number;
  /** Reconstruction iterations per unit (default 20000). */
  iters?: number;
  /** AdaRound regulariser weight λ (default 0.01). */
  lambda?: number;
  /** QDrop dropping probability (default 0.5 for qdrop, 0 otherwise). */
  dropProb?: number;
  lrRound?: number;
  lrAct?: number;
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
}

/** How each method reconstructs: unit granularity and dropping. */
export const METHOD_SETTINGS: Record<Exclude<Method, 'rtn'>, { granularity: 'layer' | 'block'; dropProb: number }> = {
  adaround: { granularity: 'layer', dropProb: 0 },
  brecq: { granularity: 'block', dropProb: 0 },
  qdrop: { granularity: 'block', dropProb: 0.5 },
};

export interface QuantizeResult {
  method: Method;
  plan: QuantPlan;
  quantized: QuantizedGraph;
  /** The canonical graph with quantized weights and FakeQuant activations. */
  simulated: Graph;
  fp?: EvaluateResult;
  quant?: EvaluateResult;
  avgWeightBits: number;
  avgActBits: number;
  /** Bytes of the deployed weights: quantized layers at their widths + their scales/zero points + other float parameters. */
  weightBytes: number;
  fpWeightBytes: number;
  seconds: number;
  /** Per reconstructed unit: iterations, time, loss at start and end, loss curve. */
  units: UnitReport[];
}

export function checkMethod(m: string): asserts m is Method {
  if (!(METHODS as readonly string[]).includes(m)) throw new BadOptionError(`Expected one of ${METHODS.join(', ')} for --method but received "${m}"`);
}

/** Checks every option before any work starts. */
export function validateQuantizeOptions(o: QuantizeOptions): void {
  checkMethod(o.method ?? 'rtn');
  checkInit(o.init ?? 'mse');
  for (const [name, v] of [['--calib-size', o.calibSize], ['--act-calib-size', o.actCalibSize], ['--batch', o.batch], ['--threads', o.threads]] as const)
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) throw new BadOptionError(`Expected a positive integer for ${name} but received ${v}`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) throw new BadOptionError(`Expected an integer for --seed but received ${o.seed}`);
  if (o.iters !== undefined && (!Number.isInteger(o.iters) || o.iters < 1)) throw new BadOptionError(`Expected a positive integer for --iters but received ${o.iters}`);
  for (const [name, v] of [['--lambda', o.lambda], ['--lr-round', o.lrRound], ['--lr-act', o.lrAct]] as const)
    if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new BadOptionError(`Expected a non-negative number for ${name} but received ${v}`);
  if (o.dropProb !== undefined && !(o.dropProb >= 0 && o.dropProb <= 1)) throw new BadOptionError(`Expected a probability in [0, 1] for --drop-prob but received ${o.dropProb}`);
}

export function sizeReport(g: Graph, plan: QuantPlan, q: QuantizedGraph): { avgWeightBits: number; avgActBits: number; weightBytes: number; fpWeightBytes: number } {
  const quantWeights = new Map(q.weights.map((w) => [w.weight, w]));
  let wBitsSum = 0, wCount = 0, bytes = 0, fpBytes = 0;
  const read = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const [name, t] of g.initializers) {
    if (!read.has(name) || t.dtype !== 'float32') continue;
    fpBytes += 4 * t.data.length;
    const w = quantWeights.get(name);
    if (w) {
      bytes += Math.ceil((t.data.length * w.params.bits) / 8) + 5 * w.params.scale.length;
    } else bytes += 4 * t.data.length;
  }
  for (const l of plan.layers) {
    if (!l.weight && !l.excluded) continue;
    const node = g.nodes.find((n) => n.name === l.layer)!;
    const t = g.initializers.get(l.weight ?? node.inputs[1]);
    if (!t) continue;
    wBitsSum += numel(t.dims) * (l.wBits ?? 32);
    wCount += numel(t.dims);
  }
  const avgActBits = plan.acts.length ? plan.acts.reduce((a, x) => a + x.bits, 0) / plan.acts.length : 32;
  return { avgWeightBits: wCount ? wBitsSum / wCount : 32, avgActBits, weightBytes: bytes, fpWeightBytes: fpBytes };
}

export async function quantize(model: Model, o: QuantizeOptions): Promise<QuantizeResult> {
  validateQuantizeOptions(o);
  const t0 = process.hrtime.bigint();
  const method = o.method ?? 'rtn';
  const init = o.init ?? 'mse';
  const batch = o.batch ?? 32, threads = o.threads ?? 1;
  const structure = discoverBlocks(model.graph, o);
  const plan = planQuantization(model.graph, structure, o);
  const calib = chooseSubset(o.calib, o.calibSize ?? 1024, o.seed ?? 0);

  const weights = calibrateWeights(model.graph, plan, init, threads);
  const acts = await calibrateActivations(model, plan, calib, {
    init, percentile: o.percentile, batch, threads, signal: o.signal, actSamples: o.actCalibSize, actSearch: o.actSearch,
    onProgress: (e) => o.onProgress?.({ phase: 'calibrate', done: e.done, total: e.total }),
  });
  let quantized: QuantizedGraph = { weights, acts };
  let units: UnitReport[] = [];
  if (method !== 'rtn') {
    const m = METHOD_SETTINGS[method];
    const r = await reconstructModel(model, structure, quantized, calib, {
      granularity: m.granularity, dropProb: o.dropProb ?? m.dropProb, inputQuantProb: 1,
      iters: o.iters ?? 20000, batch, lrRound: o.lrRound ?? 3e-3, lrAct: o.lrAct ?? 4e-5, lambda: o.lambda ?? 0.01,
      seed: o.seed ?? 0, threads, signal: o.signal,
      onProgress: (e) => o.onProgress?.({ phase: 'reconstruct', done: e.iter, total: e.iters, unit: e.unit, unitIndex: e.unitIndex, units: e.units, loss: e.loss, eta: e.eta }),
    });
    quantized = r.quantized;
    units = r.units;
  }
  const simulated = simulatedGraph(model.graph, quantized);
  if (o.signal?.aborted) throw new AbortError();

  let fp: EvaluateResult | undefined, quant: EvaluateResult | undefined;
  if (o.eval) {
    const progress = (label: number) => (done: number, total: number) => o.onProgress?.({ phase: 'evaluate', done: done + label * total, total: 2 * total });
    fp = await evaluate(model, o.eval, { batch, threads, signal: o.signal, onProgress: progress(0) });
    quant = await evaluate(Model.fromGraph(simulated, `${model.file} (quantized)`), o.eval, { batch, threads, signal: o.signal, onProgress: progress(1) });
  }
  return {
    method, plan, quantized, simulated, fp, quant,
    ...sizeReport(model.graph, plan, quantized),
    units,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}
