/**
 * The vocabulary of quantization in packptq.
 *
 * Uniform affine quantizer: q = clamp(round_half_even(x / s) + z, qmin, qmax), x̂ = s·(q − z).
 * Round-half-to-even is what onnxruntime's QuantizeLinear does, so the exported QDQ model computes
 * exactly what packptq simulates.
 */

export interface QuantGrid {
  bits: number;
  signed: boolean;
  qmin: number;
  qmax: number;
}

export function grid(bits: number, signed: boolean): QuantGrid {
  return signed
    ? { bits, signed, qmin: -(2 ** (bits - 1)), qmax: 2 ** (bits - 1) - 1 }
    : { bits, signed, qmin: 0, qmax: 2 ** bits - 1 };
}

/** Scale and zero point, one per tensor (length 1) or one per channel along `axis`. */
export interface QuantParams extends QuantGrid {
  scale: Float32Array;
  zeroPoint: Int32Array;
  /** Channel axis of per-channel parameters; undefined for per-tensor. */
  axis?: number;
}

/** A quantized weight: integer codes in the layout of the FP weight, with their parameters. */
export interface WeightQuant {
  /** The layer (node name) the weight belongs to. */
  layer: string;
  /** The initializer holding the FP weight in the canonical graph. */
  weight: string;
  params: QuantParams;
  /** One integer code per weight element, within [qmin, qmax]. */
  codes: Int32Array;
}

/** A quantized activation: every read of `tensor` by a quantized layer goes through it. */
export interface ActQuant {
  tensor: string;
  /** Layers (node names) reading the quantized value. */
  consumers: string[];
  params: QuantParams;
}

/** Everything needed to simulate, evaluate and export a quantized model. */
export interface QuantizedGraph {
  weights: WeightQuant[];
  acts: ActQuant[];
}

/** x̂ for one value: the reference formula, used by tests and small computations in TS. */
export function fakeQuantValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  return scale * (quantizeValue(x, scale, zeroPoint, qmin, qmax) - zeroPoint);
}

export function quantizeValue(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  return Math.min(qmax, Math.max(qmin, roundHalfEven(Math.fround(x / scale)) + zeroPoint));
}

export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
