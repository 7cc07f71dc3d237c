/**
 * QDQ ONNX export: the canonical FP graph plus its QuantizedGraph become a standard ONNX model in
 * which every quantizer is explicit, so onnxruntime (or any QDQ-aware runtime) computes what
 * packptq simulated (lib/quant/simulate.ts):
 *  - a quantized weight is an integer initializer of its codes read by DequantizeLinear(codes,
 *    scale, zero_point[, axis]); the layer reads the float output in place of the FP weight;
 *  - a quantized activation is QuantizeLinear → DequantizeLinear on its tensor, read by exactly the
 *    quantizer's consumers (other readers keep the FP value). When the quantizer's grid is
 *    narrower than its storage type (6 bits in uint8, 3 bits in uint4) a Clip makes the chain
 *    saturate at qmin/qmax instead of the storage limits: in front of Q for 8-bit storage, after
 *    DQ for 4-bit storage (see addActivation for why);
 *  - the bias of a Conv/Gemm whose input and weight are both dequantized is moved to an Add after
 *    the layer (see separateBias), so that runtimes do not re-quantize it.
 * Codes are stored in int8/uint8 for 5–8 bits and int4/uint4 (packed) for ≤ 4, hence opset 21 and
 * IR version 10. Model inputs and outputs stay float32 (an int4 graph output crashes onnxruntime).
 */
import * as fs from 'fs';
import * as path from 'path';
import { BadOptionError } from '../errors';
import { Graph, Node, Tensor, cloneGraph, numel } from '../graph/ir';
import { topologicalOrder } from '../graph/specialize';
import { valueRanks } from '../graph/passes';
import { graphToModel } from '../onnx/from-graph';
import { saveModelFile } from '../onnx/encode';
import { ModelProto } from '../onnx/schema';
import { ActQuant, QuantParams, QuantizedGraph, WeightQuant, roundHalfEven } from '../quant/types';
import { NameSet, unfuseLinearBias, upgradeOpset } from './upgrade';

export const QDQ_OPSET = 21;
export const QDQ_IR_VERSION = 10;

export type StorageType = 'int8' | 'uint8' | 'int4' | 'uint4';

const STORAGE_RANGE: Record<StorageType, [number, number]> = {
  int8: [-128, 127], uint8: [0, 255], int4: [-8, 7], uint4: [0, 15],
};

export interface QdqExportOptions {
  /** Name of the exported graph (default: the canonical graph's). */
  graphName?: string;
  docString?: string;
  /** Extra metadata_props; packptq's own keys ("packptq.*") are always written and win. */
  metadata?: Record<string, string>;
  /**
   * Keep biases inside Conv/Gemm layers (default false). Integer runtimes then quantize them to
   * int32 at scale s_x·s_w, as onnxruntime's optimizer does, which departs from the simulation by
   * up to half a step of s_x·s_w per output (a visible change at 4-bit activations).
   */
  biasInLayer?: boolean;
}

/** The integer type a quantizer's codes are stored in: the narrowest that holds `bits`. */
export function storageType(bits: number, signed: boolean): StorageType {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new BadOptionError(`Expected 1 to 8 bits for a QDQ export but received ${bits}`);
  return bits <= 4 ? (signed ? 'int4' : 'uint4') : (signed ? 'int8' : 'uint8');
}

// float32 neighbours, for adjusting Clip bounds by one ulp.
const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
function nextFloat32(v: number, up: boolean): number {
  f32[0] = v;
  if (f32[0] === 0) return up ? 2 ** -149 : -(2 ** -149);
  // For positive floats the bit pattern grows with the value, for negative ones it shrinks.
  i32[0] += (f32[0] > 0) === up ? 1 : -1;
  return f32[0];
}

/**
 * Clip bounds [lo, hi] (float32) for a quantizer whose grid is narrower than its storage type:
 * Q(Clip(x, lo, hi)) must equal clamp(round_half_even(x/s) + z, qmin, qmax) for every x. Since
 * x ↦ round_half_even(fl(x/s)) + z is monotone, that holds exactly when lo and hi themselves
 * quantize to qmin and qmax; s·(q − z) rounded to float32 almost always does, and the bound is
 * moved by an ulp at a time in the rare case float rounding put it outside its code's interval.
 */
export function clipBounds(p: Pick<QuantParams, 'scale' | 'zeroPoint' | 'qmin' | 'qmax'>): [number, number] {
  const s = Math.fround(p.scale[0]);
  const z = p.zeroPoint[0];
  const code = (v: number) => roundHalfEven(Math.fround(v / s)) + z;
  const bound = (q: number) => {
    let v = Math.fround(s * (q - z));
    for (let k = 0; k < 64 && code(v) > q; k++) v = nextFloat32(v, false);
    for (let k = 0; k < 64 && code(v) < q; k++) v = nextFloat32(v, true);
    if (code(v) !== q) throw new BadOptionError(`Cannot find a float32 Clip bound for code ${q} with scale ${s} and zero point ${z}`);
    return v;
  };
  return [bound(p.qmin), bound(p.qmax)];
}

function checkParams(p: QuantParams, what: string, perTensorOnly: boolean): StorageType {
  const type = storageType(p.bits, p.signed);
  const [smin, smax] = STORAGE_RANGE[type];
  if (!Number.isInteger(p.qmin) || !Number.isInteger(p.qmax) || p.qmin >= p.qmax || p.qmin < smin || p.qmax > smax)
    throw new BadOptionError(`${what}: grid [${p.qmin}, ${p.qmax}] does not fit ${type} (its ${p.bits}-bit storage)`);
  if (p.scale.length < 1 || p.scale.length !== p.zeroPoint.length)
    throw new BadOptionError(`${what}: ${p.scale.length} scales but ${p.zeroPoint.length} zero points`);
  if (perTensorOnly && p.scale.length !== 1)
    throw new BadOptionError(`${what}: activation quantizers are exported per tensor, this one has ${p.scale.length} scales`);
  for (let c = 0; c < p.scale.length; c++) {
    if (!(p.scale[c] > 0) || !Number.isFinite(p.scale[c])) throw new BadOptionError(`${what}: scale ${p.scale[c]} (channel ${c}) is not a positive finite number`);
    if (p.zeroPoint[c] < smin || p.zeroPoint[c] > smax) throw new BadOptionError(`${what}: zero point ${p.zeroPoint[c]} (channel ${c}) does not fit ${type}`);
  }
  return type;
}

function nodeNamed(g: Graph, name: string, what: string): Node {
  const n = g.nodes.find((m) => m.name === name);
  if (!n) throw new BadOptionError(`${what}: the graph has no node "${name}"`);
  return n;
}

/** Scale (float32) and zero point (storage type) initializers: scalars, or vectors per channel. */
function paramTensors(p: QuantParams, type: StorageType): [Tensor, Tensor] {
  const dims = p.scale.length === 1 ? [] : [p.scale.length];
  return [
    { dtype: 'float32', dims, data: Float32Array.from(p.scale) },
    { dtype: type, dims: [...dims], data: Float64Array.from(p.zeroPoint) },
  ];
}

function addWeight(g: Graph, names: NameSet, w: WeightQuant, order: Map<Node, Node[]>): void {
  const what = `weight quantizer of layer "${w.layer}" (${w.weight})`;
  const layer = nodeNamed(g, w.layer, what);
  const t = g.initializers.get(w.weight);
  if (!t || t.dtype !== 'float32') throw new BadOptionError(`${what}: "${w.weight}" is not a float32 initializer of the graph`);
  if (!layer.inputs.includes(w.weight)) throw new BadOptionError(`${what}: layer "${w.layer}" does not read "${w.weight}"`);
  const p = w.params;
  const type = checkParams(p, what, false);
  if (w.codes.length !== numel(t.dims)) throw new BadOptionError(`${what}: ${w.codes.length} codes for a weight of ${numel(t.dims)} elements`);
  for (let i = 0; i < w.codes.length; i++)
    if (w.codes[i] < p.qmin || w.codes[i] > p.qmax) throw new BadOptionError(`${what}: code ${w.codes[i]} at element ${i} is outside [${p.qmin}, ${p.qmax}]`);
  const attrs: Node['attrs'] = {};
  if (p.scale.length > 1) {
    if (p.axis === undefined || !Number.isInteger(p.axis) || p.axis < 0 || p.axis >= t.dims.length || t.dims[p.axis] !== p.scale.length)
      throw new BadOptionError(`${what}: ${p.scale.length} per-channel scales do not match axis ${p.axis} of dims [${t.dims.join(', ')}]`);
    attrs.axis = { type: 'int', value: p.axis };
  }
  const codes = names.fresh(`${w.weight}_quantized`);
  const scale = names.fresh(`${w.weight}_scale`);
  const zero = names.fresh(`${w.weight}_zero_point`);
  const out = names.fresh(`${w.weight}_dequantized`);
  const [st, zt] = paramTensors(p, type);
  g.initializers.set(codes, { dtype: type, dims: [...t.dims], data: Float64Array.from(w.codes) });
  g.initializers.set(scale, st);
  g.initializers.set(zero, zt);
  const dq: Node = { name: names.fresh(`${w.weight}_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [codes, scale, zero], outputs: [out], attrs };
  order.set(layer, [...(order.get(layer) ?? []), dq]);
  // Only this layer reads the codes: another reader of the same FP weight keeps the FP values.
  layer.inputs = layer.inputs.map((i) => (i === w.weight ? out : i));
}

/** Producers after which a 2–4-bit activation is stored in 8 bits (see addActivation). */
const EIGHT_BIT_AFTER = new Set(['Clip', 'Relu', 'MaxPool', 'Slice']);

function addActivation(g: Graph, names: NameSet, a: ActQuant, order: Map<Node, Node[]>): void {
  const what = `activation quantizer of "${a.tensor}"`;
  const p = a.params;
  let type = checkParams(p, what, true);
  // onnxruntime (1.30) cannot even load a model where a model's own Clip or Relu (MobileNetV2's
  // ReLU6) feeds a 4-bit QuantizeLinear: its Clip/Relu+Q fusion reads only 8/16-bit zero points.
  // Nor one where a MaxPool or Slice does (VGG's pools): its QDQ propagation moves the Q in front
  // of those ops, which then run on 4-bit codes they have no kernel for ("Type 'tensor(uint4)' ...
  // of operator (MaxPool) is invalid"). Such activations are stored in 8 bits instead, clipped
  // exactly to their 2–4-bit grid.
  const producer = g.nodes.find((n) => n.outputs.includes(a.tensor));
  if ((type === 'int4' || type === 'uint4') && producer && EIGHT_BIT_AFTER.has(producer.opType)) type = type === 'int4' ? 'int8' : 'uint8';
  const produced = g.nodes.some((n) => n.outputs.includes(a.tensor)) || g.inputs.some((v) => v.name === a.tensor) || g.initializers.has(a.tensor);
  if (!produced) throw new BadOptionError(`${what}: no node, input or initializer provides "${a.tensor}"`);
  if (a.consumers.length === 0) throw new BadOptionError(`${what}: it has no consumers`);
  const consumers = a.consumers.map((c) => nodeNamed(g, c, what));
  for (const c of consumers) if (!c.inputs.includes(a.tensor)) throw new BadOptionError(`${what}: consumer "${c.name}" does not read "${a.tensor}"`);
  const [smin, smax] = STORAGE_RANGE[type];
  const [st, zt] = paramTensors(p, type);
  const scale = names.fresh(`${a.tensor}_scale`);
  const zero = names.fresh(`${a.tensor}_zero_point`);
  g.initializers.set(scale, st);
  g.initializers.set(zero, zt);
  const chain: Node[] = [];
  const clip = (x: string, [lo, hi]: [number, number]): string => {
    const min = names.fresh(`${a.tensor}_clip_min`), max = names.fresh(`${a.tensor}_clip_max`);
    g.initializers.set(min, { dtype: 'float32', dims: [], data: Float32Array.of(lo) });
    g.initializers.set(max, { dtype: 'float32', dims: [], data: Float32Array.of(hi) });
    const clipped = names.fresh(`${a.tensor}_clipped`);
    chain.push({ name: names.fresh(`${a.tensor}_Clip`), opType: 'Clip', domain: '', inputs: [x, min, max], outputs: [clipped], attrs: {} });
    return clipped;
  };
  const narrow = p.qmin > smin || p.qmax < smax;
  // onnxruntime (1.30) fails to create a session when a Clip feeds a 4-bit QuantizeLinear (its
  // Clip/Q fusion reads only 8/16-bit zero points). For 4-bit storage the Clip goes after DQ
  // instead, with bounds DQ(qmin) and DQ(qmax): DQ is monotone in the code, so
  // Clip(DQ(q)) = DQ(clamp(q, qmin, qmax)) exactly, bounds included.
  const after = narrow && (type === 'int4' || type === 'uint4');
  const x = narrow && !after ? clip(a.tensor, clipBounds(p)) : a.tensor;
  const q = names.fresh(`${a.tensor}_quantized`);
  let out = names.fresh(`${a.tensor}_dequantized`);
  chain.push({ name: names.fresh(`${a.tensor}_QuantizeLinear`), opType: 'QuantizeLinear', domain: '', inputs: [x, scale, zero], outputs: [q], attrs: {} });
  chain.push({ name: names.fresh(`${a.tensor}_DequantizeLinear`), opType: 'DequantizeLinear', domain: '', inputs: [q, scale, zero], outputs: [out], attrs: {} });
  if (after) {
    const s = Math.fround(p.scale[0]), z = p.zeroPoint[0];
    out = clip(out, [Math.fround(s * (p.qmin - z)), Math.fround(s * (p.qmax - z))]);
  }
  // The chain goes right before the earliest consumer in the current node order.
  const first = g.nodes.find((n) => consumers.includes(n))!;
  order.set(first, [...(order.get(first) ?? []), ...chain]);
  for (const c of consumers) c.inputs = c.inputs.map((i) => (i === a.tensor ? out : i));
}

/**
 * Conv(x̂, Ŵ, b) → Add(Conv(x̂, Ŵ), b) and Gemm(x̂, Ŵ, C) → Add(Gemm(x̂, Ŵ), C) when both x̂ and Ŵ
 * are DequantizeLinear outputs. A runtime that fuses such a layer into integer arithmetic
 * quantizes a float bias in the layer to int32 at scale s_x·s_w (onnxruntime does so at every
 * optimization level above "disabled"), while the simulation adds the float bias; out of the layer
 * the bias is added in float, as simulated. Gemm with beta ≠ 1 keeps its C (moving it would
 * round beta·C differently).
 */
function separateBias(g: Graph, names: NameSet): void {
  // DQ output → rank of its input (the codes of a weight, the quantized tensor of an activation).
  const dequantized = new Map(g.nodes.filter((n) => n.opType === 'DequantizeLinear')
    .map((n) => [n.outputs[0], g.initializers.get(n.inputs[0])?.dims.length] as const));
  const nodes: Node[] = [];
  for (const n of g.nodes) {
    nodes.push(n);
    const bias = n.inputs[2];
    const b = bias ? g.initializers.get(bias) : undefined;
    if (!b || n.domain || !dequantized.has(n.inputs[0]) || !dequantized.has(n.inputs[1])) continue;
    let dims: number[];
    if (n.opType === 'Conv') {
      // The bias [M] broadcasts over the spatial dims of the [N, M, ...] output.
      const rank = dequantized.get(n.inputs[1]);
      if (rank === undefined || rank < 2) continue;
      dims = [b.data.length, ...new Array(rank - 2).fill(1)];
    } else if (n.opType === 'Gemm' && (n.attrs.beta === undefined || (n.attrs.beta.type === 'float' && n.attrs.beta.value === 1))) {
      dims = [...b.dims]; // C broadcasts to [M, N] exactly as Add does
    } else continue;
    const out = n.outputs[0];
    const product = names.fresh(`${out}_nobias`);
    let addBias = bias;
    if (dims.length !== b.dims.length) {
      addBias = names.fresh(`${bias}_broadcast`);
      g.initializers.set(addBias, { dtype: b.dtype, dims, data: b.data });
    }
    n.inputs = n.inputs.slice(0, 2);
    n.outputs = [product];
    if (n.opType === 'Gemm') delete n.attrs.beta;
    nodes.push({ name: names.fresh(`${n.name}/BiasAdd`), opType: 'Add', domain: '', inputs: [product, addBias], outputs: [out], attrs: {} });
  }
  g.nodes = nodes;
}

function distinctBits(items: { params: QuantParams }[]): string {
  return [...new Set(items.map((i) => i.params.bits))].sort((a, b) => a - b).join(',');
}

let version: string | undefined;
/** packptq's version from its package.json (found from this file, in lib/ or dist/lib/). */
export function packptqVersion(): string {
  if (version) return version;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8'));
      if (pkg.name === 'packptq') return (version = String(pkg.version));
    }
    if (path.dirname(dir) === dir) return (version = 'unknown');
  }
}

/** The QDQ model of a quantized canonical graph (see the file comment). Throws BadOptionError naming a bad quantizer. */
export function exportQdq(canonical: Graph, q: QuantizedGraph, opts: QdqExportOptions = {}): ModelProto {
  const g = cloneGraph(canonical);
  const names = new NameSet(g);
  // New nodes are collected per anchor node and spliced in before it, keeping the file readable.
  const before = new Map<Node, Node[]>();
  for (const w of q.weights) addWeight(g, names, w, before);
  for (const a of q.acts) addActivation(g, names, a, before);
  g.nodes = g.nodes.flatMap((n) => [...(before.get(n) ?? []), n]);

  if (!opts.biasInLayer) separateBias(g, names);
  let ranks: Map<string, number> | undefined;
  unfuseLinearBias(g, names);
  upgradeOpset(g, QDQ_OPSET, names, (v) => (ranks ??= valueRanks(canonical)).get(v));

  // Initializers are constants of the model, not inputs a caller could override (IR < 4 listed them).
  g.inputs = g.inputs.filter((v) => !g.initializers.has(v.name));
  const read = new Set(g.nodes.flatMap((n) => n.inputs));
  for (const o of g.outputs) read.add(o.name);
  for (const k of [...g.initializers.keys()]) if (!read.has(k)) g.initializers.delete(k);
  // Types recorded for intermediate values describe the FP graph; runtimes infer the new ones.
  g.valueInfo = new Map();
  g.nodes = stableOrder(g);
  if (opts.graphName !== undefined) g.name = opts.graphName;

  return graphToModel(g, {
    opset: QDQ_OPSET,
    irVersion: QDQ_IR_VERSION,
    producer: 'packptq',
    producerVersion: packptqVersion(),
    docString: opts.docString,
    metadata: {
      ...opts.metadata,
      'packptq.version': packptqVersion(),
      'packptq.w_bits': distinctBits(q.weights),
      'packptq.a_bits': distinctBits(q.acts),
    },
  });
}

/**
 * The nodes in their current order when that order is already topological (it is, unless a
 * quantizer's tensor is produced after its first consumer in an unsorted input graph), else in
 * a topological order (which also refuses a dangling input); ONNX requires producers first.
 */
function stableOrder(g: Graph): Node[] {
  const available = () => new Set([...g.inputs.map((v) => v.name), ...g.initializers.keys()]);
  const known = available();
  for (const n of g.nodes) {
    if (n.inputs.some((i) => i && !known.has(i))) return topologicalOrder(g, available());
    for (const o of n.outputs) if (o) known.add(o);
  }
  return g.nodes;
}

/** exportQdq, then an atomic write (temp file + rename): on failure IoError and no file left behind. */
export function writeQdqModel(file: string, canonical: Graph, q: QuantizedGraph, opts: QdqExportOptions = {}): ModelProto {
  const model = exportQdq(canonical, q, opts);
  saveModelFile(file, model);
  return model;
}
