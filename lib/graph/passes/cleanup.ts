/** Removal passes: Identity and inference Dropout nodes, nodes no output depends on, unused constants. */
import { Graph, Node } from '../ir';
import { renameUses, uses } from './util';

/** Identity / Dropout (inference) pass their input through: consumers read the input directly. */
export function removeIdentities(g: Graph): Graph {
  const outputs = new Set(g.outputs.map((o) => o.name));
  const keep: Node[] = [];
  for (const n of g.nodes) {
    const passThrough = n.opType === 'Identity' || (n.opType === 'Dropout' && !n.outputs[1] && !(n.inputs[2] && g.initializers.get(n.inputs[2])?.data[0]));
    if (passThrough && !outputs.has(n.outputs[0])) {
      renameUses(g, n.outputs[0], n.inputs[0]);
      continue;
    }
    keep.push(n);
  }
  g.nodes = keep;
  return g;
}

/** Drops nodes whose outputs reach no graph output, then initializers nothing reads. */
export function removeDeadNodes(g: Graph): Graph {
  const needed = new Set(g.outputs.map((o) => o.name));
  const live: Node[] = [];
  for (let k = g.nodes.length - 1; k >= 0; k--) {
    const n = g.nodes[k];
    if (n.outputs.some((o) => needed.has(o))) {
      live.push(n);
      for (const i of n.inputs) if (i) needed.add(i);
    }
  }
  g.nodes = live.reverse();
  for (const name of [...g.initializers.keys()]) if (!needed.has(name)) g.initializers.delete(name);
  const { consumers } = uses(g);
  g.inputs = g.inputs.filter((v) => !g.initializers.has(v.name) || consumers.has(v.name) || needed.has(v.name));
  return g;
}
