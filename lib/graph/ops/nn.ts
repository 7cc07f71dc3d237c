/** Neural-network ops: convolution, linear layers, pooling, normalisation and softmax. */
import { attrFloat, attrInt, attrInts, attrString, numel } from '../ir';
import {
  LowerContext, OpContext, OpDef, broadcastShapes, constInput, fmt, inShape, normAxis, present, same, shapeError,
  unsupported,
} from './types';

/** Spatial geometry of a sliding-window op after resolving auto_pad (ONNX rules). */
interface Window { kernel: number[]; strides: number[]; dilations: number[]; pads: number[]; out: number[] }

function windowOf(c: OpContext, spatialIn: number[], kernel: number[], ceil: boolean): Window {
  const r = spatialIn.length;
  const strides = attrInts(c.node, 'strides') ?? new Array(r).fill(1);
  const dilations = attrInts(c.node, 'dilations') ?? new Array(r).fill(1);
  let pads = attrInts(c.node, 'pads') ?? new Array(2 * r).fill(0);
  if (strides.length !== r || dilations.length !== r || pads.length !== 2 * r)
    shapeError(c, `strides ${fmt(strides)}, dilations ${fmt(dilations)} or pads ${fmt(pads)} do not fit ${r} spatial dims`);
  if (strides.some((s) => s < 1) || dilations.some((d) => d < 1)) shapeError(c, 'strides and dilations must be >= 1');
  const autoPad = attrString(c.node, 'auto_pad', 'NOTSET');
  const eff = kernel.map((k, i) => (k - 1) * dilations[i] + 1);
  const out: number[] = [];
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') {
    pads = new Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) {
      const o = Math.ceil(spatialIn[i] / strides[i]);
      const total = Math.max(0, (o - 1) * strides[i] + eff[i] - spatialIn[i]);
      const small = Math.floor(total / 2);
      pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
      pads[i + r] = total - pads[i];
      out.push(o);
    }
  } else if (autoPad === 'VALID') {
    pads = new Array(2 * r).fill(0);
    for (let i = 0; i < r; i++) out.push(Math.floor((spatialIn[i] - eff[i]) / strides[i]) + 1);
  } else if (autoPad === 'NOTSET') {
    for (let i = 0; i < r; i++) {
      const span = spatialIn[i] + pads[i] + pads[i + r] - eff[i];
      let o = (ceil ? Math.ceil(span / strides[i]) : Math.floor(span / strides[i])) + 1;
      // A window that would start inside the end padding is dropped (ceil_mode rule).
      if (ceil && (o - 1) * strides[i] >= spatialIn[i] + pads[i]) o--;
      out.push(o);
    }
  } else {
    unsupported(c, `auto_pad "${autoPad}" is not an ONNX value`);
  }
  if (out.some((o) => o < 1)) shapeError(c, `the window ${fmt(kernel)} does not fit the input ${fmt(spatialIn)} with pads ${fmt(pads)}`);
  return { kernel, strides, dilations, pads, out };
}

/** 2-D attributes for the native kernels, which see 1-D windows as H = 1. */
function as2d(w: Window): { kernel: number[]; strides: number[]; pads: number[]; dilations: number[] } {
  if (w.kernel.length === 2) return w;
  return { kernel: [1, w.kernel[0]], strides: [1, w.strides[0]], pads: [0, w.pads[0], 0, w.pads[1]], dilations: [1, w.dilations[0]] };
}

/** Runs `body` on 4-D views of 3-D (1-D spatial) input and output, adding the reshapes around it. */
function with4d(c: LowerContext, body: (x: string, y: string) => void): void {
  const x = inShape(c, 0), y = c.outShapes[0];
  if (x.length === 4) return body(c.node.inputs[0], c.node.outputs[0]);
  const x4 = c.temp([x[0], x[1], 1, x[2]]), y4 = c.temp([y[0], y[1], 1, y[2]]);
  c.emit('Reshape', [c.node.inputs[0]], [x4]);
  body(x4, y4);
  c.emit('Reshape', [y4], [c.node.outputs[0]]);
}

function checkSpatial(c: OpContext, x: number[]): void {
  if (x.length !== 3 && x.length !== 4) unsupported(c, `only 1-D and 2-D spatial inputs are supported, got ${fmt(x)}`);
}

function convWindow(c: OpContext): Window {
  const x = inShape(c, 0), w = inShape(c, 1);
  checkSpatial(c, x);
  if (w.length !== x.length) shapeError(c, `weight ${fmt(w)} does not match input ${fmt(x)}`);
  const kernel = attrInts(c.node, 'kernel_shape') ?? w.slice(2);
  if (kernel.some((k, i) => k !== w[i + 2])) shapeError(c, `kernel_shape ${fmt(kernel)} does not match weight ${fmt(w)}`);
  const group = attrInt(c.node, 'group', 1);
  if (x[1] !== w[1] * group) shapeError(c, `input ${fmt(x)} has ${x[1]} channels but weight ${fmt(w)} with group ${group} needs ${w[1] * group}`);
  if (w[0] % group !== 0) shapeError(c, `weight ${fmt(w)}: ${w[0]} output channels are not divisible by group ${group}`);
  if (present(c, 2) && numel(inShape(c, 2)) !== w[0]) shapeError(c, `bias ${fmt(inShape(c, 2))} should have ${w[0]} elements`);
  return windowOf(c, x.slice(2), kernel, false);
}

function poolWindow(c: OpContext): Window {
  const x = inShape(c, 0);
  checkSpatial(c, x);
  const kernel = attrInts(c.node, 'kernel_shape');
  if (!kernel || kernel.length !== x.length - 2) shapeError(c, `kernel_shape ${fmt(kernel)} does not fit input ${fmt(x)}`);
  return windowOf(c, x.slice(2), kernel, attrInt(c.node, 'ceil_mode', 0) === 1);
}

function pool(kind: 'MaxPool' | 'AveragePool'): OpDef {
  return {
    infer: (c) => {
      const x = inShape(c, 0);
      const shape = [x[0], x[1], ...poolWindow(c).out];
      return { shapes: c.node.outputs.map(() => shape), dtypes: [c.inTypes[0] ?? 'float32', 'int64'] };
    },
    lower: (c) => {
      if (kind === 'MaxPool' && c.node.outputs[1]) unsupported(c, 'the Indices output is not supported');
      if (attrInt(c.node, 'storage_order', 0) !== 0) unsupported(c, 'storage_order=1 is not supported');
      const w = as2d(poolWindow(c));
      with4d(c, (x, y) => c.emit(kind, [x], [y], {
        kernel: w.kernel, strides: w.strides, pads: w.pads, dilations: w.dilations,
        count_include_pad: attrInt(c.node, 'count_include_pad', 0),
      }));
    },
  };
}

function globalPool(kind: string): OpDef {
  return {
    infer: (c) => {
      const x = inShape(c, 0);
      if (x.length < 3) shapeError(c, `input ${fmt(x)} has no spatial dims`);
      return { shapes: [[x[0], x[1], ...x.slice(2).map(() => 1)]], dtypes: [c.inTypes[0] ?? 'float32'] };
    },
    lower: (c) => c.emit(kind, [c.node.inputs[0]], [c.node.outputs[0]]),
  };
}

function softmaxLike(kind: 'Softmax' | 'LogSoftmax'): OpDef {
  return {
    infer: (c) => same(c),
    lower: (c) => {
      const x = inShape(c, 0);
      const axis = normAxis(c, attrInt(c.node, 'axis', c.opset >= 13 ? -1 : 1), x.length);
      if (c.opset >= 13 || axis === x.length - 1) {
        c.emit(kind, [c.node.inputs[0]], [c.node.outputs[0]], { axis });
        return;
      }
      // Before opset 13 the input is coerced to 2-D [prod(:axis), prod(axis:)] around the softmax.
      const flat = [numel(x.slice(0, axis)), numel(x.slice(axis))];
      const a = c.temp(flat), b = c.temp(flat);
      c.emit('Reshape', [c.node.inputs[0]], [a]);
      c.emit(kind, [a], [b], { axis: 1 });
      c.emit('Reshape', [b], [c.node.outputs[0]]);
    },
  };
}

function gemmShape(c: OpContext): number[] {
  const a = inShape(c, 0), b = inShape(c, 1);
  if (a.length !== 2 || b.length !== 2) shapeError(c, `A ${fmt(a)} and B ${fmt(b)} must be 2-D`);
  const ta = attrInt(c.node, 'transA', 0), tb = attrInt(c.node, 'transB', 0);
  const [m, k] = ta ? [a[1], a[0]] : a;
  const [k2, n] = tb ? [b[1], b[0]] : b;
  if (k !== k2) shapeError(c, `inner dimensions of A ${fmt(a)} and B ${fmt(b)} differ`);
  if (present(c, 2)) broadcastShapes(c, [inShape(c, 2), [m, n]]);
  return [m, n];
}

function matmulShape(c: OpContext): number[] {
  const a = inShape(c, 0), b = inShape(c, 1);
  if (a.length === 0 || b.length === 0) shapeError(c, 'operands must have rank >= 1');
  const a2 = a.length === 1 ? [1, a[0]] : a, b2 = b.length === 1 ? [b[0], 1] : b;
  if (a2[a2.length - 1] !== b2[b2.length - 2]) shapeError(c, `inner dimensions of ${fmt(a)} and ${fmt(b)} differ`);
  const batch = broadcastShapes(c, [a2.slice(0, -2), b2.slice(0, -2)]);
  const out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
  if (a.length === 1) out.splice(out.length - 2, 1);
  if (b.length === 1) out.pop();
  return out;
}

export const NN_OPS: Record<string, OpDef> = {
  Conv: {
    infer: (c) => ({ shapes: [[inShape(c, 0)[0], inShape(c, 1)[0], ...convWindow(c).out]], dtypes: [c.inTypes[0] ?? 'float32'] }),
    lower: (c) => {
      const w = as2d(convWindow(c));
      const ws = inShape(c, 1);
      let weight = c.node.inputs[1];
      if (ws.length === 3) {
        const w4 = [ws[0], ws[1], 1, ws[2]];
        const cw = c.consts[1];
        if (cw) weight = c.constant({ ...cw, dims: w4 });
        else c.emit('Reshape', [c.node.inputs[1]], [(weight = c.temp(w4))]);
      }
      const inputs = [weight, present(c, 2) ? c.node.inputs[2] : ''];
      with4d(c, (x, y) => c.emit('Conv', [x, ...inputs], [y], {
        kernel: w.kernel, strides: w.strides, pads: w.pads, dilations: w.dilations, group: attrInt(c.node, 'group', 1),
      }));
    },
  },
  Gemm: {
    infer: (c) => ({ shapes: [gemmShape(c)], dtypes: [c.inTypes[0] ?? 'float32'] }),
    lower: (c) => c.emit('Gemm', c.node.inputs.slice(0, 3), [c.node.outputs[0]], {
      alpha: attrFloat(c.node, 'alpha', 1), beta: attrFloat(c.node, 'beta', 1),
      transA: attrInt(c.node, 'transA', 0), transB: attrInt(c.node, 'transB', 0),
    }),
  },
  MatMul: { infer: (c) => ({ shapes: [matmulShape(c)], dtypes: [c.inTypes[0] ?? 'float32'] }) },
  MaxPool: pool('MaxPool'),
  AveragePool: pool('AveragePool'),
  GlobalAveragePool: globalPool('GlobalAveragePool'),
  GlobalMaxPool: globalPool('GlobalMaxPool'),
  Softmax: softmaxLike('Softmax'),
  LogSoftmax: softmaxLike('LogSoftmax'),
  BatchNormalization: {
    constInputs: [1, 2, 3, 4],
    infer: (c) => {
      const x = inShape(c, 0);
      for (let i = 1; i <= 4; i++)
        if (numel(inShape(c, i)) !== x[1]) shapeError(c, `input ${i} ${fmt(inShape(c, i))} should have ${x[1]} elements (channels of ${fmt(x)})`);
      return { shapes: c.node.outputs.map((_, k) => (k === 0 ? x : [x[1]])), dtypes: c.node.outputs.map(() => 'float32') };
    },
    lower: (c) => {
      if (attrInt(c.node, 'training_mode', 0) !== 0 || c.node.outputs.length > 1)
        unsupported(c, 'training mode (running statistics outputs) is not inference');
      for (let i = 1; i <= 4; i++) constInput(c, i, ['', 'scale', 'bias', 'mean', 'variance'][i]);
      c.emit('BatchNormalization', c.node.inputs.slice(0, 5), [c.node.outputs[0]], { epsilon: attrFloat(c.node, 'epsilon', 1e-5) });
    },
  },
  LayerNormalization: {
    infer: (c) => {
      const x = inShape(c, 0);
      const axis = normAxis(c, attrInt(c.node, 'axis', -1), x.length);
      const stat = x.map((d, i) => (i < axis ? d : 1));
      return { shapes: [x, stat, stat].slice(0, c.node.outputs.length), dtypes: ['float32', 'float32', 'float32'] };
    },
    lower: (c) => {
      const x = inShape(c, 0);
      const axis = normAxis(c, attrInt(c.node, 'axis', -1), x.length);
      const norm = x.slice(axis);
      // Scale and bias may be given in any shape that broadcasts to the normalised dims: expand them.
      const operand = (i: number): string => {
        if (!present(c, i)) return '';
        const s = inShape(c, i);
        if (numel(s) === numel(norm)) return c.node.inputs[i];
        broadcastShapes(c, [s, norm]);
        const t = c.temp(norm);
        c.emit('Expand', [c.node.inputs[i]], [t]);
        return t;
      };
      c.emit('LayerNormalization', [c.node.inputs[0], operand(1), operand(2)], c.node.outputs, {
        axis, epsilon: attrFloat(c.node, 'epsilon', 1e-5),
      });
    },
  },
};
