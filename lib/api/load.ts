/**
 * loadModel: the asynchronous way in. The file is read with fs.promises so a server's event loop
 * is not blocked by a large model on a slow disk; decoding and the graph passes then run
 * synchronously (they are pure JavaScript over bytes already in memory, and short next to I/O).
 */
import { readFile } from 'fs/promises';
import { AbortError, IoError, expected } from '../errors';
import { LoadOptions, Model } from '../engine/model';

/** Options of {@link loadModel}. */
export interface LoadModelOptions extends LoadOptions {
  /** Cancels the read; the promise then rejects with an {@link AbortError} (code `ABORT_ERR`). */
  signal?: AbortSignal;
}

/**
 * Reads an FP32 ONNX model (single file, opset 11–21) and prepares it for evaluation and
 * quantization: decodes it, checks every op is supported, and applies the canonicalising passes
 * (BatchNorm folding, LayerNorm/GELU fusion, ...) unless `raw` is set.
 *
 * @param file - Path of the `.onnx` file.
 * @param options - {@link LoadModelOptions}.
 * @returns The loaded {@link Model}.
 * @throws {@link IoError} (code `IO`) when the file cannot be read; {@link OnnxDecodeError}
 *   (`ONNX_DECODE`) when it is not an ONNX model; {@link UnsupportedOpError},
 *   {@link UnsupportedModelError} or {@link ExternalDataError} when packptq cannot run it;
 *   {@link AbortError} when `signal` fires. Every message names the file.
 *
 * @example
 * ```js
 * const { loadModel } = require('packptq');
 * const model = await loadModel('resnet20.onnx');
 * console.log(model.input.shape, model.graph.nodes.length);
 * ```
 */
export async function loadModel(file: string, options: LoadModelOptions = {}): Promise<Model> {
  if (typeof file !== 'string' || file === '') throw expected('a file path', 'file', file);
  if (options.signal?.aborted) throw new AbortError();
  let bytes: Buffer;
  try {
    bytes = await readFile(file, { signal: options.signal });
  } catch (err) {
    if ((err as Error)?.name === 'AbortError') throw new AbortError();
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw new IoError(`Cannot read ONNX model ${file}: ${reason}`, { cause: err });
  }
  if (options.signal?.aborted) throw new AbortError();
  return Model.fromBytes(bytes, file, { raw: options.raw });
}
