/** What `packptq inspect` reports about a graph: ops, parameters, MACs, shapes and structure. */
import { Dim, Graph, numel } from './ir';
import { DiscoverOptions, Structure, discoverBlocks } from './blocks';
import { specialize } from './specialize';

export interface GraphSummary {
  ops: Record<string, number>;
  nodes: number;
  /** Number of weight parameters (every float initializer the graph reads). */
  params: number;
  /** Multiply-accumulates of Conv / Gemm / MatMul per sample. */
  macs: number;
  inputs: { name: string; shape: Dim[] }[];
  outputs: { name: string; shape: Dim[] }[];
  /** Per layer: op, weight shape, MACs per sample. */
  layers: { name: string; op: string; weightShape?: number[]; macs: number }[];
  structure: Structure;
}

export function summarize(g: Graph, opts: DiscoverOptions = {}): GraphSummary {
  const ops: Record<string, number> = {};
  for (const n of g.nodes) ops[n.opType] = (ops[n.opType] ?? 0) + 1;
  const read = new Set(g.nodes.flatMap((n) => n.inputs));
  let params = 0;
  for (const [name, t] of g.initializers) if (read.has(name) && t.dtype === 'float32') params += t.data.length;

  // MACs from the shapes at batch size 1.
  const inputShapes: Record<string, number[]> = {};
  for (const v of g.inputs)
    if (!g.initializers.has(v.name) && v.shape) inputShapes[v.name] = v.shape.map((d) => (typeof d === 'number' ? d : 1));
  const s = specialize(g, { inputShapes });
  const shape = (v: string) => s.values.get(v)?.shape ?? [];
  const structure = discoverBlocks(g, opts);
  const layers = structure.layers.map((l) => {
    const n = g.nodes.find((x) => x.name === l.name)!;
    const out = shape(n.outputs[0]);
    let macs = 0;
    if (l.op === 'Conv') {
      const w = shape(n.inputs[1]);
      macs = numel(out) * numel(w.slice(1));
    } else {
      const a = shape(n.inputs[0]);
      const k = l.op === 'Gemm' && n.attrs.transA?.value ? a[0] : a[a.length - 1];
      macs = numel(out) * k;
    }
    return { name: l.name, op: l.op, weightShape: l.weight ? g.initializers.get(l.weight)?.dims : undefined, macs };
  });
  const dims = (name: string, declared?: Dim[]) => declared ?? shape(name);
  return {
    ops, nodes: g.nodes.length, params,
    macs: layers.reduce((a, l) => a + l.macs, 0),
    inputs: g.inputs.filter((v) => !g.initializers.has(v.name)).map((v) => ({ name: v.name, shape: dims(v.name, v.shape) })),
    outputs: g.outputs.map((v) => ({ name: v.name, shape: dims(v.name, v.shape) })),
    layers, structure,
  };
}
