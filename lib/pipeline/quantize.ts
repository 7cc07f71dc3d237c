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
import { simulatedGraphAsync } from '../quant/simulate';
import { QuantizedGraph } from '../quant/types';
import { CacheDtype, UnitReport, reconstructModel } from '../recon/reconstruct';
import { reconUnits } from '../recon/units';
import { BlockScore, ScoreForm, blockScores } from '../pack/score';
import { packBlocks } from '../pack/packing';
import { CANDIDATES, allocateBits } from '../pack/bits';
import { Structure } from '../graph/blocks';
import { RunDir, MANIFEST_FORMAT, RunManifest, graphDigest, resultOptions, subsetDigest } from './run-dir';
import { Subset } from '../data/subset';
import * as path from 'path';

/**
 * The quantization methods, in order of cost: calibrated round-to-nearest, then reconstruction
 * layer by layer (AdaRound), block by block (BRECQ), with dropping (QDrop), by packs (Pack-PTQ).
 */
export const METHODS = ['rtn', 'adaround', 'brecq', 'qdrop', 'packptq'] as const;
/** One of {@link METHODS}. */
export type Method = (typeof METHODS)[number];

/**
 * What `onProgress` receives while a long call runs. Events of one phase come in order with
 * `done` growing to `total`; `reconstruct` events repeat per unit.
 *
 * @example
 * ```js
 * onProgress: (e) => console.log(`${e.phase} ${e.unit ?? ''} ${e.done}/${e.total} loss=${e.loss} eta=${e.eta}s`)
 * ```
 */
export interface ProgressEvent {
  /**
   * The step running: `calibrate` (activation ranges), `score` (Pack-PTQ block scores),
   * `reconstruct` (a unit's optimisation), `evaluate` (FP then quantized accuracy), `export`.
   */
  phase: 'calibrate' | 'evaluate' | 'reconstruct' | 'score' | 'export';
  /**
   * Work done in this phase: calibration samples, samples through the block scoring, evaluated
   * samples (FP and quantized together), or, in `reconstruct`, the iteration reached in the current unit.
   */
  done: number;
  /** The phase's (or, in `reconstruct`, the unit's) total of the same count; `done === total` at its end. */
  total: number;
  /** `reconstruct` only: the unit being reconstructed (a layer, block or pack name). */
  unit?: string;
  /** `reconstruct` only: 0-based index of the unit in network order. */
  unitIndex?: number;
  /** `reconstruct` only: how many units the run reconstructs. */
  units?: number;
  /** `reconstruct` only: the unit's current reconstruction loss (squared output error, without the rounding regulariser). */
  loss?: number;
  /** `reconstruct` only: estimated seconds left in the current unit. */
  eta?: number;
}

/** Options of {@link quantize}. Every option is checked before any work starts (BadOptionError). */
export interface QuantizeOptions extends PlanOptions, DiscoverOptions {
  /** How to quantize (default `rtn`); see {@link METHODS}. */
  method?: Method;
  /** Initial quantizer ranges: `mse` (default, clipping search minimising the L2.4 error), `minmax`, `percentile`. */
  init?: InitMethod;
  /** Percentile of activation magnitudes kept with `init: 'percentile'` (default 99.99). */
  percentile?: number;
  /** Calibration samples (labels not needed), from loadDataset / makeDataset. */
  calib: Dataset;
  /** Evaluated before and after quantization when given. */
  eval?: Dataset;
  /** Calibration samples used: a seeded random choice of this many (default 1024). */
  calibSize?: number;
  /** Calibration samples used for activation ranges (default: all of the calibration subset). */
  actCalibSize?: number;
  /** Activation MSE search on a histogram (default) or exactly. */
  actSearch?: 'histogram' | 'exact';
  /** Seed of every random choice (calibration subset, reconstruction batches, dropping); default 0. Same seed and threads, same bits. */
  seed?: number;
  /** Batch size of calibration, reconstruction and evaluation (default 32). */
  batch?: number;
  /** Threads of the native kernels (default 1). */
  threads?: number;
  /** Reconstruction iterations per unit (default 20000). */
  iters?: number;
  /** AdaRound regulariser weight λ (default 0.01). */
  lambda?: number;
  /** QDrop dropping probability (default 0.5 for qdrop, 0 otherwise). */
  dropProb?: number;
  /** Adam learning rate of the AdaRound rounding variables (default 3e-3). */
  lrRound?: number;
  /** Adam learning rate of the activation steps, cosine-annealed to 0 (default 4e-5). */
  lrAct?: number;
  /** Storage of the reconstruction cache (unit inputs and targets): 'float32' (default) or 'float16' (half the memory). */
  cacheDtype?: CacheDtype;
  /** Pack-PTQ: score form ('paper' default, or 'release'). */
  scoreForm?: ScoreForm;
  /** Pack-PTQ: pack-level mixed precision. */
  mixedPrecision?: boolean;
  /** Budget in average weight bits (default: (mid + high)/2 of the candidates, the release's). */
  budgetBits?: number;
  /** Optional budget in average activation bits. */
  budgetActBits?: number;
  /** Pack bit allocation: exact knapsack (default) or the release's greedy rule. */
  mpRule?: 'exact' | 'greedy';
  /** Pack-PTQ: probability a pack-input element comes from the quantized prefix (default 0.5). */
  inputQuantProb?: number;
  /**
   * Run directory (lib/pipeline/run-dir.ts): checkpoints after calibration, scoring and every unit;
   * an existing one with the same manifest is resumed, one with another manifest refused.
   */
  runDir?: string;
  /** Discard an existing runDir made with other options or another model instead of refusing it. */
  overwriteRunDir?: boolean;
  /**
   * Cancels the run promptly (between batches, and inside a unit's native loop): the promise
   * rejects with an AbortError (code `ABORT_ERR`).
   */
  signal?: AbortSignal;
  /** Called with a {@link ProgressEvent} as the run advances (never in the native inner loop). */
  onProgress?: (e: ProgressEvent) => void;
}

/** How each method reconstructs: unit granularity and dropping. */
export const METHOD_SETTINGS: Record<Exclude<Method, 'rtn'>, { granularity: 'layer' | 'block'; dropProb: number; inputQuantProb: number }> = {
  adaround: { granularity: 'layer', dropProb: 0, inputQuantProb: 1 },
  brecq: { granularity: 'block', dropProb: 0, inputQuantProb: 1 },
  qdrop: { granularity: 'block', dropProb: 0.5, inputQuantProb: 1 },
  // The release drops only at the pack input: x̃ = where(rand < 0.5, x_q, x_fp).
  packptq: { granularity: 'block', dropProb: 0, inputQuantProb: 0.5 },
};

/** Pack-PTQ's decisions in a quantize result. */
export interface PackReport {
  scores: BlockScore[];
  form: ScoreForm;
  /** Block indices of each pack. */
  packs: number[][];
  /** Width of each pack (weights and activations) and the problem it solved, with mixed precision. */
  bits?: number[];
  budgetBits?: number;
  budgetActBits?: number;
  mpRule?: 'exact' | 'greedy';
}

/** What {@link quantize} returns: the quantizers, the simulated model, and what they cost and score. */
export interface QuantizeResult {
  /** The method that ran. */
  method: Method;
  /** Which layers and activations are quantized, at which widths (after mixed precision). */
  plan: QuantPlan;
  /** The final quantizers: integer weight codes with per-channel scales, activation scales (what exportModel writes). */
  quantized: QuantizedGraph;
  /** The canonical graph with quantized weights and FakeQuant activations. */
  simulated: Graph;
  /** FP accuracy on `eval`, when given. */
  fp?: EvaluateResult;
  /** Accuracy of the simulated quantized model on `eval`, when given. */
  quant?: EvaluateResult;
  /** Average weight width over quantized-layer weights (FP-kept layers count as 32). */
  avgWeightBits: number;
  /** Average width of the activation quantizers. */
  avgActBits: number;
  /** Bytes of the deployed weights: quantized layers at their widths + their scales/zero points + other float parameters. */
  weightBytes: number;
  /** Bytes of the same parameters in float32. */
  fpWeightBytes: number;
  /** Wall time of the whole run. */
  seconds: number;
  /** Per reconstructed unit: iterations, time, loss at start and end, loss curve. */
  units: UnitReport[];
  /** Pack-PTQ: scores, packs and bits. */
  pack?: PackReport;
  /** Seconds per phase. */
  times: Record<string, number>;
  /**
   * With a run directory that held an earlier run's state: the unit reconstruction resumed at (units
   * before it were restored, not recomputed; equal to the unit count when the run had finished).
   */
  resumedFromUnit?: number;
  /** With a run directory: the number of units of the run. */
  unitCount?: number;
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
  if (o.mixedPrecision) {
    if ((o.method ?? 'rtn') !== 'packptq') throw new BadOptionError('--mixed-precision is part of --method packptq');
    if (o.wBits !== o.aBits || !CANDIDATES[o.wBits]) throw new BadOptionError(`--mixed-precision needs equal --w-bits and --a-bits of 3, 4 or 6, received W${o.wBits}A${o.aBits}`);
    if (o.budgetBits !== undefined && !(o.budgetBits >= 2 && o.budgetBits <= 8)) throw new BadOptionError(`Expected a number from 2 to 8 for --budget-bits but received ${o.budgetBits}`);
  }
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

/**
 * Quantizes a model's weights and activations with one of {@link METHODS}: places the quantizers,
 * calibrates them on `calib`, reconstructs unit by unit (all methods but `rtn`), freezes the rounding,
 * and evaluates the FP and quantized models on `eval` when given. Long work runs on native threads.
 *
 * @param model - A loaded FP32 model ({@link loadModel}).
 * @param o - {@link QuantizeOptions}; `wBits`, `aBits` and `calib` are required.
 * @returns A {@link QuantizeResult}; write it with {@link exportModel}.
 * @throws BadOptionError (before any work) for a bad option; AbortError (code `ABORT_ERR`) when
 *   `signal` fires; BadDataError / ShapeMismatchError when the data does not fit the model.
 *
 * @example
 * ```js
 * const ac = new AbortController();
 * const r = await quantize(model, {
 *   method: 'qdrop', wBits: 4, aBits: 4, calib, eval: test, iters: 20000, threads: 2, signal: ac.signal,
 *   onProgress: (e) => console.log(e.phase, e.unit, e.done, e.total, e.loss, e.eta),
 * });
 * console.log(r.fp.accuracy, r.quant.accuracy, r.avgWeightBits);
 * ```
 */
export async function quantize(model: Model, o: QuantizeOptions): Promise<QuantizeResult> {
  validateQuantizeOptions(o);
  const t0 = process.hrtime.bigint();
  const method = o.method ?? 'rtn';
  const init = o.init ?? 'mse';
  const batch = o.batch ?? 32, threads = o.threads ?? 1;
  const structure = discoverBlocks(model.graph, o);
  let plan = planQuantization(model.graph, structure, o);
  const calib = chooseSubset(o.calib, o.calibSize ?? 1024, o.seed ?? 0);
  const times: Record<string, number> = {};
  let tPhase = process.hrtime.bigint();
  const lap = (name: string) => {
    const now = process.hrtime.bigint();
    times[name] = (times[name] ?? 0) + Number(now - tPhase) / 1e9;
    tPhase = now;
  };
  const initialise = async (p: QuantPlan): Promise<QuantizedGraph> => ({
    weights: await calibrateWeights(model.graph, p, init, threads, o.signal),
    acts: await calibrateActivations(model, p, calib, {
      init, percentile: o.percentile, batch, threads, signal: o.signal, actSamples: o.actCalibSize, actSearch: o.actSearch,
      onProgress: (e) => o.onProgress?.({ phase: 'calibrate', done: e.done, total: e.total }),
    }),
  });
  const { run, resumed } = o.runDir
    ? RunDir.open(o.runDir, runManifest(model, o, calib), { overwrite: o.overwriteRunDir })
    : { run: undefined, resumed: false };
  const settings = method === 'rtn' ? undefined : METHOD_SETTINGS[method];
  let pack: PackReport | undefined = run?.pack();
  const stored = run?.calibration();
  let quantized: QuantizedGraph | undefined = stored?.quantized;
  if (method === 'packptq' && structure.blocks.length && !pack) {
    const first = quantized ?? await initialise(plan);
    lap('calibrate');
    const form = o.scoreForm ?? 'paper';
    const scores = await blockScores(model, structure, first, calib, {
      batch, threads, form, signal: o.signal, onProgress: (done, total) => o.onProgress?.({ phase: 'score', done, total }),
    });
    const packs = packBlocks(scores.map((x) => x.score));
    pack = { scores, form, packs };
    if (o.mixedPrecision) {
      const sol = mixedPrecision(model.graph, structure, plan, scores, packs, o);
      pack = { ...pack, bits: sol.bits, budgetBits: sol.budgetBits, budgetActBits: o.budgetActBits, mpRule: o.mpRule ?? 'exact' };
    } else quantized = first;
    run?.writePack(pack);
    lap('score');
  }
  if (pack?.bits) plan = packPlan(model.graph, structure, pack, o);
  quantized ??= await initialise(plan);
  lap('calibrate');
  const unitNames = settings ? reconUnits(model.graph, structure, { granularity: settings.granularity, packs: pack?.packs }).map((u) => u.name) : [];
  if (run && !stored) run.writeCalibration(quantized, unitNames);

  let units: UnitReport[] = [];
  let resumedFromUnit: number | undefined;
  const final = run?.final();
  if (final) {
    quantized = final;
    units = run!.restore(quantized, unitNames).reports;
    resumedFromUnit = unitNames.length;
  } else if (settings) {
    const restored = run?.restore(quantized, unitNames);
    if (resumed) resumedFromUnit = restored?.done ?? 0;
    const r = await reconstructModel(model, structure, restored?.quantized ?? quantized, calib, {
      granularity: settings.granularity, packs: pack?.packs, dropProb: o.dropProb ?? settings.dropProb, inputQuantProb: o.inputQuantProb ?? settings.inputQuantProb,
      iters: o.iters ?? 20000, batch, lrRound: o.lrRound ?? 3e-3, lrAct: o.lrAct ?? 4e-5, lambda: o.lambda ?? 0.01,
      seed: o.seed ?? 0, threads, signal: o.signal, cacheDtype: o.cacheDtype, startUnit: restored?.done,
      onProgress: (e) => o.onProgress?.({ phase: 'reconstruct', done: e.iter, total: e.iters, unit: e.unit, unitIndex: e.unitIndex, units: e.units, loss: e.loss, eta: e.eta }),
      onUnitDone: run && ((index, _q, report, finished) => run.writeUnit({ index, unit: unitNames[index], finished, report })),
    });
    quantized = r.quantized;
    units = [...(restored?.reports ?? []), ...r.units];
    lap('reconstruct');
  } else if (resumed) resumedFromUnit = 0;
  run?.writeFinal(quantized);
  const simulated = await simulatedGraphAsync(model.graph, quantized);
  if (o.signal?.aborted) throw new AbortError();

  let fp: EvaluateResult | undefined, quant: EvaluateResult | undefined;
  if (o.eval) {
    const progress = (label: number) => (done: number, total: number) => o.onProgress?.({ phase: 'evaluate', done: done + label * total, total: 2 * total });
    fp = await evaluate(model, o.eval, { batch, threads, signal: o.signal, onProgress: progress(0) });
    quant = await evaluate(Model.fromGraph(simulated, `${model.file} (quantized)`), o.eval, { batch, threads, signal: o.signal, onProgress: progress(1) });
    lap('evaluate');
  }
  return {
    method, plan, quantized, simulated, fp, quant,
    ...sizeReport(model.graph, plan, quantized),
    units, pack, times,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    ...(run ? { resumedFromUnit, unitCount: unitNames.length } : {}),
  };
}

/** The plan with pack-level mixed precision: every layer of pack k at pack.bits[k]. */
export function packPlan(g: Graph, s: Structure, pack: PackReport, o: PlanOptions & DiscoverOptions): QuantPlan {
  const widths = new Map<string, { wBits: number; aBits: number }>();
  pack.packs.forEach((p, k) => { for (const b of p) for (const l of s.blocks[b].layers) widths.set(l, { wBits: pack.bits![k], aBits: pack.bits![k] }); });
  return planQuantization(g, s, { ...o, layerWidths: widths });
}

/** What determines a quantize run's result, for its run directory. */
export function runManifest(model: Model, o: QuantizeOptions, calib: Subset): RunManifest {
  const method = o.method ?? 'rtn';
  return {
    format: MANIFEST_FORMAT,
    model: { file: path.resolve(model.file), digest: graphDigest(model.graph) },
    calib: { source: o.calib.source, samples: calib.indices.length, digest: subsetDigest(calib) },
    options: resultOptions(o, method === 'rtn' ? undefined : METHOD_SETTINGS[method]),
  };
}

/** Pack sensitivities and costs → widths per pack (lib/pack/bits.ts). */
export function mixedPrecision(g: Graph, s: Structure, plan: QuantPlan, scores: BlockScore[], packs: number[][], o: QuantizeOptions): { bits: number[]; budgetBits: number } {
  const cand = CANDIDATES[o.wBits];
  const budgetBits = o.budgetBits ?? (cand[1] + cand[2]) / 2;
  const inPack = new Map<string, number>();
  packs.forEach((p, k) => { for (const b of p) for (const l of s.blocks[b].layers) inPack.set(l, k); });
  // |Ω|: the paper-form score is minus a curvature and takes either sign, but a block whose loss
  // bends strongly either way is sensitive; maximising Σ Ω·b with a negative Ω would push such packs
  // to the lowest width. (The release form's Ω is positive, where |Ω| = Ω.)
  const costs = packs.map((p) => ({ sensitivity: p.reduce((a, b) => a + Math.abs(scores[b].omega), 0) / p.length, weights: 0, acts: 0 }));
  let fixedWeights = 0, fixedWeightBits = 0, fixedActs = 0, fixedActBits = 0;
  for (const l of plan.layers) {
    if (!l.weight || l.wBits === undefined) continue;
    const n = g.initializers.get(l.weight)!.data.length;
    const k = inPack.get(l.layer);
    if (k === undefined) { fixedWeights += n; fixedWeightBits += n * l.wBits; } else costs[k].weights += n;
  }
  for (const a of plan.acts) {
    const k = a.consumers.map((c) => inPack.get(c)).find((x) => x !== undefined);
    if (k === undefined) { fixedActs++; fixedActBits += a.bits; } else costs[k].acts++;
  }
  const sol = allocateBits({
    target: o.wBits, packs: costs, fixedWeights, fixedWeightBits, fixedActs, fixedActBits,
    budgetWeightBits: budgetBits, budgetActBits: o.budgetActBits, rule: o.mpRule,
  });
  return { bits: sol.bits, budgetBits };
}
