/**
 * packptq's graph IR: a plain, mutable description of an ONNX graph that passes rewrite and the
 * compiler lowers. It is independent of protobuf types so passes stay simple to write and test.
 *
 * Constant tensors hold float32 data in a Float32Array and every other element type as numbers in
 * a Float64Array (exact for integers up to 2^53, which covers every index and shape; the int64
 * sentinels such as INT64_MAX in Slice ends survive as huge numbers that clamp the same way).
 */
export type DType =
  | 'float32' | 'float64' | 'float16' | 'bfloat16'
  | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'
  | 'bool' | 'string' | 'int4' | 'uint4' | 'other';

/** A dimension: a number, or a symbolic name such as "batch" while the batch size is unknown. */
export type Dim = number | string;

export interface Tensor {
  dtype: DType;
  dims: number[];
  data: Float32Array | Float64Array;
}

export interface ValueInfo {
  name: string;
  dtype: DType;
  shape?: Dim[];
}

export type AttrValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensor'; value: Tensor }
  | { type: 'graph' | 'other'; value: unknown };

export interface Node {
  name: string;
  opType: string;
  domain: string;
  /** Tensor names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

export interface Graph {
  name: string;
  /** Opset of the default ONNX domain. */
  opset: number;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: Map<string, Tensor>;
  /** Known types and shapes of intermediate values (from the file or from shape inference). */
  valueInfo: Map<string, ValueInfo>;
}

export function numel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function isFloatType(t: DType): boolean {
  return t === 'float32' || t === 'float64' || t === 'float16' || t === 'bfloat16';
}

export function makeTensor(dtype: DType, dims: number[], values: ArrayLike<number>): Tensor {
  const data = dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
  return { dtype, dims: [...dims], data };
}

export function cloneGraph(g: Graph): Graph {
  return {
    name: g.name,
    opset: g.opset,
    nodes: g.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs], attrs: { ...n.attrs } })),
    inputs: g.inputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] })),
    outputs: g.outputs.map((v) => ({ ...v, shape: v.shape && [...v.shape] })),
    initializers: new Map(g.initializers),
    valueInfo: new Map(g.valueInfo),
  };
}

/** Attribute readers with ONNX defaults; `node` is named in errors by the callers. */
export function attrInt(n: Node, name: string, dflt: number): number;
export function attrInt(n: Node, name: string): number | undefined;
export function attrInt(n: Node, name: string, dflt?: number): number | undefined {
  const a = n.attrs[name];
  return a && a.type === 'int' ? a.value : dflt;
}
export function attrFloat(n: Node, name: string, dflt: number): number {
  const a = n.attrs[name];
  return a && (a.type === 'float' || a.type === 'int') ? a.value : dflt;
}
export function attrInts(n: Node, name: string): number[] | undefined {
  const a = n.attrs[name];
  return a && a.type === 'ints' ? a.value : undefined;
}
export function attrFloats(n: Node, name: string): number[] | undefined {
  const a = n.attrs[name];
  return a && a.type === 'floats' ? a.value : undefined;
}
export function attrString(n: Node, name: string, dflt: string): string {
  const a = n.attrs[name];
  return a && a.type === 'string' ? a.value : dflt;
}

export function describeNode(n: Node): string {
  return `${n.opType} node "${n.name || n.outputs[0] || '?'}"`;
}
