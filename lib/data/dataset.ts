/**
 * The data an evaluation or a calibration runs on: N samples of one shape (NCHW without the batch
 * dimension), optional integer labels, and float32 batches made on demand.
 *
 * Raw elements are kept in their stored type (uint8 images stay one byte per pixel) and are
 * converted and normalised per batch, so a 60000-image set costs 47 MB rather than 188 MB.
 *
 * Normalisation: uint8 data is treated as pixels and scaled to [0, 1]; every other type is used as
 * stored. Then x = (x - mean[c]) / std[c] with c the channel, i.e. the first sample dimension
 * (dim 1 of the NCHW batch); mean and std have 1 value (all channels) or one per channel and
 * default to 0 and 1.
 */
import * as fs from 'fs';
import { BadDataError, BadOptionError, ShapeMismatchError, expected } from '../errors';
import { IdxArray, findLabelsFile, formatShape, parseIdx, readDataFile } from './idx';
import { NpyArray, findNpyLabelsFile, isNpy, parseNpy } from './npy';
import type { ImageOptions } from './images';

/** Raw sample storage; 64-bit integer data is widened to Float64Array on load. */
export type RawData =
  | Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

export interface Batch {
  /** Index of the first sample of this batch. */
  start: number;
  count: number;
  /** count × sampleShape elements, float32, normalised, C order. */
  data: Float32Array;
  labels?: Int32Array;
}

export interface Dataset {
  /** Where the samples came from, for messages. */
  readonly source: string;
  readonly samples: number;
  /** Shape of one sample, without the batch dimension (e.g. [1, 28, 28]). */
  readonly sampleShape: readonly number[];
  /** One class index per sample, or undefined when no labels were given or found. */
  readonly labels?: Int32Array;
  /** The labels file actually used (given or found beside the data). */
  readonly labelsSource?: string;
  /** Samples [start, start + count) as one float32 array, normalised. A fresh array each call. */
  batch(start: number, count: number): Float32Array;
  /** Consecutive batches of `batchSize` samples (the last one may be shorter). */
  batches(batchSize: number): IterableIterator<Batch>;
}

export interface LoadDatasetOptions extends ImageOptions {
  /** IDX (optionally gzipped) or NPY file of samples; with loadDatasetAsync also an image folder
   * (lib/data/images.ts), to which the ImageOptions (preset, resize, crop, channels) apply. */
  data: string;
  /** IDX or NPY labels file; when absent, looked for beside `data` by the standard naming. */
  labels?: string;
  mean?: number[];
  std?: number[];
  /** Use only the first `limit` samples. */
  limit?: number;
  /** Stops decoding an image folder (files load in one synchronous read and ignore it). */
  signal?: AbortSignal;
}

export interface MakeDatasetOptions {
  source: string;
  data: RawData;
  /** Shape of one sample; data.length must be a multiple of its size. */
  sampleShape: readonly number[];
  /** Treat the data as 0..255 pixels to be scaled to [0, 1]. Default: true for Uint8Array. */
  pixels?: boolean;
  labels?: Int32Array;
  labelsSource?: string;
  mean?: number[];
  std?: number[];
}

/**
 * Loads `--data` (a file or an image folder) into a Dataset. Image folders are decoded by sharp,
 * which only works asynchronously, hence this second entry point; files go to loadDataset.
 * sharp is loaded only when a folder is given.
 */
export async function loadDatasetAsync(opts: LoadDatasetOptions): Promise<Dataset> {
  if (typeof opts?.data !== 'string' || opts.data === '') throw expected('a file or folder path', '--data', opts?.data);
  if (!isFolder(opts.data)) return loadDataset(opts);
  if (opts.labels !== undefined) {
    throw new BadOptionError(`--labels ${opts.labels} cannot be used with the image folder ${opts.data}: its labels are its class folders`);
  }
  const { loadImageFolder } = await import('./images');
  return loadImageFolder(opts.data, opts);
}

const IMAGE_OPTIONS = ['preset', 'resize', 'crop', 'channels'] as const;

/**
 * Loads `--data` (and its labels) into a Dataset. The file format is recognised from the content:
 * gzip is unwrapped, then the NPY magic or the IDX `00 00` magic decides.
 */
export function loadDataset(opts: LoadDatasetOptions): Dataset {
  if (typeof opts?.data !== 'string' || opts.data === '') throw expected('a file path', '--data', opts?.data);
  if (isFolder(opts.data)) {
    throw new BadOptionError(`${opts.data} is a folder: image folders are decoded asynchronously, load them with loadDatasetAsync`);
  }
  // Silently ignoring --resize on an IDX file would evaluate on data the user did not ask for.
  const given = IMAGE_OPTIONS.find((k) => opts[k] !== undefined);
  if (given !== undefined) {
    throw new BadOptionError(`--${given} applies to image folders only, but --data ${opts.data} is a file`);
  }
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit <= 0)) {
    throw expected('a positive integer', '--limit', opts.limit);
  }
  // Check the options before reading anything large: a typo in --std should not cost a 47 MB read.
  checkStats(opts.mean, '--mean');
  checkStats(opts.std, '--std');

  const raw = readArray(opts.data);
  if (raw.shape.length < 2) {
    throw new BadDataError(
      `${opts.data}: data of shape ${formatShape(raw.shape)} has no sample dimensions (is this a labels file?)`,
    );
  }
  // IDX images are [N, H, W]: the models take NCHW, so each image is one channel.
  const sampleShape = raw.kind === 'idx' && raw.shape.length === 3 ? [1, ...raw.shape.slice(1)] : raw.shape.slice(1);
  let samples = raw.shape[0];
  if (samples === 0) throw new BadDataError(`${opts.data}: contains no samples`);
  if (sampleShape.some((d) => d === 0)) {
    throw new BadDataError(`${opts.data}: samples of shape ${formatShape(sampleShape)} hold no values`);
  }

  const labelsSource = opts.labels ?? (raw.kind === 'idx' ? findLabelsFile(opts.data) : findNpyLabelsFile(opts.data));
  let labels: Int32Array | undefined;
  if (labelsSource !== undefined) {
    labels = readLabels(labelsSource);
    if (labels.length !== samples) {
      throw new BadDataError(
        `${labelsSource}: ${labels.length} labels for ${samples} samples in ${opts.data}; the counts must match`,
      );
    }
  }

  if (opts.limit !== undefined && opts.limit < samples) {
    samples = opts.limit;
    labels = labels?.subarray(0, samples);
  }
  const size = product(sampleShape);
  const data = raw.data.subarray(0, samples * size) as RawData;
  return makeDataset({
    source: opts.data,
    data,
    sampleShape,
    pixels: raw.pixels,
    labels,
    labelsSource,
    mean: opts.mean,
    std: opts.std,
  });
}

/** Builds a Dataset from arrays already in memory (the API's way in; loadDataset ends here too). */
export function makeDataset(opts: MakeDatasetOptions): Dataset {
  const sampleShape = [...opts.sampleShape];
  if (!sampleShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw expected('positive integer dimensions', 'sampleShape', sampleShape);
  }
  const size = product(sampleShape);
  if (opts.data.length % size !== 0) {
    throw new BadDataError(
      `${opts.source}: ${opts.data.length} elements are not a whole number of samples of shape ${formatShape(sampleShape)}`,
    );
  }
  const samples = opts.data.length / size;
  if (opts.labels && opts.labels.length !== samples) {
    throw new BadDataError(
      `${opts.labelsSource ?? opts.source}: ${opts.labels.length} labels for ${samples} samples; the counts must match`,
    );
  }
  const channels = sampleShape.length > 0 ? sampleShape[0] : 1;
  const mean = expandStats(opts.mean, 0, channels, '--mean');
  const std = expandStats(opts.std, 1, channels, '--std');
  const pixels = opts.pixels ?? opts.data instanceof Uint8Array;
  const convert = makeConverter(opts.data, size, channels, pixels ? 255 : 1, mean, std);

  const batch = (start: number, count: number): Float32Array => {
    if (!Number.isInteger(start) || start < 0 || start > samples) {
      throw expected(`an integer in [0, ${samples}]`, 'start', start);
    }
    if (!Number.isInteger(count) || count < 0 || start + count > samples) {
      throw expected(`an integer in [0, ${samples - start}]`, 'count', count);
    }
    const out = new Float32Array(count * size);
    convert(start, count, out);
    return out;
  };

  function* batches(batchSize: number): IterableIterator<Batch> {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw expected('a positive integer', 'batch size', batchSize);
    for (let start = 0; start < samples; start += batchSize) {
      const count = Math.min(batchSize, samples - start);
      yield { start, count, data: batch(start, count), labels: opts.labels?.subarray(start, start + count) };
    }
  }

  return {
    source: opts.source,
    samples,
    sampleShape,
    labels: opts.labels,
    labelsSource: opts.labelsSource,
    batch,
    batches,
  };
}

/**
 * Checks that a dataset's samples fit a model input of shape `inputShape` (batch dimension first).
 * Symbolic dimensions (strings) and unknown ones (≤ 0, as ONNX writes them) match any size.
 */
export function fitToInput(ds: Dataset, inputShape: readonly (number | string)[], inputName = 'input'): void {
  const dims = inputShape.slice(1);
  const fits = dims.length === ds.sampleShape.length &&
    dims.every((d, i) => typeof d === 'string' || d <= 0 || d === ds.sampleShape[i]);
  if (!fits) {
    throw new ShapeMismatchError(
      `${ds.source}: data sample shape ${formatShape(ds.sampleShape)} does not fit model input ` +
      `${JSON.stringify(inputName)} ${formatShape(inputShape)}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------

/** A missing path is not a folder; reading it as a file then reports it. */
function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

interface LoadedArray { kind: 'idx' | 'npy'; shape: number[]; data: RawData; pixels: boolean }

/** Reads an IDX or NPY file, recognised by content, into raw storage. */
function readArray(file: string): LoadedArray {
  const bytes = readDataFile(file);
  const kind = isNpy(bytes) ? 'npy' : 'idx';
  if (kind === 'idx' && !(bytes[0] === 0 && bytes[1] === 0)) {
    throw new BadDataError(`${file}: neither an NPY file (\\x93NUMPY) nor an IDX file (00 00 type ndim)`);
  }
  const arr: IdxArray | NpyArray = kind === 'npy' ? parseNpy(bytes, file) : parseIdx(bytes, file);
  let data: RawData;
  if (arr.data instanceof BigInt64Array || arr.data instanceof BigUint64Array) {
    // int64 sample data is rare; float64 keeps every value below 2^53 exact.
    data = Float64Array.from(arr.data as ArrayLike<bigint> as any, (v: bigint) => Number(v));
  } else {
    data = arr.data;
  }
  // Only true uint8 is pixels; an NPY bool array is 0/1 and must not be divided by 255.
  return { kind, shape: arr.shape, data, pixels: arr.dtype === 'uint8' };
}

/** Reads a labels file (IDX or NPY, any integer type, or floats holding whole numbers). */
export function readLabels(file: string): Int32Array {
  const bytes = readDataFile(file);
  const arr: IdxArray | NpyArray = isNpy(bytes) ? parseNpy(bytes, file) : parseIdx(bytes, file);
  const { shape } = arr;
  // [N] is the norm; [N, 1] is what a column vector saved from pandas or sklearn looks like.
  if (!(shape.length === 1 || (shape.length === 2 && shape[1] === 1))) {
    throw new BadDataError(`${file}: labels must have shape [N] or [N,1] but have ${formatShape(shape)}`);
  }
  const n = shape[0];
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = Number(arr.data[i]);
    if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
      throw new BadDataError(
        `${file}: label ${String(arr.data[i])} at index ${i} is not a class index (an integer in [0, 2147483647])`,
      );
    }
    out[i] = v;
  }
  return out;
}

function checkStats(values: number[] | undefined, option: string): void {
  if (values === undefined) return;
  if (!Array.isArray(values) || values.length === 0 || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw expected('a list of finite numbers', option, values);
  }
  // A negative std flips the sign of every input: certainly a mistake, never a preprocessing choice.
  if (option === '--std' && values.some((v) => v <= 0)) throw expected('positive numbers', option, values);
}

/** Per-channel values from 1 or C given ones (or the default). */
function expandStats(values: number[] | undefined, dflt: number, channels: number, option: string): Float64Array {
  checkStats(values, option);
  if (values === undefined) return new Float64Array(channels).fill(dflt);
  if (values.length === 1) return new Float64Array(channels).fill(values[0]);
  if (values.length === channels) return Float64Array.from(values);
  throw expected(`1 or ${channels} values (one per channel)`, option, values);
}

/** Converts samples [first, first + count) into out, normalised. */
type Converter = (first: number, count: number, out: Float32Array) => void;

/**
 * Walks sample by sample and channel by channel so the channel's mean/std are looked up once per
 * contiguous run rather than per element. Byte data goes through a 256-entry table per channel:
 * exact (same double arithmetic as the formula) and cheaper than the arithmetic itself.
 */
function makeConverter(
  data: RawData, size: number, channels: number, divisor: number, mean: Float64Array, std: Float64Array,
): Converter {
  const inner = size / channels; // elements per channel within one sample
  if (data instanceof Uint8Array) {
    const lut = new Float32Array(256 * channels);
    for (let c = 0; c < channels; c++) {
      for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / divisor - mean[c]) / std[c];
    }
    return (first, count, out) => {
      let src = first * size;
      let dst = 0;
      for (let s = 0; s < count; s++) {
        for (let c = 0; c < channels; c++) {
          const base = c * 256;
          for (let k = 0; k < inner; k++) out[dst++] = lut[base + data[src++]];
        }
      }
    };
  }
  const identity = divisor === 1 && mean.every((m) => m === 0) && std.every((s) => s === 1);
  if (identity) return (first, count, out) => out.set(data.subarray(first * size, (first + count) * size));
  return (first, count, out) => {
    let src = first * size;
    let dst = 0;
    for (let s = 0; s < count; s++) {
      for (let c = 0; c < channels; c++) {
        const m = mean[c];
        const sd = std[c];
        for (let k = 0; k < inner; k++) out[dst++] = (data[src++] / divisor - m) / sd;
      }
    }
  };
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
