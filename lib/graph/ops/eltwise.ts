/** Element-wise ops: unary math, broadcast binary math, comparisons, activations, Where, Cast. */
import { DType, Tensor, attrFloat, attrInt, attrString, isFloatType, numel } from '../ir';
import {
  OpContext, OpDef, broadcastIndex, broadcastShapes, constInput, inShape, present, same, unsupported,
} from './types';

function newData(dtype: DType, n: number): Float32Array | Float64Array {
  return dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
}

function unary(fn: (x: number) => number, native = true): OpDef {
  return {
    infer: (c) => same(c),
    fold: (c) => {
      const x = c.consts[0]!;
      const out = newData(x.dtype, x.data.length);
      for (let i = 0; i < out.length; i++) out[i] = fn(x.data[i]);
      return [{ dtype: x.dtype, dims: [...x.dims], data: out }];
    },
    foldOnly: !native,
  };
}

function broadcastFold(c: OpContext, dtype: DType, fn: (...v: number[]) => number): Tensor[] {
  const ts = c.consts.filter((t): t is Tensor => t !== undefined);
  const dims = broadcastShapes(c, ts.map((t) => t.dims));
  const n = numel(dims);
  const idx = ts.map((t) => broadcastIndex(t.dims, dims));
  const out = newData(dtype, n);
  const args = new Array<number>(ts.length);
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < ts.length; j++) args[j] = ts[j].data[idx[j][k]];
    out[k] = fn(...args);
  }
  return [{ dtype, dims, data: out }];
}

function integral(t: DType | undefined): boolean {
  return t !== undefined && !isFloatType(t) && t !== 'bool';
}

function binary(fn: (a: number, b: number) => number, native = true): OpDef {
  return {
    infer: (c) => ({ shapes: [broadcastShapes(c, [inShape(c, 0), inShape(c, 1)])], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => {
      // Integer division truncates in ONNX (as in C); the float ops are the plain IEEE ones.
      const f = integral(c.inTypes[0]) && fn === divide ? (a: number, b: number) => Math.trunc(a / b) : fn;
      return broadcastFold(c, c.inTypes[0] ?? 'float32', f);
    },
    foldOnly: !native,
  };
}

function compare(fn: (a: number, b: number) => boolean): OpDef {
  return {
    infer: (c) => ({ shapes: [broadcastShapes(c, [inShape(c, 0), inShape(c, 1)])], dtypes: ['bool'] }),
    fold: (c) => broadcastFold(c, 'bool', (a, b) => (fn(a, b) ? 1 : 0)),
    foldOnly: true,
  };
}

const divide = (a: number, b: number) => a / b;

function variadic(fn: (a: number, b: number) => number): OpDef {
  return {
    infer: (c) => ({ shapes: [broadcastShapes(c, c.inShapes.filter((s): s is number[] => !!s))], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => broadcastFold(c, c.inTypes[0] ?? 'float32', (...v) => v.reduce((a, b) => fn(a, b))),
    foldOnly: true,
  };
}

const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse for folding float32 data; use a series / continued
  // fraction pair accurate to ~1e-15, which rounds to the same float32 as the native std::erf.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = ax, term = ax;
    for (let n = 1; n < 60; n++) {
      term *= (-ax * ax) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let cf = 0;
  for (let n = 60; n >= 1; n--) cf = (n / 2) / (ax + cf);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + cf);
  return Math.sign(x) * (1 - erfc);
};

export const ELTWISE_OPS: Record<string, OpDef> = {
  Add: binary((a, b) => a + b),
  Sub: binary((a, b) => a - b),
  Mul: binary((a, b) => a * b),
  Div: binary(divide),
  Pow: binary((a, b) => Math.pow(a, b)),
  Mod: {
    ...binary((a, b) => a - Math.floor(a / b) * b, false),
    // fmod=1: the sign follows the dividend (C fmod, JavaScript %); fmod=0: it follows the divisor.
    fold: (c) => broadcastFold(c, c.inTypes[0] ?? 'float32',
      attrInt(c.node, 'fmod', 0) === 1 ? (a, b) => a % b : (a, b) => a - Math.floor(a / b) * b),
  },
  Equal: compare((a, b) => a === b),
  Less: compare((a, b) => a < b),
  LessOrEqual: compare((a, b) => a <= b),
  Greater: compare((a, b) => a > b),
  GreaterOrEqual: compare((a, b) => a >= b),
  And: compare((a, b) => a !== 0 && b !== 0),
  Or: compare((a, b) => a !== 0 || b !== 0),
  Not: { ...unary((x) => (x ? 0 : 1), false), infer: (c) => same(c, 'bool') },
  Min: variadic(Math.min),
  Max: variadic(Math.max),
  Sqrt: unary(Math.sqrt),
  Relu: unary((x) => Math.max(0, x)),
  Sigmoid: unary((x) => 1 / (1 + Math.exp(-x))),
  Tanh: unary(Math.tanh),
  Erf: unary(erf),
  Abs: unary(Math.abs),
  Neg: unary((x) => -x),
  Exp: unary(Math.exp),
  Log: unary(Math.log),
  Reciprocal: unary((x) => 1 / x),
  Floor: unary(Math.floor, false),
  Ceil: unary(Math.ceil, false),
  Round: unary((x) => {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r; // half to even
  }, false),
  Identity: { ...unary((x) => x), lower: (c) => c.emit('Reshape', [c.node.inputs[0]], [c.node.outputs[0]]) },

  Clip: {
    infer: (c) => same(c),
    constInputs: [1, 2],
    lower: (c) => {
      let lo = -3.4028234663852886e38, hi = 3.4028234663852886e38;
      if (c.opset < 11) {
        lo = attrFloat(c.node, 'min', lo);
        hi = attrFloat(c.node, 'max', hi);
      } else {
        if (present(c, 1)) lo = constInput(c, 1, 'min').data[0];
        if (present(c, 2)) hi = constInput(c, 2, 'max').data[0];
      }
      c.emit('Clip', [c.node.inputs[0]], [c.node.outputs[0]], { min: lo, max: hi });
    },
  },
  LeakyRelu: {
    infer: (c) => same(c),
    lower: (c) => c.emit('LeakyRelu', [c.node.inputs[0]], [c.node.outputs[0]], { alpha: attrFloat(c.node, 'alpha', 0.01) }),
  },
  HardSigmoid: {
    infer: (c) => same(c),
    lower: (c) => c.emit('HardSigmoid', [c.node.inputs[0]], [c.node.outputs[0]], {
      alpha: attrFloat(c.node, 'alpha', 0.2), beta: attrFloat(c.node, 'beta', 0.5),
    }),
  },
  HardSwish: { infer: (c) => same(c) },
  Gelu: {
    infer: (c) => same(c),
    lower: (c) => {
      const approximate = attrString(c.node, 'approximate', 'none');
      if (approximate !== 'none' && approximate !== 'tanh') unsupported(c, `approximate="${approximate}" is not a GELU form`);
      c.emit('Gelu', [c.node.inputs[0]], [c.node.outputs[0]], { approximate });
    },
  },
  Where: {
    infer: (c) => ({
      shapes: [broadcastShapes(c, [inShape(c, 0), inShape(c, 1), inShape(c, 2)])],
      dtypes: [c.inTypes[1] ?? 'float32'],
    }),
    fold: (c) => broadcastFold(c, c.inTypes[1] ?? 'float32', (cond, x, y) => (cond ? x : y)),
    lower: (c) => {
      // The condition is bool, which exists at run time only as a constant turned into 0/1 floats.
      const cond = constInput(c, 0, 'condition');
      const f = c.constant({ dtype: 'float32', dims: cond.dims, data: Float32Array.from(cond.data) });
      c.emit('Where', [f, c.node.inputs[1], c.node.inputs[2]], [c.node.outputs[0]]);
    },
  },
  Cast: {
    infer: (c) => same(c, castTarget(c)),
    fold: (c) => {
      const to = castTarget(c);
      const x = c.consts[0]!;
      const out = newData(to, x.data.length);
      for (let i = 0; i < out.length; i++) out[i] = castValue(x.data[i], to);
      return [{ dtype: to, dims: [...x.dims], data: out }];
    },
    lower: (c) => {
      if (castTarget(c) !== 'float32' || c.inTypes[0] !== 'float32')
        unsupported(c, `only float32 → float32 casts run at run time (got ${c.inTypes[0]} → ${castTarget(c)})`);
      c.emit('Reshape', [c.node.inputs[0]], [c.node.outputs[0]]);
    },
  },
  Dropout: {
    infer: (c) => ({ shapes: [inShape(c, 0), inShape(c, 0)], dtypes: [c.inTypes[0] ?? 'float32', 'bool'] }),
    constInputs: [1, 2],
    lower: (c) => {
      if (c.node.outputs[1]) unsupported(c, 'the optional mask output is a bool tensor, which the float engine does not produce');
      if (present(c, 2) && constInput(c, 2, 'training_mode').data[0]) unsupported(c, 'training_mode=true is not inference');
      c.emit('Reshape', [c.node.inputs[0]], [c.node.outputs[0]]);
    },
  },
};

const CAST_TYPES: Record<number, DType> = {
  1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 9: 'bool',
  10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 16: 'bfloat16',
};

function castTarget(c: OpContext): DType {
  const to = attrInt(c.node, 'to');
  const t = to === undefined ? undefined : CAST_TYPES[to];
  if (!t) unsupported(c, `cast to element type ${to} is not supported`);
  return t;
}

function castValue(v: number, to: DType): number {
  switch (to) {
    case 'bool': return v ? 1 : 0;
    case 'float32': case 'float64': case 'float16': case 'bfloat16': return v;
    default: return Math.trunc(v);
  }
}
