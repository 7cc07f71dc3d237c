/**
 * packptq graph IR → ONNX ModelProto: the inverse of lib/graph/import.ts, so that a graph that
 * packptq rewrote (a QDQ export, a canonical graph saved for inspection) can be written as a model
 * other runtimes load. importGraph(decode(encode(graphToModel(g)))) gives back g.
 *
 * Tensor data follows the IR's conventions (lib/graph/ir.ts): float32 in a Float32Array, every
 * other type as one number per element in a Float64Array. Two details of writing them back:
 *  - int4/uint4 hold one value per element in the IR and are packed two per byte here (element 0
 *    in the low nibble), which needs IR version 10: the IR version is raised when they occur.
 *  - int64 values beyond 2^53 are the IR's rounded form of int64 sentinels (INT64_MAX as a Slice
 *    end becomes 2^63): they are written as the nearest int64, which restores the sentinel.
 */
import { BadGraphError, UnsupportedOpError } from '../errors';
import { AttrValue, DType, Dim, Graph, Node, Tensor, ValueInfo, describeNode } from '../graph/ir';
import { AttributeType, ModelProto, NodeProto, TensorProto, ValueInfoProto, makeMessage, AttributeProto } from './schema';
import { TensorDType, arrayToTensor, dataTypeOf } from './tensor';

export interface GraphToModelOptions {
  /** Opset of the default ONNX domain to declare (the graph's semantics must match it). */
  opset: number;
  /** IR version; default: the one that introduced `opset` (raised to 10 when int4 tensors occur). */
  irVersion?: number;
  producer?: string;
  producerVersion?: string;
  docString?: string;
  /** Model-level metadata_props. */
  metadata?: Record<string, string>;
  /** Opset versions of non-default domains used by nodes (default 1 each). */
  domains?: Record<string, number>;
}

/** The IR version each opset first appeared with (onnx/docs/Versioning.md). */
function irVersionFor(opset: number): number {
  if (opset <= 8) return 3;
  if (opset <= 9) return 4;
  if (opset <= 10) return 5;
  if (opset <= 11) return 6;
  if (opset <= 13) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  if (opset <= 22) return 10;
  return 11;
}

const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/** An IR tensor as a TensorProto with raw_data. */
export function tensorToProto(name: string, t: Tensor): TensorProto {
  const dtype = t.dtype;
  if (dtype === 'string' || dtype === 'other')
    throw new UnsupportedOpError(`Tensor '${name}' has data type ${dtype}, which packptq cannot write`);
  if (dtype === 'int64' || dtype === 'uint64') {
    const signed = dtype === 'int64';
    const big = signed ? new BigInt64Array(t.data.length) : new BigUint64Array(t.data.length);
    for (let i = 0; i < t.data.length; i++) {
      const v = t.data[i];
      if (!Number.isFinite(v) || !Number.isInteger(v)) throw new BadGraphError(`Tensor '${name}': element ${i} (${v}) is not an integer`);
      let b = BigInt(v);
      const [lo, hi] = signed ? [INT64_MIN, INT64_MAX] : [0n, UINT64_MAX];
      b = b < lo ? lo : b > hi ? hi : b;
      big[i] = b;
    }
    return arrayToTensor(big, t.dims, { name, dtype });
  }
  // float32 data already has the wire layout; every other type converts value by value.
  return arrayToTensor(t.data, t.dims, { name, dtype: dtype as TensorDType });
}

/** An IR integer (a double) as an int64 field: exact when safe, else clamped to the int64 range. */
function int64Field(v: number): number | bigint {
  if (Number.isSafeInteger(v)) return v;
  if (!Number.isFinite(v)) return v > 0 ? INT64_MAX : INT64_MIN;
  const b = BigInt(Math.trunc(v));
  return b > INT64_MAX ? INT64_MAX : b < INT64_MIN ? INT64_MIN : b;
}

function attrProto(n: Node, name: string, a: AttrValue): AttributeProto {
  const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
  const base = { name };
  switch (a.type) {
    case 'float': return makeMessage('AttributeProto', { ...base, type: AttributeType.FLOAT, f: a.value });
    case 'int': return makeMessage('AttributeProto', { ...base, type: AttributeType.INT, i: int64Field(a.value) });
    case 'string': return makeMessage('AttributeProto', { ...base, type: AttributeType.STRING, s: utf8(a.value) });
    case 'floats': return makeMessage('AttributeProto', { ...base, type: AttributeType.FLOATS, floats: [...a.value] });
    case 'ints': return makeMessage('AttributeProto', { ...base, type: AttributeType.INTS, ints: a.value.map(int64Field) });
    case 'strings': return makeMessage('AttributeProto', { ...base, type: AttributeType.STRINGS, strings: a.value.map(utf8) });
    case 'tensor': return makeMessage('AttributeProto', { ...base, type: AttributeType.TENSOR, t: tensorToProto('', a.value) });
    // Subgraphs are kept as the decoded GraphProto by the importer; they are written back as is.
    case 'graph':
      if (a.value && typeof a.value === 'object') return makeMessage('AttributeProto', { ...base, type: AttributeType.GRAPH, g: a.value as never });
      break;
  }
  throw new UnsupportedOpError(`${describeNode(n)}: attribute "${name}" has a kind packptq cannot write (${a.type})`);
}

function nodeProto(n: Node): NodeProto {
  return makeMessage('NodeProto', {
    name: n.name,
    op_type: n.opType,
    ...(n.domain ? { domain: n.domain } : {}),
    input: [...n.inputs],
    output: [...n.outputs],
    attribute: Object.entries(n.attrs).map(([k, v]) => attrProto(n, k, v)),
  });
}

/** The importer names dims with neither value nor parameter `?<index>`: write those back empty. */
const UNNAMED_DIM = /^\?\d+$/;

function elemType(dtype: DType, what: string): number {
  if (dtype === 'string') return 8;
  if (dtype === 'other') throw new UnsupportedOpError(`${what} has a data type packptq cannot write`);
  return dataTypeOf(dtype as TensorDType);
}

export function valueInfoProto(v: ValueInfo): ValueInfoProto {
  const dims = v.shape?.map((d: Dim) =>
    typeof d === 'number' ? { dim_value: d } : UNNAMED_DIM.test(d) ? {} : { dim_param: d });
  return makeMessage('ValueInfoProto', {
    name: v.name,
    type: { tensor_type: { elem_type: elemType(v.dtype, `value "${v.name}"`), ...(dims ? { shape: { dim: dims } } : {}) } },
  });
}

/** Writes `g` as an ONNX model. Throws BadGraphError/UnsupportedOpError naming what cannot be written. */
export function graphToModel(g: Graph, opts: GraphToModelOptions): ModelProto {
  if (!Number.isInteger(opts.opset) || opts.opset < 1) throw new BadGraphError(`graphToModel: opset must be a positive integer, received ${opts.opset}`);
  const initializer = [...g.initializers].map(([name, t]) => tensorToProto(name, t));
  const usesInt4 = [...g.initializers.values()].some((t) => t.dtype === 'int4' || t.dtype === 'uint4')
    || g.nodes.some((n) => Object.values(n.attrs).some((a) => a.type === 'tensor' && (a.value.dtype === 'int4' || a.value.dtype === 'uint4')));
  let ir = opts.irVersion ?? irVersionFor(opts.opset);
  if (usesInt4 && ir < 10) {
    if (opts.irVersion !== undefined) throw new BadGraphError(`graphToModel: int4/uint4 tensors need IR version 10, but IR version ${ir} was asked for`);
    ir = 10;
  }
  const domains = new Map<string, number>();
  for (const n of g.nodes)
    if (n.domain && n.domain !== 'ai.onnx' && !domains.has(n.domain)) domains.set(n.domain, opts.domains?.[n.domain] ?? 1);
  const graph = makeMessage('GraphProto', {
    name: g.name,
    node: g.nodes.map(nodeProto),
    initializer,
    input: g.inputs.map(valueInfoProto),
    output: g.outputs.map(valueInfoProto),
    value_info: [...g.valueInfo.values()].filter((v) => v.dtype !== 'other').map(valueInfoProto),
  });
  return makeMessage('ModelProto', {
    ir_version: ir,
    opset_import: [
      makeMessage('OperatorSetIdProto', { domain: '', version: opts.opset }),
      ...[...domains].map(([domain, version]) => makeMessage('OperatorSetIdProto', { domain, version })),
    ],
    producer_name: opts.producer ?? 'packptq',
    ...(opts.producerVersion !== undefined ? { producer_version: opts.producerVersion } : {}),
    ...(opts.docString !== undefined ? { doc_string: opts.docString } : {}),
    graph,
    metadata_props: Object.entries(opts.metadata ?? {}).map(([key, value]) => makeMessage('StringStringEntryProto', { key, value })),
  });
}
