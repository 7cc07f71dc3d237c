/**
 * Quantizer placement: which weights and which activation reads get a quantizer, at how many bits.
 *
 * Placement follows the Pack-PTQ release (and BRECQ's layer-input variant): an activation quantizer
 * at the input of every Conv / Gemm / MatMul — both operands of attention matmuls — except where
 * the input is the model input itself; a weight quantizer on every layer weight. A tensor read by
 * several layers gets one quantizer shared by them (one Q/DQ pair in the export).
 *
 * Bit widths: the target widths everywhere, except (by default, the BRECQ/QDrop convention) the
 * first and last layer, whose weights and input activations stay at 8 bits; `firstLast: 'target'`
 * gives them the target width as the Pack-PTQ release does. Per-layer overrides by node-name
 * pattern; excluded layers stay in floating point.
 */
import { BadOptionError } from '../errors';
import { Graph } from '../graph/ir';
import { Layer, Structure } from '../graph/blocks';

export interface LayerBitsRule {
  /** Node-name pattern: `*` matches any run of characters; otherwise a plain substring. */
  pattern: string;
  wBits?: number;
  aBits?: number;
}

export interface PlanOptions {
  /** Target weight bits (2-8). */
  wBits: number;
  /** Target activation bits (2-8). */
  aBits: number;
  /** '8bit' (default): first and last layer at 8 bits; 'target': at the target widths. */
  firstLast?: '8bit' | 'target';
  /** Per-layer widths by node-name pattern (`*` wildcard), applied in order. */
  layerBits?: LayerBitsRule[];
  /** Node-name patterns of layers kept in floating point. */
  exclude?: string[];
  /** Per output channel (default) or per tensor weight quantizers. */
  weightGranularity?: 'channel' | 'tensor';
  /** Exact per-layer widths (mixed precision decides them); applied after the other rules. */
  layerWidths?: Map<string, { wBits: number; aBits: number }>;
}

export interface LayerPlan {
  layer: string;
  op: Layer['op'];
  /** Weight initializer and its bits; undefined when the layer has no weight or is excluded. */
  weight?: string;
  wBits?: number;
  /** Channel axis of the weight's per-channel quantizer (the output channels). */
  weightAxis?: number;
  /** Data inputs with an activation quantizer. */
  actInputs: string[];
  excluded: boolean;
}

export interface ActPlan {
  tensor: string;
  bits: number;
  consumers: string[];
}

export interface QuantPlan {
  options: Required<Omit<PlanOptions, 'layerBits' | 'exclude' | 'layerWidths'>> & Pick<PlanOptions, 'layerBits' | 'exclude'>;
  layers: LayerPlan[];
  acts: ActPlan[];
}

export function checkBits(name: string, bits: number | undefined): void {
  if (bits === undefined) return;
  if (!Number.isInteger(bits) || bits < 2 || bits > 8)
    throw new BadOptionError(`Expected an integer from 2 to 8 for ${name} but received ${bits}`);
}

export function patternMatcher(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*')) return (name) => name.includes(pattern);
  const re = new RegExp('^' + pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
  return (name) => re.test(name);
}

/** The axis of a weight that indexes the layer's output channels. */
export function outputChannelAxis(g: Graph, layer: Layer): number {
  const n = g.nodes.find((x) => x.name === layer.name)!;
  if (layer.op === 'Conv') return 0;
  if (layer.op === 'Gemm') return n.attrs.transB?.value ? 0 : 1;
  return 1; // MatMul weight [K, N]
}

export function planQuantization(g: Graph, s: Structure, opts: PlanOptions): QuantPlan {
  checkBits('--w-bits', opts.wBits);
  checkBits('--a-bits', opts.aBits);
  for (const r of opts.layerBits ?? []) {
    checkBits(`--layer-bits ${r.pattern}`, r.wBits);
    checkBits(`--layer-bits ${r.pattern}`, r.aBits);
  }
  const firstLast = opts.firstLast ?? '8bit';
  if (firstLast !== '8bit' && firstLast !== 'target') throw new BadOptionError(`Expected "8bit" or "target" for --first-last but received "${firstLast}"`);
  const granularity = opts.weightGranularity ?? 'channel';
  const names = s.layers.map((l) => l.name);
  const rules = (opts.layerBits ?? []).map((r) => ({ ...r, match: patternMatcher(r.pattern) }));
  const excludes = (opts.exclude ?? []).map((p) => ({ p, match: patternMatcher(p) }));
  for (const r of rules) if (!names.some(r.match)) throw new BadOptionError(`--layer-bits: the pattern "${r.pattern}" matches no layer (layers look like "${names[0]}")`);
  for (const e of excludes) if (!names.some(e.match)) throw new BadOptionError(`--exclude: the pattern "${e.p}" matches no layer (layers look like "${names[0]}")`);

  const modelInputs = new Set(g.inputs.map((v) => v.name));
  const weighted = s.layers.filter((l) => l.weight);
  const first = weighted[0]?.name, last = weighted[weighted.length - 1]?.name;
  const layers: LayerPlan[] = [];
  const acts = new Map<string, ActPlan>();
  for (const l of s.layers) {
    const node = g.nodes.find((n) => n.name === l.name)!;
    const excluded = excludes.some((e) => e.match(l.name));
    const edge = firstLast === '8bit' && (l.name === first || l.name === last);
    let wBits = edge ? 8 : opts.wBits, aBits = edge ? 8 : opts.aBits;
    for (const r of rules) if (r.match(l.name)) {
      wBits = r.wBits ?? wBits;
      aBits = r.aBits ?? aBits;
    }
    const exact = opts.layerWidths?.get(l.name);
    if (exact) ({ wBits, aBits } = exact);
    const dataInputs = l.weight ? [node.inputs[0]] : [node.inputs[0], node.inputs[1]];
    const actInputs = excluded ? [] : dataInputs.filter((t) => !modelInputs.has(t));
    for (const t of actInputs) {
      const a = acts.get(t);
      if (a) {
        a.consumers.push(l.name);
        a.bits = Math.max(a.bits, aBits); // one shared quantizer: the widest request wins
      } else acts.set(t, { tensor: t, bits: aBits, consumers: [l.name] });
    }
    layers.push({
      layer: l.name, op: l.op, excluded, actInputs,
      weight: l.weight && !excluded ? l.weight : undefined,
      wBits: l.weight && !excluded ? wBits : undefined,
      weightAxis: l.weight && !excluded && granularity === 'channel' ? outputChannelAxis(g, l) : undefined,
    });
  }
  return {
    options: { wBits: opts.wBits, aBits: opts.aBits, firstLast, weightGranularity: granularity, layerBits: opts.layerBits, exclude: opts.exclude },
    layers, acts: [...acts.values()],
  };
}
