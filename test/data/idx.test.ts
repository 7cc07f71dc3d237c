import * as fs from 'fs';
import * as path from 'path';
import { BadDataError, IoError } from '../../lib/errors';
import { findLabelsFile, parseIdx, readIdx } from '../../lib/data';
import { idxBytes, idxU8, tmpDir, write } from './helpers';

describe('readIdx', () => {
  const dir = tmpDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const values = Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 37) % 256);

  test('uint8 [2,3,4], plain and gzipped, give the same C-order data', () => {
    const bytes = idxU8([2, 3, 4], values);
    for (const gz of [false, true]) {
      const a = readIdx(write(dir, gz ? 'a.idx.gz' : 'a.idx', bytes, gz));
      expect(a.dtype).toBe('uint8');
      expect(a.shape).toEqual([2, 3, 4]);
      expect(a.data).toBeInstanceOf(Uint8Array);
      expect(Array.from(a.data)).toEqual(values);
    }
  });

  test('gzip is detected by content, not by name', () => {
    const a = readIdx(write(dir, 'plain-name.idx', idxU8([3], [7, 8, 9]), true));
    expect(Array.from(a.data)).toEqual([7, 8, 9]);
  });

  test('big-endian int8, int16, int32, float32, float64', () => {
    const cases: [number, string, (b: Buffer, v: number, i: number) => void, number, number[]][] = [
      [0x09, 'int8', (b, v, i) => b.writeInt8(v, i), 1, [-128, -1, 0, 127]],
      [0x0b, 'int16', (b, v, i) => b.writeInt16BE(v, i * 2), 2, [-32768, -2, 258, 32767]],
      [0x0c, 'int32', (b, v, i) => b.writeInt32BE(v, i * 4), 4, [-2147483648, -3, 16909060, 2147483647]],
      [0x0d, 'float32', (b, v, i) => b.writeFloatBE(v, i * 4), 4, [-1.5, 0.25, 3.4028234663852886e38, -0]],
      [0x0e, 'float64', (b, v, i) => b.writeDoubleBE(v, i * 8), 8, [Math.PI, -1e300, 5e-324, 42]],
    ];
    for (const [type, dtype, put, bytes, vals] of cases) {
      const body = Buffer.alloc(vals.length * bytes);
      vals.forEach((v, i) => put(body, v, i));
      const a = parseIdx(idxBytes(type, [2, 2], body), `${dtype}.idx`);
      expect(a.dtype).toBe(dtype);
      expect(a.shape).toEqual([2, 2]);
      expect(Array.from(a.data)).toEqual(vals);
    }
  });

  test('wrong magic → BadDataError naming the file', () => {
    const bytes = idxU8([2], [1, 2]);
    bytes[0] = 0x12;
    const p = write(dir, 'badmagic.idx', bytes);
    expect(() => readIdx(p)).toThrow(BadDataError);
    expect(() => readIdx(p)).toThrow(`${p}: not an IDX file`);
  });

  test('unknown type byte → BadDataError', () => {
    const p = write(dir, 'badtype.idx', idxBytes(0x0a, [2], Buffer.from([1, 2])));
    expect(() => readIdx(p)).toThrow(/badtype\.idx: unknown IDX data type 0x0A/);
    try { readIdx(p); } catch (e) { expect((e as BadDataError).code).toBe('BAD_DATA'); }
  });

  test('data shorter or longer than the header says → BadDataError with both counts', () => {
    const full = idxU8([1000, 28, 28], new Array(784000).fill(3));
    const short = write(dir, 'short.idx', full.subarray(0, full.length - 1));
    expect(() => readIdx(short)).toThrow(
      new BadDataError(`${short}: expected 784000 bytes of data for [1000,28,28] but found 783999`),
    );
    const long = write(dir, 'long.idx', Buffer.concat([idxU8([2, 2], [1, 2, 3, 4]), Buffer.from([0])]), true);
    expect(() => readIdx(long)).toThrow(`${long}: expected 4 bytes of data for [2,2] but found 5`);
    const wide = write(dir, 'wide.idx', idxBytes(0x0c, [3], Buffer.alloc(11)));
    expect(() => readIdx(wide)).toThrow(`${wide}: expected 12 bytes of data for [3] of int32 but found 11`);
  });

  test('header cut short, zero dimensions, tiny file → BadDataError', () => {
    expect(() => parseIdx(idxU8([5, 6, 7], []).subarray(0, 10), 'h.idx')).toThrow(/h\.idx: truncated IDX header/);
    expect(() => parseIdx(Buffer.from([0, 0, 8, 0]), 'z.idx')).toThrow(/z\.idx: IDX header declares 0 dimensions/);
    expect(() => parseIdx(Buffer.from([0, 0]), 'tiny.idx')).toThrow(BadDataError);
  });

  test('truncated gzip → BadDataError, not a zlib error', () => {
    const gz = require('zlib').gzipSync(idxU8([100], new Array(100).fill(9)));
    const p = write(dir, 'cut.idx.gz', gz.subarray(0, gz.length - 12));
    expect(() => readIdx(p)).toThrow(BadDataError);
    expect(() => readIdx(p)).toThrow(/cut\.idx\.gz: gzip data is truncated or corrupt/);
  });

  test('missing file → IoError naming it', () => {
    const p = path.join(dir, 'nope.idx');
    expect(() => readIdx(p)).toThrow(IoError);
    expect(() => readIdx(p)).toThrow(p);
  });
});

describe('findLabelsFile', () => {
  const dir = tmpDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  const touch = (name: string) => { fs.writeFileSync(path.join(dir, name), ''); return path.join(dir, name); };

  test('standard MNIST naming, same compression preferred, then the other', () => {
    const imgs = touch('t10k-images-idx3-ubyte.gz');
    expect(findLabelsFile(imgs)).toBeUndefined();
    const plain = touch('t10k-labels-idx1-ubyte');
    expect(findLabelsFile(imgs)).toBe(plain);
    const gz = touch('t10k-labels-idx1-ubyte.gz');
    expect(findLabelsFile(imgs)).toBe(gz);
    expect(findLabelsFile(path.join(dir, 't10k-images-idx3-ubyte'))).toBe(plain);
  });

  test('the dotted spelling some mirrors use', () => {
    touch('train-images.idx3-ubyte');
    const l = touch('train-labels.idx1-ubyte');
    expect(findLabelsFile(path.join(dir, 'train-images.idx3-ubyte'))).toBe(l);
  });

  test('names off the convention → undefined', () => {
    expect(findLabelsFile(path.join(dir, 'images.idx'))).toBeUndefined();
    expect(findLabelsFile(path.join(dir, 'x-labels-idx1-ubyte.gz'))).toBeUndefined();
  });
});
