/**
 * QDQ import: an activation's [Clip →] QuantizeLinear → DequantizeLinear chain becomes one
 * FakeQuant node (domain "packptq"), the simulated quantizer the engine runs, so packptq runs the
 * QDQ models it exports (and per-tensor QDQ models of other tools). Weights need nothing here:
 * DequantizeLinear of a constant folds in fold.ts.
 *
 * Exactness: Q computes clamp(round_half_even(fl(x/s)) + z, T_min, T_max) in float32 and DQ
 * s·(q − z); FakeQuant computes the same with [qmin, qmax] in place of the storage type's range.
 * A Clip(lo, hi) in front folds into that range because x ↦ round_half_even(fl(x/s)) + z is
 * monotone: q(clip(x, lo, hi)) = clamp(q(x), q(lo), q(hi)). So qmin = max(T_min, q(lo)) and
 * qmax = min(T_max, q(hi)), with no approximation.
 *
 * A Clip after DQ (what packptq's export writes for 4-bit storage) folds the same way when its
 * bounds are grid values DQ(a), DQ(b): DQ is monotone, so Clip(DQ(q)) = DQ(clamp(q, a, b)).
 *
 * Fused only: per-tensor scale and zero point that are constants (initializers or Constant nodes,
 * since this runs before constant folding), equal on both nodes. Per-axis or blocked activation
 * quantization is left alone (the engine then refuses it by name).
 *
 * Also undone here: the export moves the bias of a Conv/Gemm with dequantized input and weight to
 * an Add after the layer (so that runtimes do not re-quantize it); a layer whose weight is a
 * DequantizeLinear output takes such an Add back as its bias, giving the canonical layer again.
 */
import { dtypeOf } from '../../onnx/tensor';
import { DType, Graph, Node, Tensor, attrFloat, attrInt } from '../ir';
import { QDQ_RANGES } from '../ops/quant';
import { roundHalfEven } from '../../quant/types';
import { Uses, freshName, uses } from './util';

const isDefault = (n: Node) => n.domain === '' || n.domain === 'ai.onnx';

/** A constant's value: an initializer, or the value of a Constant node (not yet folded). */
function constantValue(g: Graph, u: Uses, name: string | undefined): Tensor | undefined {
  if (!name) return undefined;
  const init = g.initializers.get(name);
  if (init) return init;
  const c = u.producer.get(name);
  if (!c || c.opType !== 'Constant' || !isDefault(c)) return undefined;
  const a = c.attrs.value ?? c.attrs.value_float ?? c.attrs.value_int;
  if (!a) return undefined;
  if (a.type === 'tensor') return a.value;
  if (a.type === 'float') return { dtype: 'float32', dims: [], data: Float32Array.of(a.value) };
  if (a.type === 'int') return { dtype: 'int64', dims: [], data: Float64Array.of(a.value) };
  return undefined;
}

interface QdqParams { scale: number; zero: number; dtype: DType }

/** Scale, zero point and storage type of a Q or DQ node, when per-tensor and constant. */
function params(g: Graph, u: Uses, n: Node, qType?: DType): QdqParams | undefined {
  if (attrInt(n, 'block_size', 0) !== 0) return undefined;
  const s = constantValue(g, u, n.inputs[1]);
  if (!s || s.data.length !== 1 || !(s.data[0] > 0)) return undefined;
  const zt = constantValue(g, u, n.inputs[2]);
  if (n.inputs[2] && !zt) return undefined;
  if (zt && zt.data.length !== 1) return undefined;
  const outputDtype = attrInt(n, 'output_dtype', 0);
  const dtype: DType = zt?.dtype ?? qType ?? (outputDtype ? dtypeOf(outputDtype) ?? 'other' : 'uint8');
  return { scale: Math.fround(s.data[0]), zero: zt ? zt.data[0] : 0, dtype };
}

/** Clip bounds as constants (absent bound: undefined), or null when they are not constant. */
function clipBounds(g: Graph, u: Uses, clip: Node): [number | undefined, number | undefined] | null {
  if (g.opset < 11) {
    const lo = clip.attrs.min ? attrFloat(clip, 'min', 0) : undefined;
    const hi = clip.attrs.max ? attrFloat(clip, 'max', 0) : undefined;
    return [lo, hi];
  }
  const bound = (i: number): number | undefined | null => {
    if (!clip.inputs[i]) return undefined;
    const t = constantValue(g, u, clip.inputs[i]);
    return t && t.data.length === 1 ? Math.fround(t.data[0]) : null;
  };
  const lo = bound(1), hi = bound(2);
  return lo === null || hi === null ? null : [lo, hi];
}

export function fuseQdq(g: Graph): Graph {
  const u = uses(g);
  const replaced = new Map<Node, Node>();
  const maybeDead = new Set<Node>();
  const removed = new Set<Node>();
  for (const dq of g.nodes) {
    if (dq.opType !== 'DequantizeLinear' || !isDefault(dq)) continue;
    const q = u.producer.get(dq.inputs[0]);
    if (!q || q.opType !== 'QuantizeLinear' || !isDefault(q)) continue;
    // A quantized constant is a weight: constant folding turns it into float values.
    if (constantValue(g, u, q.inputs[0])) continue;
    const qp = params(g, u, q);
    const dp = qp && params(g, u, dq, qp.dtype);
    if (!qp || !dp || qp.scale !== dp.scale || qp.zero !== dp.zero || qp.dtype !== dp.dtype) continue;
    const range = QDQ_RANGES[qp.dtype];
    if (!range) continue;
    let [qmin, qmax] = range;
    let input = q.inputs[0];
    const clip = u.producer.get(input);
    const bounds = clip && clip.opType === 'Clip' && isDefault(clip) ? clipBounds(g, u, clip) : null;
    if (clip && bounds) {
      const code = (v: number) => roundHalfEven(Math.fround(v / qp.scale)) + qp.zero;
      if (bounds[0] !== undefined) qmin = Math.max(qmin, code(bounds[0]));
      if (bounds[1] !== undefined) qmax = Math.min(qmax, code(bounds[1]));
      input = clip.inputs[0];
      maybeDead.add(clip);
    }
    let output = dq.outputs[0];
    const after = u.consumers.get(output);
    const clipAfter = after?.length === 1 && after[0].opType === 'Clip' && isDefault(after[0]) && !u.graphOutputs.has(output) ? after[0] : undefined;
    const afterBounds = clipAfter && clipBounds(g, u, clipAfter);
    if (clipAfter && afterBounds) {
      // A bound folds when it is exactly a grid value s·(k − z) (else Clip's output is off the grid).
      const gridCode = (v: number) => {
        const k = Math.round(v / qp.scale) + qp.zero;
        return Math.fround(qp.scale * (k - qp.zero)) === v ? k : undefined;
      };
      const lo = afterBounds[0] === undefined ? qmin : gridCode(afterBounds[0]);
      const hi = afterBounds[1] === undefined ? qmax : gridCode(afterBounds[1]);
      if (lo !== undefined && hi !== undefined) {
        qmin = Math.max(qmin, lo);
        qmax = Math.min(qmax, hi);
        output = clipAfter.outputs[0];
        removed.add(clipAfter);
      }
    }
    // A degenerate range (everything quantizes to one code) has no FakeQuant form; keep the nodes.
    if (!(qmin < qmax)) {
      if (clipAfter) removed.delete(clipAfter);
      continue;
    }
    replaced.set(dq, {
      name: dq.name, opType: 'FakeQuant', domain: 'packptq', inputs: [input], outputs: [output],
      attrs: {
        scale: { type: 'float', value: qp.scale }, zero_point: { type: 'int', value: qp.zero },
        qmin: { type: 'int', value: qmin }, qmax: { type: 'int', value: qmax },
      },
    });
    maybeDead.add(q);
  }
  if (replaced.size === 0) return foldBiasAdds(g);
  let nodes = g.nodes.filter((n) => !removed.has(n)).map((n) => replaced.get(n) ?? n);
  // The Q (and Clip) nodes go when nothing else reads them; Q before Clip, as Q reads the Clip.
  const outputs = new Set(g.outputs.map((o) => o.name));
  for (const n of [...maybeDead].sort((a, b) => (a.opType === 'QuantizeLinear' ? -1 : 0) - (b.opType === 'QuantizeLinear' ? -1 : 0))) {
    const read = new Set(nodes.flatMap((m) => m.inputs));
    if (n.outputs.every((o) => !o || (!read.has(o) && !outputs.has(o)))) nodes = nodes.filter((m) => m !== n);
  }
  g.nodes = nodes;
  return foldBiasAdds(g);
}

/** Conv/Gemm (weight from a DequantizeLinear, no bias) → Add(constant bias) becomes the layer with that bias. */
function foldBiasAdds(g: Graph): Graph {
  const u = uses(g);
  const dead = new Set<Node>();
  for (const layer of g.nodes) {
    if ((layer.opType !== 'Conv' && layer.opType !== 'Gemm') || !isDefault(layer) || layer.inputs[2]) continue;
    const dq = u.producer.get(layer.inputs[1]);
    const codes = dq?.opType === 'DequantizeLinear' ? constantValue(g, u, dq.inputs[0]) : undefined;
    if (!codes || codes.dims.length < 2) continue;
    const out = layer.outputs[0];
    const add = u.consumers.get(out);
    if (add?.length !== 1 || add[0].opType !== 'Add' || !isDefault(add[0]) || u.graphOutputs.has(out)) continue;
    const biasName = add[0].inputs[0] === out ? add[0].inputs[1] : add[0].inputs[0];
    const b = constantValue(g, u, biasName);
    if (!b || b.dtype !== 'float32') continue;
    let channels: number;
    if (layer.opType === 'Conv') {
      // [M, 1, ..., 1] over the output without its batch dim, or [1, M, 1, ...] over all of it.
      channels = codes.dims[0];
      const rank = codes.dims.length;
      const d = b.dims;
      const ok = (d.length === rank - 1 && d[0] === channels && d.slice(1).every((x) => x === 1))
        || (d.length === rank && d[0] === 1 && d[1] === channels && d.slice(2).every((x) => x === 1));
      if (!ok) continue;
    } else {
      if ((layer.attrs.beta && attrFloat(layer, 'beta', 1) !== 1)) continue;
      channels = attrInt(layer, 'transB', 0) ? codes.dims[0] : codes.dims[1];
      // C must broadcast to [M, N] without growing it: a scalar, [N] or [1, N].
      const d = b.dims;
      const ok = d.length === 0 || (d.length === 1 && d[0] === channels) || (d.length === 2 && d[0] === 1 && d[1] === channels);
      if (!ok) continue;
    }
    let bias = biasName;
    if (layer.opType === 'Conv' && b.dims.length !== 1) {
      bias = freshName(g, biasName);
      g.initializers.set(bias, { dtype: 'float32', dims: [channels], data: b.data });
    }
    layer.inputs = [layer.inputs[0], layer.inputs[1], bias];
    layer.outputs = [add[0].outputs[0]];
    dead.add(add[0]);
  }
  g.nodes = g.nodes.filter((n) => !dead.has(n));
  return g;
}
