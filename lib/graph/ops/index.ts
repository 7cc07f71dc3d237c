/** The table of every ONNX op packptq understands (default domain). */
import { ELTWISE_OPS } from './eltwise';
import { NN_OPS } from './nn';
import { QUANT_OPS } from './quant';
import { REDUCE_OPS } from './reduce';
import { SHAPE_OPS } from './shape';
import { OpDef } from './types';

export const OPS: Record<string, OpDef> = { ...ELTWISE_OPS, ...SHAPE_OPS, ...NN_OPS, ...REDUCE_OPS, ...QUANT_OPS };

/** Ops that can appear in a model and run (not only fold), for error messages and docs. */
export function supportedOpTypes(): string[] {
  return Object.keys(OPS).sort();
}

export * from './types';
