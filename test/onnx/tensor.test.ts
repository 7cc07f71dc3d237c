/**
 * TensorProto ⇄ typed arrays. Independent truths: IEEE 754 half-precision values worked out by
 * hand, the ONNX conformance data (Cast tests written by onnx/numpy), and the equality of the two
 * encodings ONNX allows for the same values (raw_data vs the typed repeated fields).
 */
import { existsSync } from 'fs';
import { join } from 'path';
import {
  DataType, Int64, TensorDType, TensorProto, arrayToTensor, decodeTensorFile, encodeTensor, floatToHalf,
  halfToFloat, loadTensorFile, makeMessage, tensorToArray, tensorToNumbers,
} from '../../lib/onnx';
import { OnnxDecodeError, ShapeMismatchError, UnsupportedOpError, BadOptionError } from '../../lib/errors';

/** A TensorProto storing `values` in the typed field ONNX prescribes for `dataType`. */
function typed(dataType: number, dims: number[], field: keyof TensorProto, values: (number | Int64)[]): TensorProto {
  return makeMessage('TensorProto', { name: 't', dims, data_type: dataType, [field]: values });
}

/** Raw little-endian bytes written with DataView, independent of the code under test. */
function rawLE(width: number, values: (number | bigint)[], put: (dv: DataView, off: number, v: never) => void): Uint8Array {
  const out = new Uint8Array(values.length * width);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => put(dv, i * width, v as never));
  return out;
}

describe('raw_data and typed fields give the same values', () => {
  const cases: [TensorDType, number, keyof TensorProto, (number | bigint)[], number, (dv: DataView, o: number, v: never) => void][] = [
    ['float32', DataType.FLOAT, 'float_data', [1.5, -0, 3.4028234663852886e38, 2 ** -149, -7.25, Infinity], 4, (dv, o, v) => dv.setFloat32(o, v, true)],
    ['float64', DataType.DOUBLE, 'double_data', [Math.PI, -1e300, 5e-324, 0], 8, (dv, o, v) => dv.setFloat64(o, v, true)],
    ['int8', DataType.INT8, 'int32_data', [-128, 127, 0, -1], 1, (dv, o, v) => dv.setInt8(o, v)],
    ['uint8', DataType.UINT8, 'int32_data', [0, 255, 128, 7], 1, (dv, o, v) => dv.setUint8(o, v)],
    ['int16', DataType.INT16, 'int32_data', [-32768, 32767, -2], 2, (dv, o, v) => dv.setInt16(o, v, true)],
    ['uint16', DataType.UINT16, 'int32_data', [0, 65535, 4097], 2, (dv, o, v) => dv.setUint16(o, v, true)],
    ['int32', DataType.INT32, 'int32_data', [-(2 ** 31), 2 ** 31 - 1, 12345], 4, (dv, o, v) => dv.setInt32(o, v, true)],
    ['uint32', DataType.UINT32, 'uint64_data', [0, 2 ** 32 - 1, 77], 4, (dv, o, v) => dv.setUint32(o, v, true)],
    ['int64', DataType.INT64, 'int64_data', [-1, 2 ** 53 - 1, -(2 ** 53 - 1), 0, 3], 8, (dv, o, v) => dv.setBigInt64(o, BigInt(v), true)],
    ['uint64', DataType.UINT64, 'uint64_data', [0, 2 ** 53 - 1, 42], 8, (dv, o, v) => dv.setBigUint64(o, BigInt(v), true)],
    ['bool', DataType.BOOL, 'int32_data', [1, 0, 0, 1], 1, (dv, o, v) => dv.setUint8(o, v)],
  ];

  test.each(cases)('%s', (dtype, code, field, values, width, put) => {
    const dims = [values.length];
    const fromTyped = tensorToArray(typed(code, dims, field, values as number[]));
    const raw = rawLE(width, values, put);
    // An odd offset inside a bigger buffer, as raw_data arrives from a decoded file.
    const host = new Uint8Array(raw.length + 1);
    host.set(raw, 1);
    const fromRaw = tensorToArray(makeMessage('TensorProto', { name: 't', dims, data_type: code, raw_data: host.subarray(1) }));
    expect(fromTyped.dtype).toBe(dtype);
    expect(fromRaw.dtype).toBe(dtype);
    expect(fromRaw.dims).toEqual(dims);
    expect(fromRaw.data.constructor).toBe(fromTyped.data.constructor);
    expect(Array.from(fromRaw.data as ArrayLike<number>)).toEqual(Array.from(fromTyped.data as ArrayLike<number>));
    expect(Array.from(fromRaw.data as ArrayLike<number>).map(Number)).toEqual(values.map(Number));
    // arrayToTensor writes the raw form, byte for byte what DataView wrote.
    expect(Buffer.from(arrayToTensor(fromRaw.data, dims, { dtype }).raw_data!)).toEqual(Buffer.from(raw));
  });

  test('float16 and bfloat16: int32_data holds the bit patterns', () => {
    const bits = [0x3c00, 0xc000, 0x7bff, 0x0001];
    const raw = new Uint8Array(new Uint16Array(bits).buffer);
    for (const code of [DataType.FLOAT16, DataType.BFLOAT16]) {
      const a = tensorToArray(typed(code, [4], 'int32_data', bits));
      const b = tensorToArray(makeMessage('TensorProto', { dims: [4], data_type: code, raw_data: raw }));
      expect(a.data).toBeInstanceOf(Float32Array);
      expect(Array.from(a.data as Float32Array)).toEqual(Array.from(b.data as Float32Array));
    }
  });

  test('a scalar (no dims) holds one element; an empty tensor none', () => {
    expect(Array.from(tensorToArray(typed(DataType.FLOAT, [], 'float_data', [2.5])).data as Float32Array)).toEqual([2.5]);
    const empty = tensorToArray(makeMessage('TensorProto', { dims: [0, 3], data_type: DataType.FLOAT }));
    expect(empty.data.length).toBe(0);
    expect(empty.dims).toEqual([0, 3]);
  });
});

describe('float16', () => {
  // IEEE 754 binary16 values worked out from sign/exponent/mantissa.
  const KNOWN: [number, number][] = [
    [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x7bff, 65504], [0x0400, 2 ** -14],
    [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x7c00, Infinity], [0xfc00, -Infinity], [0x0000, 0],
    [0x3800, 0.5], [0x4248, 3.140625], [0xd640, -100],
  ];

  test.each(KNOWN)('bits %i decode to %p and back', (bits, value) => {
    expect(halfToFloat(bits)).toBe(value);
    expect(floatToHalf(value)).toBe(bits);
  });

  test('negative zero, NaN and rounding to nearest even', () => {
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(floatToHalf(-0)).toBe(0x8000);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(floatToHalf(NaN) & 0x7c00).toBe(0x7c00);
    expect(floatToHalf(NaN) & 0x3ff).not.toBe(0);
    expect(floatToHalf(65520)).toBe(0x7c00); // halfway to the next binade rounds up to Inf
    expect(floatToHalf(65519)).toBe(0x7bff);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even mantissa
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal → 0
    expect(floatToHalf(2 ** -25 * 1.5)).toBe(1);
  });

  test('every float16 bit pattern survives decode → encode', () => {
    for (let h = 0; h < 0x10000; h++) {
      const exp = (h >> 10) & 0x1f, man = h & 0x3ff;
      if (exp === 31 && man) continue; // NaN payloads are not promised
      if (floatToHalf(halfToFloat(h)) !== h) throw new Error(`0x${h.toString(16)} does not round-trip`);
    }
  });

  test('arrayToTensor(float16) then tensorToArray gives the rounded values', () => {
    const t = arrayToTensor(new Float32Array([1, 0.1, -65504, 1e-8]), [2, 2], { dtype: 'float16', name: 'h' });
    expect(t.data_type).toBe(DataType.FLOAT16);
    expect(t.raw_data!.length).toBe(8);
    expect(Array.from(tensorToArray(t).data as Float32Array)).toEqual([1, 0.0999755859375, -65504, 0]);
  });
});

describe('integer representations', () => {
  test('int64 beyond 2^53 comes back as BigInt64Array in auto mode, exact', () => {
    const big = [9223372036854775807n, -9223372036854775808n, 1n];
    const t = arrayToTensor(BigInt64Array.from(big), [3], { name: 'ends' });
    const auto = tensorToArray(t);
    expect(auto.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(auto.data as BigInt64Array)).toEqual(big);
    const nums = tensorToArray(t, { int64: 'number' });
    expect(nums.data).toBeInstanceOf(Float64Array);
    expect(Array.from(nums.data as Float64Array)).toEqual([2 ** 63, -(2 ** 63), 1]);
    expect(tensorToNumbers(t)).toEqual([2 ** 63, -(2 ** 63), 1]);
    expect(tensorToArray(arrayToTensor([1, 2], [2], { dtype: 'int64' }), { int64: 'bigint' }).data).toBeInstanceOf(BigInt64Array);
    // int64_data with bigints beyond 2^53 decodes the same way.
    const viaField = tensorToArray(typed(DataType.INT64, [3], 'int64_data', big));
    expect(Array.from(viaField.data as BigInt64Array)).toEqual(big);
  });

  test('safe int64 shapes come back as Float64Array of numbers', () => {
    const t = arrayToTensor([-1, 49, 96], [3], { dtype: 'int64', name: 'shape' });
    const a = tensorToArray(t);
    expect(a.data).toBeInstanceOf(Float64Array);
    expect(Array.from(a.data as Float64Array)).toEqual([-1, 49, 96]);
  });

  test('int4 / uint4 pack two values per byte, element 0 in the low nibble', () => {
    const t = arrayToTensor([-8, 7, -1], [3], { dtype: 'int4' });
    expect(t.data_type).toBe(DataType.INT4);
    expect(Array.from(t.raw_data!)).toEqual([0x78, 0x0f]);
    expect(Array.from(tensorToArray(t).data as Int8Array)).toEqual([-8, 7, -1]);
    const u = arrayToTensor(new Uint8Array([15, 0, 9, 1]), [2, 2], { dtype: 'uint4' });
    expect(Array.from(u.raw_data!)).toEqual([0x0f, 0x19]);
    expect(Array.from(tensorToArray(u).data as Uint8Array)).toEqual([15, 0, 9, 1]);
    // The typed form: int32_data holds the packed bytes.
    expect(Array.from(tensorToArray(typed(DataType.UINT4, [4], 'int32_data', [0x0f, 0x19])).data as Uint8Array)).toEqual([15, 0, 9, 1]);
  });

  test('values that do not fit the dtype are refused', () => {
    expect(() => arrayToTensor([128], [1], { dtype: 'int8', name: 'w' })).toThrow(BadOptionError);
    expect(() => arrayToTensor([0.5], [1], { dtype: 'int32' })).toThrow(/element 0 of tensor/);
    expect(() => arrayToTensor([2 ** 60], [1], { dtype: 'int64' })).toThrow(BadOptionError);
    expect(() => arrayToTensor([8], [1], { dtype: 'int4' })).toThrow(BadOptionError);
    expect(() => arrayToTensor([1, 2], [1], { dtype: 'float32', name: 'w' })).toThrow(ShapeMismatchError);
    expect(() => arrayToTensor([1], [1])).toThrow(BadOptionError);
  });
});

describe('tensor errors name the tensor', () => {
  test('raw_data of the wrong size', () => {
    const t = makeMessage('TensorProto', { name: 'conv.weight', dims: [2, 2], data_type: DataType.FLOAT, raw_data: new Uint8Array(12) });
    expect(() => tensorToArray(t, { file: 'm.onnx' })).toThrow(OnnxDecodeError);
    expect(() => tensorToArray(t, { file: 'm.onnx' })).toThrow(/conv\.weight.*m\.onnx.*16 bytes.*12/);
  });
  test('typed data of the wrong length, and no data at all', () => {
    expect(() => tensorToArray(typed(DataType.FLOAT, [3], 'float_data', [1, 2]))).toThrow(/need 3 elements but the tensor holds 2/);
    expect(() => tensorToArray(typed(DataType.FLOAT, [3], 'float_data', []))).toThrow(/no raw_data and no typed data/);
  });
  test('strings and float8 are refused as UNSUPPORTED_OP', () => {
    const s = makeMessage('TensorProto', { name: 'labels', dims: [1], data_type: DataType.STRING, string_data: [new Uint8Array([97])] });
    expect(() => tensorToArray(s)).toThrow(UnsupportedOpError);
    expect(() => tensorToArray(s)).toThrow(/labels.*STRING/);
    const f8 = makeMessage('TensorProto', { name: 'q', dims: [1], data_type: DataType.FLOAT8E4M3FN, raw_data: new Uint8Array(1) });
    expect(() => tensorToArray(f8)).toThrow(/FLOAT8E4M3FN/);
  });
  test('tensor files: empty, truncated, not a tensor', () => {
    expect(() => decodeTensorFile(new Uint8Array(0), 'x.pb')).toThrow(/x\.pb.*empty/);
    const bytes = encodeTensor(arrayToTensor(new Float32Array(64), [8, 8], { name: 'in' }));
    expect(decodeTensorFile(bytes, 'ok.pb').name).toBe('in');
    expect(() => decodeTensorFile(bytes.subarray(0, 100), 'cut.pb')).toThrow(OnnxDecodeError);
    expect(() => decodeTensorFile(bytes.subarray(0, 100), 'cut.pb')).toThrow(/cut\.pb/);
  });
});

const NODE = '/usr/share/libonnx-testdata/data/node';
const haveConformance = existsSync(NODE);
if (!haveConformance) console.warn(`SKIPPED: ${NODE} is absent (apt-get install libonnx-testdata); conformance tensor checks not run`);

(haveConformance ? describe : describe.skip)('ONNX conformance data', () => {
  const io = (test: string, name: string) => loadTensorFile(join(NODE, test, 'test_data_set_0', `${name}.pb`));

  test('Cast FLOAT → FLOAT16: our rounding gives the reference bits', () => {
    const input = tensorToArray(io('test_cast_FLOAT_to_FLOAT16', 'input_0'));
    const output = io('test_cast_FLOAT_to_FLOAT16', 'output_0');
    expect(output.data_type).toBe(DataType.FLOAT16);
    const ours = arrayToTensor(input.data, input.dims, { dtype: 'float16' });
    expect(Buffer.from(ours.raw_data!)).toEqual(Buffer.from(output.raw_data!));
  });

  test('Cast FLOAT16 → FLOAT and DOUBLE → FLOAT16: decoded halves equal the reference values', () => {
    const input = tensorToArray(io('test_cast_FLOAT16_to_FLOAT', 'input_0'));
    const output = tensorToArray(io('test_cast_FLOAT16_to_FLOAT', 'output_0'));
    expect(input.dtype).toBe('float16');
    expect(Array.from(input.data as Float32Array)).toEqual(Array.from(output.data as Float32Array));
    const d = tensorToArray(io('test_cast_DOUBLE_to_FLOAT16', 'input_0'));
    const h = io('test_cast_DOUBLE_to_FLOAT16', 'output_0');
    expect(d.dtype).toBe('float64');
    expect(Buffer.from(arrayToTensor(d.data, d.dims, { dtype: 'float16' }).raw_data!)).toEqual(Buffer.from(h.raw_data!));
  });

  test('Cast BFLOAT16 → FLOAT (the test stores bfloat16 bits as uint16)', () => {
    const bits = tensorToArray(io('test_cast_BFLOAT16_to_FLOAT', 'input_0'));
    const output = tensorToArray(io('test_cast_BFLOAT16_to_FLOAT', 'output_0'));
    const asBf16 = makeMessage('TensorProto', {
      dims: bits.dims, data_type: DataType.BFLOAT16, raw_data: arrayToTensor(bits.data, bits.dims).raw_data,
    });
    expect(Array.from(tensorToArray(asBf16).data as Float32Array)).toEqual(Array.from(output.data as Float32Array));
  });

  test('elementwise ops relate decoded inputs and outputs as their definitions say', () => {
    const abs = [tensorToArray(io('test_abs', 'input_0')), tensorToArray(io('test_abs', 'output_0'))];
    expect(Array.from(abs[0].data as Float32Array, Math.abs)).toEqual(Array.from(abs[1].data as Float32Array));
    const relu = [tensorToArray(io('test_relu', 'input_0')), tensorToArray(io('test_relu', 'output_0'))];
    expect(Array.from(relu[0].data as Float32Array, (v) => Math.max(0, v))).toEqual(Array.from(relu[1].data as Float32Array));
    const add = ['input_0', 'input_1', 'output_0'].map((n) => tensorToArray(io('test_add', n)));
    expect(add[2].dims).toEqual(add[0].dims);
    const sum = Float32Array.from(add[0].data as Float32Array, (v, i) => v + (add[1].data as Float32Array)[i]);
    expect(Array.from(sum)).toEqual(Array.from(add[2].data as Float32Array));
  });

  test('int64, bool and integer tensors of the conformance set decode with their dims', () => {
    const shape = tensorToArray(io('test_reshape_reordered_all_dims', 'input_1'));
    expect(shape.dtype).toBe('int64');
    expect(shape.data).toBeInstanceOf(Float64Array);
    const data = tensorToArray(io('test_reshape_reordered_all_dims', 'input_0'));
    const out = tensorToArray(io('test_reshape_reordered_all_dims', 'output_0'));
    expect(out.dims).toEqual(Array.from(shape.data as Float64Array));
    expect(Array.from(out.data as Float32Array)).toEqual(Array.from(data.data as Float32Array));
    const and = tensorToArray(io('test_and2d', 'output_0'));
    expect(and.dtype).toBe('bool');
    expect((and.data as Uint8Array).every((v) => v === 0 || v === 1)).toBe(true);
  });
});
