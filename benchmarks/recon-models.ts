/**
 * Reconstruction cost of every fixture: a short QDrop run (block-wise units, method defaults, batch
 * 32) at 1 and 2 threads, each unit's iterations/s, and the whole model's reconstruction wall time
 * extrapolated to the method default of 20 000 iterations per unit (calibration and the per-unit
 * captures are measured, not extrapolated). Also the roofline of resnet20's two-block unit: its
 * FLOPs per iteration against this machine's measured FMA peak, the bound no implementation can
 * pass on one core.
 *   node dist/benchmarks/recon-models.js [--iters 200] [--models resnet20,mobilenetv2,vit,vgg,pointnet]
 *       [--method qdrop | packptq | packptq+mp]   (packptq: the whole Pack-PTQ run, scores and packing
 *       timed as their own phase; results go to recon-models-<method>.md)
 * Thread counts run back to back per model (shared machine: read ratios, not absolute figures).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadDataset } from '../lib/data/dataset';
import { Model } from '../lib/engine/model';
import { quantize } from '../lib/pipeline/quantize';
import { defaultIsa, peakGflops } from '../lib/bench/measure';
import { fixture } from './accuracy';

const ROOT = path.resolve(__dirname, '..', '..');
const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };

interface Row { model: string; threads: number; units: number; iters: number; calibrateSeconds: number; scoreSeconds: number; reconSeconds: number; setupSeconds: number; packs?: number[][]; itersPerSecond: { unit: string; value: number }[]; projected20k: number }

async function main(): Promise<void> {
  const iters = Number(arg('iters', '200'));
  const models = arg('models', 'resnet20,mobilenetv2,vit,vgg,pointnet').split(',');
  const spec = arg('method', 'qdrop');
  const method = spec.split('+')[0] as 'qdrop' | 'packptq';
  const mixedPrecision = spec.endsWith('+mp') || undefined;
  const bits = method === 'packptq' ? 3 : 4;  // Pack-PTQ's headline setting; QDrop's W4A4 table
  const rows: Row[] = [];
  for (const name of models) {
    const fx = fixture(name, false);
    const model = Model.load(fx.model);
    const calib = loadDataset({ data: fx.calib, mean: fx.mean, std: fx.std });
    for (const threads of [1, 2]) {
      const r = await quantize(model, { method, wBits: bits, aBits: bits, mixedPrecision, calib, iters, threads, batch: 32 });
      const trained = r.units.filter((u) => u.iters > 0);
      const loop = trained.reduce((a, u) => a + u.seconds, 0);
      const recon = r.times.reconstruct ?? loop;
      const row: Row = {
        model: name, threads, units: r.units.length, iters, reconSeconds: recon, setupSeconds: recon - loop,
        calibrateSeconds: r.times.calibrate ?? 0, scoreSeconds: r.times.score ?? 0, packs: r.pack?.packs,
        itersPerSecond: trained.map((u) => ({ unit: u.name, value: u.iters / u.seconds })),
        // Loop time scales with iterations; the captures and unit set-up do not.
        projected20k: (r.times.calibrate ?? 0) + (r.times.score ?? 0) + (recon - loop) + loop * (20000 / iters),
      };
      rows.push(row);
      console.log(`${name} threads ${threads}: calibrate ${row.calibrateSeconds.toFixed(1)} s, scores+packing ${row.scoreSeconds.toFixed(1)} s, ${r.units.length} units, loop ${loop.toFixed(1)} s + set-up ${(recon - loop).toFixed(1)} s for ${iters} it/unit → ${(row.projected20k / 3600).toFixed(2)} h at 20k`);
    }
  }
  // Roofline of the two-block unit: 4 conv forwards, 4 weight gradients and 3 input gradients of a
  // 16→16 3×3 conv on 28×28 at batch 32 (the unit's input needs no gradient).
  const isa = defaultIsa();
  const peak = peakGflops(isa, 1, 1.0);
  const unitGflop = (11 * 2 * 32 * 16 * 144 * 784) / 1e9;
  const roofline = { isa, peakGflops1Thread: peak, unitGflopPerIter: unitGflop, maxItersPerSecond1Thread: peak / unitGflop };
  console.log(`roofline: ${unitGflop.toFixed(2)} GFLOP/iteration, peak ${peak.toFixed(1)} GFLOP/s on 1 thread → at most ${(peak / unitGflop).toFixed(1)} it/s`);

  const title = method === 'packptq' ? `Whole Pack-PTQ run per fixture (W${bits}A${bits}${mixedPrecision ? ' + mixed precision' : ''}, batch 32)` : `Reconstruction cost per fixture (QDrop W${bits}A${bits}, batch 32)`;
  const md = [`# ${title}`, '',
    `${new Date().toISOString()}, ${iters} iterations per unit measured, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')} at the end.`,
    'calibrate: initial weight and activation quantizers (twice with mixed precision: once for the scores, once at the chosen widths); scores: the importance score of every block and the packing; set-up: the per-unit captures; the last column adds the loop time scaled to 20 000 iterations per unit to the measured rest.', '',
    '| model | threads | packs | units | calibrate s | scores s | it/s per unit (min – median – max) | loop s | set-up s | whole run at 20k it/unit |', '|---|---:|---|---:|---:|---:|---|---:|---:|---:|',
    ...rows.map((r) => {
      const v = r.itersPerSecond.map((x) => x.value).sort((a, b) => a - b);
      const med = v.length ? v[Math.floor(v.length / 2)] : 0;
      return `| ${r.model} | ${r.threads} | ${r.packs ? r.packs.map((p) => p.length > 1 ? `[${p[0]}–${p[p.length - 1]}]` : `[${p[0]}]`).join('') : '–'} | ${r.units} | ${r.calibrateSeconds.toFixed(1)} | ${r.scoreSeconds.toFixed(1)} | ${v.length ? `${v[0].toFixed(1)} – ${med.toFixed(1)} – ${v[v.length - 1].toFixed(1)}` : '–'} | ${(r.reconSeconds - r.setupSeconds).toFixed(1)} | ${r.setupSeconds.toFixed(1)} | ${(r.projected20k / 3600).toFixed(2)} h |`;
    }), '',
    `Roofline of resnet20's first two blocks as one unit: ${unitGflop.toFixed(2)} GFLOP per iteration (11 conv products), measured FMA peak ${peak.toFixed(1)} GFLOP/s on one ${isa} core → at most ${(peak / unitGflop).toFixed(1)} iterations/s, whatever the implementation.`].join('\n');
  const dir = path.join(ROOT, 'benchmarks', 'results');
  const base = spec === 'qdrop' ? 'recon-models' : `recon-models-${spec.replace('+', '-')}`;
  fs.writeFileSync(path.join(dir, `${base}.json`), JSON.stringify({ date: new Date().toISOString(), method: spec, bits, iters, rows, roofline }, null, 1));
  fs.writeFileSync(path.join(dir, `${base}.md`), md + '\n');
}

main().catch((e) => { console.error(e); process.exit(1); });
