/**
 * packptq: post-training quantization of ONNX models on CPU (calibrated round-to-nearest,
 * AdaRound, BRECQ, QDrop and Pack-PTQ), with QDQ ONNX export.
 *
 * This file is the public API: everything a program using packptq imports, and nothing else (the
 * package's `exports` map makes the rest unreachable). The ESM entry esm/index.mjs lists these
 * same names (test/package/exports.test.ts checks both agree).
 *
 * The main calls are promise-based and take `signal` (an AbortSignal: the promise then rejects
 * with an {@link AbortError}, code `ABORT_ERR`, and no output file is left) and, for the long ones,
 * `onProgress` (structured {@link ProgressEvent}s). Long work runs on native threads, so the event
 * loop stays free; the whole API also works inside a `worker_threads` Worker.
 *
 * @example
 * ```js
 * const { loadModel, loadDataset, quantize, exportModel } = require('packptq');
 * const model = await loadModel('resnet20.onnx');
 * const calib = loadDataset({ data: 'calib-1024-images-idx3-ubyte.gz', mean: [0.286], std: [0.353] });
 * const r = await quantize(model, { method: 'rtn', wBits: 4, aBits: 4, calib });
 * await exportModel(r, model, 'resnet20-w4a4.onnx');
 * ```
 * @packageDocumentation
 */

// ---- models ----
export { loadModel } from './api/load';
export type { LoadModelOptions } from './api/load';
export { Model } from './engine/model';
export type { CompileOptions, LoadOptions } from './engine/model';

// ---- evaluation ----
export { evaluate } from './engine/evaluate';
export type { EvaluateOptions, EvaluateResult } from './engine/evaluate';

// ---- quantization, analysis, export ----
export { quantize, METHODS } from './pipeline/quantize';
export type { Method, QuantizeOptions, QuantizeResult, ProgressEvent, PackReport } from './pipeline/quantize';
export { analyze } from './api/analyze';
export type { AnalyzeOptions, AnalyzeResult } from './api/analyze';
export type { BlockScore, ScoreForm } from './pack/score';
export type { LayerBitsRule, QuantPlan, LayerPlan, ActPlan } from './quant/plan';
export type { QuantizedGraph, WeightQuant, ActQuant, QuantParams } from './quant/types';
export type { UnitReport } from './recon/reconstruct';
export { equalize } from './api/equalize';
export type { EqualizeModelOptions } from './api/equalize';
export type { EqualizeResult, EqualizedLink } from './pipeline/equalize';
export type { EqualizeLink } from './graph/passes/equalize';
export { exportModel } from './api/export';
export type { ExportModelOptions } from './api/export';
export { exportQdq, writeQdqModel } from './export';
/** Renders a run report (the JSON `quantize --report` writes) as one self-contained HTML page with inline SVG charts. */
export { renderHtmlReport } from './report/html';
export type { RunReport } from './report/html';
export type { QdqExportOptions } from './export';

// ---- data ----
export { loadDataset, loadDatasetAsync, makeDataset } from './data/dataset';
export type { Dataset, Batch, LoadDatasetOptions, MakeDatasetOptions, RawData } from './data/dataset';
export { loadImageFolder, IMAGENET_PRESET } from './data/images';
export type { ImageOptions, ImageFolderOptions, ImageFolderDataset, ImageSize } from './data/images';

// ---- errors ----
export {
  PackPtqError, OnnxDecodeError, ExternalDataError, UnsupportedOpError, UnsupportedModelError, BadGraphError,
  ShapeMismatchError, BadDataError, BadOptionError, NativeError, IoError, AbortError,
} from './errors';
export type { ErrorCode } from './errors';
