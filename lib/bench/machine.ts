/**
 * What `packptq bench` measures on the machine it runs on: a model's inference throughput at one
 * batch for 1..N threads, beside the same model with fake quantization (quantized weights and a
 * FakeQuant before every quantized activation read) in the same rounds, and the SIMD GEMM's
 * GFLOP/s as a fraction of the measured FMA peak. Answers "how fast will packptq be here" before
 * a long quantize run, with the ratios (overhead, fraction of peak) that stay meaningful on a
 * loaded machine.
 */
import * as os from 'os';
import { Dataset, fitToInput, makeDataset } from '../data/dataset';
import { chooseSubset } from '../data/subset';
import { Model } from '../engine/model';
import { AbortError, expected } from '../errors';
import { discoverBlocks } from '../graph/blocks';
import { calibrateActivations, calibrateWeights } from '../quant/calibrate';
import { planQuantization } from '../quant/plan';
import { simulatedGraph } from '../quant/simulate';
import { bestRatesAlternating, defaultIsa, fillPattern, gemmGflops, peakGflops } from './measure';

export interface BenchOptions {
  /** Batch size of the inference runs (default 32). */
  batch?: number;
  /** Measure threads 1..maxThreads (default: the logical CPUs of this machine). */
  maxThreads?: number;
  /** Seconds per measurement round (default 0.5). */
  seconds?: number;
  /** Rounds per measurement, best kept (default 3). */
  rounds?: number;
  /** Widths of the fake-quantized model (default 8 and 8). */
  wBits?: number;
  aBits?: number;
  /** Square GEMM size M = N = K (default 256). */
  gemmSize?: number;
  /**
   * Input samples (the first batch is timed, and it calibrates the activation ranges). Without
   * it a fixed pseudo-random pattern is used: the kernels' speed does not depend on the values.
   */
  data?: Dataset;
  signal?: AbortSignal;
  /** One line per finished measurement, for a progress display. */
  log?: (line: string) => void;
}

export interface ThroughputRow {
  threads: number;
  /** Images per second of the FP model (best round). */
  imagesPerSecond: number;
  /** Images per second of the fake-quantized model, measured in alternation with the FP one. */
  simulatedImagesPerSecond: number;
  /** imagesPerSecond / simulatedImagesPerSecond − 1: the extra time fake quantization costs. */
  fakeQuantOverhead: number;
}

export interface GemmRow {
  threads: number;
  gflops: number;
  /** Measured FMA peak of the same ISA on the same number of threads. */
  peakGflops: number;
  /** gflops / peakGflops. */
  fractionOfPeak: number;
}

export interface BenchResult {
  machine: { cpu: string; logicalCpus: number; node: string; isa: string };
  model: string;
  batch: number;
  wBits: number;
  aBits: number;
  input: 'data' | 'pattern';
  throughput: ThroughputRow[];
  gemm: { isa: string; M: number; N: number; K: number; rows: GemmRow[] };
  seconds: number;
}

function positiveInt(v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 1) throw expected('a positive integer', name, v);
  return v;
}

export async function benchModel(model: Model, o: BenchOptions = {}): Promise<BenchResult> {
  const t0 = process.hrtime.bigint();
  const batch = positiveInt(o.batch, '--batch', 32);
  const maxThreads = positiveInt(o.maxThreads, '--threads', os.cpus().length || 1);
  const rounds = positiveInt(o.rounds, '--rounds', 3);
  const gemmSize = positiveInt(o.gemmSize, '--gemm-size', 256);
  const seconds = o.seconds ?? 0.5;
  if (!(seconds > 0 && seconds <= 60)) throw expected('a number of seconds in (0, 60]', '--seconds', seconds);
  const wBits = o.wBits ?? 8, aBits = o.aBits ?? 8;
  const log = o.log ?? (() => undefined);
  const check = () => { if (o.signal?.aborted) throw new AbortError(); };

  const sampleShape = model.inputShapeFor(1).slice(1);
  const data = o.data ?? makeDataset({
    source: 'pattern', data: fillPattern(batch * sampleShape.reduce((a, b) => a * b, 1), 7), sampleShape, pixels: false,
  });
  fitToInput(data, model.input.shape!, model.input.name);
  // The timed batch; a smaller data set is cycled so that every batch is full.
  const x = new Float32Array(batch * sampleShape.reduce((a, b) => a * b, 1));
  const per = x.length / batch;
  for (let i = 0; i < batch; i++) x.set(data.batch(i % data.samples, 1), i * per);

  // The simulated model: calibrated by min/max on the same samples (ranges do not change speed).
  const plan = planQuantization(model.graph, discoverBlocks(model.graph), { wBits, aBits });
  const calib = chooseSubset(data, batch, 0);
  const acts = await calibrateActivations(model, plan, calib, { init: 'minmax', batch, threads: 1, signal: o.signal });
  const simulated = Model.fromGraph(simulatedGraph(model.graph, { weights: await calibrateWeights(model.graph, plan, 'minmax', 1, o.signal), acts }), `${model.file} (W${wBits}A${aBits} simulated)`);

  const throughput: ThroughputRow[] = [];
  for (let threads = 1; threads <= maxThreads; threads++) {
    check();
    const fp = model.program(batch, { threads }), sim = simulated.program(batch, { threads });
    const [a, b] = bestRatesAlternating([() => fp.runSync([x]), () => sim.runSync([x])], seconds, rounds);
    const row = { threads, imagesPerSecond: batch * a, simulatedImagesPerSecond: batch * b, fakeQuantOverhead: a / b - 1 };
    throughput.push(row);
    log(`threads ${threads}: ${row.imagesPerSecond.toFixed(0)} img/s FP, ${row.simulatedImagesPerSecond.toFixed(0)} img/s simulated`);
    await new Promise((r) => setImmediate(r)); // let an abort (or a signal handler) run between rows
  }

  const isa = defaultIsa();
  const rows: GemmRow[] = [];
  for (let threads = 1; threads <= maxThreads; threads++) {
    check();
    // Peak and GEMM in alternating rounds, best of each: both see the same load on a shared machine.
    let peak = 0, gflops = 0;
    for (let r = 0; r < rounds; r++) {
      peak = Math.max(peak, peakGflops(isa, threads, seconds));
      gflops = Math.max(gflops, gemmGflops(isa, gemmSize, gemmSize, gemmSize, threads, seconds, 1));
    }
    rows.push({ threads, gflops, peakGflops: peak, fractionOfPeak: gflops / peak });
    log(`gemm ${gemmSize}³ ${isa} threads ${threads}: ${gflops.toFixed(1)} GFLOP/s of ${peak.toFixed(1)} peak`);
    await new Promise((r) => setImmediate(r));
  }

  return {
    machine: { cpu: os.cpus()[0]?.model ?? 'unknown', logicalCpus: os.cpus().length, node: process.version, isa },
    model: model.file, batch, wBits, aBits, input: o.data ? 'data' : 'pattern',
    throughput,
    gemm: { isa, M: gemmSize, N: gemmSize, K: gemmSize, rows },
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
  };
}
