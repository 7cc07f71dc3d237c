/** Test-side writers for tiny IDX files, built byte by byte with Buffer's big-endian writers
 * (independent of lib/data, which only reads). */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';

export function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-data-'));
}

/** IDX bytes: 00 00 type ndim, sizes BE, then `body` (already big-endian encoded). */
export function idxBytes(type: number, shape: number[], body: Buffer): Buffer {
  const head = Buffer.alloc(4 + 4 * shape.length);
  head[2] = type;
  head[3] = shape.length;
  shape.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, body]);
}

export function idxU8(shape: number[], values: number[]): Buffer {
  return idxBytes(0x08, shape, Buffer.from(values));
}

export function write(dir: string, name: string, bytes: Buffer, gzip = false): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, gzip ? zlib.gzipSync(bytes) : bytes);
  return p;
}

/** Where the shipped evaluation files live: test/fixtures (in the repo) or the shared folder. */
export function sharedFixture(sub: 'fashion-mnist' | 'shapes3d', name: string): string | undefined {
  const candidates = [
    path.join(__dirname, '..', 'fixtures', name),
    path.join(__dirname, '..', 'fixtures', sub, name),
    path.join('/work/shared/fixtures/data', sub, name),
  ];
  return candidates.find((p) => fs.existsSync(p));
}

export const NPY_FIXTURES = path.join(__dirname, 'fixtures');
