/** ONNX I/O: the public pieces. See schema.ts for the shape of decoded models. */
export {
  DataType, DataLocation, AttributeType, dataTypeName, makeMessage, onnxType,
} from './schema';
export type {
  Int64, OnnxModel, ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, SparseTensorProto,
  ValueInfoProto, TypeProto, TensorShapeProto, TensorShapeDimension, OperatorSetIdProto,
  StringStringEntryProto, TensorAnnotation, TrainingInfoProto, FunctionProto, OnnxMessages, DataTypeName,
} from './schema';
export {
  decodeModel, loadModelFile, modelInfo, defaultOpset, attributeValue, findAttribute, forEachTensor,
  isExternal, SUPPORTED_IR_VERSIONS, SUPPORTED_OPSETS,
} from './decode';
export type { DecodeOptions, ModelInfo, AttributeValue } from './decode';
export { encodeModel, encodeTensor, saveModelFile } from './encode';
export {
  tensorToArray, tensorToNumbers, arrayToTensor, decodeTensorFile, loadTensorFile, elementCount,
  dtypeOf, dataTypeOf, halfToFloat, floatToHalf,
} from './tensor';
export type { TensorArray, TensorData, TensorDType, TensorToArrayOptions, ArrayToTensorOptions } from './tensor';
