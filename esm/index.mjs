// The ESM entry of packptq (package.json "exports" → "import"). The library is compiled to
// CommonJS once; this file re-exports its names so `import { Model } from 'packptq'` works without
// a second build. The names are listed rather than detected from the CommonJS file, so what ESM
// users get does not depend on Node's export-detection heuristics; test/package/exports.test.ts
// fails when this list and dist/lib/index.js disagree.
import packptq from '../dist/lib/index.js';

export const {
  loadModel,
  Model,
  evaluate,
  quantize,
  METHODS,
  analyze,
  equalize,
  exportModel,
  loadDataset,
  loadDatasetAsync,
  makeDataset,
  loadImageFolder,
  IMAGENET_PRESET,
  exportQdq,
  writeQdqModel,
  renderHtmlReport,
  PackPtqError,
  OnnxDecodeError,
  ExternalDataError,
  UnsupportedOpError,
  UnsupportedModelError,
  BadGraphError,
  ShapeMismatchError,
  BadDataError,
  BadOptionError,
  NativeError,
  IoError,
  AbortError,
} = packptq;

export default packptq;
