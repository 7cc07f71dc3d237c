import * as fs from 'fs';
import * as path from 'path';
import { BadDataError, BadOptionError, ShapeMismatchError } from '../../lib/errors';
import { fitToInput, loadDataset, makeDataset, readLabels, writeNpy } from '../../lib/data';
import { NPY_FIXTURES, idxBytes, idxU8, tmpDir, write } from './helpers';

const dir = tmpDir();
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// 5 images of 2×3 pixels: image i has pixels 10*i + k (k = 0..5), except image 4 which is all 255.
const N = 5;
const pixels = Array.from({ length: N * 6 }, (_, j) => (j >= 24 ? 255 : 10 * Math.floor(j / 6) + (j % 6)));
const labelValues = [3, 1, 4, 1, 5];
const images = write(dir, 'tiny-images-idx3-ubyte.gz', idxU8([N, 2, 3], pixels), true);
write(dir, 'tiny-labels-idx1-ubyte.gz', idxU8([N], labelValues), true);

describe('loadDataset: IDX images', () => {
  test('[N,H,W] becomes samples of [1,H,W], labels found beside by MNIST naming', () => {
    const ds = loadDataset({ data: images });
    expect(ds.samples).toBe(N);
    expect(ds.sampleShape).toEqual([1, 2, 3]);
    expect(Array.from(ds.labels!)).toEqual(labelValues);
    expect(ds.labelsSource).toBe(path.join(dir, 'tiny-labels-idx1-ubyte.gz'));
    expect(ds.source).toBe(images);
  });

  test('pixels scale to [0,1] without mean/std', () => {
    const b = loadDataset({ data: images }).batch(0, N);
    expect(b).toBeInstanceOf(Float32Array);
    expect(b.length).toBe(N * 6);
    pixels.forEach((p, i) => expect(b[i]).toBeCloseTo(p / 255, 7));
  });

  test('Fashion-MNIST normalisation: 255 → (1-0.286)/0.353, 0 → -0.286/0.353', () => {
    const ds = loadDataset({ data: images, mean: [0.286], std: [0.353] });
    const last = ds.batch(4, 1);
    for (const v of last) expect(v).toBeCloseTo((1 - 0.286) / 0.353, 6);
    expect(ds.batch(0, 1)[0]).toBeCloseTo(-0.286 / 0.353, 6);
    expect(ds.batch(1, 1)[5]).toBeCloseTo((15 / 255 - 0.286) / 0.353, 6);
  });

  test('[N,C,H,W] kept as is, mean/std per channel (dim 1)', () => {
    // 2 samples, 2 channels, 1×2 pixels: values 0..7
    const p = write(dir, 'nchw.idx', idxU8([2, 2, 1, 2], [0, 51, 102, 153, 204, 255, 0, 255]));
    const ds = loadDataset({ data: p, mean: [0.5, 0], std: [0.5, 2] });
    expect(ds.sampleShape).toEqual([2, 1, 2]);
    expect(ds.labels).toBeUndefined();
    const expectedValues = [
      (0 - 0.5) / 0.5, (0.2 - 0.5) / 0.5, 0.4 / 2, 0.6 / 2, // sample 0: channel 0, channel 1
      (0.8 - 0.5) / 0.5, (1 - 0.5) / 0.5, 0 / 2, 1 / 2, // sample 1
    ];
    Array.from(ds.batch(0, 2)).forEach((v, i) => expect(v).toBeCloseTo(expectedValues[i], 6));
  });

  test('non-uint8 IDX data is used as stored (no /255)', () => {
    const body = Buffer.alloc(4 * 4);
    [1.5, -2, 300, 0.25].forEach((v, i) => body.writeFloatBE(v, i * 4));
    const p = write(dir, 'f.idx', idxBytes(0x0d, [2, 2], body));
    expect(Array.from(loadDataset({ data: p }).batch(0, 2))).toEqual([1.5, -2, 300, 0.25]);
  });

  test('batch and batches slice in order, with labels per batch', () => {
    const ds = loadDataset({ data: images });
    const all = ds.batch(0, N);
    expect(Array.from(ds.batch(2, 2))).toEqual(Array.from(all.subarray(12, 24)));
    expect(ds.batch(5, 0).length).toBe(0);
    const got = [...ds.batches(2)];
    expect(got.map((b) => [b.start, b.count])).toEqual([[0, 2], [2, 2], [4, 1]]);
    expect(got.map((b) => Array.from(b.labels!))).toEqual([[3, 1], [4, 1], [5]]);
    expect(Array.from(got[2].data)).toEqual(Array.from(all.subarray(24)));
    // batches are fresh arrays: writing to one cannot corrupt the next read
    got[0].data.fill(-1);
    expect(ds.batch(0, 1)[1]).toBeCloseTo(1 / 255, 7);
  });

  test('batch arguments out of range → BadOptionError', () => {
    const ds = loadDataset({ data: images });
    expect(() => ds.batch(4, 2)).toThrow(BadOptionError);
    expect(() => ds.batch(-1, 1)).toThrow(BadOptionError);
    expect(() => ds.batch(0.5, 1)).toThrow(BadOptionError);
    expect(() => ds.batches(0).next()).toThrow(/batch size/);
  });

  test('limit keeps the first samples and their labels', () => {
    const ds = loadDataset({ data: images, limit: 2 });
    expect(ds.samples).toBe(2);
    expect(Array.from(ds.labels!)).toEqual([3, 1]);
    expect(ds.batch(0, 2).length).toBe(12);
    expect(() => ds.batch(2, 1)).toThrow(BadOptionError);
    expect(loadDataset({ data: images, limit: 100 }).samples).toBe(N);
  });

  test('no labels beside and none given → labels undefined', () => {
    const p = write(dir, 'alone-images-idx3-ubyte', idxU8([1, 1, 1], [9]));
    const ds = loadDataset({ data: p });
    expect(ds.labels).toBeUndefined();
    expect(ds.labelsSource).toBeUndefined();
  });

  test('explicit labels file wins, in either format (NPY labels for IDX images)', () => {
    const labels = path.join(dir, 'other.npy');
    writeNpy(labels, Uint8Array.from([7, 7, 2, 0, 1]), [5]);
    const ds = loadDataset({ data: images, labels, limit: 4 });
    expect(Array.from(ds.labels!)).toEqual([7, 7, 2, 0]);
    expect(ds.labelsSource).toBe(labels);
  });

  test('the labels count is checked against the whole file, before --limit', () => {
    const labels = write(dir, 'four.idx', idxU8([4], [0, 1, 2, 3]));
    expect(() => loadDataset({ data: images, labels, limit: 4 })).toThrow(/4 labels for 5 samples/);
  });
});

describe('loadDataset: NPY', () => {
  // 4 point clouds of 3×2 points: value = 100*i + 10*c + k
  const values = Float32Array.from({ length: 4 * 6 }, (_, j) => 100 * Math.floor(j / 6) + 10 * Math.floor((j % 6) / 2) + (j % 2));
  const points = path.join(dir, 'pc-points.npy');
  writeNpy(points, values, [4, 3, 2]);
  fs.copyFileSync(path.join(NPY_FIXTURES, 'labels-i8.npy'), path.join(dir, 'pc-labels.npy'));

  test('float data used as stored; labels found by <prefix>-labels.npy', () => {
    const ds = loadDataset({ data: points });
    expect(ds.sampleShape).toEqual([3, 2]);
    expect(Array.from(ds.labels!)).toEqual([3, 0, 9, 1]);
    expect(ds.batch(0, 4)).toEqual(values);
  });

  test('mean/std per channel on float data', () => {
    const ds = loadDataset({ data: points, mean: [0, 10, 20], std: [1, 2, 4] });
    const b = ds.batch(1, 1); // 100 101 110 111 120 121
    expect(Array.from(b)).toEqual([100, 101, 50, 50.5, 25, 25.25]);
  });

  test('float labels [N,1] holding whole numbers are accepted', () => {
    const ds = loadDataset({ data: points, labels: path.join(NPY_FIXTURES, 'labels-f4-col.npy') });
    expect(Array.from(ds.labels!)).toEqual([3, 0, 9, 1]);
  });

  test('uint8 NPY is pixels (/255); bool NPY is 0/1 as stored', () => {
    const u = path.join(dir, 'u8-data.npy');
    writeNpy(u, Uint8Array.from([0, 255, 51, 102]), [2, 2]);
    expect(Array.from(loadDataset({ data: u }).batch(0, 2))).toEqual([0, 1, 0.2, 0.4].map(Math.fround));
    const b = path.join(NPY_FIXTURES, 'b1-2x2.npy'); // [[True, False], [False, True]]
    expect(Array.from(loadDataset({ data: b }).batch(0, 2))).toEqual([1, 0, 0, 1]);
  });
});

describe('loadDataset: validation', () => {
  const points = path.join(dir, 'v-points.npy');
  writeNpy(points, new Float32Array(4 * 3 * 2), [4, 3, 2]);

  test('labels count != samples → BadDataError naming both files', () => {
    const labels = write(dir, 'three.idx', idxU8([3], [0, 1, 2]));
    expect(() => loadDataset({ data: images, labels })).toThrow(BadDataError);
    expect(() => loadDataset({ data: images, labels })).toThrow(`${labels}: 3 labels for 5 samples in ${images}`);
  });

  test('mean/std length neither 1 nor C → BadOptionError naming the option', () => {
    expect(() => loadDataset({ data: points, mean: [0, 0] })).toThrow(BadOptionError);
    expect(() => loadDataset({ data: points, mean: [0, 0] })).toThrow(
      'Expected 1 or 3 values (one per channel) for --mean but received [0, 0]',
    );
    expect(() => loadDataset({ data: images, std: [1, 1, 1] })).toThrow(/for --std/);
  });

  test('std 0 or negative, non-finite mean, empty list → BadOptionError', () => {
    expect(() => loadDataset({ data: images, std: [0] })).toThrow(/Expected positive numbers for --std but received \[0\]/);
    expect(() => loadDataset({ data: points, std: [1, -1, 1] })).toThrow(BadOptionError);
    expect(() => loadDataset({ data: images, mean: [NaN] })).toThrow(/--mean/);
    expect(() => loadDataset({ data: images, mean: [] })).toThrow(/--mean/);
  });

  test('mean/std are checked before the data is read', () => {
    expect(() => loadDataset({ data: path.join(dir, 'missing'), std: [0] })).toThrow(BadOptionError);
  });

  test('limit <= 0 or fractional → BadOptionError naming --limit', () => {
    for (const limit of [0, -3, 1.5, NaN]) {
      expect(() => loadDataset({ data: images, limit })).toThrow(/for --limit/);
      expect(() => loadDataset({ data: images, limit })).toThrow(BadOptionError);
    }
  });

  test('labels outside the class-index range → BadDataError', () => {
    const i8 = path.join(NPY_FIXTURES, 'i8.npy'); // [-5, 0, 2^40, -2^62]
    expect(() => readLabels(i8)).toThrow(BadDataError);
    expect(() => readLabels(i8)).toThrow(/i8\.npy: label -5 at index 0 is not a class index/);
    const big = path.join(NPY_FIXTURES, 'u4-be.npy'); // [0, 4294967295, ...]
    expect(() => readLabels(big)).toThrow(/label 4294967295 at index 1/);
    const frac = path.join(dir, 'frac.npy');
    writeNpy(frac, Float32Array.from([1, 2.5]), [2]);
    expect(() => readLabels(frac)).toThrow(/label 2\.5 at index 1/);
  });

  test('labels of rank 2 → BadDataError', () => {
    expect(() => readLabels(path.join(NPY_FIXTURES, 'f8-be.npy'))).toThrow(/labels must have shape \[N\] or \[N,1\] but have \[2,3\]/);
  });

  test('data without sample dimensions (a labels file as --data) → BadDataError', () => {
    const p = path.join(dir, 'tiny-labels-idx1-ubyte.gz');
    expect(() => loadDataset({ data: p })).toThrow(/has no sample dimensions \(is this a labels file\?\)/);
  });

  test('no samples, unknown format, missing --data → errors of the right class', () => {
    const empty = write(dir, 'empty.idx', idxU8([0, 2, 2], []));
    expect(() => loadDataset({ data: empty })).toThrow(/empty\.idx: contains no samples/);
    const hollow = write(dir, 'hollow.idx', idxU8([3, 0, 2], []));
    expect(() => loadDataset({ data: hollow })).toThrow(/hollow\.idx: samples of shape \[1,0,2\] hold no values/);
    const text = write(dir, 'notes.txt', Buffer.from('hello, world'));
    expect(() => loadDataset({ data: text })).toThrow(/notes\.txt: neither an NPY file .* nor an IDX file/);
    expect(() => loadDataset({ data: '' })).toThrow(/for --data/);
  });
});

describe('makeDataset', () => {
  test('in-memory float data, labels, per-channel stats', () => {
    const ds = makeDataset({
      source: 'memory', data: Float32Array.from([1, 2, 3, 4, 5, 6]), sampleShape: [2, 1],
      labels: Int32Array.from([0, 1, 2]), mean: [1, 2], std: [1, 2],
    });
    expect(ds.samples).toBe(3);
    expect(Array.from(ds.batch(0, 3))).toEqual([0, 0, 2, 1, 4, 2]);
  });

  test('bool-like Uint8Array with pixels:false is not divided by 255', () => {
    const ds = makeDataset({ source: 'm', data: Uint8Array.from([0, 1, 1, 0]), sampleShape: [2], pixels: false });
    expect(Array.from(ds.batch(0, 2))).toEqual([0, 1, 1, 0]);
  });

  test('data not a whole number of samples, or labels count off → BadDataError', () => {
    expect(() => makeDataset({ source: 'm', data: new Float32Array(5), sampleShape: [2] })).toThrow(BadDataError);
    expect(() => makeDataset({ source: 'm', data: new Float32Array(4), sampleShape: [2], labels: new Int32Array(3) }))
      .toThrow(/3 labels for 2 samples/);
  });
});

describe('fitToInput', () => {
  const ds = loadDataset({ data: images });

  test('matching, symbolic and unknown dims fit', () => {
    expect(() => fitToInput(ds, ['batch', 1, 2, 3])).not.toThrow();
    expect(() => fitToInput(ds, [1, 1, 2, 3])).not.toThrow();
    expect(() => fitToInput(ds, [-1, 1, 'h', 0])).not.toThrow();
  });

  test('mismatch → ShapeMismatchError naming the input and both shapes', () => {
    expect(() => fitToInput(ds, ['batch', 3, 32, 32])).toThrow(ShapeMismatchError);
    expect(() => fitToInput(ds, ['batch', 3, 32, 32])).toThrow(
      `${images}: data sample shape [1,2,3] does not fit model input "input" [batch,3,32,32]`,
    );
    expect(() => fitToInput(ds, ['batch', 6], 'x')).toThrow(/does not fit model input "x" \[batch,6\]/);
    expect(() => fitToInput(ds, ['batch', 1, 2, 3, 1])).toThrow(ShapeMismatchError);
  });
});
