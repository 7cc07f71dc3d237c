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

export interface AnalyzeOptions extends PlanOptions, DiscoverOptions {
  calib: Dataset;
  calibSize?: number;
  seed?: number;
  batch?: number;
  threads?: number;
  init?: InitMethod;
  scoreForm?: ScoreForm;
  mixedPrecision?: boolean;
  budgetBits?: number;
  budgetActBits?: number;
  mpRule?: 'exact' | 'greedy';
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
}

export interface AnalyzeResult {
  blocks: { name: string; layers: string[] }[];
  scores: BlockScore[];
  packs: number[][];
  bits?: number[];
  budgetBits?: number;
  seconds: number;
}

export async function analyze(model: Model, o: AnalyzeOptions): Promise<AnalyzeResult> {
  checkInit(o.init ?? 'mse');
  const t0 = process.hrtime.bigint();
  const batch = o.batch ?? 32, threads = o.threads ?? 1;
  const s = discoverBlocks(model.graph, o);
  const plan = planQuantization(model.graph, s, o);
  if (!s.blocks.length) throw new BadOptionError(`${model.file}: no blocks were found, so there is nothing to score or pack (every layer is its own unit)`);
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
