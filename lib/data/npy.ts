/**
 * NumPy .npy reader (format versions 1.0, 2.0 and 3.0) and a small writer.
 *
 * Layout: `\x93NUMPY`, major and minor version bytes, header length (uint16 LE in 1.0, uint32 LE
 * in 2.0/3.0), a Python dict literal `{'descr': ..., 'fortran_order': ..., 'shape': (...), }`
 * (latin-1 in 1.0/2.0, UTF-8 in 3.0), then the raw elements.
 *
 * Decisions:
 * - fortran_order True is accepted and transposed to C order on load, so callers only ever see
 *   C-order data (np.save of a transposed view writes Fortran order; refusing it would only push a
 *   `np.ascontiguousarray` chore onto the user).
 * - Big-endian ('>') data is converted to the host byte order.
 * - 64-bit integers come back as BigInt64Array / BigUint64Array so nothing is silently rounded;
 *   the dataset layer converts them with a range check.
 * - The data must be exactly as long as the header says; trailing bytes mean a damaged or
 *   mislabelled file, so they are an error, not ignored.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BadDataError, BadOptionError, IoError, expected } from '../errors';
import { formatShape, readDataFile } from './idx';

export type NpyDtype =
  | 'float32' | 'float64' | 'uint8' | 'int8' | 'int16' | 'uint16'
  | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool';

export type NpyData =
  | Float32Array | Float64Array | Uint8Array | Int8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  /** C-order elements in the host byte order; bool is a Uint8Array of 0/1. */
  data: NpyData;
}

interface NpyType {
  dtype: NpyDtype;
  bytes: number;
  make(n: number): NpyData;
  get(view: DataView, offset: number, little: boolean): number | bigint;
}

/** Keyed by the descr without its byte-order character. */
const NPY_TYPES: Record<string, NpyType> = {
  f4: { dtype: 'float32', bytes: 4, make: (n) => new Float32Array(n), get: (v, o, le) => v.getFloat32(o, le) },
  f8: { dtype: 'float64', bytes: 8, make: (n) => new Float64Array(n), get: (v, o, le) => v.getFloat64(o, le) },
  u1: { dtype: 'uint8', bytes: 1, make: (n) => new Uint8Array(n), get: (v, o) => v.getUint8(o) },
  i1: { dtype: 'int8', bytes: 1, make: (n) => new Int8Array(n), get: (v, o) => v.getInt8(o) },
  b1: { dtype: 'bool', bytes: 1, make: (n) => new Uint8Array(n), get: (v, o) => (v.getUint8(o) ? 1 : 0) },
  i2: { dtype: 'int16', bytes: 2, make: (n) => new Int16Array(n), get: (v, o, le) => v.getInt16(o, le) },
  u2: { dtype: 'uint16', bytes: 2, make: (n) => new Uint16Array(n), get: (v, o, le) => v.getUint16(o, le) },
  i4: { dtype: 'int32', bytes: 4, make: (n) => new Int32Array(n), get: (v, o, le) => v.getInt32(o, le) },
  u4: { dtype: 'uint32', bytes: 4, make: (n) => new Uint32Array(n), get: (v, o, le) => v.getUint32(o, le) },
  i8: { dtype: 'int64', bytes: 8, make: (n) => new BigInt64Array(n), get: (v, o, le) => v.getBigInt64(o, le) },
  u8: { dtype: 'uint64', bytes: 8, make: (n) => new BigUint64Array(n), get: (v, o, le) => v.getBigUint64(o, le) },
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const HOST_LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** True when the bytes start with the NPY magic. */
export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/** Parses NPY bytes (already gunzipped). `name` is used in error messages only. */
export function parseNpy(bytes: Uint8Array, name: string): NpyArray {
  if (!isNpy(bytes)) throw new BadDataError(`${name}: not an NPY file (missing the \\x93NUMPY magic)`);
  if (bytes.length < 10) throw new BadDataError(`${name}: truncated NPY preamble`);
  const major = bytes[6];
  const minor = bytes[7];
  if (major < 1 || major > 3) {
    throw new BadDataError(`${name}: unsupported NPY format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) throw new BadDataError(`${name}: truncated NPY preamble`);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = 8 + lenBytes + headerLen;
  if (bytes.length < dataStart) {
    throw new BadDataError(`${name}: truncated NPY header (declares ${headerLen} bytes, file ends before)`);
  }
  const headerText = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
    bytes.subarray(8 + lenBytes, dataStart),
  );
  const { type, little, fortran, shape } = readHeader(headerText, name);

  let count = 1;
  for (const d of shape) count *= d;
  const expectedBytes = count * type.bytes;
  const found = bytes.length - dataStart;
  if (found !== expectedBytes) {
    throw new BadDataError(
      `${name}: expected ${expectedBytes} bytes of data for ${formatShape(shape)} of ${type.dtype} but found ${found}`,
    );
  }

  let data = type.make(count);
  if (type.bytes === 1 || little === HOST_LITTLE) {
    // Same byte order: one bulk copy (into a fresh, aligned buffer; the data offset in the file
    // need not be a multiple of the element size for a typed-array view).
    new Uint8Array(data.buffer).set(bytes.subarray(dataStart, dataStart + expectedBytes));
    if (type.dtype === 'bool') {
      const b = data as Uint8Array;
      for (let i = 0; i < count; i++) b[i] = b[i] ? 1 : 0;
    }
  } else {
    for (let i = 0, o = dataStart; i < count; i++, o += type.bytes) {
      (data as any)[i] = type.get(view, o, little);
    }
  }
  if (fortran && shape.length > 1) data = fortranToC(data, shape, type);
  return { dtype: type.dtype, shape, data };
}

/** Reads an .npy file (a gzipped one too). */
export function readNpy(file: string): NpyArray {
  return parseNpy(readDataFile(file), file);
}

/**
 * Writes float32 or uint8 data as NPY 1.0, atomically: a temp file beside the target, renamed over
 * it, so a crash or a full disk never leaves a half-written file under the real name.
 */
export function writeNpy(file: string, data: Float32Array | Uint8Array, shape: readonly number[]): void {
  if (!(data instanceof Float32Array) && !(data instanceof Uint8Array)) {
    throw expected('a Float32Array or Uint8Array', 'data', Object.prototype.toString.call(data));
  }
  let count = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw expected('non-negative integer dimensions', 'shape', [...shape]);
    count *= d;
  }
  if (count !== data.length) {
    throw new BadOptionError(`shape ${formatShape(shape)} holds ${count} elements but data has ${data.length}`);
  }
  const descr = data instanceof Float32Array ? '<f4' : '|u1';
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`;
  // numpy pads the header with spaces so the data starts on a 64-byte boundary (10-byte preamble).
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  if (header.length > 0xffff) throw new BadOptionError(`shape ${formatShape(shape)} is too long for an NPY 1.0 header`);

  const out = Buffer.alloc(10 + header.length + data.byteLength);
  MAGIC.forEach((b, i) => (out[i] = b));
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  const body = out.subarray(10 + header.length);
  if (data instanceof Float32Array) {
    for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], i * 4);
  } else {
    body.set(data);
  }
  writeAtomic(file, out);
}

/** temp file + rename; the temp file is removed when anything fails. */
function writeAtomic(file: string, bytes: Uint8Array): void {
  const tmp = path.join(
    path.dirname(file),
    `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`,
  );
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (err) {
    try { fs.unlinkSync(tmp); } catch { /* never created, or already renamed */ }
    throw new IoError(`cannot write ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The labels file beside an NPY data file by the `<prefix>-<what>.npy` → `<prefix>-labels.npy`
 * naming the shipped sets use (test-1000-points.npy → test-1000-labels.npy). Undefined when the
 * name does not follow it or no such file exists.
 */
export function findNpyLabelsFile(dataPath: string): string | undefined {
  const m = /^(.*)-([^-]+)\.npy(\.gz)?$/.exec(path.basename(dataPath));
  if (!m || m[2] === 'labels') return undefined;
  const stem = path.join(path.dirname(dataPath), `${m[1]}-labels.npy`);
  for (const c of m[3] ? [stem + '.gz', stem] : [stem, stem + '.gz']) {
    try {
      if (fs.statSync(c).isFile()) return c;
    } catch { /* try the next spelling */ }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Header: a Python literal. We parse it properly rather than with regexes so a structured dtype
// (a list descr) or an odd spacing gives a clear message instead of a wrong shape.

interface Header { type: NpyType; little: boolean; fortran: boolean; shape: number[] }

function readHeader(text: string, name: string): Header {
  let dict: unknown;
  try {
    dict = new LiteralParser(text).parseTop();
  } catch (err) {
    throw new BadDataError(`${name}: malformed NPY header (${(err as Error).message}): ${JSON.stringify(text.trim())}`);
  }
  if (!(dict instanceof Map)) throw new BadDataError(`${name}: NPY header is not a dict: ${JSON.stringify(text.trim())}`);
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!dict.has(key)) throw new BadDataError(`${name}: NPY header has no '${key}' key`);
  }
  const descr = dict.get('descr');
  if (typeof descr !== 'string') {
    throw new BadDataError(`${name}: structured NPY dtypes are not supported (descr ${JSON.stringify(descr)})`);
  }
  const order = descr[0];
  const type = NPY_TYPES[descr.slice(1)];
  const validOrder = order === '<' || order === '>' || (order === '|' && type?.bytes === 1);
  if (!type || !validOrder) {
    throw new BadDataError(
      `${name}: unsupported NPY dtype '${descr}' (supported: f4 f8 u1 i1 b1 i2 u2 i4 u4 i8 u8, little- or big-endian)`,
    );
  }
  const fortran = dict.get('fortran_order');
  if (typeof fortran !== 'boolean') throw new BadDataError(`${name}: NPY header 'fortran_order' is not True/False`);
  const shape = dict.get('shape');
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) {
    throw new BadDataError(`${name}: NPY header 'shape' is not a tuple of non-negative integers`);
  }
  return { type, little: order !== '>', fortran, shape: shape as number[] };
}

/** Python literals as NPY headers use them: dict, tuple, list, str, int, True/False/None. */
class LiteralParser {
  private i = 0;
  constructor(private readonly s: string) {}

  parseTop(): unknown {
    const v = this.value();
    this.ws();
    if (this.i !== this.s.length) throw new Error(`unexpected ${JSON.stringify(this.s[this.i])} at ${this.i}`);
    return v;
  }

  private ws(): void {
    while (this.i < this.s.length && /\s/.test(this.s[this.i])) this.i++;
  }

  private value(): unknown {
    this.ws();
    const c = this.s[this.i];
    if (c === '{') return this.dict();
    if (c === '(') return this.seq('(', ')');
    if (c === '[') return this.seq('[', ']');
    if (c === "'" || c === '"') return this.str();
    if (c !== undefined && /[-+0-9]/.test(c)) return this.int();
    for (const [word, v] of [['True', true], ['False', false], ['None', null]] as const) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return v;
      }
    }
    throw new Error(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)} at ${this.i}`);
  }

  private dict(): Map<string, unknown> {
    const m = new Map<string, unknown>();
    this.i++; // {
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') { this.i++; return m; }
      const k = this.value();
      if (typeof k !== 'string') throw new Error('dict key is not a string');
      this.ws();
      if (this.s[this.i] !== ':') throw new Error(`expected ':' at ${this.i}`);
      this.i++;
      m.set(k, this.value());
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== '}') throw new Error(`expected ',' or '}' at ${this.i}`);
    }
  }

  private seq(open: string, close: string): unknown[] {
    const out: unknown[] = [];
    this.i++; // open
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) { this.i++; return out; }
      out.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') this.i++;
      else if (this.s[this.i] !== close) throw new Error(`expected ',' or '${close}' at ${this.i}`);
    }
  }

  private str(): string {
    const q = this.s[this.i++];
    let out = '';
    while (this.i < this.s.length && this.s[this.i] !== q) {
      // Escapes never occur in descr strings numpy writes; keep the escaped character as is.
      if (this.s[this.i] === '\\') this.i++;
      out += this.s[this.i++];
    }
    if (this.i >= this.s.length) throw new Error('unterminated string');
    this.i++;
    return out;
  }

  private int(): number {
    const m = /^[-+]?[0-9]+L?/.exec(this.s.slice(this.i)); // L: Python 2 long, seen in old files
    if (!m) throw new Error(`bad number at ${this.i}`);
    this.i += m[0].length;
    return Number(m[0].replace('L', ''));
  }
}

/** Reorders column-major elements into row-major order for the same logical shape. */
function fortranToC(src: NpyData, shape: number[], type: NpyType): NpyData {
  const n = src.length;
  const dst = type.make(n) as any;
  const nd = shape.length;
  // Fortran strides (in elements): the first index varies fastest.
  const fstride: number[] = [];
  for (let k = 0, s = 1; k < nd; k++) { fstride.push(s); s *= shape[k]; }
  const idx = new Array<number>(nd).fill(0);
  let f = 0; // Fortran offset of the C-order element at `idx`
  for (let c = 0; c < n; c++) {
    dst[c] = (src as any)[f];
    // Advance the C-order multi-index (last axis fastest), keeping f in step.
    for (let k = nd - 1; k >= 0; k--) {
      if (++idx[k] < shape[k]) { f += fstride[k]; break; }
      f -= fstride[k] * (shape[k] - 1);
      idx[k] = 0;
    }
  }
  return dst;
}
