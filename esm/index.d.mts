// Types of the ESM entry: the same declarations as the CommonJS one (esm/index.mjs re-exports it).
export * from '../dist/lib/index.js';
import packptq from '../dist/lib/index.js';
export default packptq;
