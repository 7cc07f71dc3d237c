/** `packptq analyze`: Pack-PTQ's block scores, Ω, packs and (with --mixed-precision) pack bits. */
import { Command, Option } from 'commander';
import { loadDatasetAsync } from '../data/dataset';
import { imageOptions } from './image-options';
import { Model } from '../engine/model';
import { analyze } from '../pipeline/analyze';
import { addQuantOptions, QuantizeCliOptions, equalizeSummary, maybeEqualize } from './quantize';
import { progressReporter } from './progress';
import { equalizationRecord } from '../pipeline/equalize';

export function registerAnalyze(program: Command): void {
  addQuantOptions(program
    .command('analyze')
    .description('Score every block (Hessian-guided importance), group blocks into packs, and with --mixed-precision choose bits per pack; no reconstruction')
    .argument('<model>', 'FP32 ONNX model'))
    .addHelpText('after', `
Examples:
  packptq analyze test/fixtures/resnet20.onnx --calib test/fixtures/calib-1024-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530 --w-bits 3 --a-bits 3
  packptq analyze vit.onnx --calib calib.idx.gz --w-bits 3 --a-bits 3 --mixed-precision --budget-bits 3.5 --json`)
    .action(async (file: string, o: QuantizeCliOptions) => {
      const calib = await loadDatasetAsync({ data: o.calib, mean: o.mean, std: o.std, ...imageOptions(o as Parameters<typeof imageOptions>[0]) });
      const { model, equalized } = await maybeEqualize(Model.load(file), calib, o);
      const progress = progressReporter({ quiet: o.quiet });
      const r = await analyze(model, {
        wBits: o.wBits, aBits: o.aBits, firstLast: o.firstLast, layerBits: o.layerBits, exclude: o.exclude,
        weightGranularity: o.perTensor ? 'tensor' : 'channel', split: o.split, blockPrefixes: o.blocks,
        calib, calibSize: o.calibSize, seed: o.seed, batch: o.batch, threads: o.threads, init: o.init as 'mse',
        scoreForm: o.scoreForm, mixedPrecision: o.mixedPrecision, budgetBits: o.budgetBits?.w, budgetActBits: o.budgetBits?.a, mpRule: o.mpRule,
        onProgress: progress.onProgress,
      });
      progress.stop();
      if (o.json) {
        process.stdout.write(JSON.stringify({ model: file, wBits: o.wBits, aBits: o.aBits, form: o.scoreForm, ...r, ...(equalized ? { equalization: equalizationRecord(equalized) } : {}) }) + '\n');
        return;
      }
      const lines = [`model   ${file}   W${o.wBits}A${o.aBits}   score form: ${o.scoreForm}`, 'block                              L_b         E[gΔz]      E[Δz²]      S_b (paper)   S_b (release)  Ω_b'];
      for (const x of r.scores)
        lines.push(`${x.block.padEnd(34)} ${x.loss.toExponential(3).padStart(10)}  ${x.gDz.toExponential(3).padStart(10)}  ${x.dz2.toExponential(3).padStart(10)}  ${x.paper.score.toExponential(3).padStart(12)}  ${x.release.score.toExponential(3).padStart(12)}  ${x.omega.toExponential(3)}`);
      if (equalized) lines.push(`equalized ${equalizeSummary(equalized)}`);
      lines.push(`packs   ${r.packs.map((p) => `[${p.join(',')}]`).join(' ')}`);
      if (r.bits) lines.push(`bits    ${r.bits.join(' ')} per pack (budget ${r.budgetBits} average weight bits)`);
      lines.push(`time    ${r.seconds.toFixed(1)} s`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
