/**
 * equalize: the `--equalize` step as a public call (lib/pipeline/equalize.ts does the work). Not
 * part of the paper's method: an FP-equivalent rescaling that helps models whose activations, not
 * weights, limit low-bit accuracy.
 */
import { AbortError, expected } from '../errors';
import { Model } from '../engine/model';
import { Dataset } from '../data/dataset';
import { chooseSubset } from '../data/subset';
import { EqualizeResult, equalizeActivations } from '../pipeline/equalize';

export interface EqualizeModelOptions {
  /** Migration strength α in (0, 1]: 1 (default) gives each linked activation one range over its channels. */
  alpha?: number;
  /** Calibration samples (a seeded random choice, as quantize draws them; default 1024). */
  calibSize?: number;
  seed?: number;
  batch?: number;
  threads?: number;
  signal?: AbortSignal;
}

/**
 * Rescales every Conv/Gemm/MatMul pair joined only by ReLU, LeakyReLU, pooling or max/mean
 * reductions so the activation between them has one range over its channels on `calib`, and
 * returns the rescaled model (the FP function is unchanged; pass it to quantize and exportModel).
 *
 * @returns {@link EqualizeResult}: `model`, `alpha`, and per pair (`links`) the layers, the value,
 *   and the range spread (largest / smallest channel range) before and after.
 * @throws {@link BadOptionError} for a bad option; {@link AbortError} when `signal` fires.
 *
 * @example
 * ```js
 * const { model: eq, links } = await equalize(model, calib, { calibSize: 256 });
 * const r = await quantize(eq, { method: 'qdrop', wBits: 3, aBits: 3, calib, calibSize: 256 });
 * await exportModel(r, eq, 'q.onnx');
 * ```
 */
export async function equalize(model: Model, calib: Dataset, options: EqualizeModelOptions = {}): Promise<EqualizeResult> {
  if (!(model instanceof Model)) throw expected('a Model', 'model', model);
  if (!calib || typeof calib.batch !== 'function') throw expected('a Dataset', 'calib', calib);
  if (options.signal?.aborted) throw new AbortError();
  const { calibSize = 1024, seed = 0, ...rest } = options;
  return equalizeActivations(model, chooseSubset(calib, calibSize, seed), rest);
}
