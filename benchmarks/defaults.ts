/**
 * Results at the method defaults (20 000 iterations per unit): one row per `packptq quantize
 * --report` file. A default run takes most of an hour, so these runs are made by hand with the CLI
 * (resumable with --run-dir) and only collated here. Each row is checked against what the report says
 * the run did (iterations per unit, evaluation samples), so a short run cannot slip into the table.
 *   node dist/benchmarks/defaults.js REPORT.json [REPORT.json ...]
 * Writes benchmarks/results/defaults-20k.{json,md}; rows already there are kept unless a report of
 * the same (model, method, bits) replaces them.
 */
import * as fs from 'fs';
import * as path from 'path';

const ROOT = path.resolve(__dirname, '..', '..');
const OUT = path.join(ROOT, 'benchmarks', 'results', 'defaults-20k');

export interface DefaultsRow {
  model: string;
  method: string;
  wBits: number;
  aBits: number;
  mixedPrecision: boolean;
  iters: number;
  threads: number;
  samples: number;
  fp: number;
  quantized: number;
  avgWeightBits: number;
  avgActBits: number;
  packs: number[][] | null;
  units: { name: string; seconds: number; lossStart: number; lossEnd: number }[];
  seconds: number;
  /** Resumed from a run directory: `seconds` sums the units of every process. */
  resumed?: boolean;
  date: string;
  command: string;
}

interface Report {
  date: string;
  model: string;
  command: string;
  method: string;
  options: { wBits: number; aBits: number; threads: number; iters: number };
  accuracy: { fp: number; quantized: number; samples: number };
  size: { avgWeightBits: number; avgActBits: number };
  pack?: { packs?: number[][]; bits?: unknown } | null;
  units: { name: string; iters: number; seconds: number; lossStart: number; lossEnd: number }[];
  seconds: number;
  times?: { reconstruct?: number };
  resumedFromUnit?: number | null;
  equalization?: { alpha: number };
}

export function rowFromReport(file: string): DefaultsRow {
  const r = JSON.parse(fs.readFileSync(file, 'utf8')) as Report;
  const trained = r.units.filter((u) => u.iters > 0);
  if (!trained.length) throw new Error(`${file}: no reconstructed unit (not a reconstruction run)`);
  const short = trained.find((u) => u.iters !== r.options.iters);
  if (short) throw new Error(`${file}: unit ${short.name} ran ${short.iters} of ${r.options.iters} iterations`);
  return {
    model: path.basename(r.model, '.onnx'),
    // --equalize changes the model quantized: keep it visible in the method column.
    method: r.equalization ? `${r.method}+eq${r.equalization.alpha === 1 ? '' : ` ${r.equalization.alpha}`}` : r.method,
    wBits: r.options.wBits,
    aBits: r.options.aBits,
    mixedPrecision: !!r.pack?.bits,
    iters: r.options.iters,
    threads: r.options.threads,
    samples: r.accuracy.samples,
    fp: r.accuracy.fp,
    quantized: r.accuracy.quantized,
    avgWeightBits: r.size.avgWeightBits,
    avgActBits: r.size.avgActBits,
    packs: r.pack?.packs ?? null,
    units: trained.map((u) => ({ name: u.name, seconds: u.seconds, lossStart: u.lossStart, lossEnd: u.lossEnd })),
    // A resumed run's own time leaves out the units an earlier process finished: count every unit's
    // time (kept in its checkpoint) plus this process's time outside reconstruction.
    seconds: r.resumedFromUnit ? r.seconds - (r.times?.reconstruct ?? 0) + trained.reduce((a, u) => a + u.seconds, 0) : r.seconds,
    resumed: !!r.resumedFromUnit,
    date: r.date,
    command: r.command,
  };
}

const pct = (x: number) => (100 * x).toFixed(2);
const packsText = (p: number[][] | null) => (p ? p.map((b) => (b.length > 1 ? `[${b[0]}–${b[b.length - 1]}]` : `[${b[0]}]`)).join('') : '–');

export function defaultsTable(rows: DefaultsRow[]): string {
  const lines = [
    '# Results at the method defaults (20 000 iterations per unit)',
    '',
    'Each row is one `packptq quantize ... --iters 20000 --report R.json` run (1024 calibration images, batch 32,',
    'seed 0, hard rounding), collated by `node dist/benchmarks/defaults.js R.json ...`. Top-1 on the full',
    '10 000-image Fashion-MNIST test set (pointnet: its 1000-shape test set). Wall time is the whole run',
    '(calibration, scores, reconstruction, evaluation) on the stated threads of this 2-core machine;',
    '† marks a run resumed from its run directory, whose wall time sums the units of both processes.',
    '',
    '| model | W/A | method | FP | quantized (Δ) | avg w/a bits | packs | threads | wall |',
    '|---|---|---|---:|---:|---|---|---:|---:|',
  ];
  const sorted = [...rows].sort((a, b) => a.model.localeCompare(b.model) || b.wBits - a.wBits || a.method.localeCompare(b.method));
  for (const r of sorted) {
    const d = 100 * (r.quantized - r.fp);
    lines.push(`| ${r.model} | W${r.wBits}A${r.aBits} | ${r.method}${r.mixedPrecision ? '+mp' : ''} | ${pct(r.fp)} | ${pct(r.quantized)} (${d >= 0 ? '+' : ''}${d.toFixed(2)}) | ` +
      `${r.avgWeightBits.toFixed(2)}/${r.avgActBits.toFixed(2)} | ${packsText(r.packs)} | ${r.threads} | ${(r.seconds / 60).toFixed(1)} min${r.resumed ? ' †' : ''} |`);
  }
  lines.push('', 'Seconds per reconstructed unit:', '');
  for (const r of sorted)
    lines.push(`- ${r.model} W${r.wBits}A${r.aBits} ${r.method}: ${r.units.map((u) => `${u.name} ${u.seconds.toFixed(0)}`).join(', ')}`);
  return lines.join('\n') + '\n';
}

function main(): void {
  const files = process.argv.slice(2);
  if (!files.length) throw new Error('usage: node dist/benchmarks/defaults.js REPORT.json [REPORT.json ...]');
  const existing: DefaultsRow[] = fs.existsSync(`${OUT}.json`) ? JSON.parse(fs.readFileSync(`${OUT}.json`, 'utf8')).rows : [];
  const key = (r: DefaultsRow) => `${r.model}|${r.method}|${r.mixedPrecision}|${r.wBits}/${r.aBits}`;
  const rows = new Map(existing.map((r) => [key(r), r]));
  for (const f of files) {
    const r = rowFromReport(f);
    rows.set(key(r), r);
  }
  const all = [...rows.values()];
  fs.writeFileSync(`${OUT}.json`, JSON.stringify({ rows: all }, null, 1));
  fs.writeFileSync(`${OUT}.md`, defaultsTable(all));
  process.stdout.write(defaultsTable(all));
}

if (require.main === module) main();
