/**
 * `npm run bench [-- --quick] [-- --only eval]`: the kernel, quantizer and end-to-end benchmarks in
 * one run (`--only eval`: the end-to-end one alone, the other tables kept from their last run). Each
 * writes its own benchmarks/results/<name>.json (kernels and quant also their .md); this script adds
 * eval.json / eval.md and a combined benchmarks/results/README.md with the machine, the SIMD path
 * chosen, the load average before and after (these machines are shared: read the ratios, measured
 * side by side, rather than the absolute figures) and every table.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { runKernelBenchmarks } from './kernels';
import { runQuantBenchmarks } from './quant';
import { evalTable, runEvalBenchmarks } from './eval';
import { runSimulatedBenchmarks, simulatedTable } from './simulated';

function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the package root from ' + __dirname);
    dir = up;
  }
  return dir;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' / ');
/** A results Markdown file without its title, its headings pushed one level down. */
function section(file: string): string {
  if (!fs.existsSync(file)) return '_not produced_';
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => !/^# /.test(l)).map((l) => (/^#+ /.test(l) ? '#' + l : l)).join('\n');
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const only = process.argv.indexOf('--only');
  const evalOnly = only >= 0 && process.argv[only + 1] === 'eval';
  if (only >= 0 && !evalOnly) throw new Error(`--only takes "eval", not ${JSON.stringify(process.argv[only + 1])}`);
  const dir = path.join(packageRoot(), 'benchmarks', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const started = new Date();
  const loadBefore = load();
  console.log(`load average (1/5/15 min) before: ${loadBefore}`);

  const evalStart = load();
  const ev = await runEvalBenchmarks({ quick });
  const evalEnd = load();
  const evalReport = {
    kind: 'packptq end-to-end inference benchmark',
    mode: quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    simd: ev.simd,
    loadAverage: { before: evalStart, after: evalEnd },
    notes: [
      'images/s of one compiled Program (runSync) and one onnxruntime-node InferenceSession on the same input, alternating rounds, best round each.',
      'scalar = packptq forced to its scalar reference kernels (PACKPTQ_SIMD=scalar path), batch 32, 1 thread.',
    ],
    rows: ev.rows,
  };
  writeAtomic(path.join(dir, 'eval.json'), JSON.stringify(evalReport, null, 2) + '\n');
  const evalMd = [
    `# End-to-end inference (${evalReport.mode})`,
    '',
    `${evalReport.date}, SIMD path ${ev.simd}, load average ${evalStart} before, ${evalEnd} after.`,
    '',
    ...evalReport.notes.map((n) => `- ${n}`),
    '',
    evalTable(ev.rows),
    '',
  ].join('\n');
  writeAtomic(path.join(dir, 'eval.md'), evalMd);

  if (!evalOnly) {
    await runKernelBenchmarks({ quick, outDir: dir });
    await runQuantBenchmarks({ quick, outDir: dir });
    const sim = await runSimulatedBenchmarks({ quick });
    writeAtomic(path.join(dir, 'simulated.json'), JSON.stringify({ date: new Date().toISOString(), rows: sim }, null, 2) + '\n');
    writeAtomic(path.join(dir, 'simulated.md'), `# Fake quantization overhead and calibration speed\n\nFP canonical model vs the same model with W8A8 fake quantization, batch 32, same run; calibration = activation ranges (MSE on a histogram) over the calibration set.\n\n${simulatedTable(sim)}\n`);
  }

  const ratios = ev.rows.filter((r) => r.ratio !== null).map((r) => r.ratio as number);
  const geo = ratios.length ? Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length) : NaN;
  const readme = [
    '# packptq benchmark results',
    '',
    `Produced by \`npm run bench${quick ? ' -- --quick' : ''}\` (benchmarks/run.ts) on ${started.toISOString()}.`,
    '',
    `- Machine: ${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} logical CPUs, Node ${process.version}.`,
    `- SIMD path chosen: **${ev.simd}** (PACKPTQ_SIMD overrides it; the scalar reference is measured beside it).`,
    `- Load average (1/5/15 min): ${loadBefore} at the start, ${load()} at the end. The machine is shared: absolute figures drift, the ratios are measured side by side in the same run.`,
    `- packptq / onnxruntime images/s, geometric mean over ${ratios.length} rows: ${geo.toFixed(2)}.`,
    '',
    '## End-to-end inference: packptq vs onnxruntime-node',
    '',
    section(path.join(dir, 'eval.md')),
    '',
    '## Kernels',
    section(path.join(dir, 'kernels.md')),
    '',
    '## Quantizers',
    section(path.join(dir, 'quant.md')),
    '',
    '## Simulated quantization and calibration',
    section(path.join(dir, 'simulated.md')),
    '',
  ].join('\n');
  writeAtomic(path.join(dir, 'README.md'), readme);
  console.log(`wrote ${path.join(dir, 'README.md')}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
