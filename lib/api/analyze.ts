/**
 * analyze: Pack-PTQ's analysis (block scores, Ω, packs, optional pack bits) as a public call. The
 * work is lib/pipeline/analyze.ts; this wrapper checks every option before any work starts (with
 * the same rules quantize applies to the same options) and honours an already-aborted signal.
 */
import { AbortError, expected } from '../errors';
import { Model } from '../engine/model';
import { AnalyzeOptions, AnalyzeResult, analyze as analyzeModel } from '../pipeline/analyze';
import { validateQuantizeOptions } from '../pipeline/quantize';

/**
 * Scores every block of the model by its Hessian-guided importance (Pack-PTQ, arXiv 2505.00259),
 * groups consecutive blocks into packs at the running minima of the score and, with
 * `mixedPrecision`, picks one width per pack under the average-bits budget. No reconstruction:
 * it costs calibration plus one forward and backward pass per block over the calibration set.
 *
 * @param model - A loaded FP32 model with at least one residual block (see `packptq inspect`).
 * @param options - {@link AnalyzeOptions}: target widths, calibration set, scoring and budget.
 * @returns {@link AnalyzeResult}: the blocks, each block's {@link BlockScore} (`score` S_b and
 *   `omega` Ω_b in the selected form, both forms in `paper`/`release`), the packs as lists of
 *   block indices, and `bits` per pack with `mixedPrecision`. Same seed, same result.
 * @throws {@link BadOptionError} for a bad option or a model without blocks (before any work);
 *   {@link AbortError} (code `ABORT_ERR`) when `signal` fires.
 *
 * @example
 * ```js
 * const a = await analyze(model, { wBits: 3, aBits: 3, calib, mixedPrecision: true, budgetBits: 3.5,
 *   onProgress: (e) => console.log(e.phase, e.done, e.total) });
 * a.scores.forEach((s) => console.log(s.block, s.score, s.omega));
 * console.log(a.packs, a.bits);
 * ```
 */
export async function analyze(model: Model, options: AnalyzeOptions): Promise<AnalyzeResult> {
  if (!(model instanceof Model)) throw expected('a Model', 'model', model);
  if (!options || typeof options.calib?.batch !== 'function') throw expected('a Dataset', 'calib', options?.calib);
  validateQuantizeOptions({ ...options, method: 'packptq' });
  if (options.signal?.aborted) throw new AbortError();
  const r = await analyzeModel(model, options);
  if (options.signal?.aborted) throw new AbortError();
  return r;
}

export type { AnalyzeOptions, AnalyzeResult };
