/**
 * Every differentiable op, one op per program, in float64: backward()'s gradient of L = Σ r ⊙ y with
 * respect to every float input and every trainable constant against central finite differences.
 * Bound: relative error ≤ 1e-5 everywhere (helpers.ts defines the error). Inputs of kinked ops
 * (Relu, Clip, LeakyRelu, HardSigmoid, HardSwish, Abs) are drawn away from their kinks; MaxPool and
 * ReduceMax inputs are continuous random values, so ties (the kink there) have probability zero.
 * Each case's forward pass is also compared with the inference executor (native.Program, float32).
 */
import { native } from '../../lib/native';
import { Attr, Builder, forwardVsProgram, gradCheck, input, konst, param, randArray, single, Spec, numel } from './helpers';

const TOL = 1e-5;
let seed = 1;
const rnd = (shape: number[], lo = -2, hi = 2, avoid: number[] = []) => randArray(numel(shape), seed++, lo, hi, avoid);
const I = (shape: number[], lo?: number, hi?: number, avoid?: number[]) => input(shape, rnd(shape, lo, hi, avoid));
const P = (shape: number[], lo?: number, hi?: number) => param(shape, rnd(shape, lo, hi));
const K = (shape: number[], data: number[]) => konst(shape, Float64Array.from(data));

interface Case { name: string; build: () => Builder; maxPerTensor?: number }
const op = (type: string, ins: (Spec | null)[], outs: number[][], attrs: Record<string, Attr> = {}) => () => single(type, ins, outs, attrs);

/**
 * float32 runs its own code (the SIMD inference kernels for conv forward and stride-1 input
 * gradients, GEMM for weight gradients): its outputs and gradients must agree with float64's, on
 * the scalar reference kernels and on every SIMD variant this CPU has.
 */
function float32Agrees(b: Builder): number {
  const supported = native().simdInfo().supported as Record<string, boolean>;
  const ref = new (native().GradProgram)(b.desc, { dtype: 'float64', trainable: b.trainable });
  const y64: Float64Array[] = ref.forward(b.feeds.map((f) => Float64Array.from(f)));
  const rs = y64.map((o, k) => randArray(o.length, 4000 + k, -1, 1));
  const g64 = ref.backward(rs) as { inputs: (Float64Array | null)[]; params: Float64Array[] };
  let worst = 0;
  const rel = (a: ArrayLike<number>, e: ArrayLike<number>) => {
    let scale = 1e-3, err = 0;
    for (let i = 0; i < e.length; i++) scale = Math.max(scale, Math.abs(e[i]));
    for (let i = 0; i < e.length; i++) err = Math.max(err, Math.abs(a[i] - e[i]) / scale);
    return err;
  };
  for (const isa of ['scalar', 'avx2', 'avx512'].filter((i) => supported[i])) {
    for (const threads of [1, 2]) {
      const p = new (native().GradProgram)({ ...b.desc, isa }, { dtype: 'float32', trainable: b.trainable, threads });
      const y32: Float32Array[] = p.forward(b.feeds.map((f) => Float32Array.from(f)));
      const g32 = p.backward(rs.map((r) => Float32Array.from(r))) as { inputs: (Float32Array | null)[]; params: Float32Array[] };
      y32.forEach((y, k) => (worst = Math.max(worst, rel(y, y64[k]))));
      g32.inputs.forEach((g, k) => { if (g && g64.inputs[k]) worst = Math.max(worst, rel(g, g64.inputs[k]!)); });
      g32.params.forEach((g, k) => (worst = Math.max(worst, rel(g, g64.params[k]))));
    }
  }
  return worst;
}

function run(cases: Case[], opts: { float32?: boolean } = {}) {
  test.each(cases.map((c) => [c.name, c] as [string, Case]))('%s', (_n, c) => {
    const b = c.build();
    const r = gradCheck(b, { maxPerTensor: c.maxPerTensor });
    expect(r.checked).toBeGreaterThan(0);
    if (r.maxErr > TOL) throw new Error(`max relative error ${r.maxErr} at ${r.worst}`);
    // The forward pass the gradients belong to is the inference executor's (float32 rounding).
    expect(forwardVsProgram(b)).toBeLessThan(1e-5);
    if (opts.float32) expect(float32Agrees(b)).toBeLessThan(1e-5);
    if (process.env.PACKPTQ_GRAD_VERBOSE) console.log(`${c.name}: ${r.checked} elements, max rel err ${r.maxErr.toExponential(2)}`);
  });
}

const conv = (k: number[], strides: number[], pads: number[], dilations: number[], group = 1) => ({ kernel: k, strides, pads, dilations, group });

describe('Conv', () => {
  run([
    { name: '3x3 pad 1, weight and bias trainable', build: op('Conv', [I([2, 3, 5, 5]), P([4, 3, 3, 3]), P([4])], [[2, 4, 5, 5]], conv([3, 3], [1, 1], [1, 1, 1, 1], [1, 1])) },
    { name: 'strided 2, asymmetric pads', build: op('Conv', [I([1, 2, 7, 6]), P([3, 2, 3, 2]), P([3])], [[1, 3, 4, 3]], conv([3, 2], [2, 2], [1, 0, 1, 1], [1, 1])) },
    { name: 'dilated 2, pad 2', build: op('Conv', [I([2, 2, 6, 6]), P([2, 2, 3, 3])], [[2, 2, 6, 6]], conv([3, 3], [1, 1], [2, 2, 2, 2], [2, 2])) },
    { name: 'grouped (group 2)', build: op('Conv', [I([2, 4, 5, 5]), P([6, 2, 3, 3]), P([6])], [[2, 6, 3, 3]], conv([3, 3], [1, 1], [0, 0, 0, 0], [1, 1], 2)) },
    { name: 'depthwise stride 2 pad 1', build: op('Conv', [I([2, 4, 6, 6]), P([4, 1, 3, 3]), P([4])], [[2, 4, 3, 3]], conv([3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 4)) },
    { name: '1x1 (direct GEMM path)', build: op('Conv', [I([2, 5, 3, 4]), P([3, 5, 1, 1]), P([3])], [[2, 3, 3, 4]], conv([1, 1], [1, 1], [0, 0, 0, 0], [1, 1])) },
    { name: '1x1 stride 2', build: op('Conv', [I([1, 3, 5, 5]), P([2, 3, 1, 1])], [[1, 2, 3, 3]], conv([1, 1], [2, 2], [0, 0, 0, 0], [1, 1])) },
    { name: '1-D as H = 1, stride 2, dilation 2', build: op('Conv', [I([2, 3, 1, 9]), P([2, 3, 1, 3])], [[2, 2, 1, 3]], conv([1, 3], [1, 2], [0, 1, 0, 0], [1, 2])) },
    { name: 'weight as a runtime input', build: op('Conv', [I([1, 2, 4, 4]), I([3, 2, 2, 2]), I([3])], [[1, 3, 3, 3]], conv([2, 2], [1, 1], [0, 0, 0, 0], [1, 1])) },
    { name: 'depthwise, channel multiplier 2, stride 2, dilation (1,2), asymmetric pads', build: op('Conv', [I([2, 3, 7, 7]), P([6, 1, 3, 3]), P([6])], [[2, 6, 4, 2]], conv([3, 3], [2, 2], [1, 0, 1, 1], [1, 2], 3)) },
    { name: 'depthwise 5x5 stride 1 on 9x9, 16 channels', build: op('Conv', [I([3, 16, 9, 9]), P([16, 1, 5, 5])], [[3, 16, 9, 9]], conv([5, 5], [1, 1], [2, 2, 2, 2], [1, 1], 16)) },
    { name: 'depthwise stride 1 pad 1 (the transposed-conv input gradient)', build: op('Conv', [I([3, 8, 7, 7]), P([8, 1, 3, 3]), P([8])], [[3, 8, 7, 7]], conv([3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 8)) },
    { name: 'asymmetric pads, stride 1, 16 channels', build: op('Conv', [I([2, 16, 6, 5]), P([16, 16, 3, 3]), P([16])], [[2, 16, 5, 5]], conv([3, 3], [1, 1], [0, 1, 1, 1], [1, 1])) },
    { name: 'stride 2, dilation (1,2), 8 channels (channels-last weight gradient)', build: op('Conv', [I([2, 8, 9, 9]), P([4, 8, 3, 3]), P([4])], [[2, 4, 4, 3]], conv([3, 3], [2, 2], [1, 0, 0, 1], [1, 2])) },
    { name: 'group 2 of 8 channels, pad 1', build: op('Conv', [I([1, 16, 6, 6]), P([8, 8, 3, 3]), P([8])], [[1, 8, 6, 6]], conv([3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 2)) },
    // Output rows of 256+ positions take the windowed weight gradient (train/grad_ops_linear.cpp).
    { name: 'windowed weight gradient: 3x3 pad 1, 16x16, 6 output channels', build: op('Conv', [I([2, 3, 16, 16]), P([6, 3, 3, 3]), P([6])], [[2, 6, 16, 16]], conv([3, 3], [1, 1], [1, 1, 1, 1], [1, 1])) },
    { name: 'windowed weight gradient: dilation 2, asymmetric pads, group 2', build: op('Conv', [I([1, 4, 17, 18]), P([4, 2, 3, 3])], [[1, 4, 14, 17]], conv([3, 3], [1, 1], [1, 2, 0, 1], [2, 2], 2)) },
    { name: 'windowed weight gradient: 1x1 (reads x and dY in place)', build: op('Conv', [I([2, 5, 16, 17]), P([9, 5, 1, 1])], [[2, 9, 16, 17]], conv([1, 1], [1, 1], [0, 0, 0, 0], [1, 1])) },
  ], { float32: true });
});

describe('Gemm', () => {
  run([
    { name: 'plain, C [N]', build: op('Gemm', [I([3, 4]), P([4, 5]), P([5])], [[3, 5]]) },
    { name: 'transB, alpha 0.7, beta 1.3, C [M,N]', build: op('Gemm', [I([3, 4]), P([5, 4]), P([3, 5])], [[3, 5]], { transB: 1, alpha: 0.7, beta: 1.3 }) },
    { name: 'transA, C [M,1]', build: op('Gemm', [I([4, 3]), P([4, 5]), P([3, 1])], [[3, 5]], { transA: 1 }) },
    { name: 'transA transB, scalar C, alpha 2', build: op('Gemm', [I([4, 3]), I([5, 4]), P([])], [[3, 5]], { transA: 1, transB: 1, alpha: 2, beta: 0.5 }) },
    { name: 'no C', build: op('Gemm', [I([2, 6]), P([6, 3])], [[2, 3]]) },
  ]);
});

describe('MatMul', () => {
  run([
    { name: '2-D', build: op('MatMul', [I([3, 4]), P([4, 5])], [[3, 5]]) },
    { name: 'linear over tokens with bias (one tall GEMM)', build: op('MatMul', [I([2, 3, 4]), P([4, 5]), P([5])], [[2, 3, 5]]) },
    { name: 'attention q·kᵀ shape, both batched', build: op('MatMul', [I([2, 3, 4, 5]), I([2, 3, 5, 4])], [[2, 3, 4, 4]]) },
    { name: 'broadcast batch dims [2,1,3,4]x[1,3,4,2]', build: op('MatMul', [I([2, 1, 3, 4]), I([1, 3, 4, 2])], [[2, 3, 3, 2]]) },
    { name: 'shared A, batched B', build: op('MatMul', [P([3, 4]), I([2, 4, 5])], [[2, 3, 5]]) },
    { name: '1-D A', build: op('MatMul', [I([4]), P([4, 3])], [[3]]) },
    { name: '1-D B', build: op('MatMul', [I([2, 3, 4]), I([4])], [[2, 3]]) },
  ]);
});

describe('binary ops with broadcasting', () => {
  const cases: Case[] = [];
  for (const type of ['Add', 'Sub', 'Mul', 'Div']) {
    const lo = type === 'Div' ? 0.5 : -2;
    cases.push({ name: `${type} same shape`, build: op(type, [I([2, 3, 4]), I([2, 3, 4], lo, 2)], [[2, 3, 4]]) });
    cases.push({ name: `${type} [2,3,4] with [3,1]`, build: op(type, [I([2, 3, 4]), P([3, 1], lo, 2)], [[2, 3, 4]]) });
    cases.push({ name: `${type} [4] with [2,3,4]`, build: op(type, [I([4]), I([2, 3, 4], lo, 2)], [[2, 3, 4]]) });
    cases.push({ name: `${type} [2,1,4] with [3,1] and scalar-like`, build: op(type, [I([2, 1, 4]), I([3, 1], lo, 2)], [[2, 3, 4]]) });
    cases.push({ name: `${type} with scalar []`, build: op(type, [I([3, 2]), P([], lo, 2)], [[3, 2]]) });
  }
  cases.push({ name: 'Pow, constant exponent 2.5', build: op('Pow', [I([2, 3], 0.2, 2), K([1], [2.5])], [[2, 3]]) });
  cases.push({ name: 'Pow, constant integer exponent 3 on negative bases', build: op('Pow', [I([2, 3], -2, 2), K([], [3])], [[2, 3]]) });
  cases.push({ name: 'Pow, trainable exponent broadcast [3]', build: op('Pow', [I([2, 3], 0.2, 2), P([3], 0.5, 2)], [[2, 3]]) });
  run(cases);
});

describe('unary ops', () => {
  const s = [2, 3, 5];
  run([
    { name: 'Sqrt', build: op('Sqrt', [I(s, 0.1, 3)], [s]) },
    { name: 'Relu', build: op('Relu', [I(s, -2, 2, [0])], [s]) },
    { name: 'Clip', build: op('Clip', [I(s, -2, 2, [-0.5, 0.7])], [s], { min: -0.5, max: 0.7 }) },
    { name: 'Clip max only', build: op('Clip', [I(s, -2, 2, [0.3])], [s], { max: 0.3 }) },
    { name: 'LeakyRelu', build: op('LeakyRelu', [I(s, -2, 2, [0])], [s], { alpha: 0.1 }) },
    { name: 'Sigmoid', build: op('Sigmoid', [I(s, -4, 4)], [s]) },
    { name: 'Tanh', build: op('Tanh', [I(s, -3, 3)], [s]) },
    { name: 'HardSigmoid', build: op('HardSigmoid', [I(s, -4, 4, [-2.5, 2.5])], [s], { alpha: 0.2, beta: 0.5 }) },
    { name: 'HardSwish', build: op('HardSwish', [I(s, -5, 5, [-3, 3])], [s]) },
    { name: 'Erf', build: op('Erf', [I(s, -2, 2)], [s]) },
    { name: 'Gelu none', build: op('Gelu', [I(s, -3, 3)], [s], { approximate: 'none' }) },
    { name: 'Gelu tanh', build: op('Gelu', [I(s, -3, 3)], [s], { approximate: 'tanh' }) },
    { name: 'Abs', build: op('Abs', [I(s, -2, 2, [0])], [s]) },
    { name: 'Neg', build: op('Neg', [I(s)], [s]) },
    { name: 'Exp', build: op('Exp', [I(s)], [s]) },
    { name: 'Log', build: op('Log', [I(s, 0.2, 3)], [s]) },
    { name: 'Reciprocal', build: op('Reciprocal', [I(s, 0.5, 2)], [s]) },
    { name: 'Identity', build: op('Identity', [I(s)], [s]) },
  ]);
});

// float32 takes the ISA's vector kernels for the exact Gelu (forward and derivative) and for
// Softmax / LogSoftmax over contiguous rows (kernels/conv_act_impl.h): checked against float64's
// functors on vector tails, wide input ranges and an input gradient that accumulates.
describe('float32 vector Gelu and Softmax against float64', () => {
  const twoGelus = () => {
    const b = new Builder();
    const x = b.add(I([2, 21], -5, 5));
    const [y1] = b.op('Gelu', [x], [[2, 21]], { approximate: 'none' });
    const [y2] = b.op('Gelu', [x], [[2, 21]], { approximate: 'none' });
    return b.output(y1, y2);
  };
  run([
    { name: 'Gelu none, 111 elements on [-6, 6]', build: op('Gelu', [I([3, 37], -6, 6)], [[3, 37]], { approximate: 'none' }) },
    { name: 'Gelu none twice on one input (accumulated gradient)', build: twoGelus },
    { name: 'Softmax over attention-like rows of 50', build: op('Softmax', [I([4, 50], -6, 6)], [[4, 50]], { axis: 1 }) },
    { name: 'LogSoftmax over rows of 13', build: op('LogSoftmax', [I([3, 13], -4, 4)], [[3, 13]], { axis: 1 }) },
  ], { float32: true });
});

describe('softmax and normalisation', () => {
  run([
    { name: 'Softmax over the last axis', build: op('Softmax', [I([3, 6], -3, 3)], [[3, 6]], { axis: 1 }) },
    { name: 'Softmax over an inner axis', build: op('Softmax', [I([2, 5, 3], -3, 3)], [[2, 5, 3]], { axis: 1 }) },
    { name: 'LogSoftmax over an inner axis', build: op('LogSoftmax', [I([2, 4, 3], -3, 3)], [[2, 4, 3]], { axis: 1 }) },
    { name: 'LogSoftmax over the last axis', build: op('LogSoftmax', [I([4, 5], -3, 3)], [[4, 5]], { axis: 1 }) },
    { name: 'LayerNorm over the last axis, scale and bias trainable', build: op('LayerNormalization', [I([2, 3, 8]), P([8], 0.5, 1.5), P([8])], [[2, 3, 8]], { axis: 2, epsilon: 1e-5 }) },
    { name: 'LayerNorm over the last two axes', build: op('LayerNormalization', [I([2, 3, 4]), P([3, 4], 0.5, 1.5), P([3, 4])], [[2, 3, 4]], { axis: 1, epsilon: 1e-3 }) },
    { name: 'LayerNorm, scalar scale, no bias', build: op('LayerNormalization', [I([3, 5]), P([1], 0.5, 1.5)], [[3, 5]], { axis: 1, epsilon: 1e-5 }) },
    { name: 'LayerNorm with Mean and InvStdDev outputs', build: op('LayerNormalization', [I([3, 6]), P([6], 0.5, 1.5), P([6])], [[3, 6], [3, 1], [3, 1]], { axis: 1, epsilon: 1e-5 }) },
    { name: 'BatchNorm, every input trainable', build: op('BatchNormalization', [I([2, 3, 2, 2]), P([3], 0.5, 1.5), P([3]), P([3]), P([3], 0.5, 2)], [[2, 3, 2, 2]], { epsilon: 1e-5 }) },
  ]);
});

describe('pools and reductions', () => {
  const pool = (k: number[], strides: number[], pads: number[], extra: Record<string, Attr> = {}) => ({ kernel: k, strides, pads, dilations: [1, 1], ...extra });
  run([
    { name: 'MaxPool 2x2 stride 2', build: op('MaxPool', [I([2, 2, 4, 4])], [[2, 2, 2, 2]], pool([2, 2], [2, 2], [0, 0, 0, 0])) },
    { name: 'MaxPool 3x3 stride 2 pad 1', build: op('MaxPool', [I([1, 2, 5, 5])], [[1, 2, 3, 3]], pool([3, 3], [2, 2], [1, 1, 1, 1])) },
    { name: 'MaxPool ceil-mode output', build: op('MaxPool', [I([1, 1, 5, 5])], [[1, 1, 3, 3]], pool([2, 2], [2, 2], [0, 0, 0, 0])) },
    { name: 'MaxPool dilated', build: op('MaxPool', [I([1, 2, 5, 5])], [[1, 2, 3, 3]], { kernel: [2, 2], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [2, 2] }) },
    { name: 'AveragePool pad 1, count_include_pad 0', build: op('AveragePool', [I([1, 2, 5, 5])], [[1, 2, 3, 3]], pool([3, 3], [2, 2], [1, 1, 1, 1], { count_include_pad: 0 })) },
    { name: 'AveragePool pad 1, count_include_pad 1', build: op('AveragePool', [I([1, 2, 5, 5])], [[1, 2, 3, 3]], pool([3, 3], [2, 2], [1, 1, 1, 1], { count_include_pad: 1 })) },
    { name: 'AveragePool ceil mode, count_include_pad 1', build: op('AveragePool', [I([1, 1, 6, 6])], [[1, 1, 3, 3]], pool([3, 3], [2, 2], [0, 0, 0, 0], { count_include_pad: 1 })) },
    { name: 'AveragePool ceil mode, count_include_pad 0', build: op('AveragePool', [I([1, 1, 6, 6])], [[1, 1, 3, 3]], pool([3, 3], [2, 2], [0, 0, 0, 0], { count_include_pad: 0 })) },
    { name: 'AveragePool 1-D', build: op('AveragePool', [I([2, 2, 7])], [[2, 2, 3]], pool([1, 3], [1, 2], [0, 0, 0, 0])) },
    { name: 'GlobalAveragePool', build: op('GlobalAveragePool', [I([2, 3, 3, 4])], [[2, 3, 1, 1]]) },
    { name: 'GlobalMaxPool', build: op('GlobalMaxPool', [I([2, 3, 3, 4])], [[2, 3, 1, 1]]) },
    { name: 'ReduceMean axes [1,3] keepdims', build: op('ReduceMean', [I([2, 3, 2, 4])], [[2, 1, 2, 1]], { axes: [1, 3], keepdims: 1 }) },
    { name: 'ReduceMean last axis no keepdims', build: op('ReduceMean', [I([2, 3, 4])], [[2, 3]], { axes: [2], keepdims: 0 }) },
    { name: 'ReduceSum axes [0,2]', build: op('ReduceSum', [I([2, 3, 4])], [[3]], { axes: [0, 2], keepdims: 0 }) },
    { name: 'ReduceSum all axes keepdims', build: op('ReduceSum', [I([2, 3])], [[1, 1]], { axes: [0, 1], keepdims: 1 }) },
    { name: 'ReduceMax axis 1', build: op('ReduceMax', [I([2, 5, 3])], [[2, 1, 3]], { axes: [1], keepdims: 1 }) },
  ]);
});

describe('shape and data movement', () => {
  run([
    { name: 'Reshape', build: op('Reshape', [I([2, 3, 4])], [[6, 4]]) },
    { name: 'Identity of a parameter', build: op('Identity', [P([3, 2])], [[3, 2]]) },
    { name: 'Transpose [0,2,3,1]', build: op('Transpose', [I([2, 3, 4, 2])], [[2, 4, 2, 3]], { perm: [0, 2, 3, 1] }) },
    { name: 'Transpose heads [0,2,1,3]', build: op('Transpose', [I([2, 4, 3, 2])], [[2, 3, 4, 2]], { perm: [0, 2, 1, 3] }) },
    { name: 'Concat axis 1 with a trainable part', build: op('Concat', [I([2, 1, 3]), P([2, 2, 3]), I([2, 3, 3])], [[2, 6, 3]], { axis: 1 }) },
    { name: 'Split axis 2 into 3', build: op('Split', [I([2, 3, 6])], [[2, 3, 1], [2, 3, 2], [2, 3, 3]], { axis: 2, split: [1, 2, 3] }) },
    { name: 'Slice with steps 2 and -1', build: op('Slice', [I([4, 5, 3])], [[2, 3, 3]], { starts: [1, 4], ends: [4, 1], axes: [0, 1], steps: [2, -1] }) },
    { name: 'Gather with repeated indices', build: op('Gather', [I([3, 4, 2])], [[3, 2, 2, 2]], { axis: 1, indices: [3, 0, 3, 1], indices_shape: [2, 2] }) },
    { name: 'Gather axis 0 (class token)', build: op('Gather', [I([4, 3])], [[3]], { axis: 0, indices: [2], indices_shape: [] }) },
    { name: 'Where, constant cond broadcast', build: op('Where', [K([1, 4], [1, 0, 0, 1]), I([3, 4]), I([3, 1])], [[3, 4]]) },
    { name: 'Where, trainable branch', build: op('Where', [K([3, 1], [0, 1, 1]), P([4]), I([3, 4])], [[3, 4]]) },
    { name: 'Expand [3,1] to [2,3,4]', build: op('Expand', [I([3, 1])], [[2, 3, 4]]) },
    { name: 'Pad constant', build: op('Pad', [I([2, 3])], [[4, 6]], { pads: [1, 2, 1, 1], mode: 'constant', value: 0.5 }) },
    { name: 'Pad constant with a negative (cropping) pad', build: op('Pad', [I([3, 4])], [[4, 3]], { pads: [1, -1, 0, 0], mode: 'constant', value: 0 }) },
    { name: 'Pad reflect', build: op('Pad', [I([3, 4])], [[5, 8]], { pads: [1, 2, 1, 2], mode: 'reflect' }) },
    { name: 'Pad edge', build: op('Pad', [I([3, 4])], [[6, 5]], { pads: [2, 0, 1, 1], mode: 'edge' }) },
  ]);
});
