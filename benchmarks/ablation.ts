/**
 * The Pack-PTQ ablation table (issue "Pack-PTQ", part 6): block-wise reconstruction (QDrop) vs
 * pack-wise (Pack-PTQ), with and without pack-level mixed precision, at W4A4, W3A3 and W2A4 on every
 * fixture, each cell with its effective average bits and wall time. It does not run anything: it
 * collates the cells that benchmarks/accuracy.ts appended to benchmarks/results/accuracy-*.json (a
 * cell takes minutes to an hour, so they are produced by several runs, possibly in parallel), keeps
 * the newest cell per (model, method, bits, iterations), and renders benchmarks/results/ablation.md.
 *   node dist/benchmarks/ablation.js [--iters 1000] [--files accuracy-recon-1k.json,...]
 * Without --files it reads every accuracy-*.json except the RTN table.
 */
import * as fs from 'fs';
import * as path from 'path';
import type { Cell } from './accuracy';

const ROOT = path.resolve(__dirname, '..', '..');
const DIR = path.join(ROOT, 'benchmarks', 'results');
const arg = (name: string, dflt: string) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : dflt; };

const MODELS = ['resnet20', 'mobilenetv2', 'vit', 'vgg', 'pointnet'];
const BITS: [number, number][] = [[4, 4], [3, 3], [2, 4]];
const COLUMNS = [
  { method: 'qdrop', title: 'block-wise (QDrop)' },
  { method: 'packptq', title: 'pack-wise (Pack-PTQ)' },
  { method: 'packptq+mp', title: 'pack-wise + mixed precision' },
];

function pct(x: number): string { return (100 * x).toFixed(2); }
function packsText(p?: number[][]): string {
  return p ? p.map((b) => (b.length > 1 ? `[${b[0]}–${b[b.length - 1]}]` : `[${b[0]}]`)).join('') : '–';
}

export function ablationTable(cells: Cell[], iters: number): string {
  const newest = new Map<string, Cell>();
  for (const c of cells) {
    if (c.iters !== iters && c.method !== 'rtn') continue;
    const k = `${c.model}|${c.method}|${c.wBits}/${c.aBits}`;
    const old = newest.get(k);
    if (!old || old.date < c.date) newest.set(k, c);
  }
  const get = (m: string, method: string, [w, a]: [number, number]) => newest.get(`${m}|${method}|${w}/${a}`);
  const L: string[] = [
    `| model | W/A | FP top-1 | ${COLUMNS.map((c) => c.title).join(' | ')} | packs | pack − block |`,
    `|---|---|---:|${COLUMNS.map(() => '---|').join('')}---|---:|`,
  ];
  for (const m of MODELS)
    for (const b of BITS) {
      const row = COLUMNS.map((c) => get(m, c.method, b));
      if (row.every((x) => !x)) continue;
      const fp = row.find((x) => x)!.fp;
      const cellText = (c?: Cell, method?: string) => {
        if (!c) return method === 'packptq+mp' && b[0] !== b[1] ? 'n/a (needs W = A)' : 'not run';
        return `${pct(c.quantized)} (${(100 * (c.quantized - c.fp)).toFixed(2)}) · ${c.avgWeightBits.toFixed(2)}/${c.avgActBits.toFixed(2)} b · ${c.seconds.toFixed(0)} s`;
      };
      const [blk, pk] = row;
      const diff = blk && pk ? (100 * (pk.quantized - blk.quantized)).toFixed(2) : '–';
      const packs = packsText((pk ?? row[2])?.packs);
      const packBits = row[2]?.packBits ? ` bits ${row[2].packBits.join('/')}` : '';
      L.push(`| ${m} | W${b[0]}A${b[1]} | ${pct(fp)} | ${row.map((c, i) => cellText(c, COLUMNS[i].method)).join(' | ')} | ${packs}${packBits} | ${diff} |`);
    }
  return L.join('\n');
}

function main(): void {
  const iters = Number(arg('iters', '1000'));
  const files = arg('files', '').split(',').filter(Boolean);
  const chosen = files.length ? files : fs.readdirSync(DIR).filter((f) => /^accuracy-.*\.json$/.test(f) && f !== 'accuracy-rtn.json' && !f.includes('variants'));
  const cells: Cell[] = chosen.flatMap((f) => JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8')) as Cell[]);
  const md = [
    `# Pack-PTQ ablation at ${iters} iterations per unit`, '',
    `Collated from ${chosen.join(', ')} (benchmarks/accuracy.ts, one thread per run; runs went two at a time on this 2-core machine, so times are under load).`,
    'Each cell: hard-rounded top-1 % (difference to FP) · effective average weight/activation bits · wall time of the whole run (calibration, scores, reconstruction, both evaluations).',
    'Fashion-MNIST models are evaluated on the 10 000-image test set, pointnet on its 1 000-shape test set. Mixed precision: candidates {2,3,4} for 3 bits and {3,4,6} for 4 bits, exact multiple-choice knapsack under the default budget of 3.5 average weight bits for W3A3 (5 for W4A4, the mean of the two upper candidates; `--budget-bits` sets another); it needs W = A.', '',
    ablationTable(cells, iters), '',
  ].join('\n');
  fs.writeFileSync(path.join(DIR, 'ablation.md'), md);
  console.log(md);
}

if (require.main === module) main();
