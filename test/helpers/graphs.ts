/** Building small graphs inside tests, and running them on the engine. */
import { AttrValue, Graph, Node, Tensor } from '../../lib/graph/ir';
import { lower } from '../../lib/engine/lower';
import { NativeProgram } from '../../lib/engine/program';
import { specialize } from '../../lib/graph/specialize';

/** A deterministic pseudo-random generator (tests must not depend on Math.random). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

export function randomTensor(dims: number[], r: () => number, lo = -1, hi = 1): Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return { dtype: 'float32', dims, data: Float32Array.from({ length: n }, () => lo + (hi - lo) * r()) };
}

export function scalar(v: number): Tensor {
  return { dtype: 'float32', dims: [], data: Float32Array.of(v) };
}

export function ints(values: number[]): Tensor {
  return { dtype: 'int64', dims: [values.length], data: Float64Array.from(values) };
}

export function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, name?: string): Node {
  return { name: name ?? `${opType}_${outputs[0]}`, opType, domain: '', inputs, outputs, attrs };
}

export const int = (value: number): AttrValue => ({ type: 'int', value });
export const float = (value: number): AttrValue => ({ type: 'float', value });
export const intList = (value: number[]): AttrValue => ({ type: 'ints', value });

export function graph(opts: { inputs: { name: string; shape: (number | string)[] }[]; outputs: string[]; nodes: Node[]; init?: Record<string, Tensor>; opset?: number }): Graph {
  return {
    name: 'test', opset: opts.opset ?? 13, nodes: opts.nodes,
    inputs: opts.inputs.map((v) => ({ name: v.name, dtype: 'float32', shape: v.shape })),
    outputs: opts.outputs.map((name) => ({ name, dtype: 'float32' })),
    initializers: new Map(Object.entries(opts.init ?? {})), valueInfo: new Map(),
  };
}

/** Runs a graph on concrete inputs and returns its outputs. */
export function run(g: Graph, inputs: Record<string, Tensor>): Float32Array[] {
  const s = specialize(g, { inputShapes: Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, t.dims])) });
  const p = new NativeProgram(lower(s));
  return p.runSync(s.inputs.map((name) => inputs[name].data as Float32Array));
}

export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0, diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}
