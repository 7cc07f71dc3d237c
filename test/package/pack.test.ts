/**
 * The published package works on its own: `npm pack` the repository, install the tarball into an
 * empty folder (which compiles the addon there), and run `npx packptq eval` on the shipped ResNet-20,
 * then import the library from that folder through both entries and type-check a consumer.
 *
 * The install is `--prefer-offline`: package tarballs come from the npm cache that the project's
 * own install filled, and only the registry's package documents (which `npm ci` does not cache)
 * are fetched, from the registry, as any user's install does. When the registry cannot be reached
 * and something is not cached, the test says SKIPPED and why.
 * Compiling the addon takes one to three minutes on two cores.
 */
import { spawnSync, SpawnSyncReturns } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ROOT, shipped } from '../helpers/fixtures';

const MINUTES = 60000;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-pack-'));
const app = path.join(tmp, 'app');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The environment of a user's shell: no PACKPTQ_ADDON pointing back at the repository's build. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', JOBS: 'max' };
  delete env.PACKPTQ_ADDON;
  delete env.PACKPTQ_SIMD;
  // Node's own headers, when installed with it, spare node-gyp a header download.
  if (fs.existsSync('/usr/include/node/node_api.h')) env.npm_config_nodedir = '/usr';
  return env;
}

function run(cmd: string, args: string[], cwd: string, timeoutMs = 5 * MINUTES): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env: userEnv(), encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 });
}

/** Why the test cannot run here, or undefined. */
function missingPrerequisite(): string | undefined {
  for (const tool of ['npm', 'c++', 'make', 'python3']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`;
  }
  if (!fs.existsSync('/usr/include/node/node_api.h')) {
    const cache = path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node', 'node_api.h');
    if (!fs.existsSync(cache)) return `no Node headers (neither /usr/include/node nor ${cache}); node-gyp would download them`;
  }
  return undefined;
}

const skip = missingPrerequisite();
if (skip) console.warn(`SKIPPED: packed-package test: ${skip}`);
const maybe = skip ? test.skip : test;

let installed = false;

maybe('npm pack holds what users need and nothing else', () => {
  const r = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], ROOT);
  expect(r.stderr).not.toMatch(/npm error/);
  expect(r.status).toBe(0);
  const [info] = JSON.parse(r.stdout);
  const files: string[] = info.files.map((f: { path: string }) => f.path);
  for (const f of ['package.json', 'README.md', 'binding.gyp', 'bin/packptq.js', 'esm/index.mjs', 'esm/index.d.mts',
    'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/lib/data/images.js', 'native/sources.js', 'native/napi/addon.cpp']) {
    expect(files).toContain(f);
  }
  const unwanted = files.filter((f) => /^(test|lib|benchmarks|build|dist\/benchmarks|node_modules)\//.test(f) || f.endsWith('.map'));
  expect(unwanted).toEqual([]);
  fs.renameSync(path.join(tmp, info.filename), path.join(tmp, 'packptq.tgz'));
}, MINUTES);

maybe('the tarball installs into an empty folder, building the addon', () => {
  fs.mkdirSync(app);
  // allowScripts: the approval npm 11 asks users to give a package with an install script.
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, allowScripts: { packptq: true } }));
  // --prefer-offline: package tarballs come from the cache `npm ci` filled, but resolving the
  // tarball's version ranges needs the registry's package documents, which `npm ci` (lockfile
  // URLs only) never caches; with --offline a fresh machine skipped this test every time.
  const r = run('npm', ['install', path.join(tmp, 'packptq.tgz'), '--prefer-offline', '--no-audit', '--no-fund'], app, 10 * MINUTES);
  if (r.status !== 0 && /ENOTCACHED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED/.test(r.stderr)) {
    console.warn(`SKIPPED: packed-package install: the registry is unreachable and a dependency is not cached:\n${r.stderr.split('\n').find((l) => /npm error/.test(l))}`);
    return;
  }
  expect(r.stderr).not.toMatch(/npm error/);
  expect(r.status).toBe(0);
  expect(fs.existsSync(path.join(app, 'node_modules', 'packptq', 'build', 'Release', 'packptq.node'))).toBe(true);
  installed = true;
}, 11 * MINUTES);

/** Runs only when the install above succeeded; a skipped install has already said so. */
const whenInstalled = (name: string, fn: () => void, timeout = MINUTES) =>
  maybe(name, () => {
    if (!installed) {
      console.warn(`SKIPPED: ${name}: the package did not install`);
      return;
    }
    fn();
  }, timeout);

whenInstalled('npx packptq eval runs the shipped ResNet-20 from the installed package', () => {
  const r = run('npx', ['--no', 'packptq', 'eval', shipped('resnet20.onnx'), '--data', shipped('test-2000-images-idx3-ubyte.gz'),
    '--mean', '0.2860', '--std', '0.3530', '--limit', '200', '--json'], app);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const res = JSON.parse(r.stdout);
  expect(res.samples).toBe(200);
  expect(res.accuracy).toBeGreaterThanOrEqual(0.9);
}, 2 * MINUTES);

whenInstalled('require and import both work from the installed package, and sharp decodes there', () => {
  // A one-class image folder, written by the installed package's own sharp.
  const imgDir = path.join(tmp, 'images', 'only');
  fs.mkdirSync(imgDir, { recursive: true });
  const script = `
    const sharp = require('sharp'); // installed beside packptq as its dependency
    const { loadImageFolder, Model } = require('packptq');
    (async () => {
      await sharp({ create: { width: 8, height: 6, channels: 3, background: { r: 255, g: 0, b: 51 } } }).png().toFile(${JSON.stringify(path.join(imgDir, 'a.png'))});
      const ds = await loadImageFolder(${JSON.stringify(path.dirname(imgDir))});
      const b = ds.batch(0, 1);
      process.stdout.write(JSON.stringify({ shape: ds.sampleShape, first: [b[0], b[48], b[96]].map((v) => Math.round(v * 255)), model: typeof Model }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const cjs = run(process.execPath, ['-e', script], app);
  expect(cjs.stderr).toBe('');
  expect(JSON.parse(cjs.stdout)).toEqual({ shape: [3, 6, 8], first: [255, 0, 51], model: 'function' });

  const esm = run(process.execPath, ['--input-type=module', '-e',
    "import { Model, evaluate, BadDataError } from 'packptq'; import * as all from 'packptq'; process.stdout.write(JSON.stringify([typeof Model, typeof evaluate, typeof BadDataError, Object.keys(all).length]))"], app);
  expect(esm.stderr).toBe('');
  const [m, e, b, n] = JSON.parse(esm.stdout);
  expect([m, e, b]).toEqual(['function', 'function', 'function']);
  expect(n).toBeGreaterThan(10);
});

whenInstalled('a TypeScript consumer type-checks against both entries', () => {
  fs.writeFileSync(path.join(app, 'esm.mts'), `
    import { Model, loadDatasetAsync, BadDataError, type Dataset, type EvaluateResult } from 'packptq';
    export const load: (f: string) => Promise<Dataset> = (f) => loadDatasetAsync({ data: f, preset: 'imagenet' });
    export const model: (f: string) => Model = (f) => Model.load(f);
    export const isData = (e: unknown): e is BadDataError => e instanceof BadDataError;
    export type R = EvaluateResult['accuracy'];
  `);
  fs.writeFileSync(path.join(app, 'cjs.cts'), `
    import packptq = require('packptq');
    export const ds: packptq.Dataset = packptq.makeDataset({ source: 'x', data: new Uint8Array(4), sampleShape: [1, 2, 2] });
  `);
  const tsc = require.resolve('typescript/bin/tsc');
  const r = run(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
    '--typeRoots', path.join(ROOT, 'node_modules', '@types'), '--types', 'node', 'esm.mts', 'cjs.cts'], app);
  expect(r.stdout + r.stderr).toBe('');
  expect(r.status).toBe(0);
}, 2 * MINUTES);
