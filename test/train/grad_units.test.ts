/**
 * Whole units on the differentiable executor: a residual conv block and a transformer block
 * gradient-checked end to end in float64, float32 against float64 (forward and backward), thread
 * counts against each other, the Tape's parameter semantics, and the error paths of GradProgram.
 */
import { native } from '../../lib/native';
import { Builder, gradCheck, input, konst, numel, param, randArray } from './helpers';

let seed = 500;
const rnd = (shape: number[], lo = -1, hi = 1) => randArray(numel(shape), seed++, lo, hi);
const conv3 = { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };

/** conv → relu → conv → add(skip) → relu, weights and biases trainable. */
function convBlock(n: number, c: number, hw: number, wscale = 0.3): Builder {
  const b = new Builder();
  const s = [n, c, hw, hw];
  const x = b.add(input(s, rnd(s)));
  const w1 = b.add(param([c, c, 3, 3], rnd([c, c, 3, 3], -wscale, wscale)));
  const b1 = b.add(param([c], rnd([c], -0.1, 0.1)));
  const w2 = b.add(param([c, c, 3, 3], rnd([c, c, 3, 3], -wscale, wscale)));
  const b2 = b.add(param([c], rnd([c], -0.1, 0.1)));
  const [y1] = b.op('Conv', [x, w1, b1], [s], conv3);
  const [r1] = b.op('Relu', [y1], [s]);
  const [y2] = b.op('Conv', [r1, w2, b2], [s], conv3);
  const [a] = b.op('Add', [y2, x], [s]);
  const [out] = b.op('Relu', [a], [s]);
  return b.output(out);
}

/** Pre-norm transformer block: LN → qkv → heads → softmax(q·kᵀ/√d)·v → proj → +x → LN → MLP(GELU) → +. */
function transformerBlock(B: number, T: number, D: number, H: number): Builder {
  const dh = D / H;
  const b = new Builder();
  const xs = [B, T, D];
  const x = b.add(input(xs, rnd(xs)));
  const P = (shape: number[], scale = 0.4) => b.add(param(shape, rnd(shape, -scale, scale)));
  const g1 = b.add(param([D], rnd([D], 0.8, 1.2)));
  const be1 = P([D], 0.1);
  const [ln1] = b.op('LayerNormalization', [x, g1, be1], [xs], { axis: 2, epsilon: 1e-5 });
  const [qkv] = b.op('MatMul', [ln1, P([D, 3 * D]), P([3 * D], 0.1)], [[B, T, 3 * D]]);
  const [r5] = b.op('Reshape', [qkv], [[B, T, 3, H, dh]]);
  const [t5] = b.op('Transpose', [r5], [[3, B, H, T, dh]], { perm: [2, 0, 3, 1, 4] });
  const parts = b.op('Split', [t5], [[1, B, H, T, dh], [1, B, H, T, dh], [1, B, H, T, dh]], { axis: 0, split: [1, 1, 1] });
  const [q, k, v] = parts.map((p) => b.op('Reshape', [p], [[B, H, T, dh]])[0]);
  const [kT] = b.op('Transpose', [k], [[B, H, dh, T]], { perm: [0, 1, 3, 2] });
  const [s] = b.op('MatMul', [q, kT], [[B, H, T, T]]);
  const scale = b.add(konst([], Float64Array.from([1 / Math.sqrt(dh)])));
  const [ss] = b.op('Mul', [s, scale], [[B, H, T, T]]);
  const [att] = b.op('Softmax', [ss], [[B, H, T, T]], { axis: 3 });
  const [o] = b.op('MatMul', [att, v], [[B, H, T, dh]]);
  const [ot] = b.op('Transpose', [o], [[B, T, H, dh]], { perm: [0, 2, 1, 3] });
  const [om] = b.op('Reshape', [ot], [xs]);
  const [proj] = b.op('MatMul', [om, P([D, D]), P([D], 0.1)], [xs]);
  const [res1] = b.op('Add', [x, proj], [xs]);
  const g2 = b.add(param([D], rnd([D], 0.8, 1.2)));
  const [ln2] = b.op('LayerNormalization', [res1, g2, P([D], 0.1)], [xs], { axis: 2, epsilon: 1e-5 });
  const [h] = b.op('MatMul', [ln2, P([D, 2 * D]), P([2 * D], 0.1)], [[B, T, 2 * D]]);
  const [gl] = b.op('Gelu', [h], [[B, T, 2 * D]], { approximate: 'none' });
  const [m] = b.op('MatMul', [gl, P([2 * D, D]), P([D], 0.1)], [xs]);
  const [out] = b.op('Add', [res1, m], [xs]);
  return b.output(out);
}

describe('end-to-end gradient checks (float64, relative error <= 1e-5)', () => {
  test('conv → relu → conv → add(skip) → relu', () => {
    const r = gradCheck(convBlock(2, 3, 5), { maxPerTensor: 120 });
    if (r.maxErr > 1e-5) throw new Error(`max relative error ${r.maxErr} at ${r.worst}`);
  });
  test('transformer block (LayerNorm, attention, GELU MLP, residuals)', () => {
    const r = gradCheck(transformerBlock(2, 4, 8, 2), { maxPerTensor: 80 });
    if (r.maxErr > 1e-5) throw new Error(`max relative error ${r.maxErr} at ${r.worst}`);
  });
  test('a parameter used by two ops collects both gradients; 2 threads', () => {
    const b = new Builder();
    const s = [4, 2, 5, 5];
    const x = b.add(input(s, rnd(s)));
    const w = b.add(param([2, 2, 3, 3], rnd([2, 2, 3, 3], -0.4, 0.4)));
    const [y1] = b.op('Conv', [x, w], [s], conv3);
    const [t] = b.op('Tanh', [y1], [s]);
    const [y2] = b.op('Conv', [t, w], [s], conv3);
    b.output(y2, t);
    const r = gradCheck(b, { maxPerTensor: 60, threads: 2 });
    if (r.maxErr > 1e-5) throw new Error(`max relative error ${r.maxErr} at ${r.worst}`);
  });
});

/** max |a − b| / max |b| over a list of arrays. */
function relDiff(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  let worst = 0;
  a.forEach((x, k) => {
    const y = b[k];
    let scale = 1e-30;
    for (let i = 0; i < y.length; ++i) scale = Math.max(scale, Math.abs(y[i]));
    for (let i = 0; i < y.length; ++i) worst = Math.max(worst, Math.abs(x[i] - y[i]) / scale);
  });
  return worst;
}

function runBoth(b: Builder, threads32 = 1) {
  const mk = (dtype: string, threads: number) => new (native().GradProgram)(b.desc, { dtype, trainable: b.trainable, threads });
  const p64 = mk('float64', 1);
  const p32 = mk('float32', threads32);
  const y64: Float64Array[] = p64.forward(b.feeds);
  const y32: Float32Array[] = p32.forward(b.feeds);
  const r = y64.map((y, k) => randArray(y.length, 900 + k, -1, 1));
  const g64 = p64.backward(r);
  const g32 = p32.backward(r);
  return { y64, y32, g64, g32 };
}

describe('float32 agrees with float64 (forward ≤ 1e-5, gradients ≤ 1e-4 of the largest value)', () => {
  test.each([1, 2])('conv-relu-conv-add block, %i float32 thread(s)', (threads) => {
    const { y64, y32, g64, g32 } = runBoth(convBlock(4, 8, 10), threads);
    expect(y32[0]).toBeInstanceOf(Float32Array);
    expect(relDiff(y32, y64)).toBeLessThan(1e-5);
    expect(relDiff(g32.inputs, g64.inputs)).toBeLessThan(1e-4);
    g64.params.forEach((g: Float64Array, p: number) => expect(relDiff([g32.params[p]], [g])).toBeLessThan(1e-4));
  });
  test.each([1, 2])('transformer block, %i float32 thread(s)', (threads) => {
    const { y64, y32, g64, g32 } = runBoth(transformerBlock(4, 16, 32, 4), threads);
    expect(relDiff(y32, y64)).toBeLessThan(1e-5);
    expect(relDiff(g32.inputs, g64.inputs)).toBeLessThan(1e-4);
    g64.params.forEach((g: Float64Array, p: number) => expect(relDiff([g32.params[p]], [g])).toBeLessThan(1e-4));
  });
});

describe('Tape semantics', () => {
  const make = (b: Builder, extra: Record<string, unknown> = {}) => new (native().GradProgram)(b.desc, { dtype: 'float64', trainable: b.trainable, ...extra });

  test('backward() replaces, not accumulates, the previous gradients', () => {
    const b = convBlock(1, 2, 4);
    const p = make(b);
    const [y] = p.forward(b.feeds);
    const r = [randArray(y.length, 3)];
    const g1 = p.backward(r);
    const g2 = p.backward(r);
    expect(Array.from(g2.params[0])).toEqual(Array.from(g1.params[0]));
    expect(Array.from(g2.inputs[0])).toEqual(Array.from(g1.inputs[0]));
  });

  test('setParam changes the next forward pass; getParam returns it', () => {
    const b = new Builder();
    const x = b.add(input([2, 3], rnd([2, 3])));
    const w = b.add(param([3, 2], rnd([3, 2])));
    b.output(b.op('MatMul', [x, w], [[2, 2]])[0]);
    const p = make(b);
    p.setParam(0, new Float64Array(6).fill(0));
    expect(Array.from(p.forward(b.feeds)[0])).toEqual([0, 0, 0, 0]);
    p.setParam(0, Float32Array.from([1, 0, 0, 1, 0, 0]));
    expect(Array.from(p.getParam(0))).toEqual([1, 0, 0, 1, 0, 0]);
    expect(Array.from(p.forward(b.feeds)[0])).toEqual([b.feeds[0][0], b.feeds[0][1], b.feeds[0][3], b.feeds[0][4]]);
  });

  test('inputGrads: false leaves input gradients out', () => {
    const b = convBlock(1, 2, 4);
    const p = make(b, { inputGrads: false });
    const [y] = p.forward(b.feeds);
    const g = p.backward([randArray(y.length, 4)]);
    expect(g.inputs).toEqual([null]);
    expect(g.params).toHaveLength(4);
    expect(p.info()).toMatchObject({ dtype: 'float64', inputShapes: [[1, 2, 4, 4]], paramShapes: [[2, 2, 3, 3], [2], [2, 2, 3, 3], [2]] });
  });

  test('gradOps lists every differentiable op', () => {
    const ops: string[] = native().gradOps();
    for (const t of ['Conv', 'Gemm', 'MatMul', 'Softmax', 'LayerNormalization', 'MaxPool', 'Pad', 'Where', 'Gelu']) expect(ops).toContain(t);
  });
});

describe('bad descriptions and arguments throw coded errors naming the culprit', () => {
  const ok = () => {
    const b = new Builder();
    const x = b.add(input([2, 3], rnd([2, 3])));
    const w = b.add(param([3, 4], rnd([3, 4])));
    b.output(b.op('MatMul', [x, w], [[2, 4]])[0]);
    return b;
  };
  const make = (desc: unknown, opts: unknown) => () => new (native().GradProgram)(desc, opts);
  const expectCode = (fn: () => unknown, code: string, msg?: RegExp) => {
    let err: any;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeDefined();
    expect(err.code).toBe(code);
    if (msg) expect(err.message).toMatch(msg);
  };

  test('construction', () => {
    const b = ok();
    const o = { dtype: 'float64', trainable: b.trainable };
    expectCode(make({ ...b.desc, ops: [{ ...b.desc.ops[0], type: 'Frobnicate' }] }, o), 'UNSUPPORTED_OP', /Frobnicate/);
    const badShape = JSON.parse(JSON.stringify({ ...b.desc, tensors: b.desc.tensors.map((t) => ({ shape: t.shape })) }));
    badShape.tensors[1].data = new Float64Array(12);
    badShape.tensors[2].shape = [2, 5];
    expectCode(make(badShape, o), 'SHAPE_MISMATCH', /MatMul node "MatMul_0"/);
    expectCode(make({ ...b.desc, ops: [{ ...b.desc.ops[0], inputs: [0, 7] }] }, o), 'NATIVE', /out of range/);
    expectCode(make(b.desc, { dtype: 'float64', trainable: [0] }), 'BAD_OPTION', /not a constant/);
    expectCode(make(b.desc, { dtype: 'float16' }), 'BAD_OPTION', /options.dtype/);
    expectCode(make(b.desc, { dtype: 'float32', threads: 0 }), 'BAD_OPTION', /options.threads/);
    expectCode(make(b.desc, undefined), 'BAD_OPTION', /options/);
    expectCode(make(null, o), 'BAD_OPTION', /desc/);
    expectCode(make({ ...b.desc, tensors: 5 }, o), 'BAD_OPTION', /desc.tensors/);
    expectCode(make({ ...b.desc, tensors: [{ shape: [2, 3] }, { shape: [3, 4], data: [1, 2] }, { shape: [2, 4] }] }, o), 'BAD_OPTION', /desc.tensors\[1\].data/);
    expectCode(make({ ...b.desc, ops: [{ ...b.desc.ops[0], attrs: { x: {} } }] }, o), 'BAD_OPTION', /attrs.x/);
    expectCode(make({ ...b.desc, ops: [{ ...b.desc.ops[0], inputs: [2, 1] }] }, o), 'NATIVE', /before any op writes it/);
    const conv = { ...b.desc, ops: [{ type: 'Conv', name: 'c1', inputs: [0, 1], outputs: [2], attrs: {} }] };
    expectCode(make(conv, o), 'SHAPE_MISMATCH', /Conv node "c1": expects 4-D/);
    const conv4 = {
      tensors: [{ shape: [1, 1, 3, 3] }, { shape: [1, 1, 1, 1], data: new Float64Array(1) }, { shape: [1, 1, 3, 3] }],
      inputs: [0], outputs: [2], ops: [{ type: 'Conv', name: 'c2', inputs: [0, 1], outputs: [2], attrs: { strides: [1, 1] } }],
    };
    expectCode(make(conv4, o), 'UNSUPPORTED_OP', /Conv node "c2": missing attribute kernel/);
  });

  test('calls', () => {
    const b = ok();
    const p = new (native().GradProgram)(b.desc, { dtype: 'float32', trainable: b.trainable });
    expectCode(() => p.backward([new Float32Array(8)]), 'NATIVE', /forward/);
    expectCode(() => p.forward([new Float32Array(5)]), 'SHAPE_MISMATCH', /inputs\[0\]/);
    expectCode(() => p.forward([]), 'SHAPE_MISMATCH', /1 arrays/);
    expectCode(() => p.forward([new Int32Array(6)]), 'BAD_OPTION', /Float32Array or Float64Array/);
    expectCode(() => p.forward('x'), 'BAD_OPTION', /inputs/);
    p.forward(b.feeds);
    expectCode(() => p.backward([new Float32Array(7)]), 'SHAPE_MISMATCH', /outputGrads\[0\]/);
    expectCode(() => p.getParam(1), 'BAD_OPTION', /param index/);
    expectCode(() => p.getParam(-1), 'BAD_OPTION', /param index/);
    expectCode(() => p.setParam(0, new Float32Array(3)), 'SHAPE_MISMATCH', /12 elements/);
    expectCode(() => p.setThreads(0.5), 'BAD_OPTION', /threads/);
    expect(p.setOption('', 'beta', 2)).toBe(0);
  });
});
