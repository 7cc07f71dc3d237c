/** `packptq eval`: top-1 accuracy and throughput of a model on a labelled data set. */
import { Command } from 'commander';
import { loadDatasetAsync } from '../data/dataset';
import type { ImageSize } from '../data/images';
import { evaluate } from '../engine/evaluate';
import { Model } from '../engine/model';
import { addImageOptions, imageOptions } from './image-options';
import { numberList, positiveInt } from './options';

interface EvalCliOptions {
  data: string; labels?: string; mean?: number[]; std?: number[]; limit?: number; batch: number; threads: number; json?: boolean;
  preset?: string; resize?: number | ImageSize; crop?: number | ImageSize; channels?: 1 | 3;
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description('Measure top-1 accuracy and images/s of an ONNX model on a data set')
    .argument('<model>', 'ONNX model file (float32, or a packptq QDQ export)')
    .requiredOption('--data <file>', 'IDX images (.gz or not), an NPY array of samples, or an image folder (one subfolder per class)')
    .option('--labels <file>', 'IDX or NPY labels (default: found beside --data by the MNIST naming; image folders: the class folders)')
    .option('--mean <m[,m...]>', 'per-channel mean subtracted after scaling pixels to [0,1]', numberList('--mean'))
    .option('--std <s[,s...]>', 'per-channel standard deviation divided by', numberList('--std'))
    .option('--limit <n>', 'use only the first n samples (image folders: taken evenly from every class)', positiveInt('--limit'))
    .option('--batch <n>', 'batch size', positiveInt('--batch'), 32)
    .option('--threads <n>', 'threads used by the kernels', positiveInt('--threads'), 1)
    .option('--json', 'print exactly one JSON object on stdout');
  addImageOptions(cmd)
    .addHelpText('after', `
Examples:
  packptq eval test/fixtures/resnet20.onnx --data test/fixtures/test-2000-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530
  packptq eval pointnet.onnx --data test-1000-points.npy --labels test-1000-labels.npy --threads 2 --json
  packptq eval resnet18.onnx --data imagenet-val/ --preset imagenet --limit 1000`)
    .action(async (file: string, o: EvalCliOptions) => {
      const model = Model.load(file);
      const ds = await loadDatasetAsync({
        data: o.data, labels: o.labels, mean: o.mean, std: o.std, limit: o.limit, ...imageOptions(o),
      });
      const r = await evaluate(model, ds, { batch: o.batch, threads: o.threads });
      if (o.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      const acc = r.accuracy === null ? 'n/a (no labels)' : `${(100 * r.accuracy).toFixed(2)}% (${r.correct}/${r.samples})`;
      process.stdout.write(
        `model       ${r.model}\n` +
        `top-1       ${acc}\n` +
        `samples     ${r.samples}\n` +
        `images/s    ${r.imagesPerSecond.toFixed(1)} (batch ${r.batch}, ${r.threads} thread${r.threads > 1 ? 's' : ''}, ${r.isa})\n`);
    });
}
