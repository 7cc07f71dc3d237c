/** `packptq quantize`: calibrate (and later reconstruct) a quantized model, measure it, export it. */
import { Command, Option } from 'commander';
import { loadDatasetAsync } from '../data/dataset';
import { addImageOptions, imageOptions } from './image-options';
import { Model } from '../engine/model';
import { LayerBitsRule, checkBits } from '../quant/plan';
import { METHODS, QuantizeResult, quantize } from '../pipeline/quantize';
import { INIT_METHODS } from '../quant/calibrate';
import { BadOptionError } from '../errors';
import { nonNegative, numberList, positiveInt, probability } from './options';
import { progressReporter } from './progress';
import { buildReport, writeJsonAtomic } from '../report/json';
import { RunReport, writeHtmlReport } from '../report/html';
import { EqualizeResult, checkAlpha, equalizationRecord } from '../pipeline/equalize';
import { equalize } from '../api/equalize';
import { EQUALIZATION_FILE, writeFileAtomic } from '../pipeline/run-dir';
import * as path from 'path';
import { Dataset } from '../data/dataset';

/**
 * `--equalize`: the model rescaled by lib/pipeline/equalize.ts on the same calibration subset the
 * quantize run draws (same size and seed), or the model itself without the option.
 */
export async function maybeEqualize(model: Model, calib: Dataset, o: Pick<QuantizeCliOptions, 'equalize' | 'calibSize' | 'seed' | 'batch' | 'threads'>): Promise<{ model: Model; equalized?: EqualizeResult }> {
  if (o.equalize === undefined) return { model };
  const equalized = await equalize(model, calib, {
    alpha: o.equalize === true ? 1 : o.equalize, calibSize: o.calibSize, seed: o.seed, batch: o.batch, threads: o.threads,
  });
  return { model: equalized.model, equalized };
}

/** One line on what --equalize did. */
export function equalizeSummary(e: EqualizeResult): string {
  if (!e.links.length) return 'no Conv/Gemm/MatMul pair joined by ReLU or pooling: nothing to equalize';
  const before = Math.max(...e.links.map((l) => l.spreadBefore)), after = Math.max(...e.links.map((l) => l.spreadAfter));
  return `${e.links.length} layer pairs rescaled (alpha ${e.alpha}); largest channel-range spread ${before.toFixed(2)}x -> ${after.toFixed(2)}x`;
}

function bits(name: string) {
  return (v: string): number => {
    const n = Number(v);
    checkBits(name, n);
    return n;
  };
}

/** --layer-bits PATTERN=W[,A]  e.g. "/layer1/*=4,8" */
function layerBits(v: string, prev: LayerBitsRule[] = []): LayerBitsRule[] {
  const m = /^(.+)=(\d+)(?:,(\d+))?$/.exec(v);
  if (!m) throw new BadOptionError(`Expected PATTERN=WBITS[,ABITS] for --layer-bits but received "${v}"`);
  const rule: LayerBitsRule = { pattern: m[1], wBits: Number(m[2]), aBits: m[3] === undefined ? undefined : Number(m[3]) };
  checkBits(`--layer-bits ${m[1]}`, rule.wBits);
  checkBits(`--layer-bits ${m[1]}`, rule.aBits);
  return [...prev, rule];
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function budget(v: string): { w: number; a?: number } {
  const m = /^(\d+(?:\.\d+)?)(?:\/(\d+(?:\.\d+)?))?$/.exec(v);
  if (!m) throw new BadOptionError(`Expected W or W/A (average bits) for --budget-bits but received "${v}"`);
  return { w: Number(m[1]), a: m[2] === undefined ? undefined : Number(m[2]) };
}

export interface QuantizeCliOptions {
  calib: string; calibLabels?: string; eval?: string; labels?: string; mean?: number[]; std?: number[];
  wBits: number; aBits: number; method: string; init: string; percentile?: number; firstLast: '8bit' | 'target';
  layerBits?: LayerBitsRule[]; exclude?: string[]; perTensor?: boolean; split?: boolean; blocks?: string[];
  mixedPrecision?: boolean; budgetBits?: { w: number; a?: number }; mpRule: 'exact' | 'greedy'; scoreForm: 'paper' | 'release'; report?: string; html?: string;
  iters: number; lambda: number; dropProb?: number; lrRound: number; lrAct: number; cache?: 'fp32' | 'fp16'; quiet?: boolean;
  calibSize: number; actCalibSize?: number; actSearch: 'histogram' | 'exact'; seed: number; batch: number; threads: number; evalLimit?: number; out?: string; json?: boolean;
  runDir?: string; overwriteRunDir?: boolean; equalize?: number | true;
}

export function addQuantOptions(cmd: Command): Command {
  return addImageOptions(cmd)
    .requiredOption('--calib <file>', 'calibration samples (IDX or NPY), labels not needed')
    .option('--eval <file>', 'evaluation samples (IDX or NPY); labels found beside them or given with --labels')
    .option('--labels <file>', 'labels of --eval')
    .option('--mean <m[,m...]>', 'per-channel mean subtracted after scaling pixels to [0,1]', numberList('--mean'))
    .option('--std <s[,s...]>', 'per-channel standard deviation divided by', numberList('--std'))
    .option('--w-bits <n>', 'weight bits (2-8)', bits('--w-bits'), 4)
    .option('--a-bits <n>', 'activation bits (2-8)', bits('--a-bits'), 8)
    .option('--init <method>', `quantizer initialisation: ${INIT_METHODS.join(' | ')}`, 'mse')
    .option('--percentile <p>', 'percentile kept by --init percentile', Number, 99.99)
    .addOption(new Option('--first-last <mode>', 'first and last layer: "8bit" keeps their weights and input activations at 8 bits (BRECQ/QDrop); "target" quantizes them to the target widths (the Pack-PTQ release)').choices(['8bit', 'target']).default('8bit'))
    .option('--layer-bits <pattern=w[,a]>', 'bits for layers whose node name matches (repeatable; * is a wildcard)', layerBits)
    .option('--exclude <pattern>', 'keep matching layers in floating point (repeatable)', collect)
    .option('--per-tensor', 'per-tensor weight quantizers (default: per output channel)')
    .option('--split', 'transformer blocks as two units (attention, MLP)')
    .option('--blocks <prefix,...>', 'define blocks by node-name prefix', (v: string) => v.split(',').filter(Boolean))
    .option('--calib-size <n>', 'calibration samples used (a seeded random choice)', positiveInt('--calib-size'), 1024)
    .option('--act-calib-size <n>', 'calibration samples used for activation ranges (default: all of --calib-size)', positiveInt('--act-calib-size'))
    .addOption(new Option('--act-search <how>', 'activation MSE search: on a 4096-bin histogram, or exact (slow)').choices(['histogram', 'exact']).default('histogram'))
    .option('--seed <n>', 'seed of every random choice', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n)) throw new BadOptionError(`Expected an integer for --seed but received "${v}"`);
      return n;
    }, 0)
    .option('--batch <n>', 'batch size', positiveInt('--batch'), 32)
    .option('--threads <n>', 'threads', positiveInt('--threads'), 1)
    .option('--eval-limit <n>', 'evaluate only the first n samples', positiveInt('--eval-limit'))
    .option('--iters <n>', 'reconstruction iterations per unit', positiveInt('--iters'), 20000)
    .option('--lambda <x>', 'AdaRound regulariser weight', nonNegative('--lambda'), 0.01)
    .option('--drop-prob <p>', 'QDrop dropping probability (default: 0.5 for qdrop, 0 otherwise)', probability('--drop-prob'))
    .option('--lr-round <x>', 'Adam learning rate of the rounding variables', nonNegative('--lr-round'), 3e-3)
    .option('--lr-act <x>', 'Adam learning rate of the activation steps (cosine-decayed)', nonNegative('--lr-act'), 4e-5)
    .addOption(new Option('--cache <dtype>', 'storage of the reconstruction cache (unit inputs and targets): fp16 halves its memory').choices(['fp32', 'fp16']).default('fp32'))
    .option('--mixed-precision', 'packptq: choose a width per pack from the target\'s candidates (3→2,3,4; 4→3,4,6; 6→4,6,8) under --budget-bits')
    .option('--budget-bits <w[/a]>', 'average weight bits allowed (and optionally activation bits), default (mid+high)/2, e.g. 3.5 for W3A3', budget)
    .addOption(new Option('--mp-rule <rule>', 'exact multiple-choice knapsack, or the release\'s greedy rule').choices(['exact', 'greedy']).default('exact'))
    .addOption(new Option('--score-form <form>', 'importance score: the paper\'s (sums per sample) or the release\'s (per-element means)').choices(['paper', 'release']).default('paper'))
    .option('--equalize [alpha]', 'before quantizing, rescale Conv/Gemm/MatMul pairs across ReLU/pooling so each activation\'s channels share one range (FP-equivalent; alpha in (0,1], default 1, 0.5 = SmoothQuant\'s split); not part of the paper\'s method', (v: string) => {
      const a = Number(v);
      checkAlpha(a);
      return a;
    })
    .option('--quiet', 'no progress display')
    .option('--json', 'print exactly one JSON object on stdout');
}

export function registerQuantize(program: Command): void {
  addQuantOptions(program
    .command('quantize')
    .description('Quantize an ONNX model: calibrate quantizers, evaluate FP vs quantized, export a QDQ ONNX model')
    .argument('<model>', 'FP32 ONNX model'))
    .addOption(new Option('--method <name>', 'rtn: calibrated round-to-nearest; adaround: layer-wise reconstruction; brecq: block-wise; qdrop: block-wise with dropping; packptq: Hessian-guided packs, pack-wise').choices([...METHODS]).default('rtn'))
    .option('--out <file>', 'write the quantized model as QDQ ONNX')
    .option('--report <file>', 'write the run report (JSON: plan, scores, packs, bits, loss curves, accuracy, times)')
    .option('--html <file>', 'write the run report as one self-contained HTML page (charts of scores, packs, bits, loss curves, times); see also `packptq report`')
    .option('--run-dir <dir>', 'keep the run\'s state in DIR (checkpoint after calibration, scoring and every unit); rerunning the same command resumes it where it stopped')
    .option('--overwrite-run-dir', 'discard a --run-dir made with other options or another model instead of refusing it')
    .addHelpText('after', `
Examples:
  packptq quantize test/fixtures/resnet20.onnx --calib test/fixtures/calib-1024-images-idx3-ubyte.gz \\
      --eval test/fixtures/test-2000-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530 \\
      --w-bits 4 --a-bits 8 --method rtn --init mse --out resnet20-w4a8.onnx
  packptq quantize model.onnx --calib calib.npy --w-bits 8 --a-bits 8 --exclude "/head/*" --json
  packptq quantize test/fixtures/resnet20.onnx --calib test/fixtures/calib-1024-images-idx3-ubyte.gz \\
      --eval test/fixtures/test-2000-images-idx3-ubyte.gz --mean 0.2860 --std 0.3530 \\
      --w-bits 3 --a-bits 3 --method packptq --mixed-precision --report run.json --html run.html
  packptq quantize model.onnx --calib calib.npy --method qdrop --run-dir runs/qdrop   # rerun to resume after a kill
  packptq export --run-dir runs/qdrop --out model-qdrop.onnx`)
    .action(async (file: string, o: QuantizeCliOptions) => {
      const r = await runQuantize(file, o);
      print(r, o);
    });
}

export async function runQuantize(file: string, o: QuantizeCliOptions): Promise<{ result: QuantizeResult; file: string; out?: string; equalized?: EqualizeResult }> {
  const img = imageOptions(o as Parameters<typeof imageOptions>[0]);
  const calib = await loadDatasetAsync({ data: o.calib, mean: o.mean, std: o.std, ...img });
  const { model, equalized } = await maybeEqualize(Model.load(file), calib, o);
  const evalSet = o.eval ? await loadDatasetAsync({ data: o.eval, labels: o.labels, mean: o.mean, std: o.std, limit: o.evalLimit, ...img }) : undefined;
  const progress = progressReporter({ quiet: o.quiet });
  const result = await quantize(model, {
    mixedPrecision: o.mixedPrecision, budgetBits: o.budgetBits?.w, budgetActBits: o.budgetBits?.a, mpRule: o.mpRule, scoreForm: o.scoreForm,
    iters: o.iters, lambda: o.lambda, dropProb: o.dropProb, lrRound: o.lrRound, lrAct: o.lrAct, cacheDtype: o.cache === 'fp16' ? 'float16' : 'float32', onProgress: progress.onProgress,
    method: o.method as 'rtn', init: o.init as 'mse', percentile: o.percentile, wBits: o.wBits, aBits: o.aBits,
    firstLast: o.firstLast, layerBits: o.layerBits, exclude: o.exclude, weightGranularity: o.perTensor ? 'tensor' : 'channel',
    split: o.split, blockPrefixes: o.blocks, calib, eval: evalSet, calibSize: o.calibSize, actCalibSize: o.actCalibSize, actSearch: o.actSearch, seed: o.seed, batch: o.batch, threads: o.threads,
    runDir: o.runDir, overwriteRunDir: o.overwriteRunDir,
  });
  progress.stop();
  // What export --run-dir needs to rebuild the rescaled graph from the model file.
  if (o.runDir && equalized) writeFileAtomic(path.join(o.runDir, EQUALIZATION_FILE), JSON.stringify(equalizationRecord(equalized)));
  if (o.out) {
    const { writeQdqModel } = require('../export/qdq');
    writeQdqModel(o.out, model.graph, result.quantized, { wBits: o.wBits, aBits: o.aBits, method: result.method });
  }
  if (o.report || o.html) {
    const built = buildReport(result, { model: file, command: process.argv.slice(2).join(' '), options: { ...o } });
    if (equalized) Object.assign(built, { equalization: equalizationRecord(equalized) });
    const report = o.runDir ? { ...built, runDir: o.runDir, resumedFromUnit: result.resumedFromUnit ?? null } : built;
    if (o.report) writeJsonAtomic(o.report, report);
    // Rendered from the report as JSON carries it (NaN → null, undefined dropped), so the page is
    // byte for byte what `packptq report` makes from the --report file.
    if (o.html) writeHtmlReport(o.html, JSON.parse(JSON.stringify(report)) as RunReport);
  }
  return { result, file, out: o.out, equalized };
}

function print({ result: r, file, out, equalized }: { result: QuantizeResult; file: string; out?: string; equalized?: EqualizeResult }, o: QuantizeCliOptions): void {
  const summary = {
    model: file, method: r.method, wBits: o.wBits, aBits: o.aBits, init: o.init, firstLast: o.firstLast,
    fp: r.fp ? { accuracy: r.fp.accuracy, samples: r.fp.samples } : undefined,
    quantized: r.quant ? { accuracy: r.quant.accuracy, samples: r.quant.samples } : undefined,
    avgWeightBits: r.avgWeightBits, avgActBits: r.avgActBits, weightBytes: r.weightBytes, fpWeightBytes: r.fpWeightBytes,
    layers: r.plan.layers.length, activationQuantizers: r.plan.acts.length, seconds: r.seconds, out,
    pack: r.pack ? { packs: r.pack.packs, bits: r.pack.bits, scores: r.pack.scores.map((x) => ({ block: x.block, score: x.score, omega: x.omega })) } : undefined,
    report: o.report,
    html: o.html,
    ...(equalized ? { equalization: { alpha: equalized.alpha, links: equalized.links.map((l) => ({ producer: l.producer, consumer: l.consumer, spreadBefore: l.spreadBefore, spreadAfter: l.spreadAfter })) } } : {}),
    ...(o.runDir ? { runDir: o.runDir, resumedFromUnit: r.resumedFromUnit ?? null, unitCount: r.unitCount } : {}),
    units: r.units.map((u) => ({ name: u.name, kind: u.kind, layers: u.layers.length, iters: u.iters, seconds: u.seconds, lossStart: u.lossStart, lossEnd: u.lossEnd, cacheBytes: u.cacheBytes, cacheDtype: u.cacheDtype })),
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(summary) + '\n');
    return;
  }
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : `${(100 * x).toFixed(2)}%`);
  const lines = [
    `model        ${file}`,
    `method       ${r.method} (init ${o.init}), W${o.wBits}A${o.aBits}, first/last layer: ${o.firstLast}`,
    `quantizers   ${r.quantized.weights.length} weight, ${r.quantized.acts.length} activation`,
    `avg bits     weights ${r.avgWeightBits.toFixed(2)}, activations ${r.avgActBits.toFixed(2)}`,
    `weights      ${r.weightBytes.toLocaleString('en-US')} bytes (FP32: ${r.fpWeightBytes.toLocaleString('en-US')})`,
  ];
  if (equalized) lines.push(`equalized    ${equalizeSummary(equalized)}`);
  if (r.pack) {
    lines.push(`packs        ${r.pack.packs.map((p) => `[${p.join(',')}]`).join(' ')} (${r.pack.form} score)`);
    if (r.pack.bits) lines.push(`pack bits    ${r.pack.bits.join(' ')} (budget ${r.pack.budgetBits} average weight bits, ${r.pack.mpRule})`);
  }
  if (r.resumedFromUnit !== undefined) lines.push(`resumed      ${o.runDir}: ${r.resumedFromUnit} of ${r.unitCount} units restored from checkpoints, not recomputed`);
  for (const u of r.units) lines.push(`  unit ${u.name}: ${u.iters} iterations in ${u.seconds.toFixed(1)} s, loss ${u.lossStart.toPrecision(4)} → ${u.lossEnd.toPrecision(4)}${u.cacheBytes ? `, cache ${(u.cacheBytes / 2 ** 20).toFixed(1)} MiB ${u.cacheDtype}` : ''}`);
  const cached = r.units.filter((u) => u.cacheBytes);
  if (cached.length) lines.push(`cache        largest unit ${(Math.max(...cached.map((u) => u.cacheBytes)) / 2 ** 20).toFixed(1)} MiB (${cached[0].cacheDtype}; --cache fp16 halves it)`);
  if (r.fp) lines.push(`FP top-1     ${pct(r.fp.accuracy)} (${r.fp.samples} samples)`);
  if (r.quant) lines.push(`quant top-1  ${pct(r.quant.accuracy)}`);
  lines.push(`time         ${r.seconds.toFixed(1)} s`);
  if (out) lines.push(`wrote        ${out}`);
  if (o.html) lines.push(`wrote        ${o.html}`);
  process.stdout.write(lines.join('\n') + '\n');
}
