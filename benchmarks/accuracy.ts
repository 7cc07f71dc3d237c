/**
 * The accuracy table: model × method × bits, each cell with its accuracy, effective average bits
 * and wall time. Used for the RTN baseline table (issue "Quantize"), the reconstruction table
 * ("Reconstruct") and the Pack-PTQ ablation (block-wise QDrop vs pack-wise, with and without mixed
 * precision). Long: run it on purpose, e.g.
 *   node dist/benchmarks/accuracy.js --models resnet20 --methods qdrop,packptq,packptq+mp --bits 3/3 --iters 20000
 * Results are appended cell by cell to benchmarks/results/accuracy-<name>.json and rendered to .md.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadDataset } from '../lib/data/dataset';
import { Model } from '../lib/engine/model';
import { quantize, Method } from '../lib/pipeline/quantize';
import { equalize } from '../lib/api/equalize';

const ROOT = path.resolve(__dirname, '..', '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'fixtures');
const FM = '/usr/share/datasets/fashion-mnist';

interface Fixture { model: string; calib: string; eval: string; labels?: string; mean?: number[]; std?: number[] }
export function fixture(name: string, full: boolean): Fixture {
  if (name === 'pointnet') {
    const d = path.join(SHARED, 'data', 'shapes3d');
    return { model: path.join(SHARED, 'models', 'pointnet.onnx'), calib: path.join(d, 'calib-256-points.npy'), eval: path.join(d, 'test-1000-points.npy') };
  }
  const d = path.join(SHARED, 'data', 'fashion-mnist');
  const evalSet = full && fs.existsSync(path.join(FM, 't10k-images-idx3-ubyte.gz')) ? path.join(FM, 't10k-images-idx3-ubyte.gz') : path.join(d, 'test-2000-images-idx3-ubyte.gz');
  return { model: path.join(SHARED, 'models', `${name}.onnx`), calib: path.join(d, 'calib-1024-images-idx3-ubyte.gz'), eval: evalSet, mean: [0.286], std: [0.353] };
}

export interface Cell {
  model: string; method: string; wBits: number; aBits: number; iters: number;
  fp: number; quantized: number; avgWeightBits: number; avgActBits: number; seconds: number; evalSamples: number;
  packs?: number[][]; packBits?: number[]; date: string; threads: number;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

export function table(cells: Cell[]): string {
  const lines = ['| model | method | W/A | avg bits (w/a) | iters/unit | FP top-1 | quantized top-1 | Δ | time | eval set |', '|---|---|---|---|---:|---:|---:|---:|---:|---|'];
  for (const c of cells)
    lines.push(`| ${c.model} | ${c.method} | W${c.wBits}A${c.aBits} | ${c.avgWeightBits.toFixed(2)}/${c.avgActBits.toFixed(2)} | ${c.method === 'rtn' ? '–' : c.iters} | ${(100 * c.fp).toFixed(2)} | ${(100 * c.quantized).toFixed(2)} | ${(100 * (c.quantized - c.fp)).toFixed(2)} | ${c.seconds.toFixed(0)} s | ${c.evalSamples} |`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const models = arg('models', 'resnet20').split(',');
  const methods = arg('methods', 'rtn').split(',');
  const bits = arg('bits', '4/4').split(',').map((b) => b.split('/').map(Number));
  const iters = Number(arg('iters', '20000'));
  const threads = Number(arg('threads', '1'));
  const seed = Number(arg('seed', '0'));
  const name = arg('name', 'table');
  const full = process.argv.includes('--full');
  const out = path.join(ROOT, 'benchmarks', 'results', `accuracy-${name}.json`);
  const cells: Cell[] = fs.existsSync(out) ? JSON.parse(fs.readFileSync(out, 'utf8')) : [];
  for (const m of models) {
    const fx = fixture(m, full);
    const model = Model.load(fx.model);
    const calib = loadDataset({ data: fx.calib, mean: fx.mean, std: fx.std });
    const evalSet = loadDataset({ data: fx.eval, labels: fx.labels, mean: fx.mean, std: fx.std });
    for (const [w, a] of bits)
      for (const spec of methods) {
        // A spec is a method with optional suffixes: +mp (pack-level mixed precision), +drop (QDrop's
        // element-wise dropping inside the unit, p = 0.5, on top of the method's own input mixing),
        // +qd (QDrop's dropping exactly: inside the unit, no input mixing), +mix (input mixing, p = 0.5),
        // +eq (--equalize first, alpha 1).
        const flags = spec.split('+').slice(1);
        const method = spec.split('+')[0] as Method;
        const mp = flags.includes('mp');
        const dropProb = flags.includes('drop') || flags.includes('qd') ? 0.5 : undefined;
        const inputQuantProb = flags.includes('qd') ? 1 : flags.includes('mix') ? 0.5 : undefined;
        const m2 = flags.includes('eq') ? (await equalize(model, calib, { seed, threads })).model : model;
        const r = await quantize(m2, { method, wBits: w, aBits: a, calib, eval: evalSet, iters, threads, seed, mixedPrecision: mp || undefined, dropProb, inputQuantProb });
        const cell: Cell = {
          model: m, method: seed ? `${spec} (seed ${seed})` : spec, wBits: w, aBits: a, iters, fp: r.fp!.accuracy!, quantized: r.quant!.accuracy!,
          avgWeightBits: r.avgWeightBits, avgActBits: r.avgActBits, seconds: r.seconds, evalSamples: evalSet.samples,
          packs: r.pack?.packs, packBits: r.pack?.bits, date: new Date().toISOString(), threads,
        };
        cells.push(cell);
        console.log(JSON.stringify(cell));
        fs.writeFileSync(out, JSON.stringify(cells, null, 1));
        fs.writeFileSync(out.replace(/\.json$/, '.md'), table(cells) + '\n');
      }
  }
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
