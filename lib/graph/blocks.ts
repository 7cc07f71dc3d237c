/**
 * Block discovery, from the graph alone (no model zoo, no architecture registry).
 *
 * 1. The data path: values computed from the model input (shape arithmetic excluded).
 * 2. Cuts: walking the nodes in order, a boundary where exactly one data value is live is a cut:
 *    every path from input to output passes through that value.
 * 3. A segment between two cuts holding a residual merge (an Add of two data values) is a block.
 *    Consecutive residual segments under the same module path (a transformer block's attention and
 *    MLP halves, as exported: /blocks/blocks.0/...) form one block, or two in `split` mode.
 * 4. Blocks without a residual (a MobileNetV2 inverted residual with stride 2) are grouped the way
 *    the network is built: when node names carry module paths, layers under a sibling module of a
 *    residual block (/features/features.3 beside /features/features.2) whose inner structure starts
 *    like the residual blocks' (conv/...) form a block too. Otherwise each layer is its own unit.
 * 5. Quantizable layers before the first block are stem layers, after the last block head layers.
 */
import { BadOptionError } from '../errors';
import { Graph, Node } from './ir';
import { OPS } from './ops';

export interface Layer {
  /** Node name. */
  name: string;
  op: 'Conv' | 'Gemm' | 'MatMul';
  /** Initializer holding the weight; undefined for an activation × activation MatMul (attention). */
  weight?: string;
}

export interface Block {
  name: string;
  /** Quantizable layers, in order. */
  layers: string[];
  /** Every node of the block, in order. */
  nodes: string[];
  /** The value entering the block and the value leaving it (both cuts of the graph). */
  input: string;
  output: string;
  /** Whether the block was found from a residual merge or from module names. */
  found: 'residual' | 'module' | 'user';
}

export type Unit = { kind: 'block'; block: Block } | { kind: 'layer'; layer: string };

export interface Structure {
  layers: Layer[];
  blocks: Block[];
  stem: string[];
  head: string[];
  /** Layers between blocks that belong to none. */
  between: string[];
  /** Everything to reconstruct, in network order. */
  units: Unit[];
}

export interface DiscoverOptions {
  /** One block per transformer residual (attention, MLP) instead of one per transformer block. */
  split?: boolean;
  /** Blocks given by node-name prefix: each prefix's layers form one block (overrides discovery). */
  blockPrefixes?: string[];
}

const META_OPS = new Set(['Shape', 'Size']);

/** Values on the data path: reachable from runtime inputs through data (not shape) inputs. */
function dataValues(g: Graph): Set<string> {
  const data = new Set(g.inputs.filter((v) => !g.initializers.has(v.name)).map((v) => v.name));
  for (const n of g.nodes) {
    if (META_OPS.has(n.opType)) continue;
    const shapeLike = new Set(OPS[n.opType]?.constInputs ?? []);
    if (n.inputs.some((i, k) => i && !shapeLike.has(k) && data.has(i))) for (const o of n.outputs) if (o) data.add(o);
  }
  return data;
}

export function layerOf(g: Graph, n: Node, data: Set<string>): Layer | undefined {
  if (n.opType !== 'Conv' && n.opType !== 'Gemm' && n.opType !== 'MatMul') return undefined;
  if (!data.has(n.inputs[0]) && !data.has(n.inputs[1])) return undefined;
  if (g.initializers.has(n.inputs[1])) return { name: n.name, op: n.opType, weight: n.inputs[1] };
  if (n.opType === 'MatMul' && data.has(n.inputs[0]) && data.has(n.inputs[1])) return { name: n.name, op: 'MatMul' };
  return undefined;
}

/** Module path of a node name: "/blocks/blocks.0/attn/qkv/MatMul" → ["blocks", "blocks.0", "attn", "qkv"]. */
function modulePath(name: string): string[] {
  if (!name.startsWith('/')) return [];
  return name.split('/').filter(Boolean).slice(0, -1);
}

function commonPrefix(paths: string[][]): string[] {
  if (!paths.length) return [];
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const c = paths[0][i];
    if (c === undefined || paths.some((p) => p[i] !== c)) return out;
    out.push(c);
  }
}

const signature = (component: string | undefined) => (component ?? '').replace(/\d+/g, '#');

export function discoverBlocks(g: Graph, opts: DiscoverOptions = {}): Structure {
  const data = dataValues(g);
  const nodes = g.nodes.filter((n) => !META_OPS.has(n.opType) && n.inputs.some((i) => i && data.has(i)));
  const layers = nodes.map((n) => layerOf(g, n, data)).filter((l): l is Layer => !!l);
  const layerNames = new Set(layers.map((l) => l.name));

  // Segments between cuts.
  const lastUse = new Map<string, number>();
  nodes.forEach((n, k) => n.inputs.forEach((i) => i && data.has(i) && lastUse.set(i, k)));
  for (const o of g.outputs) lastUse.set(o.name, nodes.length);
  const boundaries: { at: number; value: string }[] = [];
  const live = new Set(g.inputs.filter((v) => data.has(v.name) && lastUse.has(v.name)).map((v) => v.name));
  for (let k = 0; k < nodes.length; k++) {
    for (const v of [...live]) if ((lastUse.get(v) ?? -1) < k) live.delete(v);
    if (live.size === 1) boundaries.push({ at: k, value: [...live][0] });
    for (const o of nodes[k].outputs) if (o && data.has(o) && lastUse.has(o)) live.add(o);
  }
  for (const v of [...live]) if ((lastUse.get(v) ?? -1) < nodes.length) live.delete(v);
  boundaries.push({ at: nodes.length, value: [...live][0] ?? g.outputs[0].name });

  interface Segment { from: number; to: number; input: string; output: string; residual: boolean; prefix: string[] }
  const segments: Segment[] = [];
  for (let s = 0; s + 1 < boundaries.length; s++) {
    const { at: from, value: input } = boundaries[s];
    const { at: to, value: output } = boundaries[s + 1];
    const seg = nodes.slice(from, to);
    const residual = seg.some((n) => (n.opType === 'Add' || n.opType === 'Sum') && n.inputs.filter((i) => data.has(i)).length >= 2);
    segments.push({ from, to, input, output, residual, prefix: commonPrefix(seg.map((n) => modulePath(n.name))) });
  }

  let blocks: Block[] = [];
  const makeBlock = (from: number, to: number, input: string, output: string, found: Block['found'], prefix: string[]): Block => {
    const seg = nodes.slice(from, to);
    return {
      name: prefix.length ? '/' + prefix.join('/') : `block${blocks.length}`,
      layers: seg.filter((n) => layerNames.has(n.name)).map((n) => n.name),
      nodes: seg.map((n) => n.name), input, output, found,
    };
  };

  // A block runs on through following segments that hold no layer (the ReLU after a ResNet
  // block's residual Add, a PointNet layer's activation), so consecutive blocks meet at one value
  // and no node falls between two blocks.
  const runOn = (ranges: { from: number; to: number; output: string }[]) => {
    const owned = new Set(ranges.map((r) => r.from));
    for (const r of ranges) {
      let k = segments.findIndex((x) => x.from === r.to);
      while (k >= 0 && !owned.has(segments[k].from) && !nodes.slice(segments[k].from, segments[k].to).some((n) => layerNames.has(n.name))) {
        r.to = segments[k].to;
        r.output = segments[k].output;
        k = segments.findIndex((x) => x.from === r.to);
      }
    }
  };

  if (opts.blockPrefixes?.length) {
    const ranges = userBlocks(opts.blockPrefixes, nodes, layerNames, boundaries);
    runOn(ranges);
    blocks = ranges.map((r) => ({ ...makeBlock(r.from, r.to, r.input, r.output, 'user', []), name: r.name }));
  } else {
    // Residual segments, merged per module unless split.
    const residual = segments.filter((s) => s.residual);
    const merged: Segment[] = [];
    for (const s of residual) {
      const prev = merged[merged.length - 1];
      if (!opts.split && prev && prev.to === s.from && s.prefix.length && prev.prefix.join('/') === s.prefix.join('/')) {
        prev.to = s.to;
        prev.output = s.output;
      } else merged.push({ ...s });
    }
    // Module siblings of residual blocks: same parent path, a numbered child, same inner start.
    const parents = new Set<string>(), inner = new Set<string>();
    for (const s of merged) {
      if (s.prefix.length < 1 || !/\d+$/.test(s.prefix[s.prefix.length - 1])) continue;
      parents.add(s.prefix.slice(0, -1).join('/'));
      for (const n of nodes.slice(s.from, s.to)) if (layerNames.has(n.name)) inner.add(signature(modulePath(n.name)[s.prefix.length]));
    }
    const covered = new Set<number>();
    for (const s of merged) for (let k = s.from; k < s.to; k++) covered.add(k);
    const moduleSegs: Segment[] = [];
    for (const s of segments) {
      if (s.residual || [...Array(s.to - s.from).keys()].some((d) => covered.has(s.from + d))) continue;
      const seg = nodes.slice(s.from, s.to);
      const paths = seg.map((n) => modulePath(n.name));
      // The module this segment sits in, one level below a known parent.
      const owner = paths[0].length ? paths[0] : [];
      let mod: string[] | undefined;
      for (let d = owner.length - 1; d >= 1 && !mod; d--)
        if (parents.has(owner.slice(0, d).join('/')) && /\d+$/.test(owner[d])) mod = owner.slice(0, d + 1);
      if (!mod || !paths.every((p) => mod!.every((c, i) => p[i] === c))) continue;
      const hasLayer = seg.some((n) => layerNames.has(n.name));
      if (hasLayer && !seg.filter((n) => layerNames.has(n.name)).every((n) => inner.has(signature(modulePath(n.name)[mod!.length])))) continue;
      const prev = moduleSegs[moduleSegs.length - 1];
      if (prev && prev.to === s.from && prev.prefix.join('/') === mod.join('/')) {
        prev.to = s.to;
        prev.output = s.output;
      } else moduleSegs.push({ ...s, prefix: mod });
    }
    const all = [
      ...merged.map((s) => ({ s, found: 'residual' as const })),
      ...moduleSegs.filter((s) => nodes.slice(s.from, s.to).some((n) => layerNames.has(n.name))).map((s) => ({ s, found: 'module' as const })),
    ].sort((a, b) => a.s.from - b.s.from);
    runOn(all.map(({ s }) => s));
    blocks = all.map(({ s, found }) => makeBlock(s.from, s.to, s.input, s.output, found, s.prefix));
    if (opts.split) {
      // Name the two halves of a transformer block apart.
      const seen = new Map<string, number>();
      for (const b of blocks) {
        const k = seen.get(b.name) ?? 0;
        seen.set(b.name, k + 1);
        if (k > 0 || blocks.filter((x) => x.name === b.name).length > 1) b.name = `${b.name}#${k}`;
      }
    }
  }

  const inBlock = new Map<string, Block>();
  for (const b of blocks) for (const l of b.layers) inBlock.set(l, b);
  const units: Unit[] = [];
  for (const l of layers) {
    const b = inBlock.get(l.name);
    if (!b) units.push({ kind: 'layer', layer: l.name });
    else if (!units.some((u) => u.kind === 'block' && u.block === b)) units.push({ kind: 'block', block: b });
  }
  const firstBlock = units.findIndex((u) => u.kind === 'block');
  const lastBlock = units.length - 1 - [...units].reverse().findIndex((u) => u.kind === 'block');
  const stem: string[] = [], head: string[] = [], between: string[] = [];
  units.forEach((u, k) => {
    if (u.kind !== 'layer') return;
    if (firstBlock < 0 || k < firstBlock) stem.push(u.layer);
    else if (k > lastBlock) head.push(u.layer);
    else between.push(u.layer);
  });
  if (firstBlock < 0) {
    // No blocks at all (VGG, PointNet): every layer is its own unit; none is stem or head.
    stem.length = 0;
  }
  return { layers, blocks, stem, head, between, units };
}

function userBlocks(prefixes: string[], nodes: Node[], layerNames: Set<string>, boundaries: { at: number; value: string }[]) {
  const ranges: { name: string; from: number; to: number; input: string; output: string }[] = [];
  for (const prefix of prefixes) {
    const idx = nodes.map((n, k) => (n.name.startsWith(prefix) ? k : -1)).filter((k) => k >= 0);
    const layerNodes = idx.filter((k) => layerNames.has(nodes[k].name));
    if (!layerNodes.length) throw new BadOptionError(`--blocks: the prefix "${prefix}" matches no layer (node names look like "${nodes.find((n) => layerNames.has(n.name))?.name}")`);
    const from = idx[0], to = idx[idx.length - 1] + 1;
    const start = [...boundaries].reverse().find((b) => b.at <= from);
    const end = boundaries.find((b) => b.at >= to);
    if (!start || !end || start.at !== from || end.at !== to || idx.length !== to - from)
      throw new BadOptionError(`--blocks: the nodes under "${prefix}" do not form a block with a single input and a single output`);
    if (ranges.some((r) => r.from < to && from < r.to))
      throw new BadOptionError(`--blocks: the prefix "${prefix}" overlaps another block`);
    ranges.push({ name: prefix, from, to, input: start.value, output: end.value });
  }
  return ranges.sort((a, b) => a.from - b.from);
}
