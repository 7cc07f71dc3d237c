/**
 * IDX reader (the MNIST / Fashion-MNIST container): magic `00 00 TYPE NDIM`, NDIM big-endian
 * uint32 sizes, then the elements in C order, big-endian. Files are often gzip-compressed; we
 * detect that from the content (gzip magic 1f 8b), not from the name, so a renamed file still loads.
 *
 * Everything a user can hand us is validated and reported as BadDataError naming the file, because
 * a short or padded file would otherwise silently shift every image and labels would no longer match.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { BadDataError, IoError } from '../errors';

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  shape: number[];
  /** C-order elements, already converted to the host byte order. */
  data: IdxData;
}

interface IdxType {
  dtype: IdxDtype;
  bytes: number;
  make(n: number): IdxData;
  /** Reads one big-endian element; DataView does the byte swapping for us. */
  get(view: DataView, offset: number): number;
}

const IDX_TYPES: Record<number, IdxType> = {
  0x08: { dtype: 'uint8', bytes: 1, make: (n) => new Uint8Array(n), get: (v, o) => v.getUint8(o) },
  0x09: { dtype: 'int8', bytes: 1, make: (n) => new Int8Array(n), get: (v, o) => v.getInt8(o) },
  0x0b: { dtype: 'int16', bytes: 2, make: (n) => new Int16Array(n), get: (v, o) => v.getInt16(o, false) },
  0x0c: { dtype: 'int32', bytes: 4, make: (n) => new Int32Array(n), get: (v, o) => v.getInt32(o, false) },
  0x0d: { dtype: 'float32', bytes: 4, make: (n) => new Float32Array(n), get: (v, o) => v.getFloat32(o, false) },
  0x0e: { dtype: 'float64', bytes: 8, make: (n) => new Float64Array(n), get: (v, o) => v.getFloat64(o, false) },
};

/** True when the bytes start with the gzip magic. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Reads a file and transparently gunzips it when it starts with the gzip magic. Shared by the IDX
 * and NPY readers (a gzipped .npy is common enough to be worth the two lines).
 * Unreadable file → IoError; corrupt or truncated gzip → BadDataError.
 */
export function readDataFile(file: string): Uint8Array {
  let raw: Buffer;
  try {
    raw = fs.readFileSync(file);
  } catch (err) {
    throw new IoError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (!isGzip(raw)) return raw;
  try {
    return zlib.gunzipSync(raw);
  } catch (err) {
    // zlib says "unexpected end of file" for a truncated stream and "incorrect data check" for a
    // corrupt one; both mean the file is damaged, which is a data problem, not an I/O one.
    throw new BadDataError(`${file}: gzip data is truncated or corrupt (${(err as Error).message})`);
  }
}

/** Formats a shape the way messages show it: [1000,28,28]. */
export function formatShape(shape: readonly (number | string)[]): string {
  return `[${shape.join(',')}]`;
}

/** Parses IDX bytes (already gunzipped). `name` is used in error messages only. */
export function parseIdx(bytes: Uint8Array, name: string): IdxArray {
  if (bytes.length < 4) {
    throw new BadDataError(`${name}: not an IDX file (only ${bytes.length} bytes, the header alone needs 4)`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new BadDataError(
      `${name}: not an IDX file (magic must start with 00 00, found ${hex(bytes[0])} ${hex(bytes[1])})`,
    );
  }
  const type = IDX_TYPES[bytes[2]];
  if (!type) {
    throw new BadDataError(
      `${name}: unknown IDX data type 0x${hex(bytes[2])} (supported: 08 uint8, 09 int8, 0B int16, 0C int32, 0D float32, 0E float64)`,
    );
  }
  const ndim = bytes[3];
  if (ndim === 0) throw new BadDataError(`${name}: IDX header declares 0 dimensions`);
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) {
    throw new BadDataError(
      `${name}: truncated IDX header (${ndim} dimensions need ${headerBytes} bytes, file has ${bytes.length})`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    shape.push(d);
    count *= d;
  }
  // count is exact up to 2^53, far beyond any file we could hold in memory.
  const expectedBytes = count * type.bytes;
  const found = bytes.length - headerBytes;
  if (found !== expectedBytes) {
    throw new BadDataError(
      `${name}: expected ${expectedBytes} bytes of data for ${formatShape(shape)}${type.bytes > 1 ? ` of ${type.dtype}` : ''} but found ${found}`,
    );
  }
  let data: IdxData;
  if (type.bytes === 1 && type.dtype === 'uint8') {
    // Byte data needs no swapping: a view avoids copying e.g. 47 MB of training images.
    data = bytes.subarray(headerBytes);
  } else {
    data = type.make(count);
    for (let i = 0, o = headerBytes; i < count; i++, o += type.bytes) data[i] = type.get(view, o);
  }
  return { dtype: type.dtype, shape, data };
}

/** Reads an IDX file, gzipped or not. */
export function readIdx(file: string): IdxArray {
  return parseIdx(readDataFile(file), file);
}

const IMAGES_NAME = /^(.*)-images([.-])idx3-ubyte(\.gz)?$/;

/**
 * The labels file beside an images file under the standard MNIST naming:
 * `X-images-idx3-ubyte[.gz]` → `X-labels-idx1-ubyte[.gz]` (also the `X-images.idx3-ubyte` spelling
 * some mirrors use). The same compression as the images is tried first, then the other.
 * Returns undefined when the name does not follow the convention or no such file exists.
 */
export function findLabelsFile(imagesPath: string): string | undefined {
  const m = IMAGES_NAME.exec(path.basename(imagesPath));
  if (!m) return undefined;
  const stem = path.join(path.dirname(imagesPath), `${m[1]}-labels${m[2]}idx1-ubyte`);
  const candidates = m[3] ? [stem + '.gz', stem] : [stem, stem + '.gz'];
  return candidates.find(isFile);
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

function hex(b: number | undefined): string {
  return (b ?? 0).toString(16).toUpperCase().padStart(2, '0');
}
