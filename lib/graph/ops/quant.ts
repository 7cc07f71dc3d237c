/**
 * Quantization ops. FakeQuant (domain "packptq") is the simulated activation quantizer that
 * lib/quant inserts; QuantizeLinear / DequantizeLinear are ONNX's, met in exported QDQ models: on
 * constant weights they fold, and a QuantizeLinear → DequantizeLinear pair on an activation
 * becomes a FakeQuant (lib/graph/passes/qdq.ts), so packptq runs its own exports.
 */
import { DType, Tensor, attrFloat, attrInt, numel } from '../ir';
import { OpContext, OpDef, constInput, inShape, normAxis, present, same, shapeError, unsupported } from './types';
import { roundHalfEven } from '../../quant/types';

const RANGE: Partial<Record<DType, [number, number]>> = {
  int8: [-128, 127], uint8: [0, 255], int4: [-8, 7], uint4: [0, 15], int16: [-32768, 32767], uint16: [0, 65535],
};

/** Per-tensor or per-axis parameters of a (De)QuantizeLinear node, broadcast to element indices. */
function qdqParams(c: OpContext): { scale: Tensor; zero?: Tensor; axis: number; inner: number; channels: number } {
  const x = inShape(c, 0);
  const scale = constInput(c, 1, 'scale');
  const zero = present(c, 2) ? constInput(c, 2, 'zero_point') : undefined;
  const channels = scale.data.length;
  if (attrInt(c.node, 'block_size', 0)) unsupported(c, 'blocked quantization is not supported');
  let axis = 0, inner = 1;
  if (channels > 1) {
    axis = normAxis(c, attrInt(c.node, 'axis', 1), x.length);
    if (x[axis] !== channels) shapeError(c, `${channels} scales for axis ${axis} of ${x}`);
    inner = numel(x.slice(axis + 1));
  }
  return { scale, zero, axis, inner, channels };
}

function dequantize(c: OpContext): Tensor {
  const x = c.consts[0]!;
  const { scale, zero, inner, channels } = qdqParams(c);
  const out = new Float32Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const ch = channels > 1 ? Math.floor(i / inner) % channels : 0;
    out[i] = (x.data[i] - (zero ? zero.data[ch] : 0)) * scale.data[ch];
  }
  return { dtype: 'float32', dims: [...x.dims], data: out };
}

function quantizeTarget(c: OpContext): DType {
  return c.inTypes[2] ?? (c.node.attrs.output_dtype ? 'other' : 'uint8');
}

function quantize(c: OpContext): Tensor {
  const x = c.consts[0]!;
  const { scale, zero, inner, channels } = qdqParams(c);
  const dtype = quantizeTarget(c);
  const range = RANGE[dtype];
  if (!range) unsupported(c, `quantizing to ${dtype} is not supported`);
  const out = new Float64Array(x.data.length);
  for (let i = 0; i < out.length; i++) {
    const ch = channels > 1 ? Math.floor(i / inner) % channels : 0;
    const q = roundHalfEven(Math.fround(x.data[i] / scale.data[ch])) + (zero ? zero.data[ch] : 0);
    out[i] = Math.min(range[1], Math.max(range[0], q));
  }
  return { dtype, dims: [...x.dims], data: out };
}

export const QUANT_OPS: Record<string, OpDef> = {
  FakeQuant: {
    infer: (c) => same(c),
    lower: (c) => c.emit('FakeQuant', [c.node.inputs[0]], [c.node.outputs[0]], {
      scale: attrFloat(c.node, 'scale', 1), zero_point: attrInt(c.node, 'zero_point', 0),
      qmin: attrInt(c.node, 'qmin', 0), qmax: attrInt(c.node, 'qmax', 255),
    }),
  },
  // Reconstruction-only ops (native/recon): they run on the differentiable executor, never in a Program.
  AdaRound: {
    infer: (c) => same(c),
    lower: (c) => c.emit('AdaRound', c.node.inputs, c.node.outputs, {
      axis: attrInt(c.node, 'axis', 0), qmin: attrInt(c.node, 'qmin', 0), qmax: attrInt(c.node, 'qmax', 255),
    }),
  },
  LsqQuant: {
    infer: (c) => same(c),
    lower: (c) => c.emit('LsqQuant', c.node.inputs, c.node.outputs, {
      zero_point: attrInt(c.node, 'zero_point', 0), qmin: attrInt(c.node, 'qmin', 0), qmax: attrInt(c.node, 'qmax', 255),
      seed: attrInt(c.node, 'seed', 0),
    }),
  },
  DequantizeLinear: {
    constInputs: [1, 2],
    infer: (c) => ({ shapes: [inShape(c, 0)], dtypes: ['float32'] }),
    fold: (c) => [dequantize(c)],
    foldOnly: true,
  },
  QuantizeLinear: {
    constInputs: [1, 2],
    infer: (c) => ({ shapes: [inShape(c, 0)], dtypes: [quantizeTarget(c)] }),
    fold: (c) => [quantize(c)],
    foldOnly: true,
  },
};

export { RANGE as QDQ_RANGES };
