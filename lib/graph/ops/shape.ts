/** Ops that move data without arithmetic, and the shape arithmetic of dynamic-batch exports. */
import { Tensor, attrInt, attrInts, attrString, makeTensor, numel } from '../ir';
import {
  OpContext, OpDef, broadcastIndex, broadcastShapes, constInput, fmt, inShape, ints, normAxis, present,
  shapeError, stridesOf, unsupported,
} from './types';

function copyTo(dims: number[], x: Tensor): Tensor {
  return { dtype: x.dtype, dims, data: x.data.slice() as Float32Array | Float64Array };
}

/** A node whose output is its input with another shape: folded by relabelling, lowered to a copy. */
function reshaping(outShape: (c: OpContext) => number[], constInputs?: number[]): OpDef {
  return {
    constInputs,
    infer: (c) => ({ shapes: [outShape(c)], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => [copyTo(outShape(c), c.consts[0]!)],
    lower: (c) => c.emit('Reshape', [c.node.inputs[0]], [c.node.outputs[0]]),
  };
}

function reshapeTarget(c: OpContext): number[] {
  const x = inShape(c, 0);
  const spec = ints(constInput(c, 1, 'target shape'));
  const allowZero = attrInt(c.node, 'allowzero', 0) === 1;
  const out = spec.map((d, i) => (d === 0 && !allowZero ? (i < x.length ? x[i] : shapeError(c, `0 at position ${i} has no input dim to copy`)) : d));
  const unknown = out.filter((d) => d === -1).length;
  if (unknown > 1) shapeError(c, `target shape ${fmt(spec)} has more than one -1`);
  if (out.some((d) => d < -1)) shapeError(c, `target shape ${fmt(spec)} has a negative dim`);
  const total = numel(x);
  if (unknown === 1) {
    const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    if (known === 0 || total % known !== 0) shapeError(c, `cannot reshape ${fmt(x)} to ${fmt(spec)}`);
    out[out.indexOf(-1)] = total / known;
  }
  if (numel(out) !== total) shapeError(c, `cannot reshape ${fmt(x)} (${total} elements) to ${fmt(out)}`);
  return out;
}

function axesOf(c: OpContext, inputIndex: number, rank: number): number[] | undefined {
  const fromAttr = attrInts(c.node, 'axes');
  const raw = c.opset >= 13 && present(c, inputIndex) ? ints(constInput(c, inputIndex, 'axes')) : fromAttr;
  return raw?.map((a) => normAxis(c, a, rank));
}

function squeezeShape(c: OpContext): number[] {
  const x = inShape(c, 0);
  const axes = axesOf(c, 1, x.length);
  if (!axes) return x.filter((d) => d !== 1);
  for (const a of axes) if (x[a] !== 1) shapeError(c, `cannot squeeze axis ${a} of ${fmt(x)}: it is not 1`);
  return x.filter((_, i) => !axes.includes(i));
}

function unsqueezeShape(c: OpContext): number[] {
  const x = inShape(c, 0);
  const raw = c.opset >= 13 ? ints(constInput(c, 1, 'axes')) : attrInts(c.node, 'axes') ?? [];
  const rank = x.length + raw.length;
  const axes = raw.map((a) => normAxis(c, a, rank));
  if (new Set(axes).size !== axes.length) shapeError(c, `repeated axes ${fmt(raw)}`);
  const out: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) out.push(axes.includes(i) ? 1 : x[j++]);
  return out;
}

function flattenShape(c: OpContext): number[] {
  const x = inShape(c, 0);
  const axis = attrInt(c.node, 'axis', 1);
  const a = axis < 0 ? axis + x.length : axis;
  if (a < 0 || a > x.length) shapeError(c, `axis ${axis} is out of range for rank ${x.length}`);
  return [numel(x.slice(0, a)), numel(x.slice(a))];
}

function transposePerm(c: OpContext): number[] {
  const x = inShape(c, 0);
  const perm = attrInts(c.node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
  if (perm.length !== x.length || [...perm].sort((a, b) => a - b).some((v, i) => v !== i))
    shapeError(c, `perm ${fmt(perm)} is not a permutation of ${x.length} axes`);
  return perm;
}

function transposeFold(x: Tensor, perm: number[]): Tensor {
  const dims = perm.map((p) => x.dims[p]);
  const inS = stridesOf(x.dims);
  const n = numel(dims);
  const out = x.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  const coord = new Array<number>(dims.length).fill(0);
  for (let k = 0; k < n; k++) {
    let off = 0;
    for (let i = 0; i < dims.length; i++) off += coord[i] * inS[perm[i]];
    out[k] = x.data[off];
    for (let i = dims.length - 1; i >= 0; i--) {
      if (++coord[i] < dims[i]) break;
      coord[i] = 0;
    }
  }
  return { dtype: x.dtype, dims, data: out };
}

function concatShape(c: OpContext): number[] {
  const shapes = c.inShapes.filter((s): s is number[] => !!s);
  const r = shapes[0].length;
  const axis = normAxis(c, attrInt(c.node, 'axis', 0), r);
  const out = [...shapes[0]];
  out[axis] = 0;
  for (const s of shapes) {
    if (s.length !== r || s.some((d, i) => i !== axis && d !== shapes[0][i]))
      shapeError(c, `inputs ${shapes.map(fmt).join(', ')} do not concatenate on axis ${axis}`);
    out[axis] += s[axis];
  }
  return out;
}

/** Normalised slice of input 0: per-axis start, step and output length (ONNX clamping rules). */
interface SliceSpec { starts: number[]; steps: number[]; out: number[] }
function sliceSpec(c: OpContext): SliceSpec {
  const x = inShape(c, 0);
  let starts: number[], ends: number[], axes: number[] | undefined, steps: number[] | undefined;
  if (c.opset < 10) {
    starts = attrInts(c.node, 'starts') ?? [];
    ends = attrInts(c.node, 'ends') ?? [];
    axes = attrInts(c.node, 'axes');
  } else {
    starts = ints(constInput(c, 1, 'starts'));
    ends = ints(constInput(c, 2, 'ends'));
    if (present(c, 3)) axes = ints(constInput(c, 3, 'axes'));
    if (present(c, 4)) steps = ints(constInput(c, 4, 'steps'));
  }
  axes = (axes ?? starts.map((_, i) => i)).map((a) => normAxis(c, a, x.length));
  steps = steps ?? starts.map(() => 1);
  if (ends.length !== starts.length || axes.length !== starts.length || steps.length !== starts.length)
    shapeError(c, 'starts, ends, axes and steps differ in length');
  const spec: SliceSpec = { starts: x.map(() => 0), steps: x.map(() => 1), out: [...x] };
  axes.forEach((a, i) => {
    const d = x[a], step = steps![i];
    if (step === 0) shapeError(c, 'a slice step is 0');
    let s = starts[i] < 0 ? starts[i] + d : starts[i];
    let e = ends[i] < 0 ? ends[i] + d : ends[i];
    if (step > 0) {
      s = Math.min(Math.max(s, 0), d);
      e = Math.min(Math.max(e, 0), d);
    } else {
      s = Math.min(Math.max(s, 0), d - 1);
      e = Math.min(Math.max(e, -1), d - 1);
    }
    spec.starts[a] = s;
    spec.steps[a] = step;
    spec.out[a] = Math.max(0, Math.ceil((e - s) / step));
  });
  return spec;
}

function gatherSpec(c: OpContext): { axis: number; indices: number[]; out: number[]; indexDims: number[] } {
  const x = inShape(c, 0);
  const axis = normAxis(c, attrInt(c.node, 'axis', 0), x.length);
  const idx = constInput(c, 1, 'indices');
  const indices = ints(idx).map((i) => {
    const j = i < 0 ? i + x[axis] : i;
    if (j < 0 || j >= x[axis]) shapeError(c, `index ${i} is out of range for axis ${axis} of size ${x[axis]}`);
    return j;
  });
  return { axis, indices, indexDims: idx.dims, out: [...x.slice(0, axis), ...idx.dims, ...x.slice(axis + 1)] };
}

function splitSizes(c: OpContext): { axis: number; sizes: number[] } {
  const x = inShape(c, 0);
  const axis = normAxis(c, attrInt(c.node, 'axis', 0), x.length);
  const n = c.node.outputs.length;
  let sizes: number[] | undefined;
  if (c.opset >= 13 && present(c, 1)) sizes = ints(constInput(c, 1, 'split'));
  else if (c.opset < 13) sizes = attrInts(c.node, 'split');
  if (!sizes) {
    const numOutputs = attrInt(c.node, 'num_outputs', n);
    const chunk = Math.ceil(x[axis] / numOutputs);
    sizes = Array.from({ length: numOutputs }, (_, i) => Math.max(0, Math.min(chunk, x[axis] - i * chunk)));
  }
  if (sizes.length !== n || sizes.reduce((a, b) => a + b, 0) !== x[axis])
    shapeError(c, `split sizes ${fmt(sizes)} do not divide axis ${axis} of ${fmt(x)} into ${n} outputs`);
  return { axis, sizes };
}

function padSpec(c: OpContext): { pads: number[]; mode: string; value: number; out: number[] } {
  const x = inShape(c, 0);
  const r = x.length;
  const mode = attrString(c.node, 'mode', 'constant');
  if (mode !== 'constant' && mode !== 'reflect' && mode !== 'edge') unsupported(c, `mode "${mode}" is not supported`);
  let raw: number[], value = 0;
  if (c.opset < 11) {
    raw = attrInts(c.node, 'pads') ?? [];
    value = c.node.attrs.value?.type === 'float' ? (c.node.attrs.value.value as number) : 0;
  } else {
    raw = ints(constInput(c, 1, 'pads'));
    if (present(c, 2)) value = constInput(c, 2, 'constant_value').data[0] ?? 0;
  }
  const pads = new Array<number>(2 * r).fill(0);
  const axes = present(c, 3) ? ints(constInput(c, 3, 'axes')).map((a) => normAxis(c, a, r)) : x.map((_, i) => i);
  if (raw.length !== 2 * axes.length) shapeError(c, `pads ${fmt(raw)} do not match ${axes.length} axes`);
  axes.forEach((a, i) => {
    pads[a] = raw[i];
    pads[a + r] = raw[i + axes.length];
  });
  if (pads.some((p) => p < 0)) unsupported(c, 'negative pads (cropping) are not supported');
  const out = x.map((d, i) => d + pads[i] + pads[i + r]);
  if (mode === 'reflect' && x.some((d, i) => (pads[i] > 0 || pads[i + r] > 0) && (pads[i] >= d || pads[i + r] >= d)))
    unsupported(c, 'reflect pads as wide as the input are not supported');
  return { pads, mode, value, out };
}

function expandShape(c: OpContext): number[] {
  return broadcastShapes(c, [inShape(c, 0), ints(constInput(c, 1, 'shape'))]);
}

export const SHAPE_OPS: Record<string, OpDef> = {
  Reshape: reshaping(reshapeTarget, [1]),
  Flatten: reshaping(flattenShape),
  Squeeze: reshaping(squeezeShape, [1]),
  Unsqueeze: reshaping(unsqueezeShape, [1]),
  Transpose: {
    infer: (c) => ({ shapes: [transposePerm(c).map((p) => inShape(c, 0)[p])], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => [transposeFold(c.consts[0]!, transposePerm(c))],
    lower: (c) => c.emit('Transpose', [c.node.inputs[0]], [c.node.outputs[0]], { perm: transposePerm(c) }),
  },
  Concat: {
    infer: (c) => ({ shapes: [concatShape(c)], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => {
      const ts = c.consts as Tensor[];
      const out = concatShape(c);
      const axis = normAxis(c, attrInt(c.node, 'axis', 0), out.length);
      const outer = numel(out.slice(0, axis));
      const data = ts[0].dtype === 'float32' ? new Float32Array(numel(out)) : new Float64Array(numel(out));
      let k = 0;
      for (let o = 0; o < outer; o++)
        for (const t of ts) {
          const inner = numel(t.dims.slice(axis));
          data.set(t.data.subarray(o * inner, (o + 1) * inner), k);
          k += inner;
        }
      return [{ dtype: ts[0].dtype, dims: out, data }];
    },
    lower: (c) => c.emit('Concat', c.node.inputs, [c.node.outputs[0]], { axis: normAxis(c, attrInt(c.node, 'axis', 0), c.outShapes[0].length) }),
  },
  Split: {
    constInputs: [1],
    infer: (c) => {
      const { axis, sizes } = splitSizes(c);
      return { shapes: sizes.map((s) => inShape(c, 0).map((d, i) => (i === axis ? s : d))), dtypes: sizes.map(() => c.inTypes[0] ?? 'float32') };
    },
    lower: (c) => {
      const { axis, sizes } = splitSizes(c);
      c.emit('Split', [c.node.inputs[0]], c.node.outputs, { axis, split: sizes });
    },
  },
  Slice: {
    constInputs: [1, 2, 3, 4],
    infer: (c) => ({ shapes: [sliceSpec(c).out], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => {
      const { starts, steps, out } = sliceSpec(c);
      const x = c.consts[0]!;
      const inS = stridesOf(x.dims);
      const n = numel(out);
      const data = x.dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
      const coord = new Array<number>(out.length).fill(0);
      for (let k = 0; k < n; k++) {
        let off = 0;
        for (let i = 0; i < out.length; i++) off += (starts[i] + coord[i] * steps[i]) * inS[i];
        data[k] = x.data[off];
        for (let i = out.length - 1; i >= 0; i--) {
          if (++coord[i] < out[i]) break;
          coord[i] = 0;
        }
      }
      return [{ dtype: x.dtype, dims: out, data }];
    },
    lower: (c) => {
      const { starts, steps, out } = sliceSpec(c);
      const axes = starts.map((_, i) => i);
      const ends = starts.map((s, i) => s + out[i] * steps[i]);
      c.emit('Slice', [c.node.inputs[0]], [c.node.outputs[0]], { starts, ends, axes, steps });
    },
  },
  Gather: {
    constInputs: [1],
    infer: (c) => ({ shapes: [gatherSpec(c).out], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => {
      const { axis, indices, out } = gatherSpec(c);
      const x = c.consts[0]!;
      const outer = numel(x.dims.slice(0, axis)), inner = numel(x.dims.slice(axis + 1)), d = x.dims[axis];
      const data = x.dtype === 'float32' ? new Float32Array(numel(out)) : new Float64Array(numel(out));
      let k = 0;
      for (let o = 0; o < outer; o++)
        for (const i of indices) {
          data.set(x.data.subarray((o * d + i) * inner, (o * d + i + 1) * inner), k);
          k += inner;
        }
      return [{ dtype: x.dtype, dims: out, data }];
    },
    lower: (c) => {
      const { axis, indices, indexDims } = gatherSpec(c);
      c.emit('Gather', [c.node.inputs[0]], [c.node.outputs[0]], { axis, indices, indices_shape: indexDims });
    },
  },
  Expand: {
    constInputs: [1],
    infer: (c) => ({ shapes: [expandShape(c)], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => {
      const x = c.consts[0]!;
      const out = expandShape(c);
      const idx = broadcastIndex(x.dims, out);
      const data = x.dtype === 'float32' ? new Float32Array(idx.length) : new Float64Array(idx.length);
      for (let k = 0; k < idx.length; k++) data[k] = x.data[idx[k]];
      return [{ dtype: x.dtype, dims: out, data }];
    },
    lower: (c) => c.emit('Expand', [c.node.inputs[0]], [c.node.outputs[0]]),
  },
  Pad: {
    constInputs: [1, 2, 3],
    infer: (c) => ({ shapes: [padSpec(c).out], dtypes: [c.inTypes[0] ?? 'float32'] }),
    lower: (c) => {
      const { pads, mode, value } = padSpec(c);
      c.emit('Pad', [c.node.inputs[0]], [c.node.outputs[0]], { pads, mode, value });
    },
  },
  Shape: {
    foldsOnShapes: true,
    infer: (c) => ({ shapes: [[shapeSlice(c).length]], dtypes: ['int64'] }),
    fold: (c) => [makeTensor('int64', [shapeSlice(c).length], shapeSlice(c))],
  },
  Size: {
    foldsOnShapes: true,
    infer: () => ({ shapes: [[]], dtypes: ['int64'] }),
    fold: (c) => [makeTensor('int64', [], [numel(inShape(c, 0))])],
  },
  Constant: {
    infer: (c) => {
      const t = constantValue(c);
      return { shapes: [t.dims], dtypes: [t.dtype] };
    },
    fold: (c) => [constantValue(c)],
  },
  ConstantOfShape: {
    constInputs: [0],
    infer: (c) => {
      const v = c.node.attrs.value;
      return { shapes: [ints(constInput(c, 0, 'shape'))], dtypes: [v?.type === 'tensor' ? (v.value as Tensor).dtype : 'float32'] };
    },
    fold: (c) => {
      const v = c.node.attrs.value;
      const t = v?.type === 'tensor' ? (v.value as Tensor) : makeTensor('float32', [1], [0]);
      const dims = ints(c.consts[0]!);
      const data = t.dtype === 'float32' ? new Float32Array(numel(dims)) : new Float64Array(numel(dims));
      data.fill(t.data[0] ?? 0);
      return [{ dtype: t.dtype, dims, data }];
    },
  },
  Range: {
    constInputs: [0, 1, 2],
    infer: (c) => ({ shapes: [[rangeValues(c).length]], dtypes: [c.inTypes[0] ?? 'float32'] }),
    fold: (c) => [makeTensor(c.inTypes[0] ?? 'float32', [rangeValues(c).length], rangeValues(c))],
  },
};

function shapeSlice(c: OpContext): number[] {
  const x = inShape(c, 0);
  const r = x.length;
  const clampAxis = (a: number) => Math.min(Math.max(a < 0 ? a + r : a, 0), r);
  const start = clampAxis(attrInt(c.node, 'start', 0));
  const end = clampAxis(attrInt(c.node, 'end', r));
  return x.slice(start, end);
}

function rangeValues(c: OpContext): number[] {
  const [s, l, d] = [0, 1, 2].map((i) => c.consts[i]!.data[0]);
  if (d === 0) shapeError(c, 'Range delta is 0');
  const n = Math.max(Math.ceil((l - s) / d), 0);
  return Array.from({ length: n }, (_, i) => s + i * d);
}

function constantValue(c: OpContext): Tensor {
  const a = c.node.attrs;
  if (a.value?.type === 'tensor') return a.value.value as Tensor;
  if (a.value_float?.type === 'float') return makeTensor('float32', [], [a.value_float.value]);
  if (a.value_floats?.type === 'floats') return makeTensor('float32', [a.value_floats.value.length], a.value_floats.value);
  if (a.value_int?.type === 'int') return makeTensor('int64', [], [a.value_int.value]);
  if (a.value_ints?.type === 'ints') return makeTensor('int64', [a.value_ints.value.length], a.value_ints.value);
  return unsupported(c, 'only tensor, float(s) and int(s) constant values are supported');
}

