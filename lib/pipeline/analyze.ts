/** Pack-PTQ's analysis without reconstruction: block scores, packs and (optionally) pack bits. */
import { chooseSubset } from '../data/subset';
import { Dataset } from '../data/dataset';
import { Model } from '../engine/model';
import { BadOptionError } from '../errors';
import { DiscoverOptions, discoverBlocks } from '../graph/blocks';
import { BlockScore, ScoreForm, blockScores } from '../pack/score';
import { packBlocks } from '../pack/packing';
import { calibrateActivations, calibrateWeights, checkInit, InitMethod } from '../quant/calibrate';
import { PlanOptions, planQuantization } from '../quant/plan';
import { mixedPrecision, ProgressEvent, QuantizeOptions } from './quantize';

/** Options of {@link analyze}: the target widths and quantizer placement (as in quantize) plus the calibration and scoring settings. */
export interface AnalyzeOptions extends PlanOptions, DiscoverOptions {
  /** Calibration samples. */
  calib: Dataset;
  /** Calibration samples used, a seeded random choice (default 1024). */
  calibSize?: number;
  /** Seed of the calibration subset (default 0): same seed, same result. */
  seed?: number;
  /** Batch size (default 32). */
  batch?: number;
  /** Threads of the native kernels (default 1). */
  threads?: number;
  /** Initial quantizer ranges: `mse` (default), `minmax`, `percentile`. */
  init?: InitMethod;
  /** Which score form packs and allocates: `paper` (default) or the release's per-element `release`. */
  scoreForm?: ScoreForm;
  /** Also choose one width per pack (needs wBits === aBits of 3, 4 or 6). */
  mixedPrecision?: boolean;
  /** Average weight bits allowed (default (mid + high)/2 of the candidates, e.g. 3.5 for W3A3). */
  budgetBits?: number;
  /** Optional average activation bits allowed. */
  budgetActBits?: number;
  /** Exact multiple-choice knapsack (default) or the release's greedy rule. */
  mpRule?: 'exact' | 'greedy';
  /** Cancels the run: AbortError (code `ABORT_ERR`). */
  signal?: AbortSignal;
  /** Progress: `calibrate` then `score` events (done/total calibration samples). */
  onProgress?: (e: ProgressEvent) => void;
}

/** What {@link analyze} found. */
export interface AnalyzeResult {
  /** The blocks discovered, in network order, with their layers. */
  blocks: { name: string; layers: string[] }[];
  /** One score per block: S_b (`score`), Ω_b (`omega`) and their parts. */
  scores: BlockScore[];
  /** Consecutive blocks grouped into packs, as block indices. */
  packs: number[][];
  /** With mixedPrecision: the width of each pack (weights and activations). */
  bits?: number[];
  /** With mixedPrecision: the average weight bits budget applied. */
  budgetBits?: number;
  /** Wall time. */
  seconds: number;
}

export async function analyze(model: Model, o: AnalyzeOptions): Promise<AnalyzeResult> {
  checkInit(o.init ?? 'mse');
  const t0 = process.hrtime.bigint();
  const batch = o.batch ?? 32, threads = o.threads ?? 1;
  const s = discoverBlocks(model.graph, o);
  const plan = planQuantization(model.graph, s, o);
  if (!s.blocks.length) throw new BadOptionError(`${model.file}: no blocks were found, so there is nothing to score or pack (every layer is its own unit); define blocks by node-name prefix with --blocks, e.g. one per layer`);
  const calib = chooseSubset(o.calib, o.calibSize ?? 1024, o.seed ?? 0);
  const init = o.init ?? 'mse';
  const quantized = {
    weights: await calibrateWeights(model.graph, plan, init, threads, o.signal),
    acts: await calibrateActivations(model, plan, calib, { init, batch, threads, signal: o.signal, onProgress: (e) => o.onProgress?.({ phase: 'calibrate', done: e.done, total: e.total }) }),
  };
  const scores = await blockScores(model, s, quantized, calib, { batch, threads, form: o.scoreForm, signal: o.signal, onProgress: (done, total) => o.onProgress?.({ phase: 'score', done, total }) });
  const packs = packBlocks(scores.map((x) => x.score));
  let bits: number[] | undefined, budgetBits: number | undefined;
  if (o.mixedPrecision) {
    const sol = mixedPrecision(model.graph, s, plan, scores, packs, { ...o, method: 'packptq' } as QuantizeOptions);
    bits = sol.bits;
    budgetBits = sol.budgetBits;
  }
  return {
    blocks: s.blocks.map((b) => ({ name: b.name, layers: b.layers })), scores, packs, bits, budgetBits,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}
