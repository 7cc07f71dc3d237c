/**
 * TensorProto ⇄ typed arrays.
 *
 * Representation chosen for the engine (which computes in float32) and constant folding (which
 * needs exact integer shapes):
 *  - float32, float16, bfloat16 → Float32Array (half types widened exactly); float64 → Float64Array
 *  - int8/uint8/int16/uint16/int32/uint32 → the typed array of that type; bool → Uint8Array of 0/1
 *  - int4/uint4 → Int8Array/Uint8Array, one element per value (unpacked, low nibble first)
 *  - int64/uint64 → Float64Array when every value is a safe integer (shapes, axes, indices: the
 *    normal case), else BigInt64Array/BigUint64Array so that e.g. INT64_MAX as a Slice end stays
 *    exact. Callers that prefer numbers regardless can ask for `int64: 'number'` (values beyond
 *    2^53 are then rounded, which keeps their meaning as "huge"), or `int64: 'bigint'` always.
 * Strings, complex numbers and the 8-/4-bit float formats are refused with UnsupportedOpError.
 */
import { readFileSync } from 'fs';
import { BadOptionError, IoError, OnnxDecodeError, ShapeMismatchError, UnsupportedOpError, expected } from '../errors';
import { decodeMessage, externalError, isExternal } from './decode';
import { DataType, Int64, TensorProto, dataTypeName, makeMessage } from './schema';

export type TensorDType =
  | 'float32' | 'float16' | 'bfloat16' | 'float64'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'bool' | 'int4' | 'uint4';

export type TensorData =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array
  | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

export interface TensorArray {
  name: string;
  dtype: TensorDType;
  dims: number[];
  data: TensorData;
}

export interface TensorToArrayOptions {
  /** How to return int64/uint64 data; see the file comment. Default 'auto'. */
  int64?: 'auto' | 'number' | 'bigint';
  /** The model file the tensor came from, for error messages. */
  file?: string;
}

interface DTypeInfo { code: number; bytes: number }
const DTYPES: Record<TensorDType, DTypeInfo> = {
  float32: { code: DataType.FLOAT, bytes: 4 },
  float16: { code: DataType.FLOAT16, bytes: 2 },
  bfloat16: { code: DataType.BFLOAT16, bytes: 2 },
  float64: { code: DataType.DOUBLE, bytes: 8 },
  int8: { code: DataType.INT8, bytes: 1 },
  uint8: { code: DataType.UINT8, bytes: 1 },
  int16: { code: DataType.INT16, bytes: 2 },
  uint16: { code: DataType.UINT16, bytes: 2 },
  int32: { code: DataType.INT32, bytes: 4 },
  uint32: { code: DataType.UINT32, bytes: 4 },
  int64: { code: DataType.INT64, bytes: 8 },
  uint64: { code: DataType.UINT64, bytes: 8 },
  bool: { code: DataType.BOOL, bytes: 1 },
  int4: { code: DataType.INT4, bytes: 0.5 },
  uint4: { code: DataType.UINT4, bytes: 0.5 },
};
const BY_CODE = new Map<number, TensorDType>(Object.entries(DTYPES).map(([k, v]) => [v.code, k as TensorDType]));

/** The packptq dtype name of an ONNX data type number, or undefined when packptq has none. */
export function dtypeOf(dataType: number): TensorDType | undefined {
  return BY_CODE.get(dataType);
}

/** The ONNX data type number of a dtype name. */
export function dataTypeOf(dtype: TensorDType): number {
  return DTYPES[dtype].code;
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Number of elements of a shape; [] is a scalar with one element. */
export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Decode a tensor's data, whichever of raw_data or the typed fields holds it. */
export function tensorToArray(t: TensorProto, options: TensorToArrayOptions = {}): TensorArray {
  const file = options.file ?? '<model>';
  const name = t.name ?? '';
  const label = `Tensor '${name}' of ${file}`;
  if (isExternal(t)) throw externalError(t, 'tensor', file);
  const code = t.data_type ?? DataType.UNDEFINED;
  const dtype = BY_CODE.get(code);
  if (!dtype) {
    throw new UnsupportedOpError(`${label} has data type ${dataTypeName(code)}, which packptq cannot read as numbers`);
  }
  const dims = t.dims.slice();
  const count = checkTensorSize(t, dtype, label);
  const mode = options.int64 ?? 'auto';
  const data = usesRaw(t, count)
    ? fromRaw(dtype, t.raw_data as Uint8Array, count, mode)
    : fromTyped(dtype, typedField(t, dtype), count, mode);
  return { name, dtype, dims, data };
}

function usesRaw(t: TensorProto, count: number): boolean {
  return t.raw_data !== undefined && (t.raw_data.length > 0 || count === 0);
}

/**
 * Check that the stored data has exactly the size the dims ask for, and return the element count.
 * A mismatch means a corrupt file, or bytes of some other message that parsed as a TensorProto.
 */
function checkTensorSize(t: TensorProto, dtype: TensorDType, label: string): number {
  const dims = t.dims;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new OnnxDecodeError(`${label} has an invalid dimension ${d} in [${dims.join(', ')}]`);
  }
  const count = elementCount(dims);
  if (usesRaw(t, count)) {
    const need = Math.ceil(count * DTYPES[dtype].bytes);
    const have = (t.raw_data as Uint8Array).length;
    if (have !== need) {
      throw new OnnxDecodeError(`${label}: dims [${dims.join(', ')}] of ${dtype} need ${need} bytes of raw_data but it holds ${have}`);
    }
    return count;
  }
  const stored = typedField(t, dtype).length;
  // int4/uint4 in int32_data: one packed byte (two values) per entry, as in raw_data.
  const packed = dtype === 'int4' || dtype === 'uint4';
  if (packed ? stored !== Math.ceil(count / 2) : stored !== count) {
    throw new OnnxDecodeError(
      `${label}: dims [${dims.join(', ')}] need ${count} elements but the tensor holds ${packed ? stored * 2 : stored}` +
        (stored === 0 ? ' (no raw_data and no typed data)' : ''),
    );
  }
  return count;
}

function typedField(t: TensorProto, dtype: TensorDType): readonly (number | bigint)[] {
  switch (dtype) {
    case 'float32': return t.float_data;
    case 'float64': return t.double_data;
    case 'int64': return t.int64_data;
    case 'uint32': case 'uint64': return t.uint64_data;
    default: return t.int32_data; // int8..int32, uint8, uint16, bool, float16/bfloat16 bit patterns, int4 bytes
  }
}

function fromRaw(dtype: TensorDType, raw: Uint8Array, count: number, mode: 'auto' | 'number' | 'bigint'): TensorData {
  // raw_data is a view into the file buffer at an arbitrary offset: copy to an aligned buffer.
  const bytes = new Uint8Array(raw.length);
  bytes.set(raw);
  if (!LITTLE_ENDIAN_HOST) swapToHost(bytes, Math.max(1, DTYPES[dtype].bytes));
  const buf = bytes.buffer;
  switch (dtype) {
    case 'float32': return new Float32Array(buf);
    case 'float64': return new Float64Array(buf);
    case 'int8': return new Int8Array(buf);
    case 'uint8': return bytes;
    case 'bool': return bytes.map((v) => (v ? 1 : 0));
    case 'int16': return new Int16Array(buf);
    case 'uint16': return new Uint16Array(buf);
    case 'int32': return new Int32Array(buf);
    case 'uint32': return new Uint32Array(buf);
    case 'float16': return halfBitsToFloat32(new Uint16Array(buf));
    case 'bfloat16': return bfloat16BitsToFloat32(new Uint16Array(buf));
    case 'int64': return int64Result(new BigInt64Array(buf), mode, false);
    case 'uint64': return int64Result(new BigUint64Array(buf), mode, true);
    case 'int4': case 'uint4': return unpackInt4(bytes, count, dtype === 'int4');
  }
}

function fromTyped(dtype: TensorDType, field: readonly (number | bigint)[], count: number, mode: 'auto' | 'number' | 'bigint'): TensorData {
  const nums = field as readonly number[];
  switch (dtype) {
    case 'float32': return Float32Array.from(nums);
    case 'float64': return Float64Array.from(nums);
    case 'int8': return Int8Array.from(nums);
    case 'uint8': return Uint8Array.from(nums);
    case 'bool': return Uint8Array.from(nums, (v) => (v ? 1 : 0));
    case 'int16': return Int16Array.from(nums);
    case 'uint16': return Uint16Array.from(nums);
    case 'int32': return Int32Array.from(nums);
    case 'uint32': return Uint32Array.from(field, (v) => Number(v));
    case 'float16': return halfBitsToFloat32(Uint16Array.from(nums));
    case 'bfloat16': return bfloat16BitsToFloat32(Uint16Array.from(nums));
    case 'int64': return int64Result(BigInt64Array.from(field, (v) => BigInt(v)), mode, false);
    case 'uint64': return int64Result(BigUint64Array.from(field, (v) => BigInt.asUintN(64, BigInt(v))), mode, true);
    case 'int4': case 'uint4': return unpackInt4(Uint8Array.from(nums), count, dtype === 'int4');
  }
}

function int64Result(big: BigInt64Array | BigUint64Array, mode: 'auto' | 'number' | 'bigint', unsigned: boolean): TensorData {
  if (mode === 'bigint') return big;
  const out = new Float64Array(big.length);
  const lo = BigInt(Number.MIN_SAFE_INTEGER), hi = BigInt(Number.MAX_SAFE_INTEGER);
  for (let i = 0; i < big.length; i++) {
    const v = big[i];
    if (mode === 'auto' && (v > hi || (!unsigned && v < lo))) return big;
    out[i] = Number(v);
  }
  return out;
}

function unpackInt4(bytes: Uint8Array, count: number, signed: boolean): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  for (let i = 0; i < count; i++) {
    const nib = (bytes[i >> 1] >> ((i & 1) * 4)) & 0xf;
    out[i] = signed && nib >= 8 ? nib - 16 : nib;
  }
  return out;
}

function swapToHost(bytes: Uint8Array, width: number): void {
  for (let i = 0; i + width <= bytes.length; i += width) bytes.subarray(i, i + width).reverse();
}

// Half-precision conversions work on bit patterns so that every float16 value, subnormals,
// infinities and signed zero included, converts exactly.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function halfToFloat(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) {
    const mag = man * 2 ** -24; // zero or subnormal: exact in float32
    return sign ? -mag : mag;
  }
  u32[0] = exp === 31 ? (sign | 0x7f800000 | (man << 13)) >>> 0 : (sign | ((exp + 112) << 23) | (man << 13)) >>> 0;
  return f32[0];
}

/** float → float16 bits, rounding to nearest even; overflow gives ±Inf, NaN stays NaN. */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 | (m >>> 13) : 0);
  const exp = e - 112;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    m |= 0x800000;
    const shift = 14 - exp;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (exp << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  // A carry out of the mantissa bumps the exponent, which is the correct rounding (up to Inf).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

function halfBitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = halfToFloat(bits[i]);
  return out;
}

function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const view = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) view[i] = bits[i] << 16;
  return out;
}

function floatToBfloat16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return (x >>> 16) | 0x40; // quiet NaN
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------

export interface ArrayToTensorOptions {
  name?: string;
  /** Element type to store; defaults to the array's own type (required for plain number arrays). */
  dtype?: TensorDType;
}

const DTYPE_OF_ARRAY: [Function, TensorDType][] = [
  [Float32Array, 'float32'], [Float64Array, 'float64'], [Int8Array, 'int8'], [Uint8Array, 'uint8'],
  [Int16Array, 'int16'], [Uint16Array, 'uint16'], [Int32Array, 'int32'], [Uint32Array, 'uint32'],
  [BigInt64Array, 'int64'], [BigUint64Array, 'uint64'],
];

/**
 * Build a TensorProto holding `data` in raw_data (little-endian), the compact form every ONNX
 * runtime reads. Values are converted to `dtype` (float16/bfloat16 rounded to nearest even); an
 * integer type refuses values that are not integers in its range.
 */
export function arrayToTensor(
  data: TensorData | readonly number[] | readonly bigint[],
  dims: readonly number[],
  options: ArrayToTensorOptions = {},
): TensorProto {
  const name = options.name ?? '';
  const own = DTYPE_OF_ARRAY.find(([ctor]) => data instanceof ctor)?.[1];
  const dtype = options.dtype ?? own;
  if (!dtype) throw expected('a dtype option for a plain array', `tensor '${name}'`, options.dtype);
  if (!(dtype in DTYPES)) throw expected(`one of ${Object.keys(DTYPES).join(', ')}`, `dtype of tensor '${name}'`, dtype);
  for (const d of dims) if (!Number.isInteger(d) || d < 0) throw expected('non-negative integer dims', `tensor '${name}'`, [...dims]);
  const count = elementCount(dims);
  if (data.length !== count) {
    throw new ShapeMismatchError(`Tensor '${name}': dims [${dims.join(', ')}] need ${count} elements but the data has ${data.length}`);
  }
  return makeMessage('TensorProto', {
    name,
    dims: dims.slice(),
    data_type: DTYPES[dtype].code,
    raw_data: toRaw(data, dtype, own, name),
  });
}

function toRaw(data: ArrayLike<number | bigint>, dtype: TensorDType, own: TensorDType | undefined, name: string): Uint8Array {
  const n = data.length;
  // Same type on a little-endian host: the bytes are already the wire format.
  if (dtype === own && LITTLE_ENDIAN_HOST) {
    const view = data as TensorData;
    return new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));
  }
  const size = Math.ceil(n * DTYPES[dtype].bytes);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  const num = (i: number): number => {
    const v = data[i];
    return typeof v === 'bigint' ? Number(v) : v;
  };
  const int = (i: number, lo: number, hi: number): number => {
    const v = num(i);
    if (!Number.isInteger(v) || v < lo || v > hi) throw badValue(name, dtype, data[i], i);
    return v;
  };
  switch (dtype) {
    case 'float32': for (let i = 0; i < n; i++) dv.setFloat32(i * 4, num(i), true); break;
    case 'float64': for (let i = 0; i < n; i++) dv.setFloat64(i * 8, num(i), true); break;
    case 'float16': for (let i = 0; i < n; i++) dv.setUint16(i * 2, floatToHalf(num(i)), true); break;
    case 'bfloat16': for (let i = 0; i < n; i++) dv.setUint16(i * 2, floatToBfloat16(num(i)), true); break;
    case 'int8': for (let i = 0; i < n; i++) dv.setInt8(i, int(i, -128, 127)); break;
    case 'uint8': for (let i = 0; i < n; i++) dv.setUint8(i, int(i, 0, 255)); break;
    case 'bool': for (let i = 0; i < n; i++) dv.setUint8(i, num(i) ? 1 : 0); break;
    case 'int16': for (let i = 0; i < n; i++) dv.setInt16(i * 2, int(i, -32768, 32767), true); break;
    case 'uint16': for (let i = 0; i < n; i++) dv.setUint16(i * 2, int(i, 0, 65535), true); break;
    case 'int32': for (let i = 0; i < n; i++) dv.setInt32(i * 4, int(i, -(2 ** 31), 2 ** 31 - 1), true); break;
    case 'uint32': for (let i = 0; i < n; i++) dv.setUint32(i * 4, int(i, 0, 2 ** 32 - 1), true); break;
    case 'int64': case 'uint64': {
      const signed = dtype === 'int64';
      for (let i = 0; i < n; i++) {
        const v = data[i];
        let b: bigint;
        if (typeof v === 'bigint') b = v;
        else if (Number.isSafeInteger(v)) b = BigInt(v);
        else throw badValue(name, dtype, v, i);
        if (signed ? BigInt.asIntN(64, b) !== b : BigInt.asUintN(64, b) !== b) throw badValue(name, dtype, v, i);
        if (signed) dv.setBigInt64(i * 8, b, true);
        else dv.setBigUint64(i * 8, b, true);
      }
      break;
    }
    case 'int4': case 'uint4': {
      const [lo, hi] = dtype === 'int4' ? [-8, 7] : [0, 15];
      for (let i = 0; i < n; i++) out[i >> 1] |= (int(i, lo, hi) & 0xf) << ((i & 1) * 4);
      break;
    }
  }
  return out;
}

function badValue(name: string, dtype: TensorDType, v: unknown, i: number): BadOptionError {
  return expected(`${dtype} values`, `element ${i} of tensor '${name}'`, v);
}

// ---------------------------------------------------------------------------------------------

/**
 * Decode a standalone TensorProto file (the input_N.pb / output_N.pb files of the ONNX
 * conformance tests). Throws OnnxDecodeError when the bytes are not a tensor.
 */
export function decodeTensorFile(bytes: Uint8Array, file = '<bytes>'): TensorProto {
  if (bytes.length === 0) throw new OnnxDecodeError(`Cannot decode ONNX tensor ${file}: the file is empty`);
  const t = decodeMessage<TensorProto>('TensorProto', bytes, file, 'tensor');
  // A TensorProto always names its element type; without one this is some other message
  // (a SequenceProto, a model) that happened to parse.
  if (t.data_type === undefined || t.data_type === DataType.UNDEFINED) {
    throw new OnnxDecodeError(`Cannot decode ONNX tensor ${file}: it has no data_type, so it is not a TensorProto`);
  }
  if (isExternal(t)) throw externalError(t, 'tensor file', file);
  const dtype = BY_CODE.get(t.data_type);
  if (dtype) checkTensorSize(t, dtype, `Cannot decode ONNX tensor ${file}: tensor '${t.name ?? ''}'`);
  return t;
}

/** Read a tensor .pb file; IoError when it cannot be read. */
export function loadTensorFile(path: string): TensorProto {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new IoError(`Cannot read ONNX tensor ${path}: ${(err as Error).message}`, { cause: err });
  }
  return decodeTensorFile(bytes, path);
}

/**
 * The values of a small tensor (shape, axes, pads, Slice bounds) as plain numbers. int64 values
 * beyond 2^53 become the nearest double (INT64_MAX → 9223372036854775808), which keeps their
 * meaning as "to the end" for Slice-like uses; use tensorToArray for exact values.
 */
export function tensorToNumbers(t: TensorProto, file?: string): number[] {
  const arr = tensorToArray(t, { file, int64: 'number' });
  return Array.from(arr.data as ArrayLike<number>);
}
