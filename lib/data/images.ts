/**
 * Image folders as a Dataset: the ImageFolder layout that torchvision made the common way to ship
 * labelled images — one subfolder per class, classes sorted by name give the label indices, images
 * in any depth below their class folder (hidden files and folders skipped, files without an image
 * extension skipped).
 *
 * Decoding is done by sharp (libvips), which is asynchronous, while Dataset.batch() is synchronous
 * (the evaluation and calibration loops pull batches without awaiting). So every image is decoded
 * once, at load, into one uint8 array in CHW order: C×H×W bytes per image (150 KB for a 224×224 RGB
 * crop, 150 MB for a 1024-image calibration set), and normalised to float32 per batch like any other
 * uint8 data (dataset.ts). Use `limit` to bound very large folders.
 *
 * The preprocessing follows the torchvision recipe that most ImageNet-style models were trained
 * with, in this order:
 *   decode → drop alpha, convert to sRGB (8 bits) → [channels 1: Rec.601 luma, as PIL's "L"]
 *   → [resize: shorter side to N, longer side floor(N·long/short); or exactly W×H; linear kernel]
 *   → [centre crop H×W, offsets round-half-even((size − crop)/2)] → CHW → /255 → (x − mean)/std
 * EXIF orientation is not applied (PIL does not apply it either). The linear kernel is antialiased
 * when shrinking, like PIL's bilinear filter, but libvips and PIL do not produce identical bytes.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type SharpDefault from 'sharp';
import { AbortError, BadDataError, BadOptionError, IoError, NativeError, expected } from '../errors';
import { Dataset, makeDataset } from './dataset';

type Sharp = typeof SharpDefault;

export interface ImageSize { width: number; height: number }

/** How images become samples of one shape. Explicit options override the preset's. */
export interface ImageOptions {
  /** 'imagenet': resize 256, crop 224, RGB, the ImageNet mean and std. */
  preset?: 'imagenet';
  /** A number: the shorter side becomes this many pixels (aspect kept). A size: exactly that. */
  resize?: number | ImageSize;
  /** Centre crop to this size (a number: a square). */
  crop?: number | ImageSize;
  /** 3 (RGB, the default) or 1 (luma). */
  channels?: 1 | 3;
}

export interface ImageFolderOptions extends ImageOptions {
  /** Per-channel mean subtracted after scaling pixels to [0, 1] (1 value or 1 per channel). */
  mean?: number[];
  std?: number[];
  /** Decode only the first `limit` samples (see scanImageFolder for the order: every class evenly). */
  limit?: number;
  /** Stops decoding; the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface ImageFolderDataset extends Dataset {
  /** Class folder names; label i is classes[i]. */
  readonly classes: readonly string[];
  /** The image file of each sample. */
  readonly files: readonly string[];
}

/** The preprocessing torchvision's ImageNet models were trained and evaluated with. */
export const IMAGENET_PRESET = {
  resize: 256,
  crop: 224,
  channels: 3 as const,
  mean: [0.485, 0.456, 0.406],
  std: [0.229, 0.224, 0.225],
};

/** Names of the image options as the CLI spells them, for messages. */
const OPTION_NAME = { preset: '--preset', resize: '--resize', crop: '--crop', channels: '--channels' } as const;

/** Image files that are images but not ones sharp's prebuilt libvips decodes: refused by name so
 * a folder of them is not silently skipped. */
const UNDECODABLE = ['.bmp', '.dib', '.ppm', '.pgm', '.pbm', '.pnm', '.heic', '.heif', '.jxl', '.jp2', '.ico', '.psd'];

interface Plan {
  channels: 1 | 3;
  /** Shorter side, or an exact size. */
  resize?: number | ImageSize;
  crop?: ImageSize;
  mean?: number[];
  std?: number[];
}

/**
 * Loads an image folder. Rejects with BadDataError naming the file or folder at fault (no class
 * folders, an empty class, a file that does not decode, images of different sizes with no
 * resize/crop to make them one size), IoError for unreadable files, BadOptionError for options.
 */
export async function loadImageFolder(dir: string, opts: ImageFolderOptions = {}): Promise<ImageFolderDataset> {
  if (typeof dir !== 'string' || dir === '') throw expected('a folder path', '--data', dir);
  const plan = resolvePlan(opts);
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit <= 0)) {
    throw expected('a positive integer', '--limit', opts.limit);
  }
  const sharp = loadSharp();
  const { classes, files: allFiles, labels: allLabels } = scanImageFolder(dir, decodableExtensions(sharp));
  const n = Math.min(allFiles.length, opts.limit ?? Infinity);
  const files = allFiles.slice(0, n);
  const labels = Int32Array.from(allLabels.slice(0, n));
  if (opts.signal?.aborted) throw new AbortError();

  // The first image fixes the sample shape when no exact size is asked for; decoding it alone first
  // lets the rest be written straight into the one big array instead of held and copied.
  const first = await decodeImage(sharp, files[0], plan);
  const c = plan.channels;
  const h = first.sampleHeight;
  const w = first.sampleWidth;
  const size = c * h * w;
  let data: Uint8Array;
  try {
    data = new Uint8Array(n * size);
  } catch {
    throw new BadOptionError(
      `${dir}: ${n} images of ${c}×${h}×${w} need ${((n * size) / 2 ** 20).toFixed(0)} MB in memory; ` +
      'use --limit, or a smaller --resize/--crop',
    );
  }
  placeSample(first, data, 0, plan, files[0]);

  await forEachLimited(n - 1, concurrency(), opts.signal, async (k) => {
    const i = k + 1;
    const img = await decodeImage(sharp, files[i], plan);
    if (img.sampleWidth !== w || img.sampleHeight !== h) {
      throw new BadDataError(
        `${files[i]}: ${img.sampleWidth}×${img.sampleHeight} pixels after preprocessing, but ${files[0]} gives ${w}×${h}; ` +
        'images of different sizes need --crop (or an exact --resize WxH) to become samples of one shape',
      );
    }
    placeSample(img, data, i * size, plan, files[i]);
  });

  const ds = makeDataset({
    source: dir,
    data,
    sampleShape: [c, h, w],
    pixels: true,
    labels,
    mean: plan.mean,
    std: plan.std,
  });
  return { ...ds, classes, files };
}

/**
 * Lists an image folder without decoding anything: the class names (sorted) and every image file
 * with its label, in sample order: files sorted within each class, classes interleaved (the first
 * file of every class, then the second, ...). `extensions` are the lower-case suffixes to take.
 */
export function scanImageFolder(
  dir: string,
  extensions: ReadonlySet<string> = DEFAULT_EXTENSIONS,
): { classes: string[]; files: string[]; labels: number[] } {
  const entries = readDir(dir);
  const classes = entries.filter((e) => !e.name.startsWith('.') && isDir(path.join(dir, e.name), e)).map((e) => e.name);
  classes.sort(byCodePoint);
  if (classes.length === 0) {
    const loose = entries.filter((e) => extensions.has(extensionOf(e.name))).length;
    throw new BadDataError(
      `${dir}: no class folders; an image folder holds one subfolder of images per class` +
      (loose > 0 ? ` (found ${loose} images directly in it)` : ''),
    );
  }
  const perClass = classes.map((name) => {
    const classDir = path.join(dir, name);
    const found: string[] = [];
    walk(classDir, extensions, found, new Set());
    if (found.length === 0) {
      throw new BadDataError(
        `${classDir}: class folder ${JSON.stringify(name)} holds no images (looked for ${[...extensions].join(' ')})`,
      );
    }
    return found.sort(byCodePoint);
  });
  // Round-robin over the classes, so that every prefix (a --limit) covers all classes evenly rather
  // than only the first ones, as a class-by-class order would.
  const files: string[] = [];
  const labels: number[] = [];
  const longest = Math.max(...perClass.map((f) => f.length));
  for (let k = 0; k < longest; k++) {
    perClass.forEach((found, label) => {
      if (k < found.length) {
        files.push(found[k]);
        labels.push(label);
      }
    });
  }
  return { classes, files, labels };
}

/** Preset and explicit options merged and checked, before any file is touched. */
function resolvePlan(opts: ImageFolderOptions): Plan {
  if (opts.preset !== undefined && opts.preset !== 'imagenet') throw expected('"imagenet"', OPTION_NAME.preset, opts.preset);
  const preset = opts.preset === 'imagenet' ? IMAGENET_PRESET : undefined;
  const channels = opts.channels ?? preset?.channels ?? 3;
  if (channels !== 1 && channels !== 3) throw expected('1 or 3', OPTION_NAME.channels, channels);
  const resize = opts.resize ?? preset?.resize;
  if (resize !== undefined && typeof resize === 'number') {
    if (!Number.isInteger(resize) || resize <= 0) throw expected('a positive integer or a size', OPTION_NAME.resize, resize);
  } else if (resize !== undefined) {
    checkSize(resize, OPTION_NAME.resize);
  }
  const cropOpt = opts.crop ?? preset?.crop;
  let crop: ImageSize | undefined;
  if (typeof cropOpt === 'number') {
    if (!Number.isInteger(cropOpt) || cropOpt <= 0) throw expected('a positive integer or a size', OPTION_NAME.crop, cropOpt);
    crop = { width: cropOpt, height: cropOpt };
  } else if (cropOpt !== undefined) {
    crop = checkSize(cropOpt, OPTION_NAME.crop);
  }
  // Only the preset's own statistics come with it: mixing preset mean with a user std is allowed,
  // since each is given per option.
  const mean = opts.mean ?? preset?.mean;
  const std = opts.std ?? preset?.std;
  // Checked here as well as in makeDataset so that a wrong count fails before minutes of decoding.
  for (const [values, name] of [[mean, '--mean'], [std, '--std']] as const) {
    if (values === undefined) continue;
    if (!Array.isArray(values) || !values.every((v) => typeof v === 'number' && Number.isFinite(v))) {
      throw expected('a list of finite numbers', name, values);
    }
    if (values.length !== 1 && values.length !== channels) {
      throw expected(`1 or ${channels} values (one per channel)`, name, values);
    }
  }
  return { channels, resize, crop, mean, std };
}

function checkSize(s: unknown, name: string): ImageSize {
  const o = s as ImageSize;
  if (typeof o !== 'object' || o === null || !Number.isInteger(o.width) || !Number.isInteger(o.height) ||
      o.width <= 0 || o.height <= 0) {
    throw expected('{width, height} of positive integers', name, typeof o === 'object' && o !== null ? JSON.stringify(o) : o);
  }
  return { width: o.width, height: o.height };
}

// ---------------------------------------------------------------------------------------------
// Decoding

interface Decoded {
  /** HWC bytes after colour conversion and resizing, before the crop. */
  pixels: Buffer;
  width: number;
  height: number;
  /** The size the sample will have (the crop, or the whole image). */
  sampleWidth: number;
  sampleHeight: number;
}

async function decodeImage(sharp: Sharp, file: string, plan: Plan): Promise<Decoded> {
  let bytes: Buffer;
  try {
    bytes = await fs.promises.readFile(file);
  } catch (err) {
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (bytes.length === 0) throw new BadDataError(`${file}: empty file, not an image`);

  let rgb: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    // failOn 'error' rather than sharp's default 'warning': real collections (ImageNet's among them)
    // hold JPEGs with stray bytes that libjpeg warns about and every viewer shows; refusing them
    // would make such a folder unusable. Dropping alpha without compositing is what PIL's
    // convert('RGB') does; 'srgb' also brings grey, CMYK and 16-bit images to 8-bit RGB.
    rgb = await sharp(bytes, { failOn: 'error' }).removeAlpha().toColourspace('srgb').raw()
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new BadDataError(`${file}: not an image sharp can decode (${(err as Error).message})`);
  }
  let { width, height } = rgb.info;
  if (rgb.info.channels !== 3 || rgb.data.length !== width * height * 3) {
    throw new BadDataError(`${file}: decoded to ${rgb.info.channels} channels of ${rgb.data.length} bytes, expected 8-bit RGB`);
  }
  // Luma before resizing: the resize then works on a third of the bytes; both steps are linear, so
  // the order changes only the rounding.
  let pixels = plan.channels === 1 ? luma(rgb.data) : rgb.data;

  if (plan.resize !== undefined) {
    const target = resizedSize(width, height, plan.resize);
    if (target.width !== width || target.height !== height) {
      try {
        pixels = await sharp(pixels, { raw: { width, height, channels: plan.channels } })
          .resize({ width: target.width, height: target.height, fit: 'fill', kernel: 'linear' })
          // Without this sharp turns one-channel raw input into sRGB on output.
          .toColourspace(plan.channels === 1 ? 'b-w' : 'srgb')
          .raw()
          .toBuffer();
      } catch (err) {
        throw new BadDataError(`${file}: cannot resize ${width}×${height} to ${target.width}×${target.height} (${(err as Error).message})`);
      }
      width = target.width;
      height = target.height;
    }
  }
  if (plan.crop && (plan.crop.width > width || plan.crop.height > height)) {
    throw new BadDataError(
      `${file}: ${width}×${height} pixels${plan.resize !== undefined ? ' after resizing' : ''} is smaller than the ` +
      `${plan.crop.width}×${plan.crop.height} crop; resize first (--resize) or crop less`,
    );
  }
  return {
    pixels, width, height,
    sampleWidth: plan.crop?.width ?? width,
    sampleHeight: plan.crop?.height ?? height,
  };
}

/** Rec.601 luma, rounded: the weights PIL's "L" mode and torchvision's Grayscale use. */
function luma(rgb: Buffer): Buffer {
  const n = rgb.length / 3;
  const out = Buffer.allocUnsafe(n);
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    out[i] = Math.floor((rgb[j] * 299 + rgb[j + 1] * 587 + rgb[j + 2] * 114 + 500) / 1000);
  }
  return out;
}

/** torchvision's rule for a single size: the shorter side becomes n, the longer one is truncated. */
export function resizedSize(width: number, height: number, resize: number | ImageSize): ImageSize {
  if (typeof resize !== 'number') return resize;
  return width <= height
    ? { width: resize, height: Math.max(1, Math.floor((resize * height) / width)) }
    : { width: Math.max(1, Math.floor((resize * width) / height)), height: resize };
}

/** Offset of a centred crop: Python's round() of (size − crop)/2, which rounds halves to even. */
export function cropOffset(size: number, crop: number): number {
  const d = size - crop;
  if (d % 2 === 0) return d / 2;
  const down = (d - 1) / 2;
  return down % 2 === 0 ? down : down + 1;
}

/** Crops and transposes one decoded HWC image into CHW at `offset` of `out`. */
function placeSample(img: Decoded, out: Uint8Array, offset: number, plan: Plan, file: string): void {
  const c = plan.channels;
  const { sampleWidth: sw, sampleHeight: sh, width, pixels } = img;
  const top = plan.crop ? cropOffset(img.height, sh) : 0;
  const left = plan.crop ? cropOffset(width, sw) : 0;
  if (pixels.length !== width * img.height * c) {
    throw new BadDataError(`${file}: resized image has ${pixels.length} bytes, expected ${width * img.height * c}`);
  }
  const plane = sw * sh;
  for (let y = 0; y < sh; y++) {
    const row = ((top + y) * width + left) * c;
    const o = offset + y * sw;
    for (let x = 0; x < sw; x++) {
      for (let ch = 0; ch < c; ch++) out[o + ch * plane + x] = pixels[row + x * c + ch];
    }
  }
}

/** Runs `job(0..count-1)` with at most `limit` in flight; the error of the lowest index wins, so a
 * folder with several bad files always reports the same one. */
async function forEachLimited(
  count: number, limit: number, signal: AbortSignal | undefined, job: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const state: { failed?: { i: number; err: unknown } } = {};
  const worker = async (): Promise<void> => {
    while (next < count && state.failed === undefined) {
      if (signal?.aborted) {
        state.failed = { i: -1, err: new AbortError() };
        return;
      }
      const i = next++;
      try {
        await job(i);
      } catch (err) {
        // Another worker may have failed while this one awaited (TS cannot see that, hence the cast).
        const prev = state.failed as { i: number } | undefined;
        if (prev === undefined || i < prev.i) state.failed = { i, err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  if (state.failed) throw state.failed.err;
}

/** Decodes in flight at once: sharp runs each on a libuv pool thread, so more than the pool size
 * only queues; a few extra keep the pool busy while JavaScript transposes finished images. */
function concurrency(): number {
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(2, Math.min(pool + 2, os.availableParallelism?.() ?? os.cpus().length, 16));
}

// ---------------------------------------------------------------------------------------------
// Folders

/** What sharp decodes, by the suffixes it declares; 'vips' is libvips' own format (and `.v` is as
 * likely a Verilog file), so it is left out. */
function decodableExtensions(sharp: Sharp): ReadonlySet<string> {
  const out = new Set<string>();
  for (const [name, f] of Object.entries(sharp.format) as [string, { input: { file: boolean; fileSuffix?: string[] } }][]) {
    if (name === 'vips' || !f.input.file) continue;
    for (const s of f.input.fileSuffix ?? []) if (!s.endsWith('.gz')) out.add(s.toLowerCase());
  }
  return out.size > 0 ? out : DEFAULT_EXTENSIONS;
}

/** For listing without loading sharp: the formats of sharp's prebuilt libvips. */
const DEFAULT_EXTENSIONS: ReadonlySet<string> = new Set([
  '.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.tif', '.tiff', '.gif', '.avif', '.svg',
]);

function extensionOf(name: string): string {
  return path.extname(name).toLowerCase();
}

function readDir(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOTDIR') throw new BadOptionError(`${dir} is not a folder`);
    throw new IoError(`cannot read image folder ${dir}: ${e.message}`, { cause: err });
  }
}

/** Follows symbolic links, as ImageFolder does; a dangling one is reported, not skipped. */
function isDir(p: string, e: fs.Dirent): boolean {
  if (!e.isSymbolicLink()) return e.isDirectory();
  try {
    return fs.statSync(p).isDirectory();
  } catch (err) {
    throw new IoError(`cannot read ${p}: ${(err as Error).message}`, { cause: err });
  }
}

function walk(dir: string, extensions: ReadonlySet<string>, out: string[], seen: Set<string>): void {
  // Symbolic links are followed; real paths already walked are not walked again (a link loop).
  let real: string;
  try {
    real = fs.realpathSync(dir);
  } catch (err) {
    throw new IoError(`cannot read ${dir}: ${(err as Error).message}`, { cause: err });
  }
  if (seen.has(real)) return;
  seen.add(real);
  for (const e of readDir(dir)) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(dir, e.name);
    if (isDir(p, e)) {
      walk(p, extensions, out, seen);
      continue;
    }
    const ext = extensionOf(e.name);
    if (extensions.has(ext)) {
      out.push(p);
    } else if (UNDECODABLE.includes(ext)) {
      throw new BadDataError(
        `${p}: ${ext.slice(1).toUpperCase()} images are not decoded by sharp (the image library packptq uses); ` +
        'convert them to PNG or JPEG',
      );
    }
  }
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

let sharpModule: Sharp | undefined;

/** sharp is loaded on first use, so IDX and NPY users never pay for libvips. */
function loadSharp(): Sharp {
  if (sharpModule) return sharpModule;
  try {
    sharpModule = require('sharp') as Sharp;
  } catch (err) {
    throw new NativeError(
      `cannot load sharp, the image decoder used for image folders: ${(err as Error).message.split('\n')[0]} ` +
      '(reinstall with "npm install --include=optional sharp")',
    );
  }
  return sharpModule;
}
