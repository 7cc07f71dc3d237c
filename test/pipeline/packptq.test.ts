/** Pack-PTQ end to end on the shipped resnet20 with short runs: scores, packs, bits, report. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadDataset } from '../../lib/data/dataset';
import { Model } from '../../lib/engine/model';
import { analyze } from '../../lib/pipeline/analyze';
import { quantize } from '../../lib/pipeline/quantize';
import { packBlocks } from '../../lib/pack/packing';
import { cli } from '../helpers/cli';
import { shipped } from '../helpers/fixtures';

const NORM = { mean: [0.286], std: [0.353] };
const model = Model.load(shipped('resnet20.onnx'));
const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), ...NORM });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-pack-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('analyze: scores and packs are deterministic for a seed; packs follow the running minima', async () => {
  const o = { wBits: 3, aBits: 3, calib, calibSize: 32, threads: 2, seed: 5 };
  const a = await analyze(model, o);
  const b = await analyze(model, o);
  expect(a.scores.map((x) => x.score)).toEqual(b.scores.map((x) => x.score));
  expect(a.scores).toHaveLength(9);
  expect(a.packs).toEqual(packBlocks(a.scores.map((x) => x.score)));
  expect(a.packs.flat()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  for (const x of a.scores) expect(Number.isFinite(x.score) && Number.isFinite(x.release.score)).toBe(true);
});

test('packptq W3A3 with mixed precision: pack widths from {2,3,4}, budget held, one unit per pack, plan follows the bits', async () => {
  const r = await quantize(model, { method: 'packptq', wBits: 3, aBits: 3, calib, calibSize: 64, batch: 16, iters: 20, threads: 2, mixedPrecision: true, budgetBits: 3.5, scoreForm: 'release' });
  const pack = r.pack!;
  expect(pack.packs).toEqual(packBlocks(pack.scores.map((x) => x.score)));
  expect(pack.bits!.every((b) => [2, 3, 4].includes(b))).toBe(true);
  expect(r.avgWeightBits).toBeLessThanOrEqual(3.5 + 1e-9);
  // Units: stem layer, one per pack, head layer.
  expect(r.units).toHaveLength(pack.packs.length + 2);
  const s = require('../../lib/graph/blocks').discoverBlocks(model.graph);
  pack.packs.forEach((p, k) => {
    for (const b of p) for (const l of s.blocks[b].layers) expect(r.plan.layers.find((x) => x.layer === l)!.wBits).toBe(pack.bits![k]);
  });
});

test('CLI: quantize --method packptq --report writes a report that matches the run; analyze --json', () => {
  const report = path.join(tmp, 'run.json');
  const args = ['--calib', shipped('calib-1024-images-idx3-ubyte.gz'), '--mean', '0.2860', '--std', '0.3530', '--w-bits', '3', '--a-bits', '3', '--calib-size', '32', '--threads', '2'];
  const q = cli(['quantize', shipped('resnet20.onnx'), ...args, '--method', 'packptq', '--iters', '10', '--batch', '16', '--report', report, '--json', '--quiet']);
  expect(q.code).toBe(0);
  const out = JSON.parse(q.stdout);
  const rep = JSON.parse(fs.readFileSync(report, 'utf8'));
  expect(rep.method).toBe('packptq');
  expect(rep.pack.packs).toEqual(out.pack.packs);
  expect(rep.units.map((u: { name: string }) => u.name)).toEqual(out.units.map((u: { name: string }) => u.name));
  expect(rep.units[1].curve.length).toBeGreaterThan(0);
  expect(rep.size.avgWeightBits).toBeCloseTo(out.avgWeightBits, 9);
  const a = cli(['analyze', shipped('resnet20.onnx'), ...args, '--json', '--quiet']);
  expect(a.code).toBe(0);
  const an = JSON.parse(a.stdout);
  expect(an.scores).toHaveLength(9);
  expect(an.packs.flat()).toHaveLength(9);
});
