/**
 * The real evaluation sets. Expected figures were computed independently with numpy
 * (np.frombuffer(gzip.open(f).read(), np.uint8, offset=16) etc.), and the pixel total is also
 * recomputed here with plain zlib + a byte sum, so neither depends on lib/data.
 * The files come from test/fixtures (shipped) or /work/shared/fixtures; absent → skipped, loudly.
 */
import * as fs from 'fs';
import * as zlib from 'zlib';
import { fitToInput, loadDataset, readIdx, readNpy } from '../../lib/data';
import { sharedFixture } from './helpers';

function maybe(sub: 'fashion-mnist' | 'shapes3d', names: string[]): { run: jest.It; files: string[] } {
  const files = names.map((n) => sharedFixture(sub, n));
  if (files.every((f) => f !== undefined)) return { run: test, files: files as string[] };
  // eslint-disable-next-line no-console
  console.warn(`SKIPPED: evaluation data not found (${names.filter((_, i) => !files[i]).join(', ')}); ` +
    'put it in test/fixtures/ to run these tests');
  return { run: test.skip, files: [] };
}

const FMNIST_MEAN = 0.286;
const FMNIST_STD = 0.353;

describe('Fashion-MNIST test-2000', () => {
  const { run, files } = maybe('fashion-mnist', ['test-2000-images-idx3-ubyte.gz', 'test-2000-labels-idx1-ubyte.gz']);

  run('2000 images [1,28,28] with pixel sums matching numpy and a plain zlib byte sum', () => {
    const [imagesFile, labelsFile] = files;
    const raw = readIdx(imagesFile);
    expect(raw.shape).toEqual([2000, 28, 28]);
    const bytes = zlib.gunzipSync(fs.readFileSync(imagesFile));
    let zsum = 0;
    for (let i = 16; i < bytes.length; i++) zsum += bytes[i];
    let sum = 0;
    for (const v of raw.data) sum += v;
    expect(sum).toBe(zsum);
    expect(sum).toBe(114763281);

    const ds = loadDataset({ data: imagesFile });
    expect(ds.samples).toBe(2000);
    expect(ds.sampleShape).toEqual([1, 28, 28]);
    expect(ds.labelsSource).toBe(labelsFile);
    const first = ds.batch(0, 1);
    const last = ds.batch(1999, 1);
    expect(Math.round(first.reduce((a, b) => a + b, 0) * 255)).toBe(33456);
    expect(Math.round(last.reduce((a, b) => a + b, 0) * 255)).toBe(59629);
    expect(Array.from(first.subarray(14 * 28, 15 * 28), (v) => Math.round(v * 255))).toEqual([
      0, 0, 0, 0, 0, 0, 2, 4, 1, 0, 0, 0, 98, 136, 110, 109, 110, 162, 135, 144, 149, 159, 167, 144, 158, 169, 119, 0,
    ]);
  });

  run('labels: 2000 in 0..9 with the numpy class counts', () => {
    const ds = loadDataset({ data: files[0] });
    const labels = ds.labels!;
    expect(labels.length).toBe(2000);
    expect(Array.from(labels.subarray(0, 20))).toEqual([9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1, 2, 4, 8, 0]);
    const counts = new Array(10).fill(0);
    for (const l of labels) counts[l]++;
    expect(counts).toEqual([200, 203, 214, 190, 219, 195, 197, 200, 194, 188]);
  });

  run('normalised as the models expect; sum matches numpy float32', () => {
    const ds = loadDataset({ data: files[0], mean: [FMNIST_MEAN], std: [FMNIST_STD] });
    fitToInput(ds, ['batch', 1, 28, 28]);
    let sum = 0;
    for (const b of ds.batches(512)) for (const v of b.data) sum += v;
    expect(sum).toBeCloseTo(4544.10910360812, 1);
    expect(ds.batch(0, 1)[14 * 28 + 14]).toBeCloseTo(0.4118202328681946, 6);
    expect(loadDataset({ data: files[0], limit: 100 }).samples).toBe(100);
  });
});

describe('Fashion-MNIST calib-1024', () => {
  const { run, files } = maybe('fashion-mnist', ['calib-1024-images-idx3-ubyte.gz', 'calib-1024-labels-idx1-ubyte.gz']);
  run('1024 images, pixel total and label counts as numpy says', () => {
    const ds = loadDataset({ data: files[0] });
    expect(ds.samples).toBe(1024);
    const all = ds.batch(0, 1024);
    let sum = 0;
    for (const v of all) sum += Math.round(v * 255);
    expect(sum).toBe(58617170);
    const counts = new Array(10).fill(0);
    for (const l of ds.labels!) counts[l]++;
    expect(counts).toEqual([121, 112, 94, 85, 111, 110, 103, 98, 94, 96]);
  });
});

describe('shapes3d point clouds (NPY)', () => {
  const sets: [string, number, number, number[], number[], number[]][] = [
    ['calib-256', 256, 133116.22085010802,
      [-0.2369699627161026, 0.25155988335609436, 0.23194554448127747],
      [3, 5, 2, 9, 5, 1, 6, 6, 8, 3], [23, 31, 25, 25, 24, 25, 31, 22, 24, 26]],
    ['test-1000', 1000, 518569.07509147073,
      [-0.15330380201339722, 0.04441375657916069, -0.13290861248970032],
      [5, 2, 6, 6, 7, 7, 0, 4, 1, 4], new Array(10).fill(100)],
  ];
  for (const [name, n, absSum, firstPoint, firstLabels, counts] of sets) {
    const { run, files } = maybe('shapes3d', [`${name}-points.npy`, `${name}-labels.npy`]);
    run(`${name}: [${n},3,512] float32 used as stored, labels found beside`, () => {
      const raw = readNpy(files[0]);
      expect(raw.dtype).toBe('float32');
      expect(raw.shape).toEqual([n, 3, 512]);
      const ds = loadDataset({ data: files[0] });
      expect(ds.sampleShape).toEqual([3, 512]);
      expect(ds.labelsSource).toBe(files[1]);
      fitToInput(ds, ['batch', 3, 512]);
      const all = ds.batch(0, n);
      let s = 0;
      for (const v of all) s += Math.abs(v);
      expect(s).toBeCloseTo(absSum, 3);
      // point 0 of cloud 0 is column 0 of its x, y, z rows
      expect([all[0], all[512], all[1024]]).toEqual(firstPoint.map(Math.fround));
      expect(Array.from(ds.labels!.subarray(0, 10))).toEqual(firstLabels);
      const c = new Array(10).fill(0);
      for (const l of ds.labels!) c[l]++;
      expect(c).toEqual(counts);
    });
  }
});
