/**
 * Whether a specialised graph keeps its samples apart, so a batch can be cut into parts that run as
 * separate Programs on separate threads (Program.setShards) and give the same outputs.
 *
 * The batch axis is followed from the input through every node that runs: an op may move it
 * (Transpose, Reshape, Gather on another axis) but must neither reduce, normalise, gather, slice,
 * concatenate nor split along it, nor merge it with another axis. Anything unknown refuses, so a
 * refusal only costs speed (the Program then shares each op between threads instead).
 */
import { Node } from '../graph/ir';
import { Specialized } from '../graph/specialize';

const ELEMENTWISE = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSigmoid',
  'HardSwish', 'Erf', 'Gelu', 'Identity', 'Dropout', 'Cast', 'Where', 'Equal', 'Neg', 'Abs', 'Exp', 'Log',
  'FakeQuant', 'AdaRound', 'LsqQuant', 'Min', 'Max',
]);
/** Ops over [N, C, spatial...] that treat each sample alone. */
const PER_SAMPLE_NCHW = new Set(['Conv', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'BatchNormalization']);

function intsAttr(n: Node, name: string): number[] | undefined {
  const a = n.attrs[name];
  if (!a) return undefined;
  if (a.type === 'ints') return a.value;
  if (a.type === 'int') return [a.value];
  return undefined;
}

/** The output axis that carries the whole batch axis `a` of `inShape` through a reshape, or -1. */
function reshapedAxis(inShape: number[], outShape: number[], a: number): number {
  const before = inShape.slice(0, a).reduce((x, y) => x * y, 1);
  let p = 1;
  for (let k = 0; k < outShape.length; k++) {
    if (p === before && outShape[k] === inShape[a]) return k;
    p *= outShape[k];
    if (p > before) return -1;
  }
  return -1;
}

export function samplesIndependent(s: Specialized): boolean {
  const axis = new Map<string, number>();
  for (const i of s.inputs) axis.set(i, 0);
  const shape = (v: string) => s.values.get(v)?.shape as number[] | undefined;
  const runtime = (v: string) => !!v && axis.has(v);
  for (const n of s.nodes) {
    const ins = n.inputs.filter(runtime);
    if (!ins.length) continue; // folded or constant-only: no sample in it
    const out = n.outputs[0];
    const oShape = shape(out);
    const iShape = shape(ins[0]);
    if (!oShape || !iShape) return false;
    const a = axis.get(ins[0])!;
    const norm = (k: number, rank: number) => (k < 0 ? k + rank : k);
    let b: number;
    if (ELEMENTWISE.has(n.opType)) {
      // Broadcasting aligns trailing dims: every runtime input must put its batch axis at one output axis.
      const at = new Set(ins.map((v) => axis.get(v)! + oShape.length - shape(v)!.length));
      if (at.size !== 1) return false;
      b = [...at][0];
      if (oShape[b] !== iShape[a]) return false;
    } else if (PER_SAMPLE_NCHW.has(n.opType)) {
      if (a !== 0 || ins.some((v) => v !== n.inputs[0])) return false;
      b = 0;
    } else if (n.opType === 'Transpose') {
      const perm = intsAttr(n, 'perm') ?? [...Array(iShape.length).keys()].reverse();
      b = perm.indexOf(a);
    } else if (n.opType === 'Reshape' || n.opType === 'Flatten' || n.opType === 'Squeeze' || n.opType === 'Unsqueeze') {
      b = reshapedAxis(iShape, oShape, a);
    } else if (n.opType === 'Softmax' || n.opType === 'LayerNormalization') {
      const k = norm(intsAttr(n, 'axis')?.[0] ?? -1, iShape.length);
      if (ins.some((v) => v !== n.inputs[0])) return false;
      // Softmax works along one axis; LayerNormalization over [axis, rank).
      if (n.opType === 'Softmax' ? k === a : a >= k) return false;
      b = a;
    } else if (n.opType.startsWith('Reduce')) {
      let axes = intsAttr(n, 'axes');
      if (!axes && n.inputs[1]) axes = Array.from(s.values.get(n.inputs[1])?.value?.data ?? []);
      if (!axes || !axes.length) return false; // reduces everything, the batch included
      const norm2 = axes.map((k) => norm(k, iShape.length));
      if (norm2.includes(a)) return false;
      const keep = (intsAttr(n, 'keepdims')?.[0] ?? 1) !== 0;
      b = keep ? a : a - norm2.filter((k) => k < a).length;
    } else if (n.opType === 'Gather') {
      if (n.inputs[0] !== ins[0] || ins.length !== 1) return false;
      const g = norm(intsAttr(n, 'axis')?.[0] ?? 0, iShape.length);
      if (g === a) return false;
      const idxRank = shape(n.inputs[1])?.length ?? 0;
      b = a < g ? a : a - 1 + idxRank;
    } else if (n.opType === 'Concat' || n.opType === 'Split') {
      const c = norm(intsAttr(n, 'axis')?.[0] ?? 0, iShape.length);
      if (c === a || ins.some((v) => axis.get(v) !== a)) return false;
      // A constant part of a concatenation must already hold a row per sample (a folded Expand).
      if (n.opType === 'Concat' && n.inputs.some((v) => v && !runtime(v) && shape(v)?.[a] !== iShape[a])) return false;
      b = a;
    } else if (n.opType === 'MatMul') {
      const [x, y] = n.inputs;
      const rank = oShape.length;
      const place = (v: string, isA: boolean): number | undefined => {
        if (!runtime(v)) return undefined;
        const r = shape(v)!.length, k = axis.get(v)!;
        if (r === 1) return -1;
        if (isA ? k === r - 1 : k === r - 2) return -1; // the contracted axis
        return k + rank - r;
      };
      const pa = place(x, true), pb = place(y, false);
      if (pa === -1 || pb === -1) return false;
      if (pa !== undefined && pb !== undefined && pa !== pb) return false;
      b = (pa ?? pb)!;
      // Both operands runtime: the batch must be a shared leading (broadcast) axis, not M or N.
      if (pa !== undefined && pb !== undefined && b >= rank - 2) return false;
    } else if (n.opType === 'Gemm') {
      if (n.inputs[0] !== ins[0] || ins.length !== 1 || (intsAttr(n, 'transA')?.[0] ?? 0) !== 0 || a !== 0) return false;
      b = 0;
    } else {
      return false;
    }
    if (b < 0 || oShape[b] !== iShape[a]) return false;
    for (const o of n.outputs) if (o) axis.set(o, b);
  }
  return s.outputs.every((o) => axis.get(o) === 0);
}

/** Splits `batch` samples into `parts` near-equal runs, largest first. */
export function batchParts(batch: number, parts: number): number[] {
  const base = Math.floor(batch / parts), extra = batch % parts;
  return Array.from({ length: parts }, (_, k) => base + (k < extra ? 1 : 0));
}
