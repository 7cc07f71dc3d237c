/**
 * What simulated quantization costs at inference, and how fast calibration runs: images/s of the
 * FP canonical model beside the same model with W8A8 fake quantization (quantized weights plus a
 * FakeQuant before every quantized activation read) in the same run, and calibration images/s
 * (activation MSE on the histogram, the default) — for each fixture.
 */
import * as fs from 'fs';
import * as path from 'path';
import { loadDataset } from '../lib/data/dataset';
import { chooseSubset } from '../lib/data/subset';
import { Model } from '../lib/engine/model';
import { discoverBlocks } from '../lib/graph/blocks';
import { calibrateActivations, calibrateWeights } from '../lib/quant/calibrate';
import { planQuantization } from '../lib/quant/plan';
import { simulatedGraph } from '../lib/quant/simulate';
import { bestRatesAlternating } from '../lib/bench/measure';

const ROOT = path.resolve(__dirname, '..', '..');
const SHARED = path.resolve(ROOT, '..', 'shared', 'fixtures');

export interface SimRow { model: string; threads: number; fp: number; simulated: number; overhead: number; calibImagesPerSecond: number }

export async function runSimulatedBenchmarks(opts: { quick?: boolean } = {}): Promise<SimRow[]> {
  const names = fs.existsSync(SHARED) ? ['resnet20', 'mobilenetv2', 'vit', 'vgg'] : ['resnet20'];
  const calibFile = fs.existsSync(SHARED) ? path.join(SHARED, 'data', 'fashion-mnist', 'calib-1024-images-idx3-ubyte.gz') : path.join(ROOT, 'test', 'fixtures', 'calib-1024-images-idx3-ubyte.gz');
  const calib = loadDataset({ data: calibFile, mean: [0.286], std: [0.353] });
  const rows: SimRow[] = [];
  for (const name of names) {
    const file = fs.existsSync(SHARED) ? path.join(SHARED, 'models', `${name}.onnx`) : path.join(ROOT, 'test', 'fixtures', 'resnet20.onnx');
    const model = Model.load(file);
    const s = discoverBlocks(model.graph);
    const plan = planQuantization(model.graph, s, { wBits: 8, aBits: 8 });
    const sub = chooseSubset(calib, opts.quick ? 256 : 1024, 0);
    const t0 = process.hrtime.bigint();
    const acts = await calibrateActivations(model, plan, sub, { init: 'mse', batch: 32, threads: 1 });
    const calibSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const sim = Model.fromGraph(simulatedGraph(model.graph, { weights: await calibrateWeights(model.graph, plan, 'minmax'), acts }), name);
    const x = calib.batch(0, 32);
    for (const threads of [1, 2]) {
      const pf = model.program(32, { threads }), ps = sim.program(32, { threads });
      // Alternate short rounds and keep the best of each, so load spikes hit both alike.
      const [fp, simulated] = bestRatesAlternating([() => pf.runSync([x]), () => ps.runSync([x])], opts.quick ? 0.3 : 1, 3).map((r) => 32 * r);
      rows.push({ model: name, threads, fp, simulated, overhead: fp / simulated - 1, calibImagesPerSecond: sub.indices.length / calibSeconds });
      console.log(`${name} threads ${threads}: FP ${fp.toFixed(0)} img/s, W8A8 simulated ${simulated.toFixed(0)} img/s, overhead ${(100 * (fp / simulated - 1)).toFixed(1)} %, calibration ${(sub.indices.length / calibSeconds).toFixed(0)} img/s`);
    }
  }
  return rows;
}

export function simulatedTable(rows: SimRow[]): string {
  return ['| model | threads | FP img/s | W8A8 simulated img/s | fake-quant overhead | calibration img/s (1 thread) |', '|---|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.model} | ${r.threads} | ${r.fp.toFixed(0)} | ${r.simulated.toFixed(0)} | ${(100 * r.overhead).toFixed(1)} % | ${r.calibImagesPerSecond.toFixed(0)} |`)].join('\n');
}

if (require.main === module) {
  runSimulatedBenchmarks({ quick: process.argv.includes('--quick') }).then((rows) => {
    const dir = path.join(ROOT, 'benchmarks', 'results');
    fs.writeFileSync(path.join(dir, 'simulated.json'), JSON.stringify({ date: new Date().toISOString(), rows }, null, 1));
    fs.writeFileSync(path.join(dir, 'simulated.md'), `# Fake quantization overhead and calibration speed\n\n${simulatedTable(rows)}\n`);
  });
}
