/**
 * exportModel: a quantize result → a QDQ ONNX file, written asynchronously and atomically. The
 * model is built by lib/export (exportQdq) and encoded in memory first, so every failure of the
 * export itself happens before the disk is touched; the bytes then go to a temporary file in the
 * target's folder which is renamed over the target only once complete, so a failed or cancelled
 * export never leaves a partial (or any) file at `file`.
 */
import { open, rename, unlink } from 'fs/promises';
import * as path from 'path';
import { AbortError, BadOptionError, IoError, expected } from '../errors';
import { Model } from '../engine/model';
import { QdqExportOptions, exportQdq } from '../export';
import { encodeModel } from '../onnx/encode';
import { ProgressEvent, QuantizeResult } from '../pipeline/quantize';

/** Options of {@link exportModel}: the QDQ writer's, plus cancellation and progress. */
export interface ExportModelOptions extends QdqExportOptions {
  /**
   * Cancels the export; the promise rejects with an {@link AbortError} (code `ABORT_ERR`) and no
   * file is left at the target nor beside it.
   */
  signal?: AbortSignal;
  /** Called with `phase: 'export'`: done/total = 0/2 before building, 1/2 after encoding, 2/2 once renamed. */
  onProgress?: (e: ProgressEvent) => void;
}

/**
 * Writes a quantized model as QDQ ONNX (opset 21): every quantized weight stored as integer codes
 * (int8/uint8, or packed int4/uint4 for ≤ 4 bits) read by DequantizeLinear, every quantized
 * activation as QuantizeLinear → DequantizeLinear, with the widths chosen in `result.plan`
 * (mixed precision included). onnxruntime runs the file with the accuracy `quantize` measured.
 * The metadata records packptq's version, the method and the weight/activation widths.
 *
 * @param result - What {@link quantize} returned for `model`.
 * @param model - The model that was quantized (its canonical graph is the base of the export).
 * @param file - Target path; its folder must exist. An existing file is replaced atomically.
 * @param options - {@link ExportModelOptions}.
 * @throws {@link IoError} (code `IO`, naming the file) when it cannot be written, leaving no
 *   file behind; {@link BadOptionError} when `result` does not belong to `model`;
 *   {@link AbortError} when `signal` fires.
 *
 * @example
 * ```js
 * const r = await quantize(model, { method: 'rtn', wBits: 4, aBits: 4, calib });
 * await exportModel(r, model, 'resnet20-w4a4.onnx');
 * // onnxruntime: await ort.InferenceSession.create('resnet20-w4a4.onnx')
 * ```
 */
export async function exportModel(result: QuantizeResult, model: Model, file: string, options: ExportModelOptions = {}): Promise<void> {
  if (typeof file !== 'string' || file === '') throw expected('a file path', 'file', file);
  if (!(model instanceof Model)) throw expected('a Model', 'model', model);
  if (!result || !result.quantized || !result.plan) throw expected('the result of quantize()', 'result', result);
  // A result from another model would export garbage (or fail deep inside the writer): refuse it here.
  const foreign = result.quantized.weights.find((w) => !model.graph.initializers.has(w.weight));
  if (foreign) throw new BadOptionError(`The quantize result does not belong to ${model.file}: it quantizes weight "${foreign.weight}", which the model does not have`);
  const { signal, onProgress, ...qdq } = options;
  const check = () => { if (signal?.aborted) throw new AbortError(); };
  check();
  onProgress?.({ phase: 'export', done: 0, total: 2 });
  const bytes = encodeModel(exportQdq(model.graph, result.quantized, {
    ...qdq, metadata: { 'packptq.method': result.method, ...qdq.metadata },
  }));
  check();
  onProgress?.({ phase: 'export', done: 1, total: 2 });
  await writeFileAtomic(file, bytes, signal);
  onProgress?.({ phase: 'export', done: 2, total: 2 });
}

/** Temp file in the same folder (so rename is atomic), flushed, then renamed; removed on any failure. */
async function writeFileAtomic(file: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let created = false;
  try {
    const fh = await open(tmp, 'wx');
    created = true;
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (signal?.aborted) throw new AbortError();
    await rename(tmp, file);
  } catch (err) {
    if (created) await unlink(tmp).catch(() => { /* already gone */ });
    if (err instanceof AbortError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? `the folder ${path.dirname(file)} does not exist` : (err as Error).message;
    throw new IoError(`Cannot write ONNX model ${file}: ${reason}`, { cause: err });
  }
}
