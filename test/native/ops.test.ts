/**
 * The executor's non-GEMM ops, one op per program, each checked against a straightforward float64
 * JavaScript implementation written here from the ONNX operator definitions (never from the C++).
 */
import { native } from '../../lib/native';

// ------------------------------------------------------------------------------------------------
// Harness

type Attr = number | number[] | string;
interface In { shape: number[]; data: Float32Array; konst?: boolean; missing?: boolean }

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

function rand(shape: number[], seed: number, lo = -2, hi = 2): In {
  const r = mulberry32(seed);
  const d = new Float32Array(numel(shape));
  for (let i = 0; i < d.length; ++i) d[i] = lo + (hi - lo) * r();
  return { shape, data: d };
}
const konst = (x: In): In => ({ ...x, konst: true });
const missing = (): In => ({ shape: [], data: new Float32Array(0), missing: true });
const tensor = (shape: number[], values: number[]): In => ({ shape, data: Float32Array.from(values) });

let opCounter = 0;
function program(type: string, ins: In[], outShapes: number[][], attrs: Record<string, Attr>, threads = 1, name?: string, isa?: string) {
  const tensors: { shape: number[]; data?: Float32Array }[] = [];
  const inIds: number[] = [];
  const feeds: number[] = [];
  for (const x of ins) {
    if (x.missing) {
      inIds.push(-1);
      continue;
    }
    inIds.push(tensors.length);
    if (!x.konst) feeds.push(tensors.length);
    tensors.push(x.konst ? { shape: x.shape, data: x.data } : { shape: x.shape });
  }
  const outIds = outShapes.map((s) => {
    tensors.push({ shape: s });
    return tensors.length - 1;
  });
  const desc = {
    threads,
    ...(isa ? { isa } : {}),
    tensors,
    inputs: feeds,
    outputs: outIds,
    ops: [{ type, name: name ?? `${type.toLowerCase()}_${++opCounter}`, inputs: inIds, outputs: outIds, attrs }],
  };
  return new (native().Program)(desc);
}

function runOp(type: string, ins: In[], outShapes: number[][], attrs: Record<string, Attr> = {}, threads = 1, isa?: string): Float32Array[] {
  const p = program(type, ins, outShapes, attrs, threads, undefined, isa);
  return p.runSync(ins.filter((x) => !x.konst && !x.missing).map((x) => x.data));
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol = 2e-6, atol = 1e-6, what = '') {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; ++i) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e)) {
      if (!Number.isNaN(a)) throw new Error(`${what} element ${i}: expected NaN, got ${a}`);
      continue;
    }
    if (e === a) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e)))
      throw new Error(`${what} element ${i}: got ${a}, expected ${e} (|diff| ${Math.abs(a - e)})`);
  }
}

// Index helpers: row-major strides and numpy broadcasting.
function strides(s: number[]): number[] {
  const st = new Array(s.length).fill(1);
  for (let d = s.length - 2; d >= 0; --d) st[d] = st[d + 1] * s[d + 1];
  return st;
}
function unravel(i: number, s: number[]): number[] {
  const idx = new Array(s.length).fill(0);
  for (let d = s.length - 1; d >= 0; --d) {
    idx[d] = i % s[d];
    i = Math.floor(i / s[d]);
  }
  return idx;
}
function bcastIndex(outIdx: number[], inShape: number[]): number {
  const off = outIdx.length - inShape.length;
  let k = 0;
  for (let d = 0; d < inShape.length; ++d) k = k * inShape[d] + (inShape[d] === 1 ? 0 : outIdx[d + off]);
  return k;
}
function bcastShape(...ss: number[][]): number[] {
  const r = Math.max(...ss.map((s) => s.length));
  const out: number[] = [];
  for (let d = 0; d < r; ++d) {
    let v = 1;
    for (const s of ss) {
      const x = s[d - (r - s.length)] ?? 1;
      if (x !== 1) v = x;
    }
    out.push(v);
  }
  return out;
}

// erf to ~1e-12 absolute: Maclaurin series for |x| < 3, asymptotic erfc beyond.
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = x, sum = x;
    for (let n = 1; n < 100; ++n) {
      term *= (-x * x) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let s = 1, t = 1;
  for (let n = 1; n < 8; ++n) {
    t *= -(2 * n - 1) / (2 * x * x);
    s += t;
  }
  const erfc = (Math.exp(-x * x) / (ax * Math.sqrt(Math.PI))) * s;
  return Math.sign(x) * (1 - erfc);
}

// ------------------------------------------------------------------------------------------------
// Elementwise

describe('binary broadcasting ops', () => {
  const fns: Record<string, (a: number, b: number) => number> = {
    Add: (a, b) => a + b,
    Sub: (a, b) => a - b,
    Mul: (a, b) => a * b,
    Div: (a, b) => a / b,
  };
  const cases: [number[], number[]][] = [
    [[2, 3, 4], [2, 3, 4]],
    [[2, 3], []],
    [[], [2, 3]],
    [[5], [1]],
    [[2, 3, 4, 5], [3, 1, 1]],
    [[2, 5, 7], [7]],
    [[3, 1], [1, 4]],
    [[2, 1, 4], [3, 1]],
    [[1, 1, 1], [1]],
    [[4, 1, 6, 1], [1, 5, 1, 3]],
    [[1, 6], [4, 1, 6]],
  ];
  for (const [name, f] of Object.entries(fns)) {
    test(name, () => {
      cases.forEach(([sa, sb], ci) => {
        const a = rand(sa, 10 + ci), b = rand(sb, 100 + ci, 0.5, 2);
        const out = bcastShape(sa, sb);
        const [y] = runOp(name, [a, b], [out]);
        const want = new Float64Array(numel(out));
        for (let i = 0; i < want.length; ++i) {
          const idx = unravel(i, out);
          want[i] = Math.fround(f(a.data[bcastIndex(idx, sa)], b.data[bcastIndex(idx, sb)]));
        }
        expectClose(y, want, 1e-6, 0, `${name} ${JSON.stringify([sa, sb])}`);
      });
    });
  }

  test('constant operand and large tensors on two threads', () => {
    for (const [sa, sb] of [
      [[64, 1024], [1024]],
      [[2, 64, 32, 32], [64, 1, 1]],
      [[96, 700], [96, 700]],
      [[96, 700], [1]],
    ] as [number[], number[]][]) {
      const a = rand(sa, 7), b = konst(rand(sb, 8));
      const out = bcastShape(sa, sb);
      const [y] = runOp('Mul', [a, b], [out], {}, 2);
      const want = new Float64Array(numel(out));
      for (let i = 0; i < want.length; ++i) {
        const idx = unravel(i, out);
        want[i] = Math.fround(a.data[bcastIndex(idx, sa)] * b.data[bcastIndex(idx, sb)]);
      }
      expectClose(y, want, 0, 0);
    }
  });

  test('Pow with negative bases and integer exponents, positive bases and fractional exponents', () => {
    const base = tensor([2, 4], [-2, -1.5, -0.5, 3, 0, 2, 1.5, 4]);
    const ints = tensor([4], [2, 3, -1, 0]);
    const [y] = runOp('Pow', [base, ints], [[2, 4]]);
    expectClose(y, [4, -3.375, -2, 1, 0, 8, 1 / 1.5, 1], 1e-6);
    const pos = rand([3, 5], 3, 0.1, 4);
    const fr = rand([5], 4, -2, 2);
    const [z] = runOp('Pow', [pos, fr], [[3, 5]]);
    const want = Array.from({ length: 15 }, (_, i) => Math.pow(pos.data[i], fr.data[i % 5]));
    expectClose(z, want, 2e-6);
    // A negative base with a fractional exponent is NaN, as in numpy.
    const [n] = runOp('Pow', [tensor([1], [-2]), tensor([1], [0.5])], [[1]]);
    expect(Number.isNaN(n[0])).toBe(true);
  });
});

describe('unary ops', () => {
  const x = rand([3, 7, 11], 42, -4, 4);
  const pos = rand([3, 7, 11], 43, 0.01, 5);
  const gelu = (v: number) => 0.5 * v * (1 + erf(v / Math.SQRT2));
  const geluTanh = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  const cases: [string, In, (v: number) => number, Record<string, Attr>][] = [
    ['Relu', x, (v) => Math.max(v, 0), {}],
    ['Sigmoid', x, (v) => 1 / (1 + Math.exp(-v)), {}],
    ['Tanh', x, Math.tanh, {}],
    ['Erf', x, erf, {}],
    ['Abs', x, Math.abs, {}],
    ['Neg', x, (v) => -v, {}],
    ['Exp', x, Math.exp, {}],
    ['Log', pos, Math.log, {}],
    ['Sqrt', pos, Math.sqrt, {}],
    ['Reciprocal', pos, (v) => 1 / v, {}],
    ['Identity', x, (v) => v, {}],
    ['Clip', x, (v) => Math.min(Math.max(v, -1), 0.5), { min: -1, max: 0.5 }],
    ['Clip', x, (v) => Math.max(v, -1), { min: -1 }],
    ['Clip', x, () => -1, { min: 1, max: -1 }], // min > max: every output is max (numpy.clip)
    ['LeakyRelu', x, (v) => (v >= 0 ? v : 0.1 * v), { alpha: 0.1 }],
    ['LeakyRelu', x, (v) => (v >= 0 ? v : 0.01 * v), {}],
    ['HardSigmoid', x, (v) => Math.max(0, Math.min(1, 0.3 * v + 0.4)), { alpha: 0.3, beta: 0.4 }],
    ['HardSigmoid', x, (v) => Math.max(0, Math.min(1, 0.2 * v + 0.5)), {}],
    ['HardSwish', x, (v) => v * Math.max(0, Math.min(1, v / 6 + 0.5)), {}],
    ['Gelu', x, gelu, {}],
    ['Gelu', x, gelu, { approximate: 'none' }],
    ['Gelu', x, geluTanh, { approximate: 'tanh' }],
  ];
  for (const [type, input, f, attrs] of cases) {
    test(`${type} ${JSON.stringify(attrs)}`, () => {
      const [y] = runOp(type, [input], [input.shape], attrs);
      expectClose(y, Array.from(input.data, f), 2e-6, 5e-7, type);
    });
  }

  test('large input on two threads equals one thread', () => {
    const big = rand([300, 257], 5, -6, 6);
    for (const type of ['Sigmoid', 'Gelu', 'Tanh']) {
      const [a] = runOp(type, [big], [big.shape], {}, 1);
      const [b] = runOp(type, [big], [big.shape], {}, 2);
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    }
  });
});

// ------------------------------------------------------------------------------------------------
// Normalisation

function refSoftmax(x: Float32Array, shape: number[], axis: number, log: boolean): Float64Array {
  const st = strides(shape);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; ++i) {
    const idx = unravel(i, shape);
    if (idx[axis] !== 0) continue;
    const at = (k: number) => i + k * st[axis];
    let m = -Infinity;
    for (let k = 0; k < shape[axis]; ++k) m = Math.max(m, x[at(k)]);
    let s = 0;
    for (let k = 0; k < shape[axis]; ++k) s += Math.exp(x[at(k)] - m);
    for (let k = 0; k < shape[axis]; ++k) y[at(k)] = log ? x[at(k)] - m - Math.log(s) : Math.exp(x[at(k)] - m) / s;
  }
  return y;
}

describe('Softmax and LogSoftmax', () => {
  const cases: [number[], number][] = [
    [[4, 10], 1],
    [[4, 10], 0],
    [[2, 3, 5], 1],
    [[2, 3, 5], 2],
    [[3, 1, 4], 1],
    [[1, 1000], 1],
    [[2, 40, 1000], 1], // strided, large: two threads
    [[2, 12, 64, 64], 3],
    [[3, 50], 1], // attention rows of a ViT: the last vector overlaps the previous one
    [[5, 21], 1],
  ];
  for (const type of ['Softmax', 'LogSoftmax']) {
    test(type, () => {
      cases.forEach(([shape, axis], ci) => {
        const x = rand(shape, 200 + ci, -5, 5);
        const [y] = runOp(type, [x], [shape], { axis }, 2);
        expectClose(y, refSoftmax(x.data, shape, axis, type === 'LogSoftmax'), 2e-6, 1e-7, `${type} ${shape} axis ${axis}`);
      });
    });
    test(`${type} is stable for large values`, () => {
      const x = tensor([2, 4], [1000, 1001, 1002, 1003, -1000, -1e4, 3e4, 3e4]);
      const [y] = runOp(type, [x], [[2, 4]], { axis: 1 });
      expectClose(y, refSoftmax(x.data, [2, 4], 1, type === 'LogSoftmax'), 2e-6, 1e-7);
      const [z] = runOp(type, [x], [[2, 4]], { axis: 0 });
      expectClose(z, refSoftmax(x.data, [2, 4], 0, type === 'LogSoftmax'), 2e-6, 1e-7);
    });
  }
});

function refLayerNorm(x: Float32Array, shape: number[], axis: number, scale: Float32Array, bias: Float32Array | null, eps: number) {
  const n = numel(shape.slice(axis));
  const rows = x.length / n;
  const y = new Float64Array(x.length), mean = new Float64Array(rows), istd = new Float64Array(rows);
  for (let r = 0; r < rows; ++r) {
    let m = 0;
    for (let i = 0; i < n; ++i) m += x[r * n + i];
    m /= n;
    let v = 0;
    for (let i = 0; i < n; ++i) v += (x[r * n + i] - m) ** 2;
    v /= n;
    const is = 1 / Math.sqrt(v + eps);
    mean[r] = m;
    istd[r] = is;
    for (let i = 0; i < n; ++i) {
      const s = scale.length === 1 ? scale[0] : scale[i];
      const b = bias ? (bias.length === 1 ? bias[0] : bias[i]) : 0;
      y[r * n + i] = (x[r * n + i] - m) * is * s + b;
    }
  }
  return { y, mean, istd };
}

describe('LayerNormalization', () => {
  test('over the last axis and over trailing axes, with and without bias', () => {
    const cases: [number[], number, boolean][] = [
      [[2, 5, 16], 2, true],
      [[2, 5, 16], 1, true],
      [[3, 768], 1, false],
      [[4, 1, 7], 2, true],
      [[64, 768], 1, true], // large: two threads
      [[1, 50, 96], 2, true], // a ViT's tokens at batch 1: also two threads
    ];
    cases.forEach(([shape, axis, withBias], ci) => {
      const x = rand(shape, 300 + ci, -3, 5);
      const ps = shape.slice(axis);
      const scale = konst(rand(ps, 310 + ci, 0.5, 1.5));
      const bias = withBias ? konst(rand(ps, 320 + ci)) : missing();
      const [y] = runOp('LayerNormalization', withBias ? [x, scale, bias] : [x, scale], [shape], { axis, epsilon: 1e-5 }, 2);
      const ref = refLayerNorm(x.data, shape, axis, scale.data, withBias ? bias.data : null, Math.fround(1e-5));
      expectClose(y, ref.y, 1e-5, 2e-6, `LayerNorm ${shape} axis ${axis}`);
    });
  });

  test('scalar scale, missing bias and the Mean / InvStdDev outputs', () => {
    const x = rand([3, 4, 6], 330, -1, 3);
    const scale = konst(tensor([1], [2]));
    const [y, mean, istd] = runOp('LayerNormalization', [x, scale, missing()], [[3, 4, 6], [3, 1, 1], [3, 1, 1]], {
      axis: 1,
      epsilon: 1e-3,
    });
    const ref = refLayerNorm(x.data, [3, 4, 6], 1, scale.data, null, Math.fround(1e-3));
    expectClose(y, ref.y, 1e-5, 2e-6);
    expectClose(mean, ref.mean, 1e-6, 1e-7);
    expectClose(istd, ref.istd, 1e-6, 1e-7);
  });
});

test('BatchNormalization (inference)', () => {
  for (const shape of [[2, 3, 4, 5], [2, 3], [1, 8, 70, 70]]) {
    const C = shape[1];
    const x = rand(shape, 400, -3, 3);
    const scale = konst(rand([C], 401, 0.5, 2)), B = konst(rand([C], 402));
    const mean = konst(rand([C], 403)), variance = konst(rand([C], 404, 0.1, 2));
    const [y] = runOp('BatchNormalization', [x, scale, B, mean, variance], [shape], { epsilon: 1e-5 }, 2);
    const inner = numel(shape.slice(2));
    const eps = Math.fround(1e-5);
    const want = Array.from(x.data, (v, i) => {
      const c = Math.floor(i / inner) % C;
      return ((v - mean.data[c]) / Math.sqrt(variance.data[c] + eps)) * scale.data[c] + B.data[c];
    });
    expectClose(y, want, 1e-5, 2e-6, `BatchNorm ${shape}`);
  }
});

// ------------------------------------------------------------------------------------------------
// Pooling

/** Output size per the ONNX/PyTorch rule: with ceil_mode a window that would start in the end padding is dropped. */
function poolOut(inp: number, k: number, s: number, pb: number, pe: number, d: number, ceil: boolean): number {
  const span = inp + pb + pe - ((k - 1) * d + 1);
  let o = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (o - 1) * s >= inp + pb) o -= 1;
  return o;
}

interface PoolCfg { kernel: number[]; strides: number[]; pads: number[]; dilations: number[]; ceil: boolean; include?: number }

function refPool(x: Float32Array, shape: number[], c: PoolCfg, kind: 'max' | 'avg'): { y: Float64Array; out: number[] } {
  const [N, C, H, W] = shape;
  const OH = poolOut(H, c.kernel[0], c.strides[0], c.pads[0], c.pads[2], c.dilations[0], c.ceil);
  const OW = poolOut(W, c.kernel[1], c.strides[1], c.pads[1], c.pads[3], c.dilations[1], c.ceil);
  const y = new Float64Array(N * C * OH * OW);
  let o = 0;
  for (let nc = 0; nc < N * C; ++nc)
    for (let oh = 0; oh < OH; ++oh)
      for (let ow = 0; ow < OW; ++ow) {
        let acc = kind === 'max' ? -Infinity : 0, valid = 0, padded = 0;
        for (let i = 0; i < c.kernel[0]; ++i)
          for (let j = 0; j < c.kernel[1]; ++j) {
            const h = oh * c.strides[0] - c.pads[0] + i * c.dilations[0];
            const w = ow * c.strides[1] - c.pads[1] + j * c.dilations[1];
            if (h >= -c.pads[0] && h < H + c.pads[2] && w >= -c.pads[1] && w < W + c.pads[3]) padded++;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            const v = x[nc * H * W + h * W + w];
            acc = kind === 'max' ? Math.max(acc, v) : acc + v;
            valid++;
          }
        y[o++] = kind === 'max' ? acc : acc / (c.include ? padded : valid);
      }
  return { y, out: [N, C, OH, OW] };
}

// Gemm with constant B, 3..256 rows and a large enough B runs Yᵀ = op(B)ᵀ·op(A)ᵀ on weights packed
// once (1-2 rows keep the GEMV path, small B or many rows the plain GEMM; the sizes below reach
// all three): every transpose combination, odd sizes,
// alpha/beta and a row or column C, against a float64 loop from the ONNX definition.
describe('Gemm with constant weights', () => {
  // Σ|a·b| per element of the last refGemm call: float32 sums get a bound relative to it, as the
  // GEMM kernel tests do (cancellation leaves the result far smaller than its terms).
  let mag = new Float64Array(0);
  const close = (y: Float32Array, ref: Float64Array, what: string) => {
    for (let i = 0; i < ref.length; ++i)
      if (!(Math.abs(y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6 * Math.abs(ref[i]) + 1e-7))
        throw new Error(`${what} element ${i}: got ${y[i]}, expected ${ref[i]}`);
  };
  function refGemm(a: Float32Array, b: Float32Array, c: Float32Array | null, cShape: number[], M: number, N: number, K: number,
    ta: number, tb: number, alpha: number, beta: number): Float64Array {
    const y = new Float64Array(M * N);
    mag = new Float64Array(M * N);
    for (let m = 0; m < M; ++m)
      for (let n = 0; n < N; ++n) {
        let acc = 0, abs = 0;
        for (let k = 0; k < K; ++k) {
          const p = (ta ? a[k * M + m] : a[m * K + k]) * (tb ? b[n * K + k] : b[k * N + n]);
          acc += p;
          abs += Math.abs(p);
        }
        mag[m * N + n] = alpha * abs;
        let cv = 0;
        if (c) cv = c[(cShape.length === 2 && cShape[0] === M ? m * (cShape[cShape.length - 1]) : 0) + (cShape[cShape.length - 1] === N ? n : 0)];
        y[m * N + n] = alpha * acc + beta * cv;
      }
    return y;
  }
  test('every transpose combination, 1 to 40 rows, bias row or column, alpha and beta', () => {
    const problems: string[] = [];
    let seed = 900;
    for (const [M, N, K] of [[1, 5, 7], [2, 9, 3], [3, 17, 33], [5, 64, 96], [20, 150, 260], [7, 10, 64], [40, 3, 100]])
      for (const ta of [0, 1])
        for (const tb of [0, 1]) {
          const a = rand(ta ? [K, M] : [M, K], ++seed);
          const b = konst(rand(tb ? [N, K] : [K, N], ++seed));
          const cShape = (seed & 1) ? [N] : [M, 1];
          const c = konst(rand(cShape, ++seed));
          const alpha = tb ? 0.5 : 1, beta = ta ? 2 : 1;
          const ref = refGemm(a.data, b.data, c.data, cShape, M, N, K, ta, tb, alpha, beta);
          for (const threads of [1, 2]) {
            const [y] = runOp('Gemm', [a, b, c], [[M, N]], { transA: ta, transB: tb, alpha, beta }, threads);
            try {
              close(y, ref, `Gemm M=${M} N=${N} K=${K} transA=${ta} transB=${tb} threads=${threads}`);
            } catch (e) {
              problems.push((e as Error).message);
            }
          }
        }
    expect(problems).toEqual([]);
  });
  test('MatMul with a constant B: one matrix, batches folded into rows (3 to 300 rows, pre-packed or not), and 1-D B', () => {
    const problems: string[] = [];
    let seed = 950;
    for (const [aShape, bShape] of [[[3, 20], [20, 7]], [[2, 5, 64], [64, 80]], [[4, 3, 100], [100, 120]], [[300, 9], [9, 5]], [[6, 11], [11]]]) {
      const a = rand(aShape, ++seed);
      const b = konst(rand(bShape, ++seed));
      const K = aShape[aShape.length - 1], N = bShape.length === 2 ? bShape[1] : 1;
      const rows = numel(aShape) / K;
      const ref = refGemm(a.data, b.data, null, [], rows, N, K, 0, 0, 1, 0);
      const outShape = bShape.length === 2 ? [...aShape.slice(0, -1), N] : aShape.slice(0, -1);
      for (const threads of [1, 2]) {
        const [y] = runOp('MatMul', [a, b], [outShape], {}, threads);
        try {
          close(y, ref, `MatMul ${aShape} x ${bShape} threads=${threads}`);
        } catch (e) {
          problems.push((e as Error).message);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe('MaxPool and AveragePool', () => {
  const cfgs: PoolCfg[] = [
    { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], ceil: false },
    { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], ceil: false },
    { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], ceil: true },
    { kernel: [3, 3], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], ceil: true },
    { kernel: [2, 3], strides: [3, 2], pads: [1, 0, 0, 2], dilations: [1, 1], ceil: true },
    { kernel: [2, 2], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [2, 2], ceil: false },
    { kernel: [3, 2], strides: [2, 1], pads: [2, 1, 2, 1], dilations: [2, 3], ceil: true },
  ];
  const shapes = [[1, 1, 7, 7], [2, 3, 8, 9], [1, 2, 5, 6]];
  test('MaxPool with padding, strides, dilations and ceil-mode clipping', () => {
    for (const c of cfgs)
      shapes.forEach((shape, si) => {
        const x = rand(shape, 500 + si, -3, 1); // mostly negative: padding must never win
        const ref = refPool(x.data, shape, c, 'max');
        const [y] = runOp('MaxPool', [x], [ref.out], { kernel: c.kernel, strides: c.strides, pads: c.pads, dilations: c.dilations });
        expectClose(y, ref.y, 0, 0, `MaxPool ${JSON.stringify(c)} ${shape}`);
      });
  });
  for (const include of [0, 1]) {
    test(`AveragePool count_include_pad=${include}`, () => {
      for (const c of cfgs)
        shapes.forEach((shape, si) => {
          const x = rand(shape, 600 + si);
          const ref = refPool(x.data, shape, { ...c, include }, 'avg');
          const [y] = runOp('AveragePool', [x], [ref.out], {
            kernel: c.kernel, strides: c.strides, pads: c.pads, dilations: c.dilations, count_include_pad: include,
          });
          expectClose(y, ref.y, 2e-6, 1e-7, `AveragePool ${JSON.stringify(c)} ${shape}`);
        });
    });
  }
  test('ceil_mode: the last window runs past the padded input and is clipped (known values)', () => {
    // 1x1x4x4 input 1..16, kernel 3, stride 2, no pads, ceil -> 2x2 output (ONNX test_averagepool_2d_ceil).
    const x = tensor([1, 1, 4, 4], Array.from({ length: 16 }, (_, i) => i + 1));
    const attrs = { kernel: [3, 3], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1] };
    expectClose(runOp('AveragePool', [x], [[1, 1, 2, 2]], attrs)[0], [6, 7.5, 12, 13.5], 1e-6);
    expectClose(runOp('MaxPool', [x], [[1, 1, 2, 2]], attrs)[0], [11, 12, 15, 16], 0);
  });
  test('1-D pools arrive as rank-3 or as H = 1', () => {
    const x = rand([2, 3, 10], 700);
    const ref = refPool(x.data, [2, 3, 1, 10], { kernel: [1, 3], strides: [1, 2], pads: [0, 1, 0, 1], dilations: [1, 1], ceil: false }, 'max');
    const attrs = { kernel: [1, 3], strides: [1, 2], pads: [0, 1, 0, 1], dilations: [1, 1] };
    expectClose(runOp('MaxPool', [x], [[2, 3, ref.out[3]]], attrs)[0], ref.y, 0, 0);
    expectClose(runOp('MaxPool', [{ ...x, shape: [2, 3, 1, 10] }], [ref.out], attrs)[0], ref.y, 0, 0);
  });
  // 2x2 stride 2 without padding runs a vector kernel on SIMD ISAs (two rows maxed, even and odd
  // columns split by shuffles, narrower vectors then scalars for the row's tail): odd and even
  // sizes from 2 to 67 columns (outputs 1..33: every tail length of 16-, 8- and 4-lane vectors), on
  // the scalar ISA and the default one, 1 and 2 threads, equal to the reference bit for bit.
  test('MaxPool 2x2 stride 2 over every row-tail length, scalar and SIMD ISAs', () => {
    const c: PoolCfg = { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], ceil: false };
    const problems: string[] = [];
    for (const [H, W] of [[2, 2], [3, 3], [5, 9], [4, 16], [7, 17], [6, 31], [3, 33], [4, 47], [5, 64], [2, 67], [28, 28], [14, 14]]) {
      const shape = [2, 3, H, W];
      const x = rand(shape, 800 + W, -3, 1);
      const ref = refPool(x.data, shape, c, 'max');
      for (const isa of ['scalar', undefined])
        for (const threads of [1, 2]) {
          const [y] = runOp('MaxPool', [x], [ref.out], { kernel: c.kernel, strides: c.strides, pads: c.pads, dilations: c.dilations }, threads, isa);
          try {
            expectClose(y, ref.y, 0, 0, `MaxPool 2x2/2 ${shape} ${isa ?? 'default'} threads=${threads}`);
          } catch (e) {
            problems.push((e as Error).message);
          }
        }
    }
    expect(problems).toEqual([]);
  });
  // Enough work for a helper thread: batch 1 splits output rows (odd heights leave the last input
  // row unread), batch 2 splits images; both must equal the reference bit for bit.
  test('MaxPool 2x2 stride 2 on two threads: row split at batch 1, image split at batch 2', () => {
    const c: PoolCfg = { kernel: [2, 2], strides: [2, 2], pads: [0, 0, 0, 0], dilations: [1, 1], ceil: false };
    for (const shape of [[1, 64, 28, 28], [1, 64, 29, 37], [1, 96, 7, 50], [2, 64, 28, 28]]) {
      const x = rand(shape, 900 + shape[2], -3, 1);
      const ref = refPool(x.data, shape, c, 'max');
      for (const isa of ['scalar', undefined]) {
        const [y] = runOp('MaxPool', [x], [ref.out], { kernel: c.kernel, strides: c.strides }, 2, isa);
        expectClose(y, ref.y, 0, 0, `MaxPool 2x2/2 ${shape} ${isa ?? 'default'} threads=2`);
      }
    }
  });
  test('large pools on two threads', () => {
    const shape = [2, 16, 56, 56];
    const x = rand(shape, 710);
    const c: PoolCfg = { kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], dilations: [1, 1], ceil: false, include: 1 };
    const mref = refPool(x.data, shape, c, 'max');
    expectClose(runOp('MaxPool', [x], [mref.out], { kernel: c.kernel, strides: c.strides, pads: c.pads }, 2)[0], mref.y, 0, 0);
    const aref = refPool(x.data, shape, c, 'avg');
    expectClose(runOp('AveragePool', [x], [aref.out], { kernel: c.kernel, strides: c.strides, pads: c.pads, count_include_pad: 1 }, 2)[0], aref.y, 2e-6, 1e-7);
  });
});

test('GlobalAveragePool and GlobalMaxPool', () => {
  for (const shape of [[2, 3, 4, 5], [1, 4, 7], [2, 5, 1, 1], [1, 64, 32, 32], [1, 2, 3, 4, 5]]) {
    const x = rand(shape, 800);
    const out = [shape[0], shape[1], ...shape.slice(2).map(() => 1)];
    const n = numel(shape.slice(2));
    const avg = new Float64Array(shape[0] * shape[1]), mx = new Float64Array(shape[0] * shape[1]).fill(-Infinity);
    x.data.forEach((v, i) => {
      const p = Math.floor(i / n);
      avg[p] += v / n;
      mx[p] = Math.max(mx[p], v);
    });
    expectClose(runOp('GlobalAveragePool', [x], [out], {}, 2)[0], avg, 2e-6, 1e-7, `GAP ${shape}`);
    expectClose(runOp('GlobalMaxPool', [x], [out], {}, 2)[0], mx, 0, 0, `GMP ${shape}`);
  }
});

// ------------------------------------------------------------------------------------------------
// Reductions

const reducers: Record<string, (v: number[]) => number> = {
  ReduceMean: (v) => v.reduce((a, b) => a + b, 0) / v.length,
  ReduceSum: (v) => v.reduce((a, b) => a + b, 0),
  ReduceMax: (v) => Math.max(...v),
  ReduceMin: (v) => Math.min(...v),
  ReduceProd: (v) => v.reduce((a, b) => a * b, 1),
  ReduceL1: (v) => v.reduce((a, b) => a + Math.abs(b), 0),
  ReduceL2: (v) => Math.sqrt(v.reduce((a, b) => a + b * b, 0)),
  ReduceSumSquare: (v) => v.reduce((a, b) => a + b * b, 0),
  ReduceLogSumExp: (v) => Math.log(v.reduce((a, b) => a + Math.exp(b), 0)),
};

function refReduce(x: Float32Array, shape: number[], axes: number[], keep: boolean, f: (v: number[]) => number) {
  const outKeep = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const groups: number[][] = Array.from({ length: numel(outKeep) }, () => []);
  for (let i = 0; i < x.length; ++i) {
    const idx = unravel(i, shape).map((v, d) => (axes.includes(d) ? 0 : v));
    let k = 0;
    for (let d = 0; d < shape.length; ++d) k = k * outKeep[d] + idx[d];
    groups[k].push(x[i]);
  }
  const out = keep ? outKeep : shape.filter((_, i) => !axes.includes(i));
  return { y: groups.map(f), out };
}

describe('reductions', () => {
  const cases: [number[], number[]][] = [
    [[3, 4, 5], [2]],
    [[3, 4, 5], [1]],
    [[3, 4, 5], [0]],
    [[3, 4, 5], [0, 2]],
    [[3, 4, 5], [0, 1, 2]],
    [[2, 3, 4, 5], [1, 3]],
    [[2, 1, 4], [1]],
    [[1, 6, 1], [0, 2]],
    [[5], [0]],
  ];
  for (const [type, f] of Object.entries(reducers)) {
    test(type, () => {
      cases.forEach(([shape, axes], ci) => {
        for (const keep of [0, 1]) {
          const x = type === 'ReduceProd' ? rand(shape, 900 + ci, 0.5, 1.5) : rand(shape, 900 + ci);
          const ref = refReduce(x.data, shape, axes, keep === 1, f);
          const [y] = runOp(type, [x], [ref.out], { axes, keepdims: keep });
          expectClose(y, ref.y, 2e-6, 1e-6, `${type} ${shape} axes ${axes} keepdims ${keep}`);
        }
      });
    });
  }
  test('long axes and large tensors on two threads', () => {
    const cases2: [number[], number[]][] = [
      [[4, 100000], [1]],
      [[100000, 4], [0]],
      [[8, 300, 64], [1]],
      [[8, 300, 64], [0, 2]],
    ];
    for (const [shape, axes] of cases2) {
      const x = rand(shape, 950, -1, 3);
      for (const type of ['ReduceMean', 'ReduceMax', 'ReduceLogSumExp']) {
        const ref = refReduce(x.data, shape, axes, true, reducers[type]);
        const [y] = runOp(type, [x], [ref.out], { axes, keepdims: 1 }, 2);
        expectClose(y, ref.y, 2e-6, 1e-6, `${type} ${shape} axes ${axes}`);
      }
    }
  });
  test('LogSumExp is stable for large values', () => {
    const x = tensor([2, 3], [1000, 1000, 1000, -1e4, 5e3, 5e3]);
    const [y] = runOp('ReduceLogSumExp', [x], [[2]], { axes: [1], keepdims: 0 });
    expectClose(y, [1000 + Math.log(3), 5e3 + Math.log(2)], 1e-6);
  });
});

// ------------------------------------------------------------------------------------------------
// Shape and data movement

function refTranspose(x: Float32Array, shape: number[], perm: number[]) {
  const out = perm.map((p) => shape[p]);
  const st = strides(shape);
  const y = new Float32Array(x.length);
  for (let i = 0; i < y.length; ++i) {
    const idx = unravel(i, out);
    let k = 0;
    for (let d = 0; d < perm.length; ++d) k += idx[d] * st[perm[d]];
    y[i] = x[k];
  }
  return { y, out };
}

describe('shape ops', () => {
  test('Reshape and Identity copy the data', () => {
    const x = rand([2, 3, 4], 1000);
    expectClose(runOp('Reshape', [x], [[4, 6]])[0], x.data, 0, 0);
    expectClose(runOp('Reshape', [x], [[24]])[0], x.data, 0, 0);
    expectClose(runOp('Identity', [x], [[2, 3, 4]])[0], x.data, 0, 0);
  });

  test('Transpose', () => {
    const cases: [number[], number[]][] = [
      [[2, 3], [1, 0]],
      [[2, 3, 4], [0, 2, 1]],
      [[2, 3, 4], [2, 0, 1]],
      [[2, 3, 4, 5], [0, 2, 1, 3]],
      [[2, 3, 4, 5], [3, 2, 1, 0]],
      [[1, 5, 1, 3], [3, 1, 0, 2]],
      [[4, 12, 64, 33], [0, 1, 3, 2]], // tiled, many blocks, two threads
      [[300, 200], [1, 0]], // tiled, one block
      [[2, 128, 12, 64], [0, 2, 1, 3]], // head split in transformers
      [[7], [0]],
    ];
    cases.forEach(([shape, perm], ci) => {
      const x = rand(shape, 1100 + ci);
      const ref = refTranspose(x.data, shape, perm);
      expectClose(runOp('Transpose', [x], [ref.out], { perm }, 2)[0], ref.y, 0, 0, `Transpose ${shape} ${perm}`);
    });
  });

  test('Concat and Split', () => {
    const cases: [number[][], number][] = [
      [[[2, 3], [4, 3]], 0],
      [[[2, 3, 4], [2, 1, 4], [2, 5, 4]], 1],
      [[[2, 3, 4], [2, 3, 2], [2, 3, 1]], 2],
      [[[3], [0], [2]], 0],
    ];
    cases.forEach(([shapes, axis], ci) => {
      const ins = shapes.map((s, k) => rand(s, 1200 + 10 * ci + k));
      const out = shapes[0].slice();
      out[axis] = shapes.reduce((a, s) => a + s[axis], 0);
      const want = new Float32Array(numel(out));
      for (let i = 0; i < want.length; ++i) {
        const idx = unravel(i, out);
        let k = 0, a = idx[axis];
        while (a >= shapes[k][axis]) a -= shapes[k++][axis];
        const src = idx.slice();
        src[axis] = a;
        let off = 0;
        for (let d = 0; d < src.length; ++d) off = off * shapes[k][d] + src[d];
        want[i] = ins[k].data[off];
      }
      expectClose(runOp('Concat', ins, [out], { axis })[0], want, 0, 0, `Concat ${JSON.stringify(shapes)}`);
      const parts = runOp('Split', [{ shape: out, data: want }], shapes, { axis, split: shapes.map((s) => s[axis]) });
      parts.forEach((p, k) => expectClose(p, ins[k].data, 0, 0, `Split part ${k}`));
    });
  });

  /** ONNX Slice normalisation (what the TS side does): returns the clamped start and the element count. */
  function sliceDim(start: number, end: number, step: number, dim: number): [number, number] {
    if (start < 0) start += dim;
    if (end < 0) end += dim;
    if (step > 0) {
      start = Math.min(Math.max(start, 0), dim);
      end = Math.min(Math.max(end, 0), dim);
      return [start, Math.max(0, Math.ceil((end - start) / step))];
    }
    start = Math.min(Math.max(start, 0), dim - 1);
    end = Math.min(Math.max(end, -1), dim - 1);
    return [start, Math.max(0, Math.ceil((start - end) / -step))];
  }

  test('Slice with positive and negative steps', () => {
    const cases: [number[], number[], number[], number[], number[]][] = [
      // shape, starts, ends, axes, steps
      [[10], [2], [8], [0], [1]],
      [[10], [8], [1], [0], [-2]],
      [[10], [-1], [-11], [0], [-1]],
      [[4, 6, 5], [1, 0], [3, 6], [0, 2], [1, 2]],
      [[4, 6, 5], [-1, 5, 4], [-5, 0, 0], [0, 1, 2], [-1, -2, -3]],
      [[3, 4], [0], [100], [1], [3]],
      [[3, 4], [2], [2], [1], [1]], // empty
      [[2, 50, 700], [0], [1], [0], [1]], // large inner copies, two threads
    ];
    cases.forEach(([shape, st, en, axes, steps], ci) => {
      const x = rand(shape, 1300 + ci);
      const starts: number[] = [], ends: number[] = [];
      const out = shape.slice();
      axes.forEach((a, i) => {
        const [s, n] = sliceDim(st[i], en[i], steps[i], shape[a]);
        starts.push(s);
        ends.push(s + n * steps[i]);
        out[a] = n;
      });
      const full = shape.map(() => 0), step = shape.map(() => 1);
      axes.forEach((a, i) => ((full[a] = starts[i]), (step[a] = steps[i])));
      const want = new Float32Array(numel(out));
      const ist = strides(shape);
      for (let i = 0; i < want.length; ++i) {
        const idx = unravel(i, out);
        want[i] = x.data[idx.reduce((acc, v, d) => acc + (full[d] + v * step[d]) * ist[d], 0)];
      }
      expectClose(runOp('Slice', [x], [out], { starts, ends, axes, steps }, 2)[0], want, 0, 0, `Slice case ${ci}`);
    });
  });

  test('Gather on axis 0, axis 1, scalar and 2-D indices', () => {
    const cases: [number[], number, number[], number[]][] = [
      [[5, 3], 0, [4, 0, 2, 2], [4]],
      [[2, 6, 3], 1, [5, 0, 3], [3]],
      [[2, 6, 3], 1, [1], []],
      [[4, 5], 1, [0, 4, 1, 2, 3, 3], [2, 3]],
      [[3, 4], 0, [], [0]],
    ];
    cases.forEach(([shape, axis, indices, ishape], ci) => {
      const x = rand(shape, 1400 + ci);
      const out = [...shape.slice(0, axis), ...ishape, ...shape.slice(axis + 1)];
      const outer = numel(shape.slice(0, axis)), inner = numel(shape.slice(axis + 1));
      const want: number[] = [];
      for (let o = 0; o < outer; ++o)
        for (const k of indices)
          for (let j = 0; j < inner; ++j) want.push(x.data[(o * shape[axis] + k) * inner + j]);
      expectClose(runOp('Gather', [x], [out], { axis, indices, indices_shape: ishape })[0], want, 0, 0, `Gather case ${ci}`);
    });
  });

  test('Where with broadcasting', () => {
    const cases: number[][][] = [
      [[2, 3], [2, 3], [2, 3]],
      [[3], [2, 3], [1]],
      [[2, 1], [1, 4], [2, 4]],
      [[1, 1, 5], [2, 3, 1], []],
      [[200, 300], [300], [200, 1]],
    ];
    cases.forEach(([sc, sx, sy], ci) => {
      const r = mulberry32(1500 + ci);
      const c: In = { shape: sc, data: Float32Array.from({ length: numel(sc) }, () => (r() < 0.5 ? 1 : 0)) };
      const x = rand(sx, 1510 + ci), y = rand(sy, 1520 + ci);
      const out = bcastShape(sc, sx, sy);
      const want = Array.from({ length: numel(out) }, (_, i) => {
        const idx = unravel(i, out);
        return c.data[bcastIndex(idx, sc)] ? x.data[bcastIndex(idx, sx)] : y.data[bcastIndex(idx, sy)];
      });
      expectClose(runOp('Where', [c, x, y], [out], {}, 2)[0], want, 0, 0, `Where case ${ci}`);
    });
  });

  test('Expand', () => {
    const cases: [number[], number[]][] = [
      [[3, 1], [3, 4]],
      [[3, 1], [2, 3, 5]],
      [[1], [4, 2]],
      [[2, 1, 3], [2, 4, 3]],
      [[4], [4]],
      [[1, 512], [128, 512]],
    ];
    cases.forEach(([sx, out], ci) => {
      const x = rand(sx, 1600 + ci);
      const want = Array.from({ length: numel(out) }, (_, i) => x.data[bcastIndex(unravel(i, out), sx)]);
      expectClose(runOp('Expand', [x], [out], {}, 2)[0], want, 0, 0, `Expand case ${ci}`);
    });
  });

  /** Input index for one output index, walking reflections one step at a time (numpy semantics). */
  function padSrc(o: number, begin: number, n: number, mode: string): number {
    let i = o - begin;
    if (mode === 'constant') return i < 0 || i >= n ? -1 : i;
    if (mode === 'edge' || n === 1) return Math.min(Math.max(i, 0), n - 1);
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  }

  test('Pad constant, reflect and edge (including negative pads and long reflections)', () => {
    const cases: [number[], number[], string, number][] = [
      [[3, 4], [1, 2, 0, 1], 'constant', 0],
      [[3, 4], [1, 2, 2, 1], 'constant', -1.5],
      [[3, 4], [-1, 1, 0, -2], 'constant', 7],
      [[3, 4], [2, 3, 2, 3], 'reflect', 0],
      [[2, 3, 4, 5], [0, 0, 1, 2, 0, 0, 1, 2], 'reflect', 0],
      [[3, 4], [2, 3, 1, 5], 'edge', 0],
      [[1, 2, 5, 5], [0, 0, 1, 1, 0, 0, 1, 1], 'edge', 0],
      [[3], [5, 7], 'reflect', 0], // pads longer than the dim reflect repeatedly
      [[1, 3], [0, 2, 0, 1], 'reflect', 0],
    ];
    cases.forEach(([shape, pads, mode, value], ci) => {
      const R = shape.length;
      const x = rand(shape, 1700 + ci);
      const out = shape.map((d, i) => d + pads[i] + pads[R + i]);
      const want = Array.from({ length: numel(out) }, (_, i) => {
        const idx = unravel(i, out);
        let off = 0;
        for (let d = 0; d < R; ++d) {
          const s = padSrc(idx[d], pads[d], shape[d], mode);
          if (s < 0) return Math.fround(value);
          off = off * shape[d] + s;
        }
        return x.data[off];
      });
      expectClose(runOp('Pad', [x], [out], { pads, mode, value })[0], want, 0, 0, `Pad case ${ci} (${mode})`);
    });
  });
});

// ------------------------------------------------------------------------------------------------
// Validation: bad shapes and attributes throw JS errors that name the node

describe('validation', () => {
  const bad: [string, In[], number[][], Record<string, Attr>, string][] = [
    ['Add', [rand([2, 3], 1), rand([4], 2)], [[2, 3]], {}, 'SHAPE_MISMATCH'],
    ['Add', [rand([2, 3], 1), rand([3], 2)], [[2, 4]], {}, 'SHAPE_MISMATCH'],
    ['Relu', [rand([2, 3], 1)], [[3, 2]], {}, 'SHAPE_MISMATCH'],
    ['Concat', [rand([2, 3], 1), rand([2, 4], 2)], [[4, 3]], { axis: 0 }, 'SHAPE_MISMATCH'],
    ['Concat', [rand([2, 3], 1), rand([2, 4], 2)], [[2, 8]], { axis: 1 }, 'SHAPE_MISMATCH'],
    ['Transpose', [rand([2, 3, 4], 1)], [[3, 3, 4]], { perm: [1, 1, 2] }, 'SHAPE_MISMATCH'],
    ['Transpose', [rand([2, 3], 1)], [[3, 2]], { perm: [1, 0, 2] }, 'UNSUPPORTED_OP'],
    ['Reshape', [rand([2, 3], 1)], [[7]], {}, 'SHAPE_MISMATCH'],
    ['MaxPool', [rand([1, 1, 6, 6], 1)], [[1, 1, 4, 4]], { kernel: [2, 2], strides: [2, 2] }, 'SHAPE_MISMATCH'],
    ['MaxPool', [rand([1, 1, 6, 6], 1)], [[1, 1, 3, 3]], { kernel: [2, 2], strides: [0, 2] }, 'UNSUPPORTED_OP'],
    ['MaxPool', [rand([1, 1, 2, 2], 1)], [[1, 1, 1, 1]], { kernel: [5, 5] }, 'SHAPE_MISMATCH'],
    ['AveragePool', [rand([1, 1, 6, 6], 1)], [[1, 1, 3, 3]], { strides: [2, 2] }, 'UNSUPPORTED_OP'],
    ['Gather', [rand([3, 4], 1)], [[2, 4]], { axis: 0, indices: [0, 3], indices_shape: [2] }, 'SHAPE_MISMATCH'],
    ['Gather', [rand([3, 4], 1)], [[3, 2]], { axis: 2, indices: [0, 1], indices_shape: [2] }, 'SHAPE_MISMATCH'],
    ['Slice', [rand([5], 1)], [[4]], { starts: [3], ends: [7], axes: [0], steps: [1] }, 'SHAPE_MISMATCH'],
    ['Slice', [rand([5], 1)], [[4]], { starts: [2], ends: [-4], axes: [0], steps: [-1] }, 'SHAPE_MISMATCH'],
    ['Slice', [rand([5], 1)], [[3]], { starts: [0], ends: [3], axes: [0], steps: [0] }, 'UNSUPPORTED_OP'],
    ['ReduceMean', [rand([2, 3], 1)], [[2, 1]], { axes: [1], keepdims: 0 }, 'SHAPE_MISMATCH'],
    ['ReduceSum', [rand([2, 3], 1)], [[2]], { axes: [2], keepdims: 0 }, 'SHAPE_MISMATCH'],
    ['Split', [rand([2, 6], 1)], [[2, 2], [2, 3]], { axis: 1 }, 'SHAPE_MISMATCH'],
    ['Softmax', [rand([2, 6], 1)], [[2, 6]], { axis: 2 }, 'SHAPE_MISMATCH'],
    ['LayerNormalization', [rand([2, 6], 1), konst(rand([5], 2))], [[2, 6]], { axis: 1 }, 'SHAPE_MISMATCH'],
    ['BatchNormalization', [rand([2, 3, 2], 1), ...[4, 3, 3, 3].map((c, k) => konst(rand([c], k)))], [[2, 3, 2]], {}, 'SHAPE_MISMATCH'],
    ['Pad', [rand([3, 4], 1)], [[5, 4]], { pads: [1, 0, 0, 0], mode: 'constant' }, 'SHAPE_MISMATCH'],
    ['Pad', [rand([3, 4], 1)], [[3, 4]], { pads: [0, 0, 0, 0], mode: 'wrap' }, 'UNSUPPORTED_OP'],
    ['Gelu', [rand([3], 1)], [[3]], { approximate: 'fast' }, 'UNSUPPORTED_OP'],
    ['Where', [rand([2], 1), rand([3], 2), rand([3], 3)], [[3]], {}, 'SHAPE_MISMATCH'],
    ['Expand', [rand([3, 2], 1)], [[3, 4]], {}, 'SHAPE_MISMATCH'],
  ];
  bad.forEach(([type, ins, outs, attrs, code], i) => {
    test(`${type} case ${i} throws ${code} naming the node`, () => {
      const name = `bad_${type}_${i}`;
      let err: any;
      try {
        program(type, ins, outs, attrs, 1, name);
      } catch (e) {
        err = e;
      }
      expect(err).toBeDefined(); // thrown from the addon's realm, so not instanceof this realm's Error
      expect(err.message).toContain(name);
      expect(err.code).toBe(code);
    });
  });
});

test('every op of the canonical non-GEMM set is registered', () => {
  const ops: string[] = native().supportedOps();
  const mine = (
    'Add Sub Mul Div Pow Sqrt Relu Sigmoid Tanh Erf Abs Neg Exp Log Reciprocal Identity Clip LeakyRelu HardSigmoid ' +
    'HardSwish Gelu Softmax LogSoftmax LayerNormalization BatchNormalization MaxPool AveragePool GlobalAveragePool ' +
    'GlobalMaxPool ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL1 ReduceL2 ReduceLogSumExp ' +
    'ReduceSumSquare Reshape Transpose Concat Split Slice Gather Where Expand Pad'
  ).split(' ');
  expect(mine.filter((t) => !ops.includes(t))).toEqual([]);
});

test('run() resolves with the same result as runSync()', async () => {
  const x = rand([4, 9], 2000);
  const p = program('Softmax', [x], [[4, 9]], { axis: 1 });
  const a: Float32Array[] = p.runSync([x.data]);
  const b: Float32Array[] = await p.run([x.data]);
  expect(Array.from(b[0])).toEqual(Array.from(a[0]));
});
