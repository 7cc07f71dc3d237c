/**
 * Reading ONNX models: bytes → plain, typed objects (see schema.ts for their shape), with the checks
 * that decide early and clearly whether packptq can work on the model at all.
 */
import { readFileSync } from 'fs';
import * as protobuf from 'protobufjs';
import { ExternalDataError, IoError, OnnxDecodeError, PackPtqError, UnsupportedModelError } from '../errors';
import {
  AttributeProto, AttributeType, DataLocation, GraphProto, Int64, ModelProto, NodeProto, OnnxModel,
  TensorProto, onnxType,
} from './schema';

/** IR versions whose models packptq has been written for (ONNX 1.2 … 1.16 era files). */
export const SUPPORTED_IR_VERSIONS = { min: 3, max: 10 } as const;
/** Opset versions of the default ONNX domain whose operator semantics the engine implements. */
export const SUPPORTED_OPSETS = { min: 11, max: 21 } as const;

export interface DecodeOptions {
  /**
   * Check the IR version and default-domain opset against SUPPORTED_IR_VERSIONS/SUPPORTED_OPSETS
   * (default true). Tools that only read or rewrite a file, never run it, may turn this off.
   */
  checkVersions?: boolean;
}

const DEFAULT_FILE = '<bytes>';

/**
 * Decode an ONNX model. `file` only names the source in error messages.
 * Throws OnnxDecodeError (not a model), UnsupportedModelError (IR/opset), ExternalDataError.
 */
export function decodeModel(bytes: Uint8Array, file: string = DEFAULT_FILE, options: DecodeOptions = {}): OnnxModel {
  // isView rather than instanceof: a Buffer or Uint8Array from another realm (vm, jest) is fine too.
  if (!ArrayBuffer.isView(bytes) || (bytes as Uint8Array).BYTES_PER_ELEMENT !== 1) {
    throw new OnnxDecodeError(`Expected a Uint8Array of ONNX bytes for ${file} but received ${describeValue(bytes)}`);
  }
  if (bytes.length === 0) throw new OnnxDecodeError(`Cannot decode ONNX model ${file}: the file is empty`);
  const model = decodeMessage<ModelProto>('ModelProto', bytes, file, 'model');
  if (!model.graph) {
    throw new OnnxDecodeError(`Cannot decode ONNX model ${file}: it is a protobuf message but not an ONNX model (no graph)`);
  }
  if (model.ir_version === undefined) {
    throw new OnnxDecodeError(`Cannot decode ONNX model ${file}: it has a graph but no ir_version`);
  }
  const checked = model as OnnxModel;
  if (options.checkVersions !== false) checkVersions(checked, file);
  // Refused before anything else looks at tensors: an external tensor has no bytes here, and a
  // silent zero-filled weight would be far worse than a clear refusal.
  forEachTensor(checked, (tensor, where) => {
    if (isExternal(tensor)) throw externalError(tensor, where, file);
  });
  return checked;
}

/** Read and decode a model file; IoError when it cannot be read. */
export function loadModelFile(path: string, options: DecodeOptions = {}): OnnxModel {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new IoError(`Cannot read ONNX model ${path}: ${reason}`, { cause: err });
  }
  return decodeModel(bytes, path, options);
}

/** The facts about a model that reports and checks ask for, in one flat object. */
export interface ModelInfo {
  irVersion: number;
  /** Opset of the default domain ('' / 'ai.onnx'), undefined if the model imports none. */
  opset: number | undefined;
  /** Every imported opset, keyed by domain ('' for the default domain). */
  opsets: Record<string, number>;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: Int64 | undefined;
  docString: string;
  graphName: string;
  metadata: Record<string, string>;
}

export function modelInfo(model: OnnxModel): ModelInfo {
  const opsets: Record<string, number> = {};
  for (const op of model.opset_import) opsets[normalDomain(op.domain)] = op.version ?? 0;
  const metadata: Record<string, string> = {};
  for (const kv of model.metadata_props) metadata[kv.key ?? ''] = kv.value ?? '';
  return {
    irVersion: model.ir_version,
    opset: opsets[''],
    opsets,
    producerName: model.producer_name ?? '',
    producerVersion: model.producer_version ?? '',
    domain: model.domain ?? '',
    modelVersion: model.model_version,
    docString: model.doc_string ?? '',
    graphName: model.graph.name ?? '',
    metadata,
  };
}

/** The opset version of the default domain, or undefined when the model imports none. */
export function defaultOpset(model: ModelProto): number | undefined {
  for (const op of model.opset_import) if (normalDomain(op.domain) === '') return op.version;
  return undefined;
}

/** The value an attribute carries, chosen by its `type` (or by which field is set, for IR < 3 style files). */
export type AttributeValue =
  | number | Int64 | string | TensorProto | GraphProto
  | number[] | Int64[] | string[] | TensorProto[] | GraphProto[] | object | object[] | undefined;

export function attributeValue(attr: AttributeProto): AttributeValue {
  const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  switch (attr.type) {
    case AttributeType.FLOAT: return attr.f ?? 0;
    case AttributeType.INT: return attr.i ?? 0;
    case AttributeType.STRING: return attr.s ? text(attr.s) : '';
    case AttributeType.TENSOR: return attr.t;
    case AttributeType.GRAPH: return attr.g;
    case AttributeType.SPARSE_TENSOR: return attr.sparse_tensor;
    case AttributeType.TYPE_PROTO: return attr.tp;
    case AttributeType.FLOATS: return attr.floats;
    case AttributeType.INTS: return attr.ints;
    case AttributeType.STRINGS: return attr.strings.map(text);
    case AttributeType.TENSORS: return attr.tensors;
    case AttributeType.GRAPHS: return attr.graphs;
    case AttributeType.SPARSE_TENSORS: return attr.sparse_tensors;
    case AttributeType.TYPE_PROTOS: return attr.type_protos;
    default:
      // No type: old exporters set only the value field.
      if (attr.f !== undefined) return attr.f;
      if (attr.i !== undefined) return attr.i;
      if (attr.s !== undefined) return text(attr.s);
      if (attr.t !== undefined) return attr.t;
      if (attr.g !== undefined) return attr.g;
      if (attr.floats.length) return attr.floats;
      if (attr.ints.length) return attr.ints;
      if (attr.strings.length) return attr.strings.map(text);
      return undefined;
  }
}

/** The named attribute of a node, or undefined. */
export function findAttribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

/**
 * Visit every TensorProto stored in a model: initializers, sparse initializers, Constant-like
 * attribute tensors, in subgraphs (If/Loop/Scan bodies), functions and training graphs.
 * `where` describes the place for messages ("initializer", "attribute 'value' of node 'n1'").
 */
export function forEachTensor(model: ModelProto, visit: (tensor: TensorProto, where: string) => void): void {
  const inGraph = (g: GraphProto | undefined, prefix: string) => {
    if (!g) return;
    for (const t of g.initializer) visit(t, `${prefix}initializer`);
    for (const s of g.sparse_initializer) {
      if (s.values) visit(s.values, `${prefix}sparse initializer values`);
      if (s.indices) visit(s.indices, `${prefix}sparse initializer indices`);
    }
    inNodes(g.node, prefix);
  };
  const inNodes = (nodes: NodeProto[], prefix: string) => {
    for (const node of nodes) {
      for (const a of node.attribute) {
        const where = `${prefix}attribute '${a.name ?? ''}' of node '${node.name || node.op_type || '?'}'`;
        if (a.t) visit(a.t, where);
        for (const t of a.tensors) visit(t, where);
        if (a.sparse_tensor?.values) visit(a.sparse_tensor.values, where);
        for (const s of a.sparse_tensors) if (s.values) visit(s.values, where);
        if (a.g) inGraph(a.g, `${where} › `);
        for (const g of a.graphs) inGraph(g, `${where} › `);
      }
    }
  };
  inGraph(model.graph, '');
  for (const f of model.functions) inNodes(f.node, `function '${f.name ?? ''}' › `);
  for (const ti of model.training_info) {
    inGraph(ti.initialization, 'training initialization › ');
    inGraph(ti.algorithm, 'training algorithm › ');
  }
}

/** True when the tensor's bytes live in a separate file. */
export function isExternal(t: TensorProto): boolean {
  return t.data_location === DataLocation.EXTERNAL || t.external_data.some((kv) => kv.key === 'location');
}

export function externalError(t: TensorProto, where: string, file: string): ExternalDataError {
  const location = t.external_data.find((kv) => kv.key === 'location')?.value;
  return new ExternalDataError(
    `Tensor '${t.name ?? ''}' (${where}) of ${file} stores its data in an external file` +
      `${location ? ` '${location}'` : ''}; packptq reads single-file models only ` +
      `(re-save the model with all tensors inside it, e.g. onnx.save(model, path, save_as_external_data=False))`,
  );
}

function describeValue(v: unknown): string {
  return v === null ? 'null' : ArrayBuffer.isView(v) ? v.constructor.name : typeof v;
}

function normalDomain(domain: string | undefined): string {
  return !domain || domain === 'ai.onnx' ? '' : domain;
}

function checkVersions(model: OnnxModel, file: string): void {
  const ir = model.ir_version;
  if (ir < SUPPORTED_IR_VERSIONS.min || ir > SUPPORTED_IR_VERSIONS.max) {
    throw new UnsupportedModelError(
      `ONNX model ${file} has IR version ${ir}; packptq supports IR versions ` +
        `${SUPPORTED_IR_VERSIONS.min} to ${SUPPORTED_IR_VERSIONS.max}`,
    );
  }
  const opset = defaultOpset(model);
  if (opset === undefined) {
    throw new UnsupportedModelError(`ONNX model ${file} imports no opset of the default ONNX domain`);
  }
  if (opset < SUPPORTED_OPSETS.min || opset > SUPPORTED_OPSETS.max) {
    throw new UnsupportedModelError(
      `ONNX model ${file} uses opset ${opset} of the default domain; packptq supports opsets ` +
        `${SUPPORTED_OPSETS.min} to ${SUPPORTED_OPSETS.max} (convert it with onnx.version_converter)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// protobufjs message → plain object

/** int64 fields that describe structure; a value beyond 2^53 there means a corrupt file. */
const STRUCTURAL_INT64 = new Set([
  'ModelProto.ir_version',
  'OperatorSetIdProto.version',
  'TensorProto.dims',
  'Segment.begin',
  'Segment.end',
  'SparseTensorProto.dims',
  'Dimension.dim_value',
]);

/**
 * Decode one message of the named type and convert it to a plain object. `what` names the
 * thing for messages ("model", "tensor").
 */
export function decodeMessage<T>(typeName: string, bytes: Uint8Array, file: string, what: string): T {
  let message: protobuf.Message;
  try {
    const reader = protobuf.Reader.create(bytes);
    // Keep fields this schema does not know (a newer ONNX) so that encode can write them back.
    reader.discardUnknown = false;
    message = onnxType(typeName).decode(reader);
  } catch (err) {
    throw new OnnxDecodeError(`Cannot decode ONNX ${what} ${file}: ${describeDecodeFailure(err, bytes)}`, { cause: err });
  }
  try {
    return toPlain(onnxType(typeName), message as unknown as Record<string, unknown>, file) as T;
  } catch (err) {
    if (err instanceof PackPtqError) throw err;
    throw new OnnxDecodeError(`Cannot decode ONNX ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

function describeDecodeFailure(err: unknown, bytes: Uint8Array): string {
  const msg = err instanceof Error ? err.message : String(err);
  // protobufjs reports a read past the end as "index out of range: a + b > c".
  if (/index out of range/.test(msg)) return `the file is truncated or corrupt (${bytes.length} bytes; ${msg})`;
  if (/invalid wire type|illegal tag/i.test(msg)) return `not a protobuf message (${msg})`;
  if (/max depth/.test(msg)) return `nesting too deep (${msg})`;
  return msg;
}

function toPlain(type: protobuf.Type, msg: Record<string, unknown>, file: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const name = field.name;
    const value = msg[name];
    if (field.repeated) {
      const list = Array.isArray(value) ? value : [];
      out[name] = field.resolvedType instanceof protobuf.Type
        ? list.map((m) => toPlain(field.resolvedType as protobuf.Type, m, file))
        : field.long ? list.map((v) => fromLong(v, type, field, file)) : list.slice();
    } else if (Object.prototype.hasOwnProperty.call(msg, name) && value != null) {
      out[name] = field.resolvedType instanceof protobuf.Type
        ? toPlain(field.resolvedType, value as Record<string, unknown>, file)
        : field.long ? fromLong(value, type, field, file) : value;
    }
  }
  // Fields newer than our schema: protobufjs keeps their raw bytes; carry them so encode writes them back.
  const unknowns = (msg as { $unknowns?: Uint8Array[] }).$unknowns;
  if (unknowns && unknowns.length) Object.defineProperty(out, '$unknowns', { value: unknowns, enumerable: false, writable: true });
  return out;
}

function fromLong(v: unknown, type: protobuf.Type, field: protobuf.Field, file: string): Int64 {
  let result: Int64;
  if (typeof v === 'number') {
    result = v;
  } else {
    const l = v as { low: number; high: number; unsigned: boolean };
    const bits = (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
    const big = l.unsigned ? bits : BigInt.asIntN(64, bits);
    result = big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  if (typeof result === 'bigint' && STRUCTURAL_INT64.has(`${type.name}.${field.name}`)) {
    throw new OnnxDecodeError(`Cannot decode ONNX file ${file}: ${type.name}.${field.name} = ${result} is beyond 2^53; the file is corrupt`);
  }
  return result;
}
