/**
 * Constant folding without fixing the batch: Constant nodes become initializers, and every node
 * whose inputs are all constant is evaluated once (small shape arithmetic, weight transposes, the
 * Identity that resnet20's exporter puts on a deduplicated bias). Nodes that depend on the batch
 * size stay; specialisation folds them when the batch is known.
 */
import { Graph, Node } from '../ir';
import { OPS, OpContext } from '../ops';

export function foldConstants(g: Graph): Graph {
  const nodes: Node[] = [];
  const outputs = new Set(g.outputs.map((o) => o.name));
  for (const n of g.nodes) {
    const def = OPS[n.opType];
    const consts = n.inputs.map((i) => (i ? g.initializers.get(i) : undefined));
    const allConst = n.inputs.every((i, k) => !i || consts[k]);
    // A graph output must stay produced by a node so the graph keeps its interface.
    if (def?.fold && allConst && !n.outputs.some((o) => outputs.has(o))) {
      const c: OpContext = {
        node: n, opset: g.opset,
        inShapes: consts.map((t) => t?.dims), inTypes: consts.map((t) => t?.dtype), consts,
      };
      const values = def.fold(c);
      n.outputs.forEach((o, k) => o && g.initializers.set(o, values[k]));
      continue;
    }
    nodes.push(n);
  }
  g.nodes = nodes;
  return g;
}
