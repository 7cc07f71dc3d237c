import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { BadDataError, BadOptionError, IoError } from '../../lib/errors';
import { findNpyLabelsFile, parseNpy, readNpy, writeNpy } from '../../lib/data';
import { NPY_FIXTURES, tmpDir } from './helpers';

// The fixtures were written by numpy (fixtures/make_fixtures.py); the expected values below are the
// arrays given to numpy there.
const fx = (name: string) => path.join(NPY_FIXTURES, name);

/** NPY 1.0 bytes with a hand-written header, for the malformed cases. */
function npyBytes(header: string, body: Buffer, version = 1): Buffer {
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const len = Buffer.alloc(version === 1 ? 2 : 4);
  if (version === 1) len.writeUInt16LE(header.length); else len.writeUInt32LE(header.length);
  return Buffer.concat([pre, len, Buffer.from(header, 'latin1'), body]);
}

describe('readNpy: dtypes written by numpy', () => {
  const cases: [string, string, number[], (number | bigint)[]][] = [
    ['f8-be.npy', 'float64', [2, 3], [1.5, -2.25, 3.0, 4.0, 5e-3, -6e10]],
    ['f4-be.npy', 'float32', [3], [Math.fround(0.1), -7, Math.fround(3.4e38)]],
    ['i1.npy', 'int8', [3], [-128, 0, 127]],
    ['u1.npy', 'uint8', [3], [0, 1, 255]],
    ['b1.npy', 'bool', [3], [1, 0, 1]],
    ['i2.npy', 'int16', [5], [-32768, -1, 0, 1, 32767]],
    ['i2-be.npy', 'int16', [5], [-32768, -1, 0, 1, 32767]],
    ['u2.npy', 'uint16', [3], [0, 1, 65535]],
    ['i4.npy', 'int32', [3], [-2147483648, 7, 2147483647]],
    ['u4-be.npy', 'uint32', [3], [0, 4294967295, 123456789]],
    ['i8.npy', 'int64', [4], [-5n, 0n, 2n ** 40n, -(2n ** 62n)]],
    ['u8-be.npy', 'uint64', [3], [0n, 2n ** 53n, 2n ** 64n - 1n]],
    ['scalar.npy', 'float32', [], [2.5]],
    ['v2-u1.npy', 'uint8', [3, 4], Array.from({ length: 12 }, (_, i) => i)],
    ['v3-f4.npy', 'float32', [2, 3], [0, 1, 2, 3, 4, 5]],
  ];
  test.each(cases)('%s → %s %j', (file, dtype, shape, values) => {
    const a = readNpy(fx(file));
    expect(a.dtype).toBe(dtype);
    expect(a.shape).toEqual(shape);
    expect(Array.from(a.data as ArrayLike<number | bigint>)).toEqual(values);
  });

  test('fortran_order True is transposed to C order', () => {
    const a = readNpy(fx('fortran-f4.npy'));
    expect(a.shape).toEqual([2, 3, 4]);
    expect(Array.from(a.data as Float32Array)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    const b = readNpy(fx('fortran-i2-be.npy'));
    expect(b.shape).toEqual([3, 2]);
    expect(Array.from(b.data as Int16Array)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  test('a gzipped .npy is read too', () => {
    const dir = tmpDir();
    const p = path.join(dir, 'x.npy.gz');
    fs.writeFileSync(p, zlib.gzipSync(fs.readFileSync(fx('i2.npy'))));
    expect(Array.from(readNpy(p).data as Int16Array)).toEqual([-32768, -1, 0, 1, 32767]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('readNpy: bad files → BadDataError naming the file', () => {
  const good = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  const body = Buffer.alloc(8);
  const bad: [string, Buffer, RegExp][] = [
    ['no magic', Buffer.from('NUMPY is not here'), /m\.npy: not an NPY file/],
    ['version 4', npyBytes(good, body, 4), /m\.npy: unsupported NPY format version 4\.0/],
    ['header not a literal', npyBytes("{'descr': '<f4', 'shape': (2,), oops}", body), /m\.npy: malformed NPY header/],
    ['unterminated header', npyBytes("{'descr': '<f4", body), /m\.npy: malformed NPY header/],
    ['header not a dict', npyBytes('(1, 2)', body), /m\.npy: NPY header is not a dict/],
    ['missing shape', npyBytes("{'descr': '<f4', 'fortran_order': False}", body), /m\.npy: NPY header has no 'shape' key/],
    ['unknown dtype', npyBytes(good.replace('<f4', '<c8'), body), /m\.npy: unsupported NPY dtype '<c8'/],
    ['float16', npyBytes(good.replace('<f4', '<f2'), body), /unsupported NPY dtype '<f2'/],
    ['| on a wide type', npyBytes(good.replace('<f4', '|f4'), body), /unsupported NPY dtype '\|f4'/],
    ['negative dim', npyBytes(good.replace('(2,)', '(-2,)'), body), /'shape' is not a tuple of non-negative integers/],
    ['short data', npyBytes(good, Buffer.alloc(7)), /m\.npy: expected 8 bytes of data for \[2\] of float32 but found 7/],
    ['long data', npyBytes(good, Buffer.alloc(9)), /expected 8 bytes of data for \[2\] of float32 but found 9/],
    ['header longer than file', npyBytes(good, body).subarray(0, 20), /m\.npy: truncated NPY header/],
  ];
  test.each(bad)('%s', (_, bytes, message) => {
    expect(() => parseNpy(bytes, 'm.npy')).toThrow(BadDataError);
    expect(() => parseNpy(bytes, 'm.npy')).toThrow(message);
  });

  test('structured dtypes are refused with a clear message', () => {
    expect(() => readNpy(fx('structured.npy'))).toThrow(/structured\.npy: structured NPY dtypes are not supported/);
  });

  test('odd but legal headers parse: double quotes, no trailing comma, Python 2 long', () => {
    const h = '{"descr": "<f4", "shape": (2L,), "fortran_order": False}';
    expect(parseNpy(npyBytes(h, body), 'q.npy').shape).toEqual([2]);
  });
});

describe('writeNpy', () => {
  const dir = tmpDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('float32 and uint8 round-trip, header 64-byte aligned, no temp files left', () => {
    const f = Float32Array.from([1.5, -2, Math.fround(1 / 3), 0, 7, 8]);
    const pf = path.join(dir, 'f.npy');
    writeNpy(pf, f, [2, 3]);
    const bytes = fs.readFileSync(pf);
    expect((10 + bytes.readUInt16LE(8)) % 64).toBe(0);
    const back = readNpy(pf);
    expect(back).toEqual({ dtype: 'float32', shape: [2, 3], data: f });

    const u = Uint8Array.from([0, 255, 3]);
    const pu = path.join(dir, 'u.npy');
    writeNpy(pu, u, [3]);
    expect(fs.readFileSync(pu).toString('latin1')).toContain("'shape': (3,)");
    expect(readNpy(pu)).toEqual({ dtype: 'uint8', shape: [3], data: u });
    expect(fs.readdirSync(dir).sort()).toEqual(['f.npy', 'u.npy']);
  });

  test('overwrites atomically; shape/length mismatch → BadOptionError, nothing written', () => {
    const p = path.join(dir, 'f.npy');
    writeNpy(p, new Float32Array([9]), [1, 1]);
    expect(readNpy(p).shape).toEqual([1, 1]);
    expect(() => writeNpy(path.join(dir, 'bad.npy'), new Float32Array(5), [2, 3])).toThrow(BadOptionError);
    expect(() => writeNpy(path.join(dir, 'bad.npy'), new Float32Array(5), [2, 3])).toThrow(/holds 6 elements but data has 5/);
    expect(fs.existsSync(path.join(dir, 'bad.npy'))).toBe(false);
  });

  test('unwritable target → IoError, no temp file left', () => {
    const target = path.join(dir, 'missing-dir', 'x.npy');
    expect(() => writeNpy(target, new Uint8Array(1), [1])).toThrow(IoError);
    expect(() => writeNpy(target, new Uint8Array(1), [1])).toThrow(/cannot write .*x\.npy/);
  });
});

describe('findNpyLabelsFile', () => {
  test('<prefix>-<what>.npy → <prefix>-labels.npy when it exists', () => {
    const dir = tmpDir();
    fs.writeFileSync(path.join(dir, 'test-1000-points.npy'), '');
    expect(findNpyLabelsFile(path.join(dir, 'test-1000-points.npy'))).toBeUndefined();
    fs.writeFileSync(path.join(dir, 'test-1000-labels.npy'), '');
    expect(findNpyLabelsFile(path.join(dir, 'test-1000-points.npy'))).toBe(path.join(dir, 'test-1000-labels.npy'));
    expect(findNpyLabelsFile(path.join(dir, 'test-1000-labels.npy'))).toBeUndefined();
    expect(findNpyLabelsFile(path.join(dir, 'points.npy'))).toBeUndefined();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
