/** ONNX ModelProto (decoded by lib/onnx) → packptq graph IR. */
import { UnsupportedModelError } from '../errors';
import { AttributeType, OnnxModel, TensorProto, ValueInfoProto } from '../onnx/schema';
import { defaultOpset } from '../onnx/decode';
import { dtypeOf, tensorToArray } from '../onnx/tensor';
import { AttrValue, DType, Dim, Graph, Node, Tensor, ValueInfo } from './ir';

export function tensorFromProto(t: TensorProto, file?: string): Tensor {
  const a = tensorToArray(t, { int64: 'number', file });
  const data = a.dtype === 'float32' || a.dtype === 'float16' || a.dtype === 'bfloat16'
    ? (a.data instanceof Float32Array ? a.data : Float32Array.from(a.data as ArrayLike<number>))
    : Float64Array.from(a.data as ArrayLike<number>);
  // Half types are widened to float32 in the IR: packptq computes in float32 anyway.
  const dtype: DType = a.dtype === 'float16' || a.dtype === 'bfloat16' ? 'float32' : a.dtype;
  return { dtype, dims: a.dims, data };
}

function elemType(code: number | undefined): DType {
  if (code === undefined) return 'other';
  if (code === 8) return 'string';
  return (dtypeOf(code) as DType | undefined) ?? 'other';
}

function valueInfo(v: ValueInfoProto): ValueInfo {
  const tt = v.type?.tensor_type;
  const shape: Dim[] | undefined = tt?.shape?.dim.map((d, i) =>
    d.dim_value !== undefined && d.dim_value !== null ? Number(d.dim_value) : d.dim_param || `?${i}`);
  return { name: v.name ?? '', dtype: elemType(tt?.elem_type), shape };
}

function attr(a: import('../onnx/schema').AttributeProto, file?: string): AttrValue {
  const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  switch (a.type) {
    case AttributeType.FLOAT: return { type: 'float', value: a.f ?? 0 };
    case AttributeType.INT: return { type: 'int', value: Number(a.i ?? 0) };
    case AttributeType.STRING: return { type: 'string', value: a.s ? text(a.s) : '' };
    case AttributeType.FLOATS: return { type: 'floats', value: [...a.floats] };
    case AttributeType.INTS: return { type: 'ints', value: a.ints.map(Number) };
    case AttributeType.STRINGS: return { type: 'strings', value: a.strings.map(text) };
    case AttributeType.TENSOR: return { type: 'tensor', value: tensorFromProto(a.t!, file) };
    case AttributeType.GRAPH: return { type: 'graph', value: a.g };
    default: return { type: 'other', value: undefined };
  }
}

export function importGraph(model: OnnxModel, file?: string): Graph {
  const g = model.graph!;
  const opset = defaultOpset(model);
  if (opset === undefined) throw new UnsupportedModelError(`${file ?? 'model'}: imports no opset of the default ONNX domain`);
  const nodes: Node[] = g.node.map((n, k) => ({
    name: n.name || `${n.op_type}_${k}`,
    opType: n.op_type ?? '',
    domain: n.domain ?? '',
    inputs: [...n.input],
    outputs: [...n.output],
    attrs: Object.fromEntries(n.attribute.map((a) => [a.name ?? '', attr(a, file)])),
  }));
  const initializers = new Map<string, Tensor>();
  for (const t of g.initializer) initializers.set(t.name ?? '', tensorFromProto(t, file));
  const valueInfoMap = new Map<string, ValueInfo>();
  for (const v of g.value_info) valueInfoMap.set(v.name ?? '', valueInfo(v));
  return {
    name: g.name ?? '',
    opset,
    nodes,
    inputs: g.input.map(valueInfo),
    outputs: g.output.map(valueInfo),
    initializers,
    valueInfo: valueInfoMap,
  };
}
