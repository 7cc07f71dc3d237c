/**
 * Activation equalization across a positively homogeneous link: layer A's output channel c is
 * divided by s_c and layer B's input channel c multiplied by s_c. Between them only ops f with
 * f(s·x) = s·f(x) per channel for s > 0 may sit (ReLU, LeakyReLU, max/average pooling, max/mean
 * reductions over other axes), so the FP function is unchanged while channel c of the activation B
 * reads, the one its quantizer sees, shrinks by s_c. A per-tensor activation quantizer then
 * spends its few levels on channels of similar range instead of on the widest channel (Nagel et al.
 * 2019 balance weights this way; SmoothQuant 2022 migrates activation range into weights).
 *
 * This file finds the links and applies given scales; lib/pipeline/equalize.ts measures the
 * ranges on calibration data and chooses the scales.
 */
import { Graph, Node, Tensor, attrInt, attrInts } from '../ir';
import { valueRanks } from './index';
import { constOf, inputChannels, outputChannels, uses } from './util';

/** One equalizable link: A → (homogeneous ops) → B, and the value B reads. */
export interface EqualizeLink {
  /** Name of layer A, whose output channels are divided by the scales. */
  producer: string;
  /** Name of layer B, whose input channels are multiplied by them. */
  consumer: string;
  /** The value B reads: its per-channel range is what the scales equalize. */
  value: string;
  /** The channel axis of `value`. */
  axis: number;
  channels: number;
}

const HOMOGENEOUS = new Set(['Relu', 'LeakyRelu', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'GlobalMaxPool', 'ReduceMax', 'ReduceMean']);

/** Axes a reduction removes (normalised), from its attribute or its constant axes input. */
function reducedAxes(g: Graph, n: Node, rank: number): number[] | undefined {
  const input = constOf(g, n.inputs[1]);
  const raw = attrInts(n, 'axes') ?? (input && Array.from(input.data));
  if (!raw || raw.length === 0) return undefined; // every axis, the channel axis included
  return raw.map((a) => (a < 0 ? a + rank : a));
}

/**
 * Every link A → homogeneous ops → B in `g` where each intermediate value feeds only the next op,
 * A's and B's weights are used by them alone, and the channel axis can be followed to B's input.
 */
export function findEqualizeLinks(g: Graph): EqualizeLink[] {
  const u = uses(g);
  const ranks = valueRanks(g);
  const rankOf = (v: string) => ranks.get(v);
  const weight = (n: Node) => constOf(g, n.inputs[1]);
  const weightUses = (n: Node) => u.consumers.get(n.inputs[1])?.length ?? 0;
  const links: EqualizeLink[] = [];
  for (const a of g.nodes) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(a.opType)) continue;
    const wa = weight(a);
    const channels = wa && outputChannels(a, wa)?.count;
    if (channels === undefined || weightUses(a) !== 1) continue;
    const bias = a.inputs[2];
    if (bias && (!constOf(g, bias) || (u.consumers.get(bias)?.length ?? 0) !== 1 || constOf(g, bias)!.data.length !== channels)) continue;
    let value = a.outputs[0];
    let rank = rankOf(value);
    if (rank === undefined) continue;
    let axis = a.opType === 'Conv' ? 1 : rank - 1;
    let ok = true;
    for (;;) {
      const next = u.consumers.get(value);
      if (!next || next.length !== 1 || u.graphOutputs.has(value)) { ok = false; break; }
      const n = next[0];
      if (!HOMOGENEOUS.has(n.opType)) break;
      if (n.opType.startsWith('Reduce')) {
        const axes = reducedAxes(g, n, rank);
        if (!axes || axes.includes(axis)) { ok = false; break; }
        if (attrInt(n, 'keepdims', 1) === 0) axis -= axes.filter((x) => x < axis).length;
      } else if (n.opType !== 'Relu' && n.opType !== 'LeakyRelu' && axis !== 1) { ok = false; break; } // pooling keeps axis 1 only
      value = n.outputs[0];
      rank = rankOf(value);
      if (rank === undefined) { ok = false; break; }
    }
    if (!ok || rank === undefined) continue;
    const b = u.consumers.get(value)![0];
    const wb = weight(b);
    if (b.inputs[0] !== value || !wb || weightUses(b) !== 1 || inputChannels(b, wb)?.count !== channels) continue;
    // B must read the channel axis as its input-channel axis.
    const bAxis = b.opType === 'Conv' ? 1 : b.opType === 'Gemm' ? (rank === 2 ? 1 : -1) : rank - 1;
    if (bAxis !== axis) continue;
    links.push({ producer: a.name, consumer: b.name, value, axis, channels });
  }
  return links;
}

function scaled(t: Tensor, factor: (i: number) => number): Tensor {
  const data = t.data instanceof Float64Array ? new Float64Array(t.data.length) : new Float32Array(t.data.length);
  for (let i = 0; i < data.length; i++) data[i] = t.data[i] * factor(i);
  return { dtype: t.dtype, dims: [...t.dims], data };
}

/**
 * Applies scales s (one per channel, > 0) to a link found by {@link findEqualizeLinks} in `g`
 * (initializers are replaced, not written into, so a graph sharing them with `g` is untouched).
 */
export function applyEqualization(g: Graph, link: EqualizeLink, s: Float64Array): void {
  const byName = new Map(g.nodes.map((n) => [n.name, n]));
  const a = byName.get(link.producer)!, b = byName.get(link.consumer)!;
  const wa = constOf(g, a.inputs[1])!, wb = constOf(g, b.inputs[1])!;
  const outOf = outputChannels(a, wa)!.of, inOf = inputChannels(b, wb)!.of;
  g.initializers.set(a.inputs[1], scaled(wa, (i) => 1 / s[outOf(i)]));
  if (a.inputs[2]) g.initializers.set(a.inputs[2], scaled(constOf(g, a.inputs[2])!, (i) => 1 / s[i]));
  g.initializers.set(b.inputs[1], scaled(wb, (i) => s[inOf(i)]));
}
