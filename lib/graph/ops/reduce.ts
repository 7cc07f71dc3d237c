/** Reductions over a set of axes (ReduceMean, ReduceSum, ...), with opset-18 axes inputs. */
import { attrInt, attrInts } from '../ir';
import { OpContext, OpDef, constInput, inShape, ints, normAxis, present } from './types';

function reduceAxes(c: OpContext): number[] | 'none' {
  const x = inShape(c, 0);
  // Axes moved from an attribute to an input: ReduceSum at opset 13, the rest at 18.
  const fromInput = c.node.opType === 'ReduceSum' ? c.opset >= 13 : c.opset >= 18;
  const raw = fromInput ? (present(c, 1) ? ints(constInput(c, 1, 'axes')) : undefined) : attrInts(c.node, 'axes');
  if (!raw || raw.length === 0) {
    if (attrInt(c.node, 'noop_with_empty_axes', 0) === 1) return 'none';
    return x.map((_, i) => i);
  }
  return [...new Set(raw.map((a) => normAxis(c, a, x.length)))].sort((a, b) => a - b);
}

function reduceShape(c: OpContext): number[] {
  const x = inShape(c, 0);
  const axes = reduceAxes(c);
  if (axes === 'none') return x;
  const keep = attrInt(c.node, 'keepdims', 1) === 1;
  return keep ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i));
}

function reduce(): OpDef {
  return {
    constInputs: [1],
    infer: (c) => ({ shapes: [reduceShape(c)], dtypes: [c.inTypes[0] ?? 'float32'] }),
    lower: (c) => {
      const axes = reduceAxes(c);
      if (axes === 'none') return c.emit('Reshape', [c.node.inputs[0]], [c.node.outputs[0]]);
      c.emit(c.node.opType, [c.node.inputs[0]], [c.node.outputs[0]], { axes, keepdims: attrInt(c.node, 'keepdims', 1) });
    },
  };
}

export const REDUCE_OPS: Record<string, OpDef> = Object.fromEntries(
  ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSumExp', 'ReduceSumSquare']
    .map((t) => [t, reduce()]),
);
