/**
 * From packptq's canonical graph to a graph that is valid standard ONNX at a newer opset (the QDQ
 * export writes opset 21, the first with int4 Q/DQ). Two kinds of rewrite:
 *  - packptq's own canonical forms: a MatMul with a third (bias) input is written back as
 *    MatMul + Add;
 *  - operator versions: where an op's signature changed between the graph's opset and the target
 *    (an attribute that became an input, a semantics change), the node is rewritten to mean the
 *    same at the target, or refused when it cannot.
 * The ops packptq runs that changed between opset 11 and 21 in a way that matters:
 *  - ReduceSum (13), ReduceMean/Max/Min/Prod/L1/L2/LogSumExp/SumSquare (18): `axes` attribute →
 *    int64 input. keepdims is unchanged; noop_with_empty_axes (new) defaults to 0, which is the old
 *    behaviour of an absent `axes`.
 *  - Squeeze/Unsqueeze (13): `axes` attribute → input. Split (13): `split` attribute → input; from
 *    18 an equal split without `split` names its part count in `num_outputs`.
 *  - Softmax/LogSoftmax (13): no longer coerce the input to 2-D; the same only when `axis` is the
 *    last axis, otherwise refused.
 *  - Dropout (12): `ratio` attribute → input (inference ignores it, kept for fidelity).
 * Every other op packptq runs (Conv, Gemm, Relu, Clip, Add, Mul, Flatten, pools, Reshape,
 * Transpose, Gather, Concat, Slice, Shape, ConstantOfShape, Equal, Where, Expand, ...) only gained
 * types or optional attributes whose defaults keep the old meaning (Reshape allowzero=0, Shape
 * start/end, AveragePool dilations). LayerNormalization (17) and Gelu (20), which packptq's fusions
 * produce even in opset-13 graphs, are valid at any target from 20.
 */
import { BadGraphError, UnsupportedModelError } from '../errors';
import { Graph, Node, Tensor, attrInt, describeNode } from '../graph/ir';

/** Fresh tensor and node names that do not clash with anything in the graph. */
export class NameSet {
  private readonly used = new Set<string>();
  constructor(g: Graph) {
    for (const v of [...g.inputs, ...g.outputs]) this.used.add(v.name);
    for (const k of g.initializers.keys()) this.used.add(k);
    for (const n of g.nodes) {
      this.used.add(n.name);
      for (const t of [...n.inputs, ...n.outputs]) if (t) this.used.add(t);
    }
  }
  fresh(base: string): string {
    let name = base;
    for (let k = 1; this.used.has(name); k++) name = `${base}_${k}`;
    this.used.add(name);
    return name;
  }
}

const REDUCE_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSumExp', 'ReduceSumSquare']);

/** Canonical MatMul(x, W, b) → MatMul(x, W) then Add(·, b) writing the original output. */
export function unfuseLinearBias(g: Graph, names: NameSet): void {
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    nodes.push(n);
    if (n.opType !== 'MatMul' || n.domain || n.inputs.length < 3) continue;
    const bias = n.inputs[2];
    n.inputs = n.inputs.slice(0, 2);
    if (!bias) continue;
    const out = n.outputs[0];
    const product = names.fresh(`${out}_matmul`);
    n.outputs = [product];
    nodes.push({ name: names.fresh(`${n.name}/BiasAdd`), opType: 'Add', domain: '', inputs: [product, bias], outputs: [out], attrs: {} });
  }
  g.nodes = nodes;
}

function int64s(values: number[]): Tensor {
  return { dtype: 'int64', dims: [values.length], data: Float64Array.from(values) };
}

/** Moves an ints attribute to an int64 input at `index` (absent attribute: nothing to move). */
function attrToInput(g: Graph, names: NameSet, n: Node, attr: string, index: number): void {
  const a = n.attrs[attr];
  if (!a) return;
  if (a.type !== 'ints') throw new BadGraphError(`${describeNode(n)}: attribute "${attr}" should be a list of ints`);
  const name = names.fresh(`${n.name}/${attr}`);
  g.initializers.set(name, int64s(a.value));
  while (n.inputs.length < index) n.inputs.push('');
  n.inputs[index] = name;
  delete n.attrs[attr];
}

/**
 * Rewrites `g` in place to mean the same at opset `target`. `rankOf` gives a value's rank, needed
 * only for pre-13 Softmax (computed lazily by the caller since it costs a specialisation).
 */
export function upgradeOpset(g: Graph, target: number, names: NameSet, rankOf: (value: string) => number | undefined): void {
  const from = g.opset;
  if (from > target) throw new UnsupportedModelError(`the graph is at opset ${from}; exporting to the older opset ${target} is not supported`);
  if (from < 11) throw new UnsupportedModelError(`the graph is at opset ${from}; export upgrades graphs from opset 11 on`);
  const crosses = (v: number) => from < v && target >= v;
  for (const n of g.nodes) {
    if (n.domain && n.domain !== 'ai.onnx') continue;
    switch (n.opType) {
      case 'Squeeze': case 'Unsqueeze':
        if (crosses(13)) attrToInput(g, names, n, 'axes', 1);
        break;
      case 'ReduceSum':
        if (crosses(13)) attrToInput(g, names, n, 'axes', 1);
        break;
      case 'Split':
        if (crosses(13)) attrToInput(g, names, n, 'split', 1);
        if (crosses(18) && !n.inputs[1]) n.attrs.num_outputs = { type: 'int', value: n.outputs.length };
        break;
      case 'Softmax': case 'LogSoftmax':
        if (crosses(13)) {
          const rank = rankOf(n.inputs[0]);
          const axis = attrInt(n, 'axis', 1);
          const last = rank !== undefined && (axis === -1 || axis === rank - 1);
          if (!last)
            throw new UnsupportedModelError(`${describeNode(n)}: before opset 13 ${n.opType} over axis ${axis} of a rank-${rank ?? '?'} input flattens to 2-D; it has no opset-${target} equivalent as one node`);
          n.attrs.axis = { type: 'int', value: -1 };
        }
        break;
      case 'Dropout':
        if (crosses(12) && n.attrs.ratio) {
          const a = n.attrs.ratio;
          const name = names.fresh(`${n.name}/ratio`);
          g.initializers.set(name, { dtype: 'float32', dims: [], data: Float32Array.of(a.type === 'float' ? a.value : 0.5) });
          n.inputs[1] = name;
          delete n.attrs.ratio;
        }
        break;
      default:
        if (REDUCE_18.has(n.opType) && crosses(18)) attrToInput(g, names, n, 'axes', 1);
    }
  }
  g.opset = target;
}
