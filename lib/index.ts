/**
 * The public API: everything a program using packptq imports, and nothing else (the package's
 * `exports` map makes the rest unreachable). The ESM entry esm/index.mjs lists these same names.
 *
 * A minimal first cut that re-exports the pieces that exist; the library-API issue shapes it.
 */
export { Model } from './engine/model';
export type { CompileOptions, LoadOptions } from './engine/model';
export { evaluate } from './engine/evaluate';
export type { EvaluateOptions, EvaluateResult } from './engine/evaluate';
export { quantize, METHODS } from './pipeline/quantize';
export type { Method, QuantizeOptions, QuantizeResult, ProgressEvent } from './pipeline/quantize';
export { loadDataset, loadDatasetAsync, makeDataset } from './data/dataset';
export type { Dataset, Batch, LoadDatasetOptions, MakeDatasetOptions } from './data/dataset';
export { loadImageFolder, IMAGENET_PRESET } from './data/images';
export type { ImageOptions, ImageFolderOptions, ImageFolderDataset, ImageSize } from './data/images';
export { exportQdq, writeQdqModel } from './export';
export type { QdqExportOptions } from './export';
export {
  PackPtqError, OnnxDecodeError, ExternalDataError, UnsupportedOpError, UnsupportedModelError, BadGraphError,
  ShapeMismatchError, BadDataError, BadOptionError, NativeError, IoError, AbortError,
} from './errors';
export type { ErrorCode } from './errors';
