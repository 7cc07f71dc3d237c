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
import { specialize } from '../specialize';
import { constOf, uses } from './util';

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

/** Number of output channels of a linear layer with a constant weight, or undefined when it has none. */
function outChannels(g: Graph, n: Node): number | undefined {
  const w = constOf(g, n.inputs[1]);
  if (!w) return undefined;
  if (n.opType === 'Conv') return w.dims[0];
  if (n.opType === 'Gemm') return attrInt(n, 'transA', 0) ? undefined : attrInt(n, 'transB', 0) ? w.dims[0] : w.dims[1];
  if (n.opType === 'MatMul' && w.dims.length === 2) return w.dims[1];
  return undefined;
}

/** Number of input channels of layer B, when B can absorb a per-input-channel scale. */
function inChannels(g: Graph, n: Node): number | undefined {
  const w = constOf(g, n.inputs[1]);
  if (!w) return undefined;
  // A grouped conv's input channel c meets only one group's filters: fine, but depthwise-style
  // layouts are left alone to keep the column arithmetic below plain.
  if (n.opType === 'Conv') return attrInt(n, 'group', 1) === 1 ? w.dims[1] : undefined;
  if (n.opType === 'Gemm') return attrInt(n, 'transA', 0) ? undefined : attrInt(n, 'transB', 0) ? w.dims[1] : w.dims[0];
  if (n.opType === 'MatMul' && w.dims.length === 2) return w.dims[0];
  return undefined;
}

/** Axes a reduction removes (normalised), from its attribute or its constant axes input. */
function reducedAxes(g: Graph, n: Node, rank: number): number[] | undefined {
  let raw = attrInts(n, 'axes');
  if (!raw && n.inputs[1]) raw = constOf(g, n.inputs[1]) && Array.from(constOf(g, n.inputs[1])!.data);
  if (!raw || raw.length === 0) return undefined; // every axis, the channel axis included
  return raw.map((a) => (a < 0 ? a + rank : a));
}

/**
 * Every link A → homogeneous ops → B in `g` where each intermediate value feeds only the next op,
 * A's and B's weights are used by them alone, and the channel axis can be followed to B's input.
 */
export function findEqualizeLinks(g: Graph): EqualizeLink[] {
  const u = uses(g);
  const inputShapes: Record<string, number[]> = {};
  for (const v of g.inputs)
    if (!g.initializers.has(v.name) && v.shape) inputShapes[v.name] = v.shape.map((d) => (typeof d === 'number' ? d : 1));
  const shapes = specialize(g, { inputShapes }).values;
  const rankOf = (v: string) => shapes.get(v)?.shape.length;
  const weightUses = (n: Node) => u.consumers.get(n.inputs[1])?.length ?? 0;
  const links: EqualizeLink[] = [];
  for (const a of g.nodes) {
    if (!['Conv', 'Gemm', 'MatMul'].includes(a.opType)) continue;
    const channels = outChannels(g, a);
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
    if (b.inputs[0] !== value || weightUses(b) !== 1 || inChannels(g, b) !== channels) continue;
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
  const C = link.channels;
  const wa = constOf(g, a.inputs[1])!, wb = constOf(g, b.inputs[1])!;
  // A's output channel of element i; B's input channel of element i.
  let outOf: (i: number) => number;
  if (a.opType === 'Conv') { const per = wa.data.length / C; outOf = (i) => Math.floor(i / per); }
  else if (a.opType === 'Gemm' && attrInt(a, 'transB', 0)) { const per = wa.dims[1]; outOf = (i) => Math.floor(i / per); }
  else outOf = (i) => i % C;
  let inOf: (i: number) => number;
  if (b.opType === 'Conv') { const per = wb.data.length / (wb.dims[0] * C); inOf = (i) => Math.floor(i / per) % C; }
  else if (b.opType === 'Gemm' && attrInt(b, 'transB', 0)) inOf = (i) => i % C;
  else { const per = wb.dims[1]; inOf = (i) => Math.floor(i / per); }
  g.initializers.set(a.inputs[1], scaled(wa, (i) => 1 / s[outOf(i)]));
  if (a.inputs[2]) g.initializers.set(a.inputs[2], scaled(constOf(g, a.inputs[2])!, (i) => 1 / s[i]));
  g.initializers.set(b.inputs[1], scaled(wb, (i) => s[inOf(i)]));
}
