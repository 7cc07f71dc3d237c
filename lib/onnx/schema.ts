/**
 * The ONNX wire format as a protobufjs schema, written for packptq from the public field names
 * and numbers of the ONNX IR (up to IR version 11). It is proto2, like ONNX itself, because two
 * wire details decide whether a decode → encode round trip is byte-identical:
 *  - presence: a proto2 scalar that was on the wire is written back even when it equals its
 *    default (exporters do write `data_type: 0`-like fields), and one that was absent stays absent;
 *  - packing: only the five bulk numeric arrays of TensorProto are declared packed in ONNX; every
 *    other repeated number (dims, AttributeProto.ints/floats, ...) is written one tag per element.
 * Fields and messages that packptq itself never reads are still declared, so that a model using
 * them (training info, functions, sparse initializers, multi-device annotations) survives a round
 * trip instead of being silently dropped. Anything newer than this schema is kept by protobufjs as
 * unknown bytes and written back after the known fields of its message.
 */
import * as protobuf from 'protobufjs';

const ONNX_SCHEMA = `
syntax = "proto2";
package onnx;

// Version numbers are int64 on the wire; packptq checks ir_version before trusting anything else.
message ModelProto {
  optional int64 ir_version = 1;
  repeated OperatorSetIdProto opset_import = 8;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated StringStringEntryProto metadata_props = 14;
  repeated TrainingInfoProto training_info = 20;
  repeated FunctionProto functions = 25;
  repeated DeviceConfigurationProto configuration = 26;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated TensorAnnotation quantization_annotation = 14;
  repeated SparseTensorProto sparse_initializer = 15;
  repeated StringStringEntryProto metadata_props = 16;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  optional string domain = 7;
  optional string overload = 8;
  repeated StringStringEntryProto metadata_props = 9;
  repeated NodeDeviceConfigurationProto device_configurations = 10;
}

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSOR = 11;
    SPARSE_TENSORS = 12;
    TYPE_PROTO = 13;
    TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional GraphProto g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated GraphProto graphs = 11;
  optional string doc_string = 13;
  optional TypeProto tp = 14;
  repeated TypeProto type_protos = 15;
  optional AttributeType type = 20;
  optional string ref_attr_name = 21;
  optional SparseTensorProto sparse_tensor = 22;
  repeated SparseTensorProto sparse_tensors = 23;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
  repeated StringStringEntryProto metadata_props = 4;
}

message TensorProto {
  enum DataType {
    UNDEFINED = 0;
    FLOAT = 1;
    UINT8 = 2;
    INT8 = 3;
    UINT16 = 4;
    INT16 = 5;
    INT32 = 6;
    INT64 = 7;
    STRING = 8;
    BOOL = 9;
    FLOAT16 = 10;
    DOUBLE = 11;
    UINT32 = 12;
    UINT64 = 13;
    COMPLEX64 = 14;
    COMPLEX128 = 15;
    BFLOAT16 = 16;
    FLOAT8E4M3FN = 17;
    FLOAT8E4M3FNUZ = 18;
    FLOAT8E5M2 = 19;
    FLOAT8E5M2FNUZ = 20;
    UINT4 = 21;
    INT4 = 22;
    FLOAT4E2M1 = 23;
    FLOAT8E8M0 = 24;
  }
  message Segment {
    optional int64 begin = 1;
    optional int64 end = 2;
  }
  enum DataLocation {
    DEFAULT = 0;
    EXTERNAL = 1;
  }
  repeated int64 dims = 1;
  // int32, not the DataType enum: a data type newer than this schema must still decode.
  optional int32 data_type = 2;
  optional Segment segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  optional string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  optional DataLocation data_location = 14;
  repeated StringStringEntryProto metadata_props = 16;
}

message SparseTensorProto {
  optional TensorProto values = 1;
  optional TensorProto indices = 2;
  repeated int64 dims = 3;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  message Sequence {
    optional TypeProto elem_type = 1;
  }
  message Map {
    optional int32 key_type = 1;
    optional TypeProto value_type = 2;
  }
  message Optional {
    optional TypeProto elem_type = 1;
  }
  message SparseTensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  // Only in the ONNX-ML flavour of the format; declared so such models round-trip.
  message Opaque {
    optional string domain = 1;
    optional string name = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    Sequence sequence_type = 4;
    Map map_type = 5;
    Opaque opaque_type = 7;
    SparseTensor sparse_tensor_type = 8;
    Optional optional_type = 9;
  }
  optional string denotation = 6;
}

message TensorAnnotation {
  optional string tensor_name = 1;
  repeated StringStringEntryProto quant_parameter_tensor_names = 2;
}

message TrainingInfoProto {
  optional GraphProto initialization = 1;
  optional GraphProto algorithm = 2;
  repeated StringStringEntryProto initialization_binding = 3;
  repeated StringStringEntryProto update_binding = 4;
}

message FunctionProto {
  optional string name = 1;
  repeated string input = 4;
  repeated string output = 5;
  repeated string attribute = 6;
  repeated NodeProto node = 7;
  optional string doc_string = 8;
  repeated OperatorSetIdProto opset_import = 9;
  optional string domain = 10;
  repeated AttributeProto attribute_proto = 11;
  repeated ValueInfoProto value_info = 12;
  optional string overload = 13;
  repeated StringStringEntryProto metadata_props = 14;
}

// Multi-device annotations (IR 11). packptq ignores them but must not lose them.
message DeviceConfigurationProto {
  optional string name = 1;
  optional int32 num_devices = 2;
  repeated string device = 3;
}

message NodeDeviceConfigurationProto {
  optional string configuration_id = 1;
  repeated ShardingSpecProto sharding_spec = 2;
  optional int32 pipeline_stage = 3;
}

message ShardingSpecProto {
  optional string tensor_name = 1;
  repeated int64 device = 2;
  repeated IntIntListEntryProto index_to_device_group_map = 3;
  repeated ShardedDimProto sharded_dim = 4;
}

message IntIntListEntryProto {
  optional int64 key = 1;
  repeated int64 value = 2;
}

message ShardedDimProto {
  optional int64 axis = 1;
  repeated SimpleShardedDimProto simple_sharding = 2;
}

message SimpleShardedDimProto {
  oneof dim {
    int64 dim_value = 1;
    string dim_param = 2;
  }
  optional int64 num_shards = 3;
}
`;

/** The parsed schema, built once per process (parsing costs a few milliseconds). */
let root: protobuf.Root | undefined;

export function onnxRoot(): protobuf.Root {
  if (!root) {
    // keepCase: the TS interfaces use ONNX's own snake_case names, as every ONNX document does.
    root = protobuf.parse(ONNX_SCHEMA, { keepCase: true }).root;
    root.resolveAll();
  }
  return root;
}

/** The reflected type of one ONNX message, e.g. `onnxType('ModelProto')`. */
export function onnxType(name: string): protobuf.Type {
  return onnxRoot().lookupType(`onnx.${name}`);
}

/** ONNX element types (TensorProto.DataType), as numbers for comparison with `data_type`. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
} as const;
export type DataTypeName = keyof typeof DataType;

/** Name of an ONNX element type number, or `TYPE<n>` for one newer than this schema. */
export function dataTypeName(code: number): string {
  for (const [name, value] of Object.entries(DataType)) if (value === code) return name;
  return `TYPE${code}`;
}

/** AttributeProto.AttributeType as numbers. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

/** TensorProto.DataLocation as numbers. */
export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

/*
 * Plain-object views of the decoded messages. A decoded message is a plain object (no protobufjs
 * prototype), so an absent optional field is `undefined`, never a silent default, and a present
 * one is written back on encode even when it equals the default. Every repeated field is always
 * an array (possibly empty). Bytes fields are views into the decoded buffer: copy before making an
 * aligned typed array from them.
 *
 * int64 fields: structural ones (dims, dim_value, ir_version, opset versions, segments) are plain
 * numbers and a value beyond 2^53 is rejected at decode time, since no real model has one. Value
 * fields that legitimately hold huge numbers (attribute `i`/`ints`, `int64_data`, `uint64_data`,
 * `model_version`, ...) are `Int64`: a number when it is a safe integer, else a bigint, so INT64_MAX
 * in a Slice attribute survives a round trip exactly.
 */
export type Int64 = number | bigint;

export interface StringStringEntryProto { key?: string; value?: string }
export interface OperatorSetIdProto { domain?: string; version?: number }

export interface TensorProto {
  dims: number[];
  data_type?: number;
  segment?: { begin?: number; end?: number };
  float_data: number[];
  int32_data: number[];
  string_data: Uint8Array[];
  int64_data: Int64[];
  name?: string;
  raw_data?: Uint8Array;
  double_data: number[];
  uint64_data: Int64[];
  doc_string?: string;
  external_data: StringStringEntryProto[];
  data_location?: number;
  metadata_props: StringStringEntryProto[];
}

export interface SparseTensorProto { values?: TensorProto; indices?: TensorProto; dims: number[] }

export interface TensorShapeDimension { dim_value?: number; dim_param?: string; denotation?: string }
export interface TensorShapeProto { dim: TensorShapeDimension[] }

export interface TypeProto {
  tensor_type?: { elem_type?: number; shape?: TensorShapeProto };
  sequence_type?: { elem_type?: TypeProto };
  map_type?: { key_type?: number; value_type?: TypeProto };
  opaque_type?: { domain?: string; name?: string };
  sparse_tensor_type?: { elem_type?: number; shape?: TensorShapeProto };
  optional_type?: { elem_type?: TypeProto };
  denotation?: string;
}

export interface ValueInfoProto {
  name?: string;
  type?: TypeProto;
  doc_string?: string;
  metadata_props: StringStringEntryProto[];
}

export interface AttributeProto {
  name?: string;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  doc_string?: string;
  tp?: TypeProto;
  type_protos: TypeProto[];
  type?: number;
  ref_attr_name?: string;
  sparse_tensor?: SparseTensorProto;
  sparse_tensors: SparseTensorProto[];
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  op_type?: string;
  attribute: AttributeProto[];
  doc_string?: string;
  domain?: string;
  overload?: string;
  metadata_props: StringStringEntryProto[];
  /** Multi-device annotations (IR 11), kept opaque. */
  device_configurations: object[];
}

export interface TensorAnnotation {
  tensor_name?: string;
  quant_parameter_tensor_names: StringStringEntryProto[];
}

export interface GraphProto {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  doc_string?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  value_info: ValueInfoProto[];
  quantization_annotation: TensorAnnotation[];
  sparse_initializer: SparseTensorProto[];
  metadata_props: StringStringEntryProto[];
}

export interface TrainingInfoProto {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initialization_binding: StringStringEntryProto[];
  update_binding: StringStringEntryProto[];
}

export interface FunctionProto {
  name?: string;
  input: string[];
  output: string[];
  attribute: string[];
  node: NodeProto[];
  doc_string?: string;
  opset_import: OperatorSetIdProto[];
  domain?: string;
  attribute_proto: AttributeProto[];
  value_info: ValueInfoProto[];
  overload?: string;
  metadata_props: StringStringEntryProto[];
}

export interface ModelProto {
  ir_version?: number;
  opset_import: OperatorSetIdProto[];
  producer_name?: string;
  producer_version?: string;
  domain?: string;
  model_version?: Int64;
  doc_string?: string;
  graph?: GraphProto;
  metadata_props: StringStringEntryProto[];
  training_info: TrainingInfoProto[];
  functions: FunctionProto[];
  /** Multi-device configurations (IR 11), kept opaque. */
  configuration: object[];
}

/** A model that passed `decodeModel`'s checks: it has a graph and an IR version. */
export interface OnnxModel extends ModelProto {
  ir_version: number;
  graph: GraphProto;
}

/** The message names above, for `makeMessage`. */
export interface OnnxMessages {
  ModelProto: ModelProto;
  GraphProto: GraphProto;
  NodeProto: NodeProto;
  AttributeProto: AttributeProto;
  TensorProto: TensorProto;
  SparseTensorProto: SparseTensorProto;
  ValueInfoProto: ValueInfoProto;
  TypeProto: TypeProto;
  TensorShapeProto: TensorShapeProto;
  OperatorSetIdProto: OperatorSetIdProto;
  StringStringEntryProto: StringStringEntryProto;
  TensorAnnotation: TensorAnnotation;
  TrainingInfoProto: TrainingInfoProto;
  FunctionProto: FunctionProto;
}

/**
 * A message of the given type with every repeated field present as an empty array unless given,
 * so that code building graphs (exporters, tests) writes only the fields it means.
 * Nested messages passed in `fields` are taken as they are.
 */
export function makeMessage<K extends keyof OnnxMessages>(type: K, fields: Partial<OnnxMessages[K]> = {}): OnnxMessages[K] {
  const out: Record<string, unknown> = {};
  for (const field of onnxType(type).fieldsArray) if (field.repeated) out[field.name] = [];
  return Object.assign(out, fields) as unknown as OnnxMessages[K];
}
