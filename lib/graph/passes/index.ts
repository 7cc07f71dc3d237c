/**
 * The canonical form every later stage works on: constants folded, Identity/Dropout gone,
 * BatchNorm folded into the neighbouring conv/linear layers, LayerNorm and GELU fused, MatMul + bias
 * as one layer, dead nodes removed. Each pass is a function from graph to graph; `canonicalize`
 * runs them in order on a copy.
 */
import { Graph, cloneGraph } from '../ir';
import { specialize } from '../specialize';
import { foldBatchNorm } from './batchnorm';
import { removeDeadNodes, removeIdentities } from './cleanup';
import { foldConstants } from './fold';
import { fuseGelu, fuseLayerNorm, fuseLinearBias } from './fuse';
import { fuseQdq } from './qdq';

export { foldBatchNorm, removeDeadNodes, removeIdentities, foldConstants, fuseGelu, fuseLayerNorm, fuseLinearBias, fuseQdq };

/** Rank of every value, from a specialisation at batch size 1 (symbolic dims of the input set to 1). */
export function valueRanks(g: Graph): Map<string, number> {
  const inputShapes: Record<string, number[]> = {};
  for (const v of g.inputs)
    if (!g.initializers.has(v.name) && v.shape) inputShapes[v.name] = v.shape.map((d) => (typeof d === 'number' ? d : 1));
  const s = specialize(g, { inputShapes });
  return new Map([...s.values].map(([k, v]) => [k, v.shape.length]));
}

export interface CanonicalizeOptions {
  /** Skip BatchNorm folding (for comparisons). */
  keepBatchNorm?: boolean;
  /** Skip LayerNorm/GELU fusion. */
  keepDecomposed?: boolean;
}

export function canonicalize(graph: Graph, opts: CanonicalizeOptions = {}): Graph {
  // An exported QDQ model's activation Q/DQ pairs become FakeQuant nodes, so packptq runs its own exports.
  const g = fuseQdq(cloneGraph(graph));
  foldConstants(g);
  removeIdentities(g);
  foldConstants(g);
  const ranks = valueRanks(g);
  if (!opts.keepBatchNorm) foldBatchNorm(g, ranks);
  if (!opts.keepDecomposed) {
    fuseLayerNorm(g, ranks);
    fuseGelu(g);
  }
  fuseLinearBias(g);
  removeDeadNodes(g);
  return g;
}
