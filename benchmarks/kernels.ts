/**
 * Kernel benchmark: FMA peak per ISA, SIMD GEMM on square and conv-im2col shapes, and the conv
 * layers of the resnet20 / mobilenetv2 fixtures at batch 32, for the scalar reference and each SIMD
 * ISA this CPU runs, on 1 and 2 threads. Every time is measured natively (kernels.timeGemm /
 * prepared conv .time run R repetitions inside one native call), best of several rounds, and every
 * figure is also given as a ratio measured in the same run (fraction of the measured FMA peak,
 * speed-up over the scalar reference), because these machines are shared and absolute times drift.
 *
 * Writes benchmarks/results/kernels.json and kernels.md. Quick mode (~1 min) measures fewer shapes,
 * for less time each; full mode (~4-5 min) all of them.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { native } from '../lib/native';
import { bestSeconds, fillPattern as fill } from '../lib/bench/measure';

export interface KernelBenchOptions {
  quick?: boolean;
  /** Where kernels.json / kernels.md go; defaults to <package root>/benchmarks/results. */
  outDir?: string;
  log?: (line: string) => void;
}

interface ConvLayer {
  net: string;
  name: string;
  count: number; // how many layers of the net have this exact shape
  C: number; H: number; W: number; M: number; K: number; stride: number; pad: number; group: number;
}

const BATCH = 32;

// resnet20 (fixtures/README.md): CIFAR ResNet-20 on 1x28x28, stages of 16/32/64 channels at 28/14/7,
// stride-2 3x3 convs and 1x1 stride-2 shortcuts entering stages 2 and 3.
const RESNET20: ConvLayer[] = [
  { net: 'resnet20', name: 'stem 3x3 1->16 @28', count: 1, C: 1, H: 28, W: 28, M: 16, K: 3, stride: 1, pad: 1, group: 1 },
  { net: 'resnet20', name: 'stage1 3x3 16->16 @28', count: 6, C: 16, H: 28, W: 28, M: 16, K: 3, stride: 1, pad: 1, group: 1 },
  { net: 'resnet20', name: 'stage2 3x3/2 16->32 @28', count: 1, C: 16, H: 28, W: 28, M: 32, K: 3, stride: 2, pad: 1, group: 1 },
  { net: 'resnet20', name: 'stage2 shortcut 1x1/2 16->32', count: 1, C: 16, H: 28, W: 28, M: 32, K: 1, stride: 2, pad: 0, group: 1 },
  { net: 'resnet20', name: 'stage2 3x3 32->32 @14', count: 5, C: 32, H: 14, W: 14, M: 32, K: 3, stride: 1, pad: 1, group: 1 },
  { net: 'resnet20', name: 'stage3 3x3/2 32->64 @14', count: 1, C: 32, H: 14, W: 14, M: 64, K: 3, stride: 2, pad: 1, group: 1 },
  { net: 'resnet20', name: 'stage3 shortcut 1x1/2 32->64', count: 1, C: 32, H: 14, W: 14, M: 64, K: 1, stride: 2, pad: 0, group: 1 },
  { net: 'resnet20', name: 'stage3 3x3 64->64 @7', count: 5, C: 64, H: 7, W: 7, M: 64, K: 3, stride: 1, pad: 1, group: 1 },
];

// mobilenetv2 (fixtures/README.md): 3x3 stem 1->16 stride 1, inverted residuals (t,c,n,s) =
// (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,2,1) (6,96,1,1) [expand 1x1, depthwise 3x3, project 1x1],
// final 1x1 96->384; all at 28 -> 14 -> 7.
function mobilenetLayers(): ConvLayer[] {
  const layers = new Map<string, ConvLayer>();
  const add = (name: string, C: number, H: number, M: number, K: number, stride: number, group: number) => {
    const key = `${C},${H},${M},${K},${stride},${group}`;
    const l = layers.get(key);
    if (l) l.count++;
    else layers.set(key, { net: 'mobilenetv2', name, count: 1, C, H, W: H, M, K, stride, pad: K === 3 ? 1 : 0, group });
  };
  add('stem 3x3 1->16 @28', 1, 28, 16, 3, 1, 1);
  let c = 16, h = 28;
  for (const [t, out, n, s] of [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 2, 1], [6, 96, 1, 1]]) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1, hidden = c * t;
      if (t !== 1) add(`expand 1x1 ${c}->${hidden} @${h}`, c, h, hidden, 1, 1, 1);
      add(`depthwise 3x3${stride > 1 ? '/2' : ''} ${hidden} @${h}`, hidden, h, hidden, 3, stride, hidden);
      h = Math.floor((h + 2 - 3) / stride) + 1;
      add(`project 1x1 ${hidden}->${out} @${h}`, hidden, h, out, 1, 1, 1);
      c = out;
    }
  }
  add(`last 1x1 ${c}->384 @${h}`, c, h, 384, 1, 1, 1);
  return [...layers.values()];
}

const outSize = (l: ConvLayer) => Math.floor((l.H + 2 * l.pad - l.K) / l.stride) + 1;
const convMacs = (l: ConvLayer) => (l.M * (l.C / l.group) * l.K * l.K * outSize(l) ** 2); // per image
const shapeOf = (l: ConvLayer, N: number) => ({
  N, C: l.C, H: l.H, W: l.W, M: l.M, KH: l.K, KW: l.K, strideH: l.stride, strideW: l.stride,
  padTop: l.pad, padLeft: l.pad, padBottom: l.pad, padRight: l.pad, group: l.group,
});

function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the package root from ' + __dirname);
    dir = up;
  }
  return dir;
}

const r1 = (x: number) => Math.round(x * 10) / 10;
const r3 = (x: number) => Math.round(x * 1000) / 1000;

export async function runKernelBenchmarks(opts: KernelBenchOptions = {}): Promise<object> {
  const k = native().kernels;
  const log = opts.log ?? ((line: string) => console.log(line));
  const quick = !!opts.quick;
  const budget = quick ? 0.04 : 0.12, rounds = quick ? 2 : 3;
  const started = Date.now();
  const variants: { name: string; supported: boolean; testOnly: boolean }[] = k.variants();
  const isas = variants.filter((v) => v.supported && !v.testOnly).map((v) => v.name);
  const simd = isas.filter((n) => n !== 'scalar');
  const skipped = variants.filter((v) => !v.supported).map((v) => `${v.name}: not supported by this CPU`);
  const threadsList = [1, 2];

  // ---- FMA peak ----
  const peak: Record<string, Record<string, number>> = {};
  for (const isa of isas) {
    peak[isa] = {};
    for (const t of threadsList) peak[isa][`t${t}`] = r1(k.peakGflops(isa, t, quick ? 0.25 : 0.6));
    log(`peak ${isa}: ${peak[isa].t1} GFLOP/s (1 thread), ${peak[isa].t2} (2 threads)`);
  }

  // ---- GEMM ----
  interface GemmShape { name: string; M: number; N: number; K: number }
  const squares = (quick ? [64, 256, 1024] : [64, 128, 256, 512, 1024]).map((n) => ({ name: `square ${n}`, M: n, N: n, K: n }));
  const allLayers = [...RESNET20, ...mobilenetLayers()];
  const im2col: GemmShape[] = [];
  const seen = new Set<string>();
  for (const l of allLayers) {
    if (l.group !== 1) continue; // depthwise layers run the direct kernel, not a GEMM
    const g = { name: `${l.net} ${l.name}`, M: l.M, N: outSize(l) ** 2, K: l.C * l.K * l.K };
    const key = `${g.M}x${g.N}x${g.K}`;
    if (!seen.has(key)) {
      seen.add(key);
      im2col.push(g);
    }
  }
  const attention: GemmShape = { name: 'vit attention scores 50x50x24', M: 50, N: 50, K: 24 };
  const gemmShapes = [...squares, ...(quick ? im2col.filter((_, i) => i % 3 === 0) : im2col), attention];
  const gemm: object[] = [];
  for (const s of gemmShapes) {
    const A = fill(s.M * s.K, 1), B = fill(s.K * s.N, 2), C = new Float32Array(s.M * s.N);
    const flop = 2 * s.M * s.N * s.K;
    const time = (isa: string, t: number) =>
      bestSeconds((reps) => k.timeGemm(isa, false, false, s.M, s.N, s.K, A, s.K, B, s.N, C, s.N, false, t, reps), budget, rounds);
    const scalarSec = s.M * s.N * s.K > 3e8 && quick ? NaN : time('scalar', 1);
    const row: Record<string, unknown> = { name: s.name, M: s.M, N: s.N, K: s.K, scalarGflops: r3(flop / scalarSec / 1e9) };
    const parts: string[] = [];
    for (const isa of simd) {
      const res: Record<string, number> = {};
      for (const t of threadsList) {
        const g = flop / time(isa, t) / 1e9;
        res[`gflopsT${t}`] = r1(g);
        res[`pctPeakT${t}`] = r1((100 * g) / peak[isa].t1);
        res[`speedupVsScalarT${t}`] = r1((g * scalarSec * 1e9) / flop);
      }
      res.scalingT2overT1 = r3(res.gflopsT2 / res.gflopsT1);
      row[isa] = res;
      parts.push(`${isa} ${res.gflopsT1}/${res.gflopsT2} GFLOP/s (${res.pctPeakT1}%/${res.pctPeakT2}% of 1-thread peak)`);
    }
    gemm.push(row);
    log(`gemm ${s.name} [${s.M}x${s.N}x${s.K}]: scalar ${row.scalarGflops}; ${parts.join('; ')}`);
  }

  // ---- conv layers at batch 32 ----
  const conv: object[] = [];
  const convLayers = quick ? allLayers.filter((l, i) => i % 2 === 0) : allLayers;
  for (const l of convLayers) {
    const shape = shapeOf(l, BATCH);
    const out = outSize(l);
    const x = fill(BATCH * l.C * l.H * l.W, 3), w = fill(l.M * (l.C / l.group) * l.K * l.K, 4), bias = fill(l.M, 5);
    const y = new Float32Array(BATCH * l.M * out * out);
    const flop = 2 * convMacs(l) * BATCH;
    const timePrepared = (isa: string, t: number) => {
      const p = k.prepareConv(isa, shape, w, bias);
      return bestSeconds((reps) => p.time(x, y, t, reps), budget, rounds);
    };
    const scalarSec = timePrepared('scalar', 1);
    const row: Record<string, unknown> = {
      net: l.net, layer: l.name, count: l.count, shape: `${BATCH}x${l.C}x${l.H}x${l.W} -> ${l.M}x${out}x${out}, k${l.K} s${l.stride} g${l.group}`,
      mflopPerBatch: r1(flop / 1e6), scalarGflops: r3(flop / scalarSec / 1e9),
    };
    const parts: string[] = [];
    for (const isa of simd) {
      const res: Record<string, number> = {};
      for (const t of threadsList) {
        const sec = timePrepared(isa, t);
        res[`msT${t}`] = r3(sec * 1e3);
        res[`gflopsT${t}`] = r1(flop / sec / 1e9);
        res[`pctPeakT${t}`] = r1((100 * flop) / sec / 1e9 / peak[isa].t1);
        res[`speedupVsScalarT${t}`] = r1(scalarSec / sec);
      }
      // One-shot conv2d (weights packed on every call) next to the prepared one.
      const unprepared = bestSeconds((reps) => k.timeConv2d(isa, shape, x, w, bias, y, 1, reps), budget, rounds);
      res.unpreparedOverPreparedT1 = r3(unprepared / (res.msT1 / 1e3));
      row[isa] = res;
      parts.push(`${isa} ${res.gflopsT1}/${res.gflopsT2} GFLOP/s, x${res.speedupVsScalarT1}/x${res.speedupVsScalarT2} vs scalar`);
    }
    conv.push(row);
    log(`conv ${l.net} ${l.name}: scalar ${row.scalarGflops} GFLOP/s; ${parts.join('; ')}`);
  }

  // Whole-net conv time per batch of 32 (sum over layers x count), only when every layer was measured.
  const nets: Record<string, unknown> = {};
  if (!quick)
    for (const net of ['resnet20', 'mobilenetv2']) {
      const rows = conv.filter((r) => (r as { net: string }).net === net) as Record<string, any>[];
      const layers = allLayers.filter((l) => l.net === net);
      const macs = layers.reduce((a, l) => a + l.count * convMacs(l), 0);
      const total: Record<string, number> = { convMacsPerImageM: r3(macs / 1e6) };
      total.scalarMs = r1(rows.reduce((a, r) => a + (r.count * r.mflopPerBatch) / r.scalarGflops, 0));
      for (const isa of simd)
        for (const t of threadsList) {
          total[`${isa}MsT${t}`] = r1(rows.reduce((a, r) => a + r.count * r[isa][`msT${t}`], 0));
          total[`${isa}SpeedupT${t}`] = r1(total.scalarMs / total[`${isa}MsT${t}`]);
        }
      nets[net] = total;
      log(`${net}: ${JSON.stringify(total)}`);
    }

  const report = {
    kind: 'packptq kernel benchmark',
    mode: quick ? 'quick' : 'full',
    date: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', logicalCpus: os.cpus().length, node: process.version, defaultIsa: k.defaultIsa() },
    notes: [
      'GFLOP/s = 2*M*N*K (or 2*MACs) / best native seconds per call; pctPeak = GFLOP/s / measured 1-thread FMA peak of the same ISA.',
      'scalar is the single-threaded reference (double accumulation); speed-ups are against it, measured in the same run.',
      'conv rows use prepared convs (weights packed once); unpreparedOverPreparedT1 = one-shot conv2d time / prepared time.',
      ...skipped,
    ],
    batch: BATCH,
    peakGflops: peak,
    gemm,
    conv,
    nets,
    seconds: r1((Date.now() - started) / 1000),
  };
  const dir = opts.outDir ?? path.join(packageRoot(), 'benchmarks', 'results');
  fs.mkdirSync(dir, { recursive: true });
  writeAtomic(path.join(dir, 'kernels.json'), JSON.stringify(report, null, 2) + '\n');
  writeAtomic(path.join(dir, 'kernels.md'), markdown(report, simd));
  log(`kernel benchmark done in ${report.seconds} s; wrote ${path.join(dir, 'kernels.json')} and kernels.md`);
  return report;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

function markdown(r: any, simd: string[]): string {
  const L: string[] = [];
  L.push(`# Kernel benchmark (${r.mode})`, '');
  L.push(`${r.machine.cpu}, ${r.machine.logicalCpus} logical CPUs, Node ${r.machine.node}, ${r.date}. Default ISA: ${r.machine.defaultIsa}.`, '');
  for (const n of r.notes) L.push(`- ${n}`);
  L.push('', '## FMA peak (GFLOP/s)', '', '| ISA | 1 thread | 2 threads |', '|---|---:|---:|');
  for (const [isa, p] of Object.entries<any>(r.peakGflops)) L.push(`| ${isa} | ${p.t1} | ${p.t2} |`);
  L.push('', '## SGEMM (row-major, no transpose)', '');
  const gh = ['shape', 'M x N x K', 'scalar GFLOP/s'];
  for (const isa of simd) gh.push(`${isa} 1T GFLOP/s (% peak)`, `${isa} 2T GFLOP/s (% 1T peak)`, `${isa} 2T/1T`, `${isa} 1T vs scalar`);
  L.push(`| ${gh.join(' | ')} |`, `|${gh.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`);
  for (const g of r.gemm) {
    const c = [g.name, `${g.M} x ${g.N} x ${g.K}`, String(g.scalarGflops)];
    for (const isa of simd) {
      const x = g[isa];
      c.push(`${x.gflopsT1} (${x.pctPeakT1}%)`, `${x.gflopsT2} (${x.pctPeakT2}%)`, `${x.scalingT2overT1}`, `x${x.speedupVsScalarT1}`);
    }
    L.push(`| ${c.join(' | ')} |`);
  }
  L.push('', `## Conv layers at batch ${r.batch} (prepared)`, '');
  const ch = ['net', 'layer', 'x count', 'shape', 'MFLOP', 'scalar GFLOP/s'];
  for (const isa of simd) ch.push(`${isa} 1T ms`, `${isa} 2T ms`, `${isa} 1T GFLOP/s`, `${isa} speed-up 1T / 2T`, `${isa} one-shot / prepared`);
  L.push(`| ${ch.join(' | ')} |`, `|${ch.map((_, i) => (i < 4 ? '---' : '---:')).join('|')}|`);
  for (const c of r.conv) {
    const cells = [c.net, c.layer, String(c.count), c.shape, String(c.mflopPerBatch), String(c.scalarGflops)];
    for (const isa of simd) {
      const x = c[isa];
      cells.push(String(x.msT1), String(x.msT2), String(x.gflopsT1), `x${x.speedupVsScalarT1} / x${x.speedupVsScalarT2}`, String(x.unpreparedOverPreparedT1));
    }
    L.push(`| ${cells.join(' | ')} |`);
  }
  if (Object.keys(r.nets).length) {
    L.push('', `## All conv layers of each net, batch ${r.batch} (sum of layer times x count)`, '');
    const nh = ['net', 'conv MMACs/image', 'scalar ms'];
    for (const isa of simd) nh.push(`${isa} 1T ms`, `${isa} 2T ms`, `${isa} speed-up 1T / 2T`);
    L.push(`| ${nh.join(' | ')} |`, `|${nh.map((_, i) => (i < 1 ? '---' : '---:')).join('|')}|`);
    for (const [net, t] of Object.entries<any>(r.nets)) {
      const cells = [net, String(t.convMacsPerImageM), String(t.scalarMs)];
      for (const isa of simd) cells.push(String(t[`${isa}MsT1`]), String(t[`${isa}MsT2`]), `x${t[`${isa}SpeedupT1`]} / x${t[`${isa}SpeedupT2`]}`);
      L.push(`| ${cells.join(' | ')} |`);
    }
  }
  L.push('', `Measured in ${r.seconds} s.`, '');
  return L.join('\n');
}

if (require.main === module) {
  runKernelBenchmarks({ quick: process.argv.includes('--quick') }).catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
