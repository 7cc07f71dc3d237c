/**
 * Reconstruction units: what one optimisation step works on. A unit is a set of nodes with the
 * values entering it and the one value leaving it:
 *  - a layer: the Conv / Gemm / MatMul and the activation right after it when nothing else reads the
 *    layer's output (BRECQ's layer-wise targets include the activation function);
 *  - a block: every node of the block, from its input cut to its output cut;
 *  - a pack: consecutive blocks as one unit (its target is the last block's output).
 * Stem and head layers (and layers between blocks) are layer units in every granularity.
 */
import { Block, Structure } from '../graph/blocks';
import { Graph, Node } from '../graph/ir';

export interface ReconUnit {
  name: string;
  kind: 'layer' | 'block' | 'pack';
  /** Quantizable layers inside, in order. */
  layers: string[];
  /** Nodes, in graph order. */
  nodes: Node[];
  /** Values the unit reads from outside (its inputs); constants excluded. */
  inputs: string[];
  output: string;
  /** Blocks making up a block or pack unit (indices into Structure.blocks). */
  blocks: number[];
}

const FOLLOWING_ACTIVATIONS = new Set(['Relu', 'Clip', 'LeakyRelu', 'HardSwish', 'HardSigmoid', 'Sigmoid', 'Gelu', 'Tanh']);

function layerUnit(g: Graph, name: string): ReconUnit {
  const node = g.nodes.find((n) => n.name === name)!;
  const nodes = [node];
  const readers = g.nodes.filter((n) => n.inputs.includes(node.outputs[0]));
  const outputs = new Set(g.outputs.map((o) => o.name));
  if (readers.length === 1 && FOLLOWING_ACTIVATIONS.has(readers[0].opType) && !outputs.has(node.outputs[0])) nodes.push(readers[0]);
  return {
    name, kind: 'layer', layers: [name], nodes,
    inputs: node.inputs.filter((i, k) => i && !g.initializers.has(i) && k < 2),
    output: nodes[nodes.length - 1].outputs[0], blocks: [],
  };
}

function blockUnit(g: Graph, blocks: Block[], indices: number[], kind: 'block' | 'pack'): ReconUnit {
  const names = new Set(indices.flatMap((k) => blocks[k].nodes));
  const first = blocks[indices[0]], last = blocks[indices[indices.length - 1]];
  return {
    name: kind === 'block' ? first.name : `pack[${indices[0]}..${indices[indices.length - 1]}] ${first.name} … ${last.name}`,
    kind, layers: indices.flatMap((k) => blocks[k].layers),
    nodes: g.nodes.filter((n) => names.has(n.name)),
    inputs: [first.input], output: last.output, blocks: indices,
  };
}

/**
 * The units of a model in network order. `packs` groups block indices (each inner array a run of
 * consecutive blocks); without it every block is its own unit. `granularity: 'layer'` makes every
 * layer its own unit (AdaRound).
 */
export function reconUnits(g: Graph, s: Structure, opts: { granularity: 'layer' | 'block'; packs?: number[][] }): ReconUnit[] {
  if (opts.granularity === 'layer') return s.layers.map((l) => layerUnit(g, l.name));
  const packs = opts.packs ?? s.blocks.map((_, k) => [k]);
  const packOf = new Map<number, number[]>();
  for (const p of packs) for (const k of p) packOf.set(k, p);
  const units: ReconUnit[] = [];
  const done = new Set<number[]>();
  for (const u of s.units) {
    if (u.kind === 'layer') {
      units.push(layerUnit(g, u.layer));
      continue;
    }
    const k = s.blocks.indexOf(u.block);
    const pack = packOf.get(k) ?? [k];
    if (done.has(pack)) continue;
    done.add(pack);
    units.push(blockUnit(g, s.blocks, pack, pack.length > 1 || opts.packs ? (pack.length > 1 ? 'pack' : 'block') : 'block'));
  }
  return units;
}
