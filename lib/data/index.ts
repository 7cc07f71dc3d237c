/** Data input: IDX and NPY readers, normalisation and batching (see dataset.ts for the rules). */
export { readIdx, parseIdx, findLabelsFile, isGzip, readDataFile, formatShape } from './idx';
export type { IdxArray, IdxData, IdxDtype } from './idx';
export { readNpy, parseNpy, writeNpy, isNpy, findNpyLabelsFile } from './npy';
export type { NpyArray, NpyData, NpyDtype } from './npy';
export { loadDataset, makeDataset, fitToInput, readLabels } from './dataset';
export type { Dataset, Batch, LoadDatasetOptions, MakeDatasetOptions, RawData } from './dataset';
