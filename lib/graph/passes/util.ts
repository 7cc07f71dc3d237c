/** Small helpers shared by the graph passes: who produces and who consumes each value. */
import { Graph, Node, Tensor, attrInt, numel } from '../ir';

export interface Uses {
  producer: Map<string, Node>;
  consumers: Map<string, Node[]>;
  graphOutputs: Set<string>;
}

export function uses(g: Graph): Uses {
  const producer = new Map<string, Node>();
  const consumers = new Map<string, Node[]>();
  for (const n of g.nodes) {
    for (const o of n.outputs) if (o) producer.set(o, n);
    for (const i of n.inputs) if (i) consumers.set(i, [...(consumers.get(i) ?? []), n]);
  }
  return { producer, consumers, graphOutputs: new Set(g.outputs.map((o) => o.name)) };
}

/** True when `name` feeds exactly one node and is not a graph output (safe to fuse away). */
export function singleUse(u: Uses, name: string): boolean {
  return (u.consumers.get(name)?.length ?? 0) === 1 && !u.graphOutputs.has(name);
}

export function constOf(g: Graph, name: string | undefined): Tensor | undefined {
  return name ? g.initializers.get(name) : undefined;
}

/** A scalar constant's value (any tensor with one element). */
export function scalarOf(g: Graph, name: string | undefined): number | undefined {
  const t = constOf(g, name);
  return t && t.data.length === 1 ? t.data[0] : undefined;
}

/** Replaces every use of value `from` by `to` (node inputs and graph outputs). */
export function renameUses(g: Graph, from: string, to: string): void {
  for (const n of g.nodes) n.inputs = n.inputs.map((i) => (i === from ? to : i));
}

let counter = 0;
/** A fresh initializer name that does not clash with the graph's names. */
export function freshName(g: Graph, base: string): string {
  let name = `${base}__packptq${counter++}`;
  while (g.initializers.has(name)) name = `${base}__packptq${counter++}`;
  return name;
}

/** A channel axis of a layer's constant weight: how many channels, and element index → channel. */
export interface WeightChannels {
  count: number;
  of: (idx: number) => number;
}

/**
 * The output channels of a Conv / Gemm / MatMul weight, or undefined where they are not a plain
 * axis of it (Gemm with transA, MatMul with a weight that is not 2-D).
 */
export function outputChannels(layer: Node, w: Tensor): WeightChannels | undefined {
  if (layer.opType === 'Conv') {
    const per = numel(w.dims.slice(1));
    return { count: w.dims[0], of: (i) => Math.floor(i / per) };
  }
  if (layer.opType === 'Gemm') {
    if (attrInt(layer, 'transA', 0)) return undefined;
    return attrInt(layer, 'transB', 0) ? { count: w.dims[0], of: (i) => Math.floor(i / w.dims[1]) } : { count: w.dims[1], of: (i) => i % w.dims[1] };
  }
  if (layer.opType === 'MatMul' && w.dims.length === 2) return { count: w.dims[1], of: (i) => i % w.dims[1] };
  return undefined;
}

/** The input channels of a Conv (one group only) / Gemm / MatMul weight, or undefined as above. */
export function inputChannels(layer: Node, w: Tensor): WeightChannels | undefined {
  if (layer.opType === 'Conv') {
    if (attrInt(layer, 'group', 1) !== 1) return undefined;
    const per = numel(w.dims.slice(2)), C = w.dims[1];
    return { count: C, of: (i) => Math.floor(i / per) % C };
  }
  if (layer.opType === 'Gemm') {
    if (attrInt(layer, 'transA', 0)) return undefined;
    return attrInt(layer, 'transB', 0) ? { count: w.dims[1], of: (i) => i % w.dims[1] } : { count: w.dims[0], of: (i) => Math.floor(i / w.dims[1]) };
  }
  if (layer.opType === 'MatMul' && w.dims.length === 2) return { count: w.dims[0], of: (i) => Math.floor(i / w.dims[1]) };
  return undefined;
}
