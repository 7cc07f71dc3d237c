/**
 * Image folders: a tiny ImageFolder written with sharp itself (solid colours, gradients, PNG and
 * JPEG), read back through loadImageFolder and `packptq eval`. Expected pixels are computed here from
 * the colours and formulas the images were made with, not by the code under test.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import sharp from 'sharp';
import { loadDataset, loadDatasetAsync } from '../../lib/data/dataset';
import { cropOffset, loadImageFolder, resizedSize, scanImageFolder } from '../../lib/data/images';
import { AbortError, BadDataError, BadOptionError, IoError } from '../../lib/errors';
import { cli } from '../helpers/cli';
import { shipped } from '../helpers/fixtures';
import { tmpDir } from './helpers';

const W = 40;
const H = 20;
const SOLID_A: [number, number, number] = [200, 100, 50];
const SOLID_B: [number, number, number] = [10, 20, 30];
const SOLID_JPEG: [number, number, number] = [30, 160, 220];
/** The gradient: R = 6x, G = 12y, B = 77 at pixel (x, y). */
const grad = (x: number, y: number): [number, number, number] => [6 * x, 12 * y, 77];

const root = tmpDir();
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function rawRgb(w: number, h: number, at: (x: number, y: number) => number[], channels = 3): Buffer {
  const b = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) b.set(at(x, y), (y * w + x) * channels);
  return b;
}

async function writeImage(file: string, w: number, h: number, at: (x: number, y: number) => number[], format: 'png' | 'jpeg' = 'png', channels: 1 | 3 | 4 = 3): Promise<string> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const img = sharp(rawRgb(w, h, at, channels), { raw: { width: w, height: h, channels } });
  // 4:4:4 and top quality: a solid colour then decodes within a level or two of what was written.
  await (format === 'png' ? img.png() : img.jpeg({ quality: 100, chromaSubsampling: '4:4:4' })).toFile(file);
  return file;
}

/** Python's round(): halves go to the even neighbour (torchvision's centre-crop offsets use it). */
function pyRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The main folder. Created out of name order so the test sees the sort. */
const main = path.join(root, 'main');
beforeAll(async () => {
  await writeImage(path.join(main, 'cat', 'photo.jpg'), W, H, () => SOLID_JPEG, 'jpeg');
  await writeImage(path.join(main, 'ant', 'b.png'), W, H, () => SOLID_B);
  await writeImage(path.join(main, 'ant', 'a.png'), W, H, () => SOLID_A);
  await writeImage(path.join(main, 'bee', 'grad.png'), W, H, grad);
  await writeImage(path.join(main, 'cat', 'sub', 'nested.png'), W, H, () => SOLID_A);
  // Skipped: not an image extension, hidden, and a file at the top level.
  fs.writeFileSync(path.join(main, 'cat', 'notes.txt'), 'not an image');
  fs.writeFileSync(path.join(main, 'cat', '.hidden.png'), 'not an image either');
  await writeImage(path.join(main, 'loose.png'), W, H, () => SOLID_B);
});

/** Sample i, channel c, pixel (x, y) of a [N, C, h, w] batch. */
const at = (b: Float32Array, shape: readonly number[], i: number, c: number, x: number, y: number): number =>
  b[((i * shape[0] + c) * shape[1] + y) * shape[2] + x];

describe('loadImageFolder: layout and labels', () => {
  test('classes sorted by name, files sorted within a class, classes interleaved', async () => {
    const ds = await loadImageFolder(main);
    expect(ds.classes).toEqual(['ant', 'bee', 'cat']);
    const rel = ds.files.map((f) => path.relative(main, f));
    expect(rel).toEqual(['ant/a.png', 'bee/grad.png', 'cat/photo.jpg', 'ant/b.png', 'cat/sub/nested.png']);
    expect(Array.from(ds.labels!)).toEqual([0, 1, 2, 0, 2]);
    expect(ds.samples).toBe(5);
    expect(ds.sampleShape).toEqual([3, H, W]);
    expect(ds.source).toBe(main);
  });

  test('scanImageFolder lists the same without decoding', () => {
    const s = scanImageFolder(main);
    expect(s.classes).toEqual(['ant', 'bee', 'cat']);
    expect(s.labels).toEqual([0, 1, 2, 0, 2]);
  });

  test('limit takes the first samples, which cover every class', async () => {
    const ds = await loadImageFolder(main, { limit: 3 });
    expect(ds.samples).toBe(3);
    expect(Array.from(ds.labels!)).toEqual([0, 1, 2]);
  });
});

describe('loadImageFolder: pixels', () => {
  test('RGB, no resizing: PNG pixels exact, scaled to [0,1], CHW', async () => {
    const ds = await loadImageFolder(main);
    const b = ds.batch(0, 5);
    const s = ds.sampleShape;
    for (const [x, y] of [[0, 0], [39, 19], [13, 7]]) {
      for (let c = 0; c < 3; c++) {
        expect(at(b, s, 0, c, x, y)).toBeCloseTo(SOLID_A[c] / 255, 6);
        expect(at(b, s, 3, c, x, y)).toBeCloseTo(SOLID_B[c] / 255, 6);
        expect(at(b, s, 1, c, x, y)).toBeCloseTo(grad(x, y)[c] / 255, 6);
        // JPEG is lossy even at quality 100: within 3 levels.
        expect(Math.abs(at(b, s, 2, c, x, y) * 255 - SOLID_JPEG[c])).toBeLessThanOrEqual(3);
      }
    }
  });

  test('channels 1: Rec.601 luma of the colour', async () => {
    const ds = await loadImageFolder(main, { channels: 1 });
    expect(ds.sampleShape).toEqual([1, H, W]);
    const b = ds.batch(0, 2);
    const luma = (c: number[]) => Math.round(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]);
    expect(b[0] * 255).toBeCloseTo(luma(SOLID_A), 4);
    const x = 21, y = 5;
    expect(b[H * W + y * W + x] * 255).toBeCloseTo(luma(grad(x, y)), 4);
  });

  test('resize n: the shorter side becomes n; a solid colour stays exact, a gradient is resampled at pixel centres', async () => {
    const ds = await loadImageFolder(main, { resize: 10 });
    expect(ds.sampleShape).toEqual([3, 10, 20]);
    const b = ds.batch(0, 2);
    const s = ds.sampleShape;
    for (let c = 0; c < 3; c++) expect(at(b, s, 0, c, 7, 3) * 255).toBeCloseTo(SOLID_A[c], 4);
    // Halving: output pixel x covers input pixels 2x and 2x+1, centre 2x + 0.5, where R = 6(2x + 0.5).
    // Any symmetric kernel reproduces a linear ramp away from the borders (up to rounding).
    for (let x = 1; x < 19; x++) expect(Math.abs(at(b, s, 1, 0, x, 4) * 255 - 6 * (2 * x + 0.5))).toBeLessThanOrEqual(1);
    for (let y = 1; y < 9; y++) expect(Math.abs(at(b, s, 1, 1, 8, y) * 255 - 12 * (2 * y + 0.5))).toBeLessThanOrEqual(1);
    for (let x = 0; x < 20; x++) expect(at(b, s, 1, 2, x, 2) * 255).toBeCloseTo(77, 4);
  });

  test('resize WxH is exact; portrait images keep the rule the other way round', async () => {
    expect((await loadImageFolder(main, { resize: { width: 12, height: 9 } })).sampleShape).toEqual([3, 9, 12]);
    expect(resizedSize(20, 40, 10)).toEqual({ width: 10, height: 20 });
    expect(resizedSize(30, 20, 7)).toEqual({ width: 10, height: 7 }); // floor(7·30/20) = 10
  });

  test('centre crop: offsets round half to even, as torchvision does', async () => {
    const crop = { width: 5, height: 3 };
    const ds = await loadImageFolder(main, { crop });
    expect(ds.sampleShape).toEqual([3, 3, 5]);
    const left = pyRound((W - crop.width) / 2); // 17.5 → 18
    const top = pyRound((H - crop.height) / 2); // 8.5 → 8
    expect([left, top]).toEqual([18, 8]);
    const b = ds.batch(1, 1);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 5; x++) {
        const want = grad(left + x, top + y);
        for (let c = 0; c < 3; c++) expect(at(b, ds.sampleShape, 0, c, x, y) * 255).toBeCloseTo(want[c], 4);
      }
    }
    for (const [size, c] of [[40, 5], [20, 3], [10, 7], [9, 2], [8, 8], [11, 4]]) expect(cropOffset(size, c)).toBe(pyRound((size - c) / 2));
  });

  test('imagenet preset: 3×224×224, per-channel mean and std after scaling to [0,1]', async () => {
    const ds = await loadImageFolder(main, { preset: 'imagenet', limit: 1 });
    expect(ds.sampleShape).toEqual([3, 224, 224]);
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const b = ds.batch(0, 1);
    for (let c = 0; c < 3; c++) {
      const want = (SOLID_A[c] / 255 - mean[c]) / std[c];
      for (const [x, y] of [[0, 0], [223, 223], [100, 57]]) expect(at(b, ds.sampleShape, 0, c, x, y)).toBeCloseTo(want, 5);
    }
  });

  test('explicit options override the preset', async () => {
    const ds = await loadImageFolder(main, { preset: 'imagenet', crop: { width: 30, height: 20 }, channels: 1, mean: [0.5], std: [0.25], limit: 1 });
    expect(ds.sampleShape).toEqual([1, 20, 30]);
    const luma = Math.round(0.299 * SOLID_A[0] + 0.587 * SOLID_A[1] + 0.114 * SOLID_A[2]);
    expect(ds.batch(0, 1)[0]).toBeCloseTo((luma / 255 - 0.5) / 0.25, 4);
  });

  test('grey, grey+alpha, RGBA and 16-bit images all arrive as 8-bit RGB', async () => {
    const dir = path.join(root, 'kinds');
    await writeImage(path.join(dir, 'k', '1-grey.png'), 4, 4, () => [90], 'png', 1);
    await writeImage(path.join(dir, 'k', '2-rgba.png'), 4, 4, () => [10, 200, 30, 128], 'png', 4);
    await sharp(rawRgb(4, 4, () => [60, 99]), { raw: { width: 4, height: 4, channels: 2 } }).png().toFile(path.join(dir, 'k', '3-greya.png'));
    // 16 bits per sample: 0x8080 is 128.5 levels of 8 bits; either neighbour is a fair reduction.
    await sharp(Buffer.from(new Uint16Array(16).fill(0x8080).buffer), { raw: { width: 4, height: 4, channels: 1, depth: 'ushort' } })
      .toColourspace('grey16').png().toFile(path.join(dir, 'k', '4-grey16.png'));
    const ds = await loadImageFolder(dir);
    const b = ds.batch(0, 4);
    const px = (i: number, c: number) => Math.round(at(b, ds.sampleShape, i, c, 1, 2) * 255);
    expect([px(0, 0), px(0, 1), px(0, 2)]).toEqual([90, 90, 90]);
    expect([px(1, 0), px(1, 1), px(1, 2)]).toEqual([10, 200, 30]);
    expect([px(2, 0), px(2, 1), px(2, 2)]).toEqual([60, 60, 60]);
    for (let c = 0; c < 3; c++) expect([128, 129]).toContain(px(3, c));
  });
});

describe('loadDatasetAsync / loadDataset dispatch', () => {
  test('a folder goes to the image loader, a file to the IDX/NPY reader', async () => {
    const folder = await loadDatasetAsync({ data: main, channels: 1, limit: 2 });
    expect(folder.sampleShape).toEqual([1, H, W]);
    const idx = await loadDatasetAsync({ data: shipped('test-2000-images-idx3-ubyte.gz'), limit: 3 });
    expect(idx.sampleShape).toEqual([1, 28, 28]);
    expect(idx.labels).toBeDefined();
  });

  test('the synchronous loadDataset refuses a folder and says what to use', () => {
    expect(() => loadDataset({ data: main })).toThrow(BadOptionError);
    expect(() => loadDataset({ data: main })).toThrow(/loadDatasetAsync/);
  });

  test('image options on a file, and --labels on a folder, are refused', async () => {
    const idx = shipped('test-2000-images-idx3-ubyte.gz');
    await expect(loadDatasetAsync({ data: idx, resize: 10 })).rejects.toThrow(/--resize applies to image folders only/);
    expect(() => loadDataset({ data: idx, preset: 'imagenet' })).toThrow(BadOptionError);
    await expect(loadDatasetAsync({ data: main, labels: idx })).rejects.toThrow(/--labels .* image folder/);
  });
});

describe('loadImageFolder: errors name the file or folder', () => {
  let n = 0;
  const fresh = () => {
    const d = path.join(root, `bad${n++}`);
    fs.mkdirSync(d, { recursive: true });
    return d;
  };
  const expectReject = async (p: Promise<unknown>, cls: Function, msg: RegExp) => {
    const err = await p.then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(cls);
    expect(String(err.message)).toMatch(msg);
  };

  test('no class folders', async () => {
    const d = fresh();
    await expectReject(loadImageFolder(d), BadDataError, new RegExp(`${d}: no class folders`));
    await writeImage(path.join(d, 'x.png'), 2, 2, () => SOLID_A);
    await expectReject(loadImageFolder(d), BadDataError, /found 1 images directly in it/);
  });

  test('an empty class folder', async () => {
    const d = fresh();
    await writeImage(path.join(d, 'a', 'x.png'), 2, 2, () => SOLID_A);
    fs.mkdirSync(path.join(d, 'b'));
    fs.writeFileSync(path.join(d, 'b', 'readme.txt'), 'hi');
    await expectReject(loadImageFolder(d), BadDataError, new RegExp(`${path.join(d, 'b')}: class folder "b" holds no images`));
  });

  test('a file that is not an image, an empty file, a dangling link, a BMP', async () => {
    for (const [name, make, cls, msg] of [
      ['text.png', (f: string) => fs.writeFileSync(f, 'hello, not a PNG'), BadDataError, /not an image sharp can decode/],
      ['empty.jpg', (f: string) => fs.writeFileSync(f, ''), BadDataError, /empty file, not an image/],
      ['gone.png', (f: string) => fs.symlinkSync(path.join(root, 'does-not-exist.png'), f), IoError, /cannot read .*ENOENT/],
      ['old.bmp', (f: string) => fs.writeFileSync(f, 'BM'), BadDataError, /BMP images are not decoded by sharp/],
    ] as const) {
      const d = fresh();
      await writeImage(path.join(d, 'a', 'ok.png'), 2, 2, () => SOLID_A);
      const f = path.join(d, 'a', name);
      make(f);
      await expectReject(loadImageFolder(d), cls, msg);
      await expectReject(loadImageFolder(d), cls, new RegExp(f.replace(/[.]/g, '\\.')));
    }
  });

  test('images of different sizes without a crop or exact resize', async () => {
    const d = fresh();
    await writeImage(path.join(d, 'a', '1.png'), 4, 4, () => SOLID_A);
    await writeImage(path.join(d, 'a', '2.png'), 5, 4, () => SOLID_A);
    await expectReject(loadImageFolder(d), BadDataError, /2\.png: 5×4 pixels .* but .*1\.png gives 4×4; .*--crop/);
    // With a crop they become one shape.
    expect((await loadImageFolder(d, { crop: 4 })).sampleShape).toEqual([3, 4, 4]);
  });

  test('a crop larger than the image', async () => {
    const d = fresh();
    await writeImage(path.join(d, 'a', '1.png'), 4, 4, () => SOLID_A);
    await expectReject(loadImageFolder(d, { crop: 8 }), BadDataError, /1\.png: 4×4 pixels is smaller than the 8×8 crop/);
  });

  test('a missing folder', async () => {
    await expectReject(loadImageFolder(path.join(root, 'nope')), IoError, /cannot read image folder .*nope/);
  });

  test('bad options are refused before any file is decoded', async () => {
    const d = fresh();
    await writeImage(path.join(d, 'a', 'ok.png'), 2, 2, () => SOLID_A);
    fs.writeFileSync(path.join(d, 'a', 'broken.png'), 'x'); // would be BAD_DATA if it got that far
    const bad: [object, RegExp][] = [
      [{ channels: 2 }, /Expected 1 or 3 for --channels but received 2/],
      [{ resize: 0 }, /--resize/],
      [{ resize: { width: 3, height: 0 } }, /--resize/],
      [{ crop: -1 }, /--crop/],
      [{ preset: 'cifar' }, /Expected "imagenet" for --preset/],
      [{ mean: [0.1, 0.2] }, /Expected 1 or 3 values \(one per channel\) for --mean/],
      [{ channels: 1, std: [1, 1, 1] }, /Expected 1 or 1 values .* for --std/],
      [{ limit: 0 }, /--limit/],
    ];
    for (const [opts, msg] of bad) await expectReject(loadImageFolder(d, opts as any), BadOptionError, msg);
  });

  test('an aborted signal stops the load', async () => {
    const ac = new AbortController();
    ac.abort();
    await expectReject(loadImageFolder(main, { signal: ac.signal }), AbortError, /aborted/);
  });
});

describe('packptq eval on an image folder', () => {
  /** The first 200 Fashion-MNIST test images as PNGs in class folders 0..9 (names sort as labels). */
  const N = 200;
  const fm = path.join(root, 'fmnist');
  beforeAll(async () => {
    const img = zlib.gunzipSync(fs.readFileSync(shipped('test-2000-images-idx3-ubyte.gz')));
    const lab = zlib.gunzipSync(fs.readFileSync(shipped('test-2000-labels-idx1-ubyte.gz')));
    for (let c = 0; c < 10; c++) fs.mkdirSync(path.join(fm, String(c)), { recursive: true });
    await Promise.all(Array.from({ length: N }, (_, i) => sharp(img.subarray(16 + i * 784, 16 + (i + 1) * 784), { raw: { width: 28, height: 28, channels: 1 } })
      .png().toFile(path.join(fm, String(lab[8 + i]), `${String(i).padStart(4, '0')}.png`))));
  });
  const NORM = ['--mean', '0.2860', '--std', '0.3530'];

  test('gives the same correct count as the IDX file holding the same images', () => {
    const folder = cli(['eval', shipped('resnet20.onnx'), '--data', fm, '--channels', '1', ...NORM, '--json']);
    expect(folder.stderr).toBe('');
    expect(folder.code).toBe(0);
    const idx = cli(['eval', shipped('resnet20.onnx'), '--data', shipped('test-2000-images-idx3-ubyte.gz'), ...NORM, '--limit', String(N), '--json']);
    expect(idx.code).toBe(0);
    const a = JSON.parse(folder.stdout);
    const b = JSON.parse(idx.stdout);
    expect(a.samples).toBe(N);
    expect(a.correct).toBe(b.correct);
    expect(a.accuracy).toBeGreaterThan(0.85);
  });

  test('option and data errors: one line, the right exit code', () => {
    const model = shipped('resnet20.onnx');
    for (const [args, code, msg] of [
      [['--channels', '2'], 2, /Expected 1 or 3 for --channels/],
      [['--resize', '0'], 2, /--resize/],
      [['--crop', '3y4'], 2, /Expected a positive integer N or a size WxH for --crop but received "3y4"/],
      [['--preset', 'cifar'], 2, /--preset/],
    ] as const) {
      const r = cli(['eval', model, '--data', fm, ...args]);
      expect(r.code).toBe(code);
      expect(r.stderr).toMatch(msg);
    }
    const onFile = cli(['eval', model, '--data', shipped('test-2000-images-idx3-ubyte.gz'), '--resize', '28']);
    expect(onFile.code).toBe(2);
    expect(onFile.stderr.trim()).toMatch(/^packptq: --resize applies to image folders only.*\[BAD_OPTION\]$/);
    // The model takes 1×28×28; RGB samples do not fit it.
    const rgb = cli(['eval', model, '--data', fm, '--limit', '4']);
    expect(rgb.code).toBe(1);
    expect(rgb.stderr).toMatch(/\[3,28,28\] does not fit .*\[SHAPE_MISMATCH\]/);
  });
});
