/**
 * One reconstruction step (forward + backward) of resnet20's first two residual blocks as one unit
 * at batch 32 — AdaRound weights, LSQ activation steps with QDrop (p = 0.5), relus and residual adds,
 * the unit the issue compares with the authors' PyTorch release — on the differentiable executor
 * directly, printing wall and CPU milliseconds per step as JSON.
 *   node dist/benchmarks/recon-step.js [threads=1] [iters=20]
 * PACKPTQ_ADDON=<path to another build's packptq.node> runs the same step on that build, so two
 * versions can be timed alternately in one session (benchmarks/results/recon-step.md).
 */
import { native } from '../lib/native';

interface Tensor { shape: number[]; data?: Float32Array }
interface Op { type: string; name: string; inputs: number[]; outputs: number[]; attrs: Record<string, number | number[]> }

function twoBlockUnit(): { desc: { tensors: Tensor[]; inputs: number[]; outputs: number[]; ops: Op[] }; trainable: number[] } {
  let s = 1;
  const rnd = (n: number, lo: number, hi: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) { s = (Math.imul(s, 1103515245) + 12345) >>> 0; a[i] = lo + ((hi - lo) * s) / 2 ** 32; }
    return a;
  };
  const desc = { tensors: [] as Tensor[], inputs: [] as number[], outputs: [] as number[], ops: [] as Op[] };
  const trainable: number[] = [];
  const T = (shape: number[], data?: Float32Array, train = false) => {
    desc.tensors.push(data ? { shape, data } : { shape });
    const id = desc.tensors.length - 1;
    if (train) trainable.push(id);
    return id;
  };
  const op = (type: string, inputs: number[], shape: number[], attrs: Record<string, number | number[]> = {}) => {
    const o = T(shape);
    desc.ops.push({ type, name: `${type}_${desc.ops.length}`, inputs, outputs: [o], attrs });
    return o;
  };
  const S = [32, 16, 28, 28];
  const conv = { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
  let seed = 1;
  const qconv = (inp: number) => {
    const a = op('LsqQuant', [inp, T([1], Float32Array.of(0.05), true)], S, { zero_point: 0, qmin: 0, qmax: 15, seed: seed++ });
    const V = T([16, 16, 3, 3], rnd(2304, -1, 1), true);
    const w = op('AdaRound', [T([16, 16, 3, 3], rnd(2304, -0.12, 0.12)), V, T([16], new Float32Array(16).fill(0.02)), T([16], new Float32Array(16).fill(8))], [16, 16, 3, 3], { axis: 0, qmin: 0, qmax: 15 });
    return op('Conv', [a, w, T([16], rnd(16, -0.05, 0.05))], S, conv);
  };
  let x = T(S);
  desc.inputs.push(x);
  for (let b = 0; b < 2; b++) {
    const r1 = op('Relu', [qconv(x)], S);
    x = op('Relu', [op('Add', [qconv(r1), x], S)], S);
  }
  desc.outputs.push(x);
  return { desc, trainable };
}

function main(): void {
  const threads = Number(process.argv[2] ?? 1), iters = Number(process.argv[3] ?? 20);
  const { desc, trainable } = twoBlockUnit();
  const p = new (native().GradProgram)(desc, { dtype: 'float32', trainable, threads, inputGrads: false });
  p.setOption('', 'drop', 0.5);
  const n = 32 * 16 * 784;
  const x = new Float32Array(n).map((_, i) => ((i * 2654435761) % 1000) / 1000);
  const g = [new Float32Array(n).map((_, i) => (((i * 40503) % 2000) - 1000) / 1000)];
  for (let i = 0; i < 3; i++) { p.forward([x]); p.backward(g); } // warm-up: first touch of every buffer
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  for (let i = 0; i < iters; i++) { p.forward([x]); p.backward(g); }
  const c = process.cpuUsage(c0);
  const wallMs = Number(process.hrtime.bigint() - t0) / 1e6 / iters;
  console.log(JSON.stringify({ threads, iters, wallMs, cpuMs: (c.user + c.system) / 1000 / iters, itersPerSecond: 1000 / wallMs }));
}

main();
