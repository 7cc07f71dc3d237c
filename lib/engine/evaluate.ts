/** Top-1 evaluation of a model over a data set, batch by batch on worker threads. */
import { AbortError, BadDataError, expected } from '../errors';
import { Dataset, fitToInput } from '../data/dataset';
import { Model } from './model';

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Samples per native call (default 32; the last batch is zero-padded). */
  batch?: number;
  /** Threads of the native kernels (default 1). */
  threads?: number;
  /** Force an instruction set: 'scalar' | 'avx2' | 'avx512' (default: the best this CPU runs). */
  isa?: string;
  /** Cancels between batches: the promise rejects with an AbortError (code `ABORT_ERR`). */
  signal?: AbortSignal;
  /** Called after each batch with the number of samples done. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@link evaluate} measured. */
export interface EvaluateResult {
  /** The model's file (or name). */
  model: string;
  /** Samples evaluated. */
  samples: number;
  /** Top-1 accuracy as a fraction, or null when the data set has no labels. */
  accuracy: number | null;
  /** Correctly classified samples, or null without labels. */
  correct: number | null;
  /** Wall time of the run. */
  seconds: number;
  /** samples / seconds. */
  imagesPerSecond: number;
  /** Threads and batch used. */
  threads: number;
  batch: number;
  /** The instruction set the kernels ran. */
  isa: string;
}

/** Index of the largest value of each row of a rows × classes matrix (top-1 predictions). */
export function argmaxRows(logits: Float32Array, rows: number, classes: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (logits[r * classes + k] > logits[r * classes + best]) best = k;
    out[r] = best;
  }
  return out;
}

/**
 * Runs every sample through the model. Every batch has the same size (the last one is padded with
 * zeros and the padding's outputs dropped), so one compiled Program serves the whole run.
 */
/**
 * Top-1 accuracy and throughput of a model over a data set.
 *
 * @example
 * ```js
 * const r = await evaluate(model, loadDataset({ data: 'test-2000-images-idx3-ubyte.gz', mean: [0.286], std: [0.353] }), { threads: 2 });
 * console.log(r.accuracy, r.imagesPerSecond);
 * ```
 */
export async function evaluate(model: Model, ds: Dataset, opts: EvaluateOptions = {}): Promise<EvaluateResult> {
  const batch = opts.batch ?? 32;
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(batch) || batch < 1) throw expected('a positive integer', 'batch', batch);
  fitToInput(ds, model.input.shape!, model.input.name);
  const program = await model.programAsync(batch, { threads, isa: opts.isa });
  const outShape = program.info.outputShapes[0];
  const classes = outShape.slice(1).reduce((a, b) => a * b, 1);
  if (ds.labels) {
    const maxLabel = ds.labels.reduce((a, b) => Math.max(a, b), 0);
    if (maxLabel >= classes) throw new BadDataError(`${ds.labelsSource ?? ds.source}: label ${maxLabel} but the model has ${classes} outputs`);
  }
  const sampleSize = ds.sampleShape.reduce((a, b) => a * b, 1);
  let correct = 0;
  const t0 = process.hrtime.bigint();
  for (let start = 0; start < ds.samples; start += batch) {
    if (opts.signal?.aborted) throw new AbortError();
    const count = Math.min(batch, ds.samples - start);
    let x = ds.batch(start, count);
    if (count < batch) {
      const padded = new Float32Array(batch * sampleSize);
      padded.set(x);
      x = padded;
    }
    const [y] = await program.run([x]);
    if (ds.labels) {
      const pred = argmaxRows(y, count, classes);
      for (let i = 0; i < count; i++) if (pred[i] === ds.labels[start + i]) correct++;
    }
    opts.onProgress?.(start + count, ds.samples);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return {
    model: model.file,
    samples: ds.samples,
    accuracy: ds.labels ? correct / ds.samples : null,
    correct: ds.labels ? correct : null,
    seconds,
    imagesPerSecond: ds.samples / seconds,
    threads,
    batch,
    isa: program.info.isa,
  };
}
