/**
 * A QuantizedGraph built in the tests themselves (independent of lib/quant's calibration code):
 * per-channel asymmetric weight quantizers from min/max per output channel, and per-tensor
 * asymmetric activation quantizers at the data inputs of every Conv/Gemm/MatMul from min/max over
 * calibration batches. Plus running graphs and comparing logits.
 */
import { Graph, Node, cloneGraph } from '../../lib/graph/ir';
import { lower } from '../../lib/engine/lower';
import { NativeProgram } from '../../lib/engine/program';
import { specialize } from '../../lib/graph/specialize';
import { ActQuant, QuantParams, QuantizedGraph, WeightQuant, grid, roundHalfEven } from '../../lib/quant/types';

const LAYERS = new Set(['Conv', 'Gemm', 'MatMul']);

/** Scale and zero point covering [min(lo,0), max(hi,0)] on the grid (0 stays exactly representable). */
function affine(lo: number, hi: number, qmin: number, qmax: number): { scale: number; zero: number } {
  lo = Math.min(lo, 0);
  hi = Math.max(hi, 0);
  if (hi - lo < 1e-8) hi = lo + 1e-8;
  const scale = Math.fround((hi - lo) / (qmax - qmin));
  const zero = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale)));
  return { scale, zero };
}

/** The output-channel axis of a layer's weight. */
function weightAxis(n: Node, rank: number): number {
  if (n.opType === 'Conv') return 0;
  if (n.opType === 'Gemm') return n.attrs.transB?.value ? 0 : 1;
  return rank - 1; // MatMul: x·W, W is [in, out]
}

export function quantizeWeight(g: Graph, layer: Node, bits: number): WeightQuant {
  const name = layer.inputs[1];
  const t = g.initializers.get(name)!;
  const axis = weightAxis(layer, t.dims.length);
  const C = t.dims[axis];
  const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const gr = grid(bits, true);
  const lo = new Array(C).fill(Infinity), hi = new Array(C).fill(-Infinity);
  const ch = (i: number) => Math.floor(i / inner) % C;
  t.data.forEach((v, i) => { lo[ch(i)] = Math.min(lo[ch(i)], v); hi[ch(i)] = Math.max(hi[ch(i)], v); });
  const scale = new Float32Array(C), zeroPoint = new Int32Array(C);
  for (let c = 0; c < C; c++) ({ scale: scale[c], zero: zeroPoint[c] } = affine(lo[c], hi[c], gr.qmin, gr.qmax));
  const codes = Int32Array.from(t.data, (v, i) =>
    Math.min(gr.qmax, Math.max(gr.qmin, roundHalfEven(Math.fround(v / scale[ch(i)])) + zeroPoint[ch(i)])));
  return { layer: layer.name, weight: name, params: { ...gr, scale, zeroPoint, axis }, codes };
}

/** Runs `g` on batches with extra graph outputs; returns every output per batch. */
export function runWithOutputs(g: Graph, extra: string[], batches: { data: Float32Array; shape: number[] }[]): Float32Array[][] {
  const h = cloneGraph(g);
  h.outputs = [...h.outputs, ...extra.map((name) => ({ name, dtype: 'float32' as const }))];
  const input = h.inputs.find((v) => !h.initializers.has(v.name))!.name;
  const programs = new Map<string, NativeProgram>();
  return batches.map((b) => {
    const key = b.shape.join('x');
    let p = programs.get(key);
    if (!p) programs.set(key, (p = new NativeProgram(lower(specialize(h, { inputShapes: { [input]: b.shape } })))));
    return p.runSync([b.data]);
  });
}

/** The W{wBits}A{aBits} QuantizedGraph of a canonical graph, activations calibrated on `calib`. */
export function buildQuantizedGraph(g: Graph, wBits: number, aBits: number, calib: { data: Float32Array; shape: number[] }[]): QuantizedGraph {
  const modelInputs = new Set(g.inputs.map((v) => v.name));
  const layers = g.nodes.filter((n) => LAYERS.has(n.opType) && !n.domain);
  const weights = layers.filter((n) => g.initializers.get(n.inputs[1])?.dtype === 'float32').map((n) => quantizeWeight(g, n, wBits));
  const consumers = new Map<string, string[]>();
  for (const n of layers)
    for (const x of n.inputs.slice(0, 2))
      if (x && !g.initializers.has(x) && !modelInputs.has(x)) consumers.set(x, [...new Set([...(consumers.get(x) ?? []), n.name])]);
  const tensors = [...consumers.keys()];
  const lo = new Array(tensors.length).fill(Infinity), hi = new Array(tensors.length).fill(-Infinity);
  for (const outs of runWithOutputs(g, tensors, calib)) {
    tensors.forEach((_, k) => {
      const v = outs[g.outputs.length + k];
      for (let i = 0; i < v.length; i++) { if (v[i] < lo[k]) lo[k] = v[i]; if (v[i] > hi[k]) hi[k] = v[i]; }
    });
  }
  const gr = grid(aBits, false);
  const acts: ActQuant[] = tensors.map((tensor, k) => {
    const { scale, zero } = affine(lo[k], hi[k], gr.qmin, gr.qmax);
    const params: QuantParams = { ...gr, scale: Float32Array.of(scale), zeroPoint: Int32Array.of(zero) };
    return { tensor, consumers: consumers.get(tensor)!, params };
  });
  return { weights, acts };
}

export interface LogitComparison {
  /** max |a − b| / max |b| over all logits. */
  maxRel: number;
  /** Fraction of samples whose arg-max agrees. */
  agreement: number;
}

export function compareLogits(a: Float32Array, b: Float32Array, classes: number): LogitComparison {
  let diff = 0, scale = 0, agree = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  const argmax = (x: Float32Array, s: number) => {
    let best = 0;
    for (let c = 1; c < classes; c++) if (x[s * classes + c] > x[s * classes + best]) best = c;
    return best;
  };
  const samples = a.length / classes;
  for (let s = 0; s < samples; s++) if (argmax(a, s) === argmax(b, s)) agree++;
  return { maxRel: diff / Math.max(scale, 1e-30), agreement: agree / samples };
}
