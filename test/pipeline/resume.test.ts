/**
 * Resumable runs (--run-dir) and `packptq export`, through the real command: a QDrop run killed with
 * SIGKILL after two unit checkpoints and then rerun must end with the model bytes and accuracy of a
 * run never interrupted (which is run without --run-dir, so the run directory cannot have shaped
 * the truth it is compared against).
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { cli } from '../helpers/cli';
import { ROOT, shipped } from '../helpers/fixtures';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-resume-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const ARGS = [
  'quantize', shipped('resnet20.onnx'), '--calib', shipped('calib-1024-images-idx3-ubyte.gz'),
  '--eval', shipped('test-2000-images-idx3-ubyte.gz'), '--eval-limit', '500', '--mean', '0.2860', '--std', '0.3530',
  '--w-bits', '4', '--a-bits', '4', '--method', 'qdrop', '--iters', '40', '--calib-size', '128', '--batch', '32',
  '--threads', '1', '--seed', '3', '--json', '--quiet',
];
const unitCheckpoints = (dir: string) => (fs.existsSync(path.join(dir, 'units')) ? fs.readdirSync(path.join(dir, 'units')).filter((f) => /^\d{4}\.ckpt$/.test(f)) : []);

/** The command in a child process without blocking the event loop (cli() would stall the watcher below). */
function cliAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'packptq.js'), ...args], { cwd: ROOT });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts the command, SIGKILLs it as soon as `dir` holds `units` unit checkpoints. */
function killAfterUnits(args: string[], dir: string, units: number): Promise<{ signal: NodeJS.Signals | null; finalExisted: boolean; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'packptq.js'), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '', finalExisted = false;
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setInterval(() => {
      if (unitCheckpoints(dir).length >= units) {
        finalExisted = fs.existsSync(path.join(dir, 'final.ckpt'));
        child.kill('SIGKILL');
        clearInterval(timer);
      }
    }, 20);
    child.on('error', reject);
    child.on('exit', (_code, signal) => { clearInterval(timer); resolve({ signal, finalExisted, stderr }); });
  });
}

test('a SIGKILLed --run-dir run resumes after its checkpoints and ends with the uninterrupted run\'s model; export and mismatches', async () => {
  const plainOut = path.join(tmp, 'plain.onnx'), resumedOut = path.join(tmp, 'resumed.onnx'), exported = path.join(tmp, 'exported.onnx');
  const runDir = path.join(tmp, 'run');
  // The uninterrupted run (no run directory) and the run to kill, side by side.
  const [plain, killed] = await Promise.all([
    cliAsync([...ARGS, '--out', plainOut]),
    killAfterUnits([...ARGS, '--out', resumedOut, '--run-dir', runDir], runDir, 2),
  ]);
  expect(plain.code).toBe(0);
  expect(killed.signal).toBe('SIGKILL');
  expect(killed.finalExisted).toBe(false);
  expect(fs.existsSync(resumedOut)).toBe(false);
  const done = unitCheckpoints(runDir).length;
  expect(done).toBeGreaterThanOrEqual(2);

  // Export refuses the unfinished run, naming the units it lacks.
  const unfinished = cli(['export', '--run-dir', runDir, '--out', exported]);
  expect(unfinished.code).toBe(2);
  expect(unfinished.stderr).toMatch(/unfinished run: \d+ of 11 units have no checkpoint: /);
  expect(unfinished.stderr).toContain(`${done} (`);
  expect(unfinished.stderr).toMatch(/\[BAD_OPTION\]\n$/);
  expect(fs.existsSync(exported)).toBe(false);

  const resumed = cli([...ARGS, '--out', resumedOut, '--run-dir', runDir]);
  expect(resumed.code).toBe(0);
  const r = JSON.parse(resumed.stdout), p = JSON.parse(plain.stdout);
  expect(r.resumedFromUnit).toBe(done);
  expect(r.unitCount).toBe(11);
  expect(r.units.map((u: { name: string }) => u.name)).toEqual(p.units.map((u: { name: string }) => u.name));
  expect(r.quantized.accuracy).toBe(p.quantized.accuracy);
  expect(Buffer.compare(fs.readFileSync(resumedOut), fs.readFileSync(plainOut))).toBe(0);

  // Export from the finished run directory: the same bytes as --out.
  const ex = cli(['export', '--run-dir', runDir, '--out', exported, '--json']);
  expect(ex.code).toBe(0);
  expect(JSON.parse(ex.stdout)).toMatchObject({ out: exported, method: 'qdrop', wBits: 4, aBits: 4 });
  expect(Buffer.compare(fs.readFileSync(exported), fs.readFileSync(plainOut))).toBe(0);

  // Rerunning a finished run recomputes nothing and gives the same model again.
  const again = cli([...ARGS, '--out', resumedOut, '--run-dir', runDir, '--report', path.join(tmp, 'report.json')]);
  expect(again.code).toBe(0);
  expect(JSON.parse(again.stdout).resumedFromUnit).toBe(11);
  expect(JSON.parse(fs.readFileSync(path.join(tmp, 'report.json'), 'utf8')).resumedFromUnit).toBe(11);
  expect(Buffer.compare(fs.readFileSync(resumedOut), fs.readFileSync(plainOut))).toBe(0);

  // Another width on the same run directory is refused, naming the option; the directory is untouched.
  const before = fs.readFileSync(path.join(runDir, 'manifest.json'));
  const mismatch = cli([...ARGS.map((a) => (a === '4' ? '3' : a)), '--run-dir', runDir]);
  expect(mismatch.code).toBe(2);
  expect(mismatch.stderr).toContain('--w-bits 4, this run asks for --w-bits 3');
  expect(mismatch.stderr).toMatch(/\[BAD_OPTION\]\n$/);
  expect(fs.readFileSync(path.join(runDir, 'manifest.json')).equals(before)).toBe(true);
  // Export with another model (here the quantized one) is refused too.
  const otherModel = cli(['export', '--run-dir', runDir, '--out', path.join(tmp, 'other.onnx'), '--model', plainOut]);
  expect(otherModel.code).toBe(2);
  expect(otherModel.stderr).toContain(`--model ${plainOut} is not the model --run-dir ${runDir} quantized`);
  expect(fs.existsSync(path.join(tmp, 'other.onnx'))).toBe(false);
}, 180000);

test('checkpoint container: typed arrays and non-finite numbers survive; int32 codes are stored narrow; damage is a BAD_DATA error', () => {
  const { encodeCheckpoint, decodeCheckpoint } = require('../../lib/pipeline/run-dir');
  const value = {
    small: Int32Array.of(-8, 0, 7), mid: Int32Array.of(-300, 255), big: Int32Array.of(-70000, 1),
    f: Float32Array.of(0.1, -3.5e-7, 1e30), d: Float64Array.of(Math.PI), odd: Uint8Array.of(1, 2, 3),
    n: [NaN, Infinity, -Infinity, 1.5], nested: { s: 'x', empty: new Float32Array(0) },
  };
  const bytes: Buffer = encodeCheckpoint(value);
  const header = JSON.parse(bytes.subarray(12, 12 + bytes.readUInt32LE(8)).toString('utf8'));
  expect([header.small.stored, header.mid.stored, header.big.stored]).toEqual(['int8', 'int16', 'int32']);
  const back = decodeCheckpoint(bytes, 'x.ckpt');
  expect(back.small).toBeInstanceOf(Int32Array);
  expect(Array.from(back.small)).toEqual([-8, 0, 7]);
  expect(Array.from(back.mid)).toEqual([-300, 255]);
  expect(Array.from(back.big)).toEqual([-70000, 1]);
  expect(back.f).toBeInstanceOf(Float32Array);
  expect(Array.from(back.f)).toEqual(Array.from(value.f));
  expect(Array.from(back.d)).toEqual([Math.PI]);
  expect(Array.from(back.odd)).toEqual([1, 2, 3]);
  expect(back.n).toEqual([NaN, Infinity, -Infinity, 1.5]);
  expect(back.nested.s).toBe('x');
  expect(back.nested.empty).toHaveLength(0);
  expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 12), 'cut.ckpt')).toThrow(expect.objectContaining({ code: 'BAD_DATA', message: expect.stringContaining('cut.ckpt') }));
  expect(() => decodeCheckpoint(Buffer.from('not a checkpoint'), 'bad.ckpt')).toThrow(expect.objectContaining({ code: 'BAD_DATA' }));
});

test('packptq with mixed precision: killed after two units, resumed from pack.ckpt to the uninterrupted run\'s model; --overwrite-run-dir', async () => {
  const args = [...ARGS.map((a) => (a === 'qdrop' ? 'packptq' : a === '4' ? '3' : a === '40' ? '20' : a === '128' ? '32' : a)), '--mixed-precision', '--budget-bits', '3.5', '--eval-limit', '200'];
  const plainOut = path.join(tmp, 'pack-plain.onnx'), resumedOut = path.join(tmp, 'pack-resumed.onnx');
  const dir = path.join(tmp, 'pack-run');
  const [plain, killed] = await Promise.all([
    cliAsync([...args, '--out', plainOut]),
    killAfterUnits([...args, '--out', resumedOut, '--run-dir', dir], dir, 2),
  ]);
  expect(plain.code).toBe(0);
  expect(killed.signal).toBe('SIGKILL');
  expect(killed.finalExisted).toBe(false);
  expect(fs.existsSync(path.join(dir, 'pack.ckpt'))).toBe(true);
  const done = unitCheckpoints(dir).length;

  const resumed = await cliAsync([...args, '--out', resumedOut, '--run-dir', dir]);
  expect(resumed.code).toBe(0);
  const r = JSON.parse(resumed.stdout), p = JSON.parse(plain.stdout);
  expect(r.resumedFromUnit).toBe(done);
  expect(r.pack).toEqual(p.pack);
  expect(r.pack.bits.length).toBe(r.pack.packs.length);
  expect(r.avgWeightBits).toBe(p.avgWeightBits);
  expect(r.quantized.accuracy).toBe(p.quantized.accuracy);
  expect(Buffer.compare(fs.readFileSync(resumedOut), fs.readFileSync(plainOut))).toBe(0);

  const other = await cliAsync([...args.map((a) => (a === '3.5' ? '3.25' : a)), '--run-dir', dir]);
  expect(other.code).toBe(2);
  expect(other.stderr).toContain('--budget-bits 3.5, this run asks for --budget-bits 3.25');
  // --overwrite-run-dir starts afresh (a cheap rtn run): the old unit checkpoints and packs are gone.
  const fresh = await cliAsync([...args.map((a) => (a === 'packptq' ? 'rtn' : a)).filter((a) => !['--mixed-precision', '--budget-bits', '3.5'].includes(a)), '--run-dir', dir, '--overwrite-run-dir']);
  expect(fresh.code).toBe(0);
  expect(JSON.parse(fresh.stdout).resumedFromUnit).toBe(null);
  expect(unitCheckpoints(dir)).toEqual([]);
  expect(fs.existsSync(path.join(dir, 'pack.ckpt'))).toBe(false);
  expect(JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')).options).toMatchObject({ method: 'rtn', wBits: 3, aBits: 3, mixedPrecision: false });
}, 180000);
