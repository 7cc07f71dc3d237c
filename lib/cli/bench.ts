/** `packptq bench`: inference throughput, fake-quant overhead and GEMM vs peak on this machine. */
import * as os from 'os';
import { Command, InvalidArgumentError } from 'commander';
import { loadDatasetAsync } from '../data/dataset';
import { Model } from '../engine/model';
import { benchModel } from '../bench/machine';
import { checkBits } from '../quant/plan';
import { numberList, positiveInt } from './options';

interface BenchCliOptions {
  data?: string; mean?: number[]; std?: number[]; batch: number; threads: number; seconds: number; rounds: number;
  wBits: number; aBits: number; gemmSize: number; json?: boolean; quiet?: boolean;
}

function seconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !(n > 0 && n <= 60)) throw new InvalidArgumentError(`Expected a number of seconds in (0, 60] for --seconds but received "${v}"`);
  return n;
}

function bits(name: string) {
  return (v: string): number => {
    const n = Number(v);
    checkBits(name, n);
    return n;
  };
}

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('Measure on this machine: images/s of a model for 1..N threads, the fake-quantization overhead, and SIMD GEMM GFLOP/s against the measured FMA peak')
    .argument('<model>', 'FP32 ONNX model')
    .option('--data <file>', 'IDX or NPY samples to time (default: a fixed pseudo-random pattern; speed does not depend on the values)')
    .option('--mean <m[,m...]>', 'per-channel mean for --data', numberList('--mean'))
    .option('--std <s[,s...]>', 'per-channel standard deviation for --data', numberList('--std'))
    .option('--batch <n>', 'batch size of the inference runs', positiveInt('--batch'), 32)
    .option('--threads <n>', 'measure threads 1..n (default: the logical CPUs)', positiveInt('--threads'), os.cpus().length || 1)
    .option('--seconds <s>', 'seconds per measurement round', seconds, 0.5)
    .option('--rounds <n>', 'rounds per measurement; the best is kept', positiveInt('--rounds'), 3)
    .option('--w-bits <n>', 'weight bits of the fake-quantized model (2-8)', bits('--w-bits'), 8)
    .option('--a-bits <n>', 'activation bits of the fake-quantized model (2-8)', bits('--a-bits'), 8)
    .option('--gemm-size <n>', 'M = N = K of the GEMM measured against the peak', positiveInt('--gemm-size'), 256)
    .option('--quiet', 'no progress lines on stderr')
    .option('--json', 'print exactly one JSON object: {machine, model, batch, throughput: [...], gemm: {rows: [...]}, seconds}')
    .addHelpText('after', `
Figures: images/s is the best round of --seconds each; the FP and the fake-quantized model are
timed in alternating rounds, so their ratio (the overhead) holds on a loaded machine. GEMM
GFLOP/s is 2·M·N·K per best native call time; "of peak" divides it by the FMA peak measured
on the same ISA and thread count in the same run.

Examples:
  packptq bench test/fixtures/resnet20.onnx
  packptq bench test/fixtures/resnet20.onnx --batch 64 --threads 2 --seconds 1 --json
  packptq bench vit.onnx --data test-2000-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530 --w-bits 4 --a-bits 4`)
    .action(async (file: string, o: BenchCliOptions) => {
      const model = Model.load(file);
      const data = o.data ? await loadDatasetAsync({ data: o.data, mean: o.mean, std: o.std, limit: o.batch }) : undefined;
      const r = await benchModel(model, {
        batch: o.batch, maxThreads: o.threads, seconds: o.seconds, rounds: o.rounds, wBits: o.wBits, aBits: o.aBits,
        gemmSize: o.gemmSize, data, log: o.quiet || o.json ? undefined : (line) => process.stderr.write(`${line}\n`),
      });
      if (o.json) {
        process.stdout.write(JSON.stringify(r) + '\n');
        return;
      }
      const lines = [
        `machine  ${r.machine.cpu}, ${r.machine.logicalCpus} logical CPUs, ${r.machine.isa}, Node ${r.machine.node}`,
        `model    ${r.model}   batch ${r.batch}   input: ${r.input}`,
        '',
        `threads  FP img/s  W${r.wBits}A${r.aBits} simulated img/s  fake-quant overhead`,
        ...r.throughput.map((t) => `${String(t.threads).padStart(7)}  ${t.imagesPerSecond.toFixed(0).padStart(8)}  ${t.simulatedImagesPerSecond.toFixed(0).padStart(22)}  ${(100 * t.fakeQuantOverhead).toFixed(1).padStart(17)} %`),
        '',
        `threads  GEMM ${r.gemm.M}x${r.gemm.N}x${r.gemm.K} ${r.gemm.isa} GFLOP/s  FMA peak GFLOP/s  of peak`,
        ...r.gemm.rows.map((g) => `${String(g.threads).padStart(7)}  ${g.gflops.toFixed(1).padStart(25)}  ${g.peakGflops.toFixed(1).padStart(16)}  ${(100 * g.fractionOfPeak).toFixed(1).padStart(5)} %`),
        '',
        `time     ${r.seconds.toFixed(1)} s`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
