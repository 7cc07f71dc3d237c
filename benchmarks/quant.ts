/**
 * Quantizer benchmark: fake-quantization throughput per ISA against the scalar reference (per
 * tensor and per channel, cache-resident and memory-bound sizes, 1 and 2 threads), the BRECQ
 * clipping search (80 candidates, p = 2.4) over the weights of the fixture models, the cost per
 * element of one streamed activation pass, and the percentile histogram.
 *
 * Every figure is also a ratio measured in the same run (speed-up over the scalar reference),
 * because these machines are shared and absolute times drift. Fake-quant times come from a native
 * loop (quant.timeFakeQuant); the search is one native call, timed from JavaScript.
 *
 * Writes benchmarks/results/quant.json and quant.md. Quick mode (< 30 s) measures one net and
 * fewer rounds; full mode all three nets.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { native } from '../lib/native';

export interface QuantBenchOptions {
  quick?: boolean;
  /** Where quant.json / quant.md go; defaults to <package root>/benchmarks/results. */
  outDir?: string;
  log?: (line: string) => void;
}

interface Layout { outer: number; channels: number; inner: number }
interface WeightLayer { net: string; name: string; count: number; layout: Layout }

/** Conv [M, C/g, KH, KW] and Gemm [N, K] weights are quantized per output channel (axis 0). */
const axis0 = (m: number, rest: number): Layout => ({ outer: 1, channels: m, inner: rest });
/** MatMul [K, N] weights per output column (axis 1). */
const axis1 = (k: number, n: number): Layout => ({ outer: k, channels: n, inner: 1 });

// Weight shapes of the fixture models (../shared/fixtures/README.md).
function fixtureWeights(): WeightLayer[] {
  const out: WeightLayer[] = [];
  const add = (net: string, name: string, count: number, layout: Layout) => out.push({ net, name, count, layout });
  // resnet20: 3x3 stem 1->16, stages of 16/32/64 channels (3 blocks each), 1x1 shortcuts, FC 64->10.
  add('resnet20', 'stem 3x3 1->16', 1, axis0(16, 9));
  add('resnet20', '3x3 16->16', 6, axis0(16, 144));
  add('resnet20', '3x3 16->32', 1, axis0(32, 144));
  add('resnet20', 'shortcut 1x1 16->32', 1, axis0(32, 16));
  add('resnet20', '3x3 32->32', 5, axis0(32, 288));
  add('resnet20', '3x3 32->64', 1, axis0(64, 288));
  add('resnet20', 'shortcut 1x1 32->64', 1, axis0(64, 32));
  add('resnet20', '3x3 64->64', 5, axis0(64, 576));
  add('resnet20', 'fc 64->10', 1, axis0(10, 64));
  // mobilenetv2: stem, inverted residuals (t,c,n,s) = (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,2,1) (6,96,1,1), 1x1 96->384, FC.
  const m = new Map<string, WeightLayer>();
  const addM = (name: string, layout: Layout) => {
    const key = `${layout.channels}x${layout.inner}`;
    const l = m.get(key);
    if (l) l.count++;
    else m.set(key, { net: 'mobilenetv2', name, count: 1, layout });
  };
  addM('stem 3x3 1->16', axis0(16, 9));
  let c = 16;
  for (const [t, o, n] of [[1, 16, 1], [6, 24, 2], [6, 32, 3], [6, 64, 2], [6, 96, 1]]) {
    for (let i = 0; i < n; i++) {
      const h = c * t;
      if (t !== 1) addM(`expand 1x1 ${c}->${h}`, axis0(h, c));
      addM(`depthwise 3x3 ${h}`, axis0(h, 9));
      addM(`project 1x1 ${h}->${o}`, axis0(o, h));
      c = o;
    }
  }
  addM('last 1x1 96->384', axis0(384, 96));
  addM('fc 384->10', axis0(10, 384));
  out.push(...m.values());
  // vit: patch conv 4x4 1->96, 6 blocks of MatMul qkv [96,288], proj [96,96], fc1 [96,192], fc2 [192,96], head Gemm 96->10.
  add('vit', 'patch conv 4x4 1->96', 1, axis0(96, 16));
  add('vit', 'qkv MatMul [96,288]', 6, axis1(96, 288));
  add('vit', 'proj MatMul [96,96]', 6, axis1(96, 96));
  add('vit', 'fc1 MatMul [96,192]', 6, axis1(96, 192));
  add('vit', 'fc2 MatMul [192,96]', 6, axis1(192, 96));
  add('vit', 'head Gemm 96->10', 1, axis0(10, 96));
  return out;
}

function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the package root from ' + __dirname);
    dir = up;
  }
  return dir;
}

/** Deterministic roughly normal data (sum of 4 uniforms), scaled. */
function fill(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  for (let i = 0; i < n; i++) a[i] = scale * (u() + u() + u() + u() - 2) * 1.732;
  return a;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Best seconds per call of run(reps) (total native seconds of reps calls), as in kernels.ts. */
function bestSeconds(run: (reps: number) => number, budget: number, rounds: number): number {
  const first = run(1);
  if (first * rounds >= budget * 2) return first;
  const reps = Math.max(1, Math.round(budget / Math.max(first, 1e-7)));
  let best = first;
  for (let r = 0; r < rounds; r++) best = Math.min(best, run(reps) / reps);
  return best;
}

function bestOf(rounds: number, fn: () => void): number {
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    fn();
    best = Math.min(best, now() - t0);
  }
  return best;
}

export async function runQuantBenchmarks(opts: QuantBenchOptions = {}): Promise<object> {
  const q = native().quant;
  const log = opts.log ?? ((line: string) => console.log(line));
  const quick = !!opts.quick;
  const budget = quick ? 0.03 : 0.1, rounds = quick ? 2 : 3;
  const started = Date.now();
  const variants: { name: string; supported: boolean; testOnly: boolean }[] = q.variants();
  const isas = variants.filter((v) => v.supported && !v.testOnly).map((v) => v.name);
  const simd = isas.filter((n) => n !== 'scalar');
  const skipped = variants.filter((v) => !v.supported).map((v) => `${v.name}: not supported by this CPU, not measured`);

  // ---- fake quantization ----
  const fqCases: { name: string; layout: Layout }[] = [
    { name: 'per tensor, 64 Ki elements (cache)', layout: { outer: 1, channels: 1, inner: 1 << 16 } },
    { name: 'per tensor, 4 Mi elements (memory)', layout: { outer: 1, channels: 1, inner: 1 << 22 } },
    { name: 'per channel conv [64,64,3,3]', layout: axis0(64, 576) },
    { name: 'per column MatMul [96,288]', layout: axis1(96, 288) },
    { name: 'per channel, batch 32 activations [32,16,28,28] axis 1', layout: { outer: 32, channels: 16, inner: 784 } },
  ];
  const fakeQuant: object[] = [];
  for (const c of fqCases) {
    const n = c.layout.outer * c.layout.channels * c.layout.inner;
    const x = fill(n, 1), scale = new Float32Array(c.layout.channels).fill(0.02), zero = new Int32Array(c.layout.channels).fill(3);
    const time = (isa: string, t: number) =>
      bestSeconds((reps) => q.timeFakeQuant(isa, x, c.layout, scale, zero, -128, 127, t, reps), budget, rounds);
    const scalarSec = time('scalar', 1);
    const row: Record<string, any> = { name: c.name, elements: n, scalarGelemPerSec: r3(n / scalarSec / 1e9) };
    const parts: string[] = [];
    for (const isa of simd) {
      const res: Record<string, number> = {};
      for (const t of [1, 2]) {
        const sec = time(isa, t);
        res[`gelemPerSecT${t}`] = r3(n / sec / 1e9);
        res[`gbPerSecT${t}`] = r1((8 * n) / sec / 1e9); // 4 bytes read + 4 written per element
        res[`speedupVsScalarT${t}`] = r1(scalarSec / sec);
      }
      row[isa] = res;
      parts.push(`${isa} ${res.gelemPerSecT1}/${res.gelemPerSecT2} Gelem/s (x${res.speedupVsScalarT1}/x${res.speedupVsScalarT2})`);
    }
    fakeQuant.push(row);
    log(`fakeQuant ${c.name}: scalar ${row.scalarGelemPerSec} Gelem/s; ${parts.join('; ')}`);
  }

  // ---- MSE search over the fixture weights ----
  const nets = quick ? ['resnet20'] : ['resnet20', 'mobilenetv2', 'vit'];
  const layers = fixtureWeights().filter((l) => nets.includes(l.net));
  const searchOpts = { bits: 4, signed: false, symmetric: false, p: 2.4, candidates: 80 };
  const mse: object[] = [];
  const totals: Record<string, Record<string, number>> = {};
  for (const l of layers) {
    const n = l.layout.outer * l.layout.channels * l.layout.inner;
    const x = fill(n, 7, Math.sqrt(2 / Math.max(1, n / l.layout.channels)));
    const timeIt = (isa: string, t: number, r: number) => bestOf(r, () => q.mseSearch(isa, x, l.layout, { ...searchOpts, threads: t }));
    const scalarSec = timeIt('scalar', 1, 1);
    const row: Record<string, any> = { net: l.net, layer: l.name, count: l.count, weights: n, channels: l.layout.channels, scalarMs: r3(scalarSec * 1e3) };
    const tot = (totals[l.net] ??= { weights: 0, scalarMs: 0 });
    tot.weights += n * l.count;
    tot.scalarMs += scalarSec * 1e3 * l.count;
    for (const isa of simd)
      for (const t of [1, 2]) {
        const sec = timeIt(isa, t, rounds);
        row[isa] = { ...(row[isa] ?? {}), [`msT${t}`]: r3(sec * 1e3), [`speedupVsScalarT${t}`]: r1(scalarSec / sec) };
        tot[`${isa}MsT${t}`] = (tot[`${isa}MsT${t}`] ?? 0) + sec * 1e3 * l.count;
      }
    mse.push(row);
  }
  for (const [net, t] of Object.entries(totals)) {
    for (const k of Object.keys(t)) t[k] = k === 'weights' ? t[k] : r1(t[k]);
    for (const isa of simd) t[`${isa}SpeedupT1`] = r1(t.scalarMs / t[`${isa}MsT1`]);
    t.nsPerWeightPerCandidateScalar = r3((t.scalarMs * 1e6) / t.weights / 80);
    for (const isa of simd) t[`nsPerWeightPerCandidate_${isa}T1`] = r3((t[`${isa}MsT1`] * 1e6) / t.weights / 80);
    log(`mseSearch ${net} (${t.weights} weights, 80 candidates, p 2.4): ${JSON.stringify(t)}`);
  }

  // ---- one streamed activation pass, and the histogram ----
  const actN = quick ? 1 << 18 : 1 << 20;
  const act = fill(actN, 9).map((v) => Math.max(v, 0));
  const stream: Record<string, any> = { elements: actN };
  for (const isa of isas) {
    for (const t of isa === 'scalar' ? [1] : [1, 2]) {
      const sec = bestOf(isa === 'scalar' ? 1 : rounds, () => {
        const s = new q.MseStream(isa, { ...searchOpts, threads: t });
        s.observe(act);
        s.accumulate(act);
        s.result();
      });
      stream[`${isa}T${t}`] = { ms: r3(sec * 1e3), nsPerElementPerCandidate: r3((sec * 1e9) / actN / 80) };
    }
  }
  log(`MseStream observe+accumulate of ${actN} activations: ${JSON.stringify(stream)}`);
  const histSec = bestOf(rounds, () => {
    const h = new q.Histogram({ abs: true });
    h.add(act);
    h.percentile(99.99);
  });
  const histogram = { elements: actN, ms: r3(histSec * 1e3), melemPerSec: r1(actN / histSec / 1e6) };
  log(`Histogram add + percentile of ${actN} values: ${histogram.ms} ms (${histogram.melemPerSec} Melem/s)`);

  const report = {
    kind: 'packptq quantizer benchmark',
    mode: quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    // The load average at the end tells a reader whether other work shared the cores (2-thread
    // figures on a loaded 2-core machine measure the scheduler, not the kernels).
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', logicalCpus: os.cpus().length, node: process.version, loadAverage1m: r1(os.loadavg()[0]) },
    notes: [
      'fakeQuant: best native seconds per call (quant.timeFakeQuant); GB/s counts 4 bytes read + 4 written per element.',
      'mseSearch: 80 clipping candidates, p = 2.4, 4-bit asymmetric, per output channel (MatMul weights per column); ' +
        'includes the min/max pass. Times per layer, totals x layer count.',
      'scalar is the single-threaded reference (std::pow in double); speed-ups are against it, measured in the same run.',
      ...skipped,
    ],
    fakeQuant,
    mseSearch: { options: searchOpts, layers: mse, nets: totals },
    stream,
    histogram,
    seconds: r1((Date.now() - started) / 1000),
  };
  const dir = opts.outDir ?? path.join(packageRoot(), 'benchmarks', 'results');
  fs.mkdirSync(dir, { recursive: true });
  writeAtomic(path.join(dir, 'quant.json'), JSON.stringify(report, null, 2) + '\n');
  writeAtomic(path.join(dir, 'quant.md'), markdown(report, simd));
  log(`quantizer benchmark done in ${report.seconds} s; wrote ${path.join(dir, 'quant.json')} and quant.md`);
  return report;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function markdown(r: any, simd: string[]): string {
  const L: string[] = [];
  const table = (head: string[], rows: string[][], textCols: number) => {
    L.push(`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i < textCols ? '---' : '---:')).join('|')}|`);
    for (const row of rows) L.push(`| ${row.join(' | ')} |`);
  };
  L.push(`# Quantizer benchmark (${r.mode})`, '');
  L.push(`${r.machine.cpu}, ${r.machine.logicalCpus} logical CPUs, Node ${r.machine.node}, ${r.date}; 1-minute load average ${r.machine.loadAverage1m} at the end of the run.`, '');
  for (const n of r.notes) L.push(`- ${n}`);
  L.push('', '## Fake quantization (Gelem/s; speed-up vs scalar)', '');
  table(['case', 'elements', 'scalar', ...simd.flatMap((i) => [`${i} 1T`, `${i} 2T`, `${i} 1T GB/s`])],
    r.fakeQuant.map((f: any) => [f.name, String(f.elements), String(f.scalarGelemPerSec),
      ...simd.flatMap((i) => [`${f[i].gelemPerSecT1} (x${f[i].speedupVsScalarT1})`, `${f[i].gelemPerSecT2} (x${f[i].speedupVsScalarT2})`, String(f[i].gbPerSecT1)])]), 1);
  L.push('', '## BRECQ clipping search over the fixture weights (ms per layer)', '');
  table(['net', 'layer', 'x count', 'weights', 'scalar', ...simd.flatMap((i) => [`${i} 1T`, `${i} 2T`])],
    r.mseSearch.layers.map((m: any) => [m.net, m.layer, String(m.count), String(m.weights), String(m.scalarMs),
      ...simd.flatMap((i) => [`${m[i].msT1} (x${m[i].speedupVsScalarT1})`, `${m[i].msT2} (x${m[i].speedupVsScalarT2})`])]), 2);
  L.push('', '### Whole nets (sum over layers x count, ms)', '');
  table(['net', 'weights', 'scalar', ...simd.flatMap((i) => [`${i} 1T`, `${i} 2T`, `${i} ns/weight/candidate 1T`])],
    Object.entries<any>(r.mseSearch.nets).map(([net, t]) => [net, String(t.weights), String(t.scalarMs),
      ...simd.flatMap((i) => [`${t[`${i}MsT1`]} (x${t[`${i}SpeedupT1`]})`, String(t[`${i}MsT2`]), String(t[`nsPerWeightPerCandidate_${i}T1`])])]), 1);
  L.push('', `## One streamed activation pass (observe + accumulate + result, ${r.stream.elements} elements, 80 candidates)`, '');
  table(['variant', 'ms', 'ns per element per candidate'],
    Object.entries<any>(r.stream).filter(([k]) => k !== 'elements').map(([k, v]) => [k, String(v.ms), String(v.nsPerElementPerCandidate)]), 1);
  L.push('', `Histogram (|x|, add + 99.99th percentile) of ${r.histogram.elements} values: ${r.histogram.ms} ms, ${r.histogram.melemPerSec} Melem/s.`);
  L.push('', `Measured in ${r.seconds} s.`, '');
  return L.join('\n');
}

if (require.main === module) {
  runQuantBenchmarks({ quick: process.argv.includes('--quick') }).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
