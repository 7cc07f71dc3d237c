/**
 * Reconstruction speed: iterations/s of the native loop at batch 32 for resnet20's first two
 * residual blocks as one unit (the unit the issue compares with the authors' PyTorch release, which
 * runs it at ~54 it/s on one thread here), and for every unit of a block-wise pass, on 1 and 2
 * threads; plus the whole-model wall time of a short run extrapolated per 1000 iterations.
 *   node dist/benchmarks/recon.js [--iters 300]
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadDataset } from '../lib/data/dataset';
import { chooseSubset } from '../lib/data/subset';
import { Model } from '../lib/engine/model';
import { discoverBlocks } from '../lib/graph/blocks';
import { calibrateActivations, calibrateWeights } from '../lib/quant/calibrate';
import { planQuantization } from '../lib/quant/plan';
import { reconstructModel } from '../lib/recon/reconstruct';

const ROOT = path.resolve(__dirname, '..', '..');

async function main(): Promise<void> {
  const i = process.argv.indexOf('--iters');
  const iters = i > 0 ? Number(process.argv[i + 1]) : 300;
  const model = Model.load(path.join(ROOT, 'test', 'fixtures', 'resnet20.onnx'));
  const calib = chooseSubset(loadDataset({ data: path.join(ROOT, 'test', 'fixtures', 'calib-1024-images-idx3-ubyte.gz'), mean: [0.286], std: [0.353] }), 1024, 0);
  const s = discoverBlocks(model.graph);
  const plan = planQuantization(model.graph, s, { wBits: 4, aBits: 4 });
  const init = { weights: await calibrateWeights(model.graph, plan, 'mse'), acts: await calibrateActivations(model, plan, calib, { init: 'mse', batch: 32, threads: 1 }) };
  const rows: { threads: number; unit: string; itersPerSecond: number; seconds: number }[] = [];
  for (const threads of [1, 2]) {
    const packs = [[0, 1], ...s.blocks.slice(2).map((_, k) => [k + 2])];
    const r = await reconstructModel(model, s, init, calib, {
      granularity: 'block', packs, iters, batch: 32, lrRound: 3e-3, lrAct: 4e-5, lambda: 0.01, dropProb: 0.5, inputQuantProb: 1, seed: 0, threads,
    });
    for (const u of r.units) rows.push({ threads, unit: u.name, itersPerSecond: u.iters / u.seconds, seconds: u.seconds });
    const total = r.units.reduce((a, u) => a + u.seconds, 0);
    console.log(`threads ${threads}: first two blocks ${(r.units[1].iters / r.units[1].seconds).toFixed(1)} it/s; all units ${total.toFixed(1)} s for ${iters} iterations each`);
  }
  const md = ['# Reconstruction speed (resnet20, batch 32, W4A4 QDrop units)', '', `${new Date().toISOString()}, ${iters} iterations per unit; the first row pair is the two-block unit.`, '',
    '| threads | unit | iterations/s | seconds |', '|---:|---|---:|---:|', ...rows.map((r) => `| ${r.threads} | ${r.unit} | ${r.itersPerSecond.toFixed(1)} | ${r.seconds.toFixed(1)} |`)].join('\n');
  const dir = path.join(ROOT, 'benchmarks', 'results');
  fs.writeFileSync(path.join(dir, 'recon.json'), JSON.stringify({ date: new Date().toISOString(), iters, rows }, null, 1));
  fs.writeFileSync(path.join(dir, 'recon.md'), md + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
