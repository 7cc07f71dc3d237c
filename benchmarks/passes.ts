/**
 * The canonical graph (BatchNorm folded, LayerNorm/GELU fused, activations fused into layers)
 * against the graph as decoded, images/s at batch 32 on one thread, alternating rounds in one run.
 *   node dist/benchmarks/passes.js
 */
import * as fs from 'fs';
import * as path from 'path';
import { Model } from '../lib/engine/model';
import { bestRatesAlternating } from '../lib/bench/measure';

const ROOT = path.resolve(__dirname, '..', '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'fixtures', 'models');

const rows: { model: string; raw: number; canonical: number; ratio: number }[] = [];
for (const name of ['resnet20', 'mobilenetv2', 'vit', 'vit-opset17', 'vgg', 'pointnet']) {
  const file = path.join(SHARED, `${name}.onnx`);
  if (!fs.existsSync(file)) continue;
  const raw = Model.load(file, { raw: true }), canon = Model.load(file);
  const x = new Float32Array(raw.inputShapeFor(32).reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i));
  const pr = raw.program(32), pc = canon.program(32);
  const [r, c] = bestRatesAlternating([() => pr.runSync([x]), () => pc.runSync([x])], 1, 3).map((v) => 32 * v);
  rows.push({ model: name, raw: r, canonical: c, ratio: c / r });
  console.log(`${name}: raw ${r.toFixed(0)} img/s, canonical ${c.toFixed(0)} img/s, ×${(c / r).toFixed(2)}`);
}
const md = ['# Canonical vs raw graph (batch 32, 1 thread, same run)', '', new Date().toISOString(), '', '| model | raw img/s | canonical img/s | canonical / raw |', '|---|---:|---:|---:|',
  ...rows.map((x) => `| ${x.model} | ${x.raw.toFixed(0)} | ${x.canonical.toFixed(0)} | ${x.ratio.toFixed(2)} |`)].join('\n');
fs.writeFileSync(path.join(ROOT, 'benchmarks', 'results', 'passes.md'), md + '\n');
fs.writeFileSync(path.join(ROOT, 'benchmarks', 'results', 'passes.json'), JSON.stringify({ date: new Date().toISOString(), rows }, null, 1));
