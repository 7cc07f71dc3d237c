/**
 * What packptq knows about each ONNX op on the TypeScript side: how to infer its output shapes,
 * how to evaluate it on constants (constant folding), and how to lower it to the native canonical
 * op set (native/exec/op.h). Keeping the three together keeps each op's ONNX conventions (negative
 * axes, optional inputs, opset differences) in one place.
 */
import { ShapeMismatchError, UnsupportedOpError } from '../../errors';
import { DType, Node, Tensor, describeNode } from '../ir';

export interface OpContext {
  node: Node;
  opset: number;
  /** Concrete shapes of the inputs; undefined for an omitted optional input. */
  inShapes: (number[] | undefined)[];
  inTypes: (DType | undefined)[];
  /** Constant values of inputs that are known at compile time. */
  consts: (Tensor | undefined)[];
}

export interface Inferred {
  shapes: number[][];
  dtypes: DType[];
}

export interface LowerContext extends OpContext {
  outShapes: number[][];
  /** Emits a canonical native op. Inputs/outputs are value names ('' = omitted). */
  emit(type: string, inputs: string[], outputs: string[], attrs?: Record<string, number | number[] | string>): void;
  /** A fresh intermediate value of the given shape. */
  temp(shape: number[]): string;
  /** A fresh constant value holding the tensor. */
  constant(t: Tensor): string;
}

export interface OpDef {
  infer(c: OpContext): Inferred;
  /** Evaluates the op when its inputs are constant (only ops cheap on small tensors have it). */
  fold?(c: OpContext): Tensor[];
  /** True when fold needs only input shapes (Shape, Size). */
  foldsOnShapes?: boolean;
  /** Input positions that must be known at compile time (shape-like inputs). */
  constInputs?: number[];
  /** Emits canonical ops; absent means: same type, same inputs and outputs, no attributes. */
  lower?(c: LowerContext): void;
  /** Ops that exist only to be folded (their result is never a float runtime tensor). */
  foldOnly?: boolean;
}

export function shapeError(c: OpContext, why: string): never {
  throw new ShapeMismatchError(`${describeNode(c.node)}: ${why}`);
}

export function unsupported(c: OpContext, why: string): never {
  throw new UnsupportedOpError(`${describeNode(c.node)}: ${why}`);
}

export function fmt(s: readonly (number | string)[] | undefined): string {
  return s ? `[${s.join(',')}]` : '[?]';
}

export function normAxis(c: OpContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) shapeError(c, `axis ${axis} is out of range for rank ${rank}`);
  return a;
}

export function inShape(c: OpContext, i: number): number[] {
  const s = c.inShapes[i];
  if (!s) shapeError(c, `input ${i} is required`);
  return s;
}

/** The constant value of input i, which this op needs at compile time. */
export function constInput(c: OpContext, i: number, what: string): Tensor {
  const t = c.consts[i];
  if (!t) unsupported(c, `its ${what} (input ${i}, "${c.node.inputs[i]}") must be a constant; a value computed at run time is not supported`);
  return t;
}

export function present(c: OpContext, i: number): boolean {
  return i < c.node.inputs.length && c.node.inputs[i] !== '';
}

export function broadcastShapes(c: OpContext, shapes: number[][]): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - rank + i] ?? 1;
      if (v === 1) continue;
      if (d !== 1 && d !== v) shapeError(c, `shapes ${shapes.map(fmt).join(' and ')} do not broadcast`);
      d = v;
    }
    out.push(d);
  }
  return out;
}

/** Same as above but for use by folding where a context is at hand and shapes are known to fit. */
export function stridesOf(dims: readonly number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

/** Maps each flat index of `out` to the flat index of a tensor of shape `dims` broadcast to it. */
export function broadcastIndex(dims: readonly number[], out: readonly number[]): Int32Array {
  const total = out.reduce((a, b) => a * b, 1);
  const idx = new Int32Array(total);
  const r = out.length;
  const padded = [...new Array(r - dims.length).fill(1), ...dims];
  const inStrides = stridesOf(padded);
  const coord = new Array<number>(r).fill(0);
  for (let k = 0; k < total; k++) {
    let off = 0;
    for (let i = 0; i < r; i++) if (padded[i] !== 1) off += coord[i] * inStrides[i];
    idx[k] = off;
    for (let i = r - 1; i >= 0; i--) {
      if (++coord[i] < out[i]) break;
      coord[i] = 0;
    }
  }
  return idx;
}

export function same(c: OpContext, dtype?: DType): Inferred {
  return { shapes: [inShape(c, 0)], dtypes: [dtype ?? c.inTypes[0] ?? 'float32'] };
}

/** Integer values of a constant (shape, axes, indices). */
export function ints(t: Tensor): number[] {
  return Array.from(t.data, (v) => Math.trunc(v));
}
