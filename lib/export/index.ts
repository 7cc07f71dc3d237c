/** Export of quantized models: QDQ ONNX (opset 21) that onnxruntime runs. */
export { exportQdq, writeQdqModel, storageType, clipBounds, packptqVersion, QDQ_OPSET, QDQ_IR_VERSION } from './qdq';
export type { QdqExportOptions, StorageType } from './qdq';
export { NameSet, unfuseLinearBias, upgradeOpset } from './upgrade';
