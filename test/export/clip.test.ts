/**
 * Quantizers whose grid is narrower than their storage type: the exported Clip + Q + DQ must
 * compute the FakeQuant formula s·(clamp(round_half_even(x/s) + z, qmin, qmax) − z) for every x,
 * values at and one ulp around the Clip bounds included. Truth: onnxruntime running the exported
 * chain, against the reference formula of lib/quant/types.
 */
import * as ort from 'onnxruntime-node';
import { clipBounds, exportQdq, storageType } from '../../lib/export';
import { BadOptionError } from '../../lib/errors';
import { encodeModel } from '../../lib/onnx';
import { QuantParams, fakeQuantValue, grid } from '../../lib/quant/types';
import { graph, node, rng, scalar } from '../helpers/graphs';

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
/** The float32 `steps` ulps away from v (v must be a float32, not zero). */
function ulps(v: number, steps: number): number {
  f32[0] = v;
  i32[0] += v > 0 ? steps : -steps;
  return f32[0];
}

/** x → [Clip →] Q → DQ [→ Clip] → Mul(·, 1): the quantizer alone, as exportQdq writes it. */
function quantizerModel(p: QuantParams): Uint8Array {
  const g = graph({ inputs: [{ name: 'x', shape: ['n'] }], outputs: ['y'], nodes: [node('Mul', ['x', 'one'], ['y'], {}, 'layer')], init: { one: scalar(1) } });
  return encodeModel(exportQdq(g, { weights: [], acts: [{ tensor: 'x', consumers: ['layer'], params: p }] }));
}

function probeValues(p: QuantParams, r: () => number): Float32Array {
  const s = p.scale[0], z = p.zeroPoint[0];
  const xs: number[] = [0, -0, 1e30, -1e30, 3.4e38, -3.4e38];
  for (let k = p.qmin - 3; k <= p.qmax + 3; k++) {
    const v = Math.fround(s * (k - z));
    xs.push(v, Math.fround(s * (k - z + 0.5)), Math.fround(s * (k - z - 0.5)));
    if (v !== 0) for (const d of [-3, -2, -1, 1, 2, 3]) xs.push(ulps(v, d));
  }
  for (const b of clipBounds(p)) if (b !== 0) for (const d of [-2, -1, 0, 1, 2]) xs.push(ulps(b, d));
  for (let i = 0; i < 500; i++) xs.push(s * (p.qmin - z - 4 + r() * (p.qmax - p.qmin + 8)));
  return Float32Array.from(xs);
}

function cases(): QuantParams[] {
  const out: QuantParams[] = [];
  const scales = [0.1, 1 / 3, 0.0123, 7.77, 1e-3, 2 ** -10, 0.3, 1.7e-5];
  for (const [bits, signed] of [[2, false], [3, false], [3, true], [2, true], [5, false], [6, false], [7, true], [6, true]] as [number, boolean][]) {
    const gr = grid(bits, signed);
    for (const s of scales)
      for (const z of [gr.qmin, Math.round((gr.qmin + gr.qmax) / 2), gr.qmax])
        out.push({ ...gr, scale: Float32Array.of(s), zeroPoint: Int32Array.of(z) });
  }
  // Symmetric grids one short of the full type: int8 [-127, 127] and int4 [-7, 7].
  for (const [bits, qmin] of [[8, -127], [4, -7]])
    for (const s of scales) out.push({ bits, signed: true, qmin, qmax: -qmin, scale: Float32Array.of(s), zeroPoint: Int32Array.of(0) });
  return out;
}

describe('narrow grids: Clip + Q + DQ in onnxruntime = the FakeQuant formula', () => {
  const all = cases();
  test.each(['disabled', 'all'] as const)(`%s graph optimizations, ${all.length} quantizers, bounds ± ulps and ties`, async (level) => {
    const r = rng(7);
    let checked = 0;
    for (const p of all) {
      const session = await ort.InferenceSession.create(quantizerModel(p), { graphOptimizationLevel: level });
      const x = probeValues(p, r);
      const y = (await session.run({ x: new ort.Tensor('float32', x, [x.length]) })).y.data as Float32Array;
      for (let i = 0; i < x.length; i++) {
        const want = Math.fround(fakeQuantValue(x[i], p.scale[0], p.zeroPoint[0], p.qmin, p.qmax));
        if (!Object.is(y[i] + 0, want + 0))
          throw new Error(`${p.bits}-bit ${p.signed ? 'signed' : 'unsigned'} [${p.qmin}, ${p.qmax}] s=${p.scale[0]} z=${p.zeroPoint[0]}: x=${x[i]} gives ${y[i]}, expected ${want}`);
      }
      checked += x.length;
      await session.release();
    }
    expect(checked).toBeGreaterThan(all.length * 500);
  });

  test('the bounds quantize to exactly qmin and qmax (5000 random grids, scales 1e-6 to 10)', () => {
    const r = rng(11);
    for (let t = 0; t < 5000; t++) {
      const bits = 2 + Math.floor(r() * 6), signed = r() < 0.5;
      const gr = grid(bits, signed);
      const s = Math.fround(10 ** (-6 + 7 * r()));
      const z = gr.qmin + Math.floor(r() * (gr.qmax - gr.qmin + 1));
      const p = { ...gr, scale: Float32Array.of(s), zeroPoint: Int32Array.of(z) };
      const [lo, hi] = clipBounds(p);
      // Quantizing the bound with the storage range alone must land on the grid's end.
      const code = (v: number) => Math.round(Math.fround(v / s)) + z;
      if (code(lo) !== gr.qmin || code(hi) !== gr.qmax) throw new Error(`s=${s} z=${z} ${bits}-bit: bounds ${lo}, ${hi} quantize to ${code(lo)}, ${code(hi)}`);
    }
  });

  test('a scale so large that a bound overflows float32 is refused', () => {
    const p = { ...grid(6, false), scale: Float32Array.of(3e38), zeroPoint: Int32Array.of(0) };
    expect(() => clipBounds(p)).toThrow(BadOptionError);
  });

  test('storage types: ≤ 4 bits in int4/uint4, 5–8 bits in int8/uint8; others refused', () => {
    expect([storageType(2, true), storageType(4, false), storageType(5, true), storageType(8, false)]).toEqual(['int4', 'uint4', 'int8', 'uint8']);
    expect(() => storageType(9, true)).toThrow(/1 to 8 bits/);
    expect(() => storageType(0, true)).toThrow(BadOptionError);
  });
});
