/** Small helpers shared by the graph passes: who produces and who consumes each value. */
import { Graph, Node, Tensor } from '../ir';

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
