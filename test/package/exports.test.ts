/**
 * The package's entry points as a user's program meets them: `require('packptq')` and
 * `import ... from 'packptq'`, resolved by name through package.json's "exports" (Node resolves a
 * package's own name from inside it), each in a child process of its own.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ROOT } from '../helpers/fixtures';

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));

function node(args: string[]): string {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} failed:\n${r.stderr}`);
  return r.stdout;
}

const cjsNames = (): string[] =>
  JSON.parse(node(['-e', "process.stdout.write(JSON.stringify(Object.keys(require('packptq')).sort()))"]));

test('the CommonJS and the ESM entry export the same names', () => {
  const cjs = cjsNames();
  const esm: string[] = JSON.parse(node(['--input-type=module', '-e',
    "import * as m from 'packptq'; process.stdout.write(JSON.stringify(Object.keys(m).filter((k) => k !== 'default').sort()))"]));
  expect(cjs.length).toBeGreaterThan(10);
  expect(esm).toEqual(cjs);
  for (const name of ['Model', 'evaluate', 'quantize', 'loadDataset', 'loadDatasetAsync', 'loadImageFolder', 'PackPtqError', 'BadDataError']) {
    expect(cjs).toContain(name);
  }
});

test('both entries hand out the same objects (one copy of the library, so instanceof works across them)', () => {
  const out = node(['--input-type=module', '-e', `
    import { createRequire } from 'module';
    import * as m from 'packptq';
    const cjs = createRequire(process.cwd() + '/')('packptq');
    const same = Object.keys(cjs).every((k) => cjs[k] === m[k]) && m.default === cjs;
    let caught;
    try { cjs.loadDataset({ data: '' }); } catch (e) { caught = e; }
    process.stdout.write(JSON.stringify({ same, instance: caught instanceof m.BadOptionError && caught instanceof m.PackPtqError, code: caught?.code }));`]);
  expect(JSON.parse(out)).toEqual({ same: true, instance: true, code: 'BAD_OPTION' });
});

test('loading the package loads neither the native addon nor sharp', () => {
  const out = node(['-e', `
    require('packptq');
    const loaded = Object.keys(require.cache);
    process.stdout.write(JSON.stringify({
      addon: loaded.some((f) => f.endsWith('.node')),
      sharp: loaded.some((f) => f.includes(require('path').sep + 'sharp' + require('path').sep)),
    }));`]);
  expect(JSON.parse(out)).toEqual({ addon: false, sharp: false });
});

test('only the public entry is reachable; internals are not', () => {
  const r = spawnSync(process.execPath, ['-e', "require('packptq/dist/lib/errors.js')"], { cwd: ROOT, encoding: 'utf8' });
  expect(r.status).not.toBe(0);
  expect(r.stderr).toContain('ERR_PACKAGE_PATH_NOT_EXPORTED');
});

test('every file package.json points at exists after the build', () => {
  const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>)];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') targets.push(v);
    else if (v && typeof v === 'object') Object.values(v).forEach(walk);
  };
  walk(pkg.exports);
  for (const t of targets) expect(fs.existsSync(path.join(ROOT, t))).toBe(true);
  expect(pkg.exports['.'].import.types).toBe('./esm/index.d.mts');
  expect(pkg.exports['.'].require.default).toBe('./dist/lib/index.js');
});
