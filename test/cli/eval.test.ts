/** `packptq eval` as a user runs it: results, JSON output, and one clear line for every bad input. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cli } from '../helpers/cli';
import { shipped } from '../helpers/fixtures';

const MODEL = shipped('resnet20.onnx');
const DATA = shipped('test-2000-images-idx3-ubyte.gz');
const NORM = ['--mean', '0.2860', '--std', '0.3530'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writeTmp(name: string, bytes: Uint8Array | string): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, bytes);
  return f;
}

/** A failure must be one clear line on stderr with a code, a non-zero exit, and no crash signal. */
function expectCleanFailure(r: ReturnType<typeof cli>, code: string, mention: RegExp): void {
  expect(r.signal).toBeNull();
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`[${code}]`);
  expect(lines[0]).toMatch(mention);
}

test('prints accuracy, samples and images/s, matching the fixture accuracy', () => {
  const r = cli(['eval', MODEL, '--data', DATA, ...NORM, '--limit', '500']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/top-1\s+\d+\.\d+% \(\d+\/500\)/);
  expect(r.stdout).toMatch(/images\/s\s+\d+/);
});

test('--json prints exactly one JSON object with the documented fields', () => {
  const r = cli(['eval', MODEL, '--data', DATA, ...NORM, '--json', '--threads', '2']);
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const o = JSON.parse(lines[0]);
  expect(o.samples).toBe(2000);
  expect(o.accuracy).toBeCloseTo(0.937, 4); // onnxruntime's figure for this fixture
  expect(o.threads).toBe(2);
  expect(o.imagesPerSecond).toBeGreaterThan(0);
  expect(o.model).toContain('resnet20.onnx');
});

test('a truncated model file', () => {
  const f = writeTmp('truncated.onnx', fs.readFileSync(MODEL).subarray(0, 5000));
  expectCleanFailure(cli(['eval', f, '--data', DATA]), 'ONNX_DECODE', /truncated\.onnx/);
});

test('random bytes as a model', () => {
  const bytes = new Uint8Array(4096);
  let s = 12345;
  for (let i = 0; i < bytes.length; i++) bytes[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  const f = writeTmp('random.onnx', bytes);
  expectCleanFailure(cli(['eval', f, '--data', DATA]), 'ONNX_DECODE', /random\.onnx/);
});

test('a missing model file', () => {
  expectCleanFailure(cli(['eval', path.join(tmp, 'nope.onnx'), '--data', DATA]), 'IO', /nope\.onnx/);
});

test('a valid model with an unsupported op names the op, the node and the supported list', () => {
  // Rename the first Relu of resnet20 to an op packptq does not run, by editing the decoded model.
  const { decodeModel } = require('../../lib/onnx/decode');
  const { encodeModel } = require('../../lib/onnx/encode');
  const m = decodeModel(fs.readFileSync(MODEL));
  const relu = m.graph.node.find((n: { op_type: string }) => n.op_type === 'Relu');
  relu.op_type = 'Celu';
  const f = writeTmp('celu.onnx', encodeModel(m));
  const r = cli(['eval', f, '--data', DATA]);
  expectCleanFailure(r, 'UNSUPPORTED_OP', new RegExp(`Celu node "${relu.name}".*Supported ops: .*Conv`));
});

test('an IDX file with a wrong magic', () => {
  const buf = Buffer.from(zlibGunzip(DATA));
  buf[2] = 0x07;
  const f = writeTmp('bad-magic-images-idx3-ubyte', buf);
  expectCleanFailure(cli(['eval', MODEL, '--data', f]), 'BAD_DATA', /bad-magic-images-idx3-ubyte/);
});

test('an IDX file shorter than its header says', () => {
  const f = writeTmp('short-images-idx3-ubyte', zlibGunzip(DATA).subarray(0, 16 + 784 * 10 - 3));
  expectCleanFailure(cli(['eval', MODEL, '--data', f]), 'BAD_DATA', /short-images-idx3-ubyte/);
});

test('data that does not fit the model input', () => {
  // 3-D point clouds [N,3,8] fed to an image model.
  const { writeNpy } = require('../../lib/data/npy');
  const f = path.join(tmp, 'points.npy');
  writeNpy(f, new Float32Array(4 * 3 * 8), [4, 3, 8]);
  expectCleanFailure(cli(['eval', MODEL, '--data', f]), 'SHAPE_MISMATCH', /points\.npy.*\[1,28,28\]|\[3,8\]/);
});

test('bad option values exit with the usage code 2 before any work', () => {
  const r = cli(['eval', MODEL, '--data', DATA, '--batch', '0']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/--batch/);
  const s = cli(['eval', MODEL, '--data', DATA, '--std', '0']);
  expect(s.code).toBe(2);
  expect(s.stderr).toMatch(/--std/);
});

test('--help lists the options with an example', () => {
  const r = cli(['eval', '--help']);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/--data <file>/);
  expect(r.stdout).toMatch(/Examples:/);
});

function zlibGunzip(file: string): Buffer {
  return require('zlib').gunzipSync(fs.readFileSync(file));
}
