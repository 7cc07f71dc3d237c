/**
 * The reconstruction quantizers as differentiable ops: AdaRound's soft rounding against finite
 * differences (it is smooth in V), its hard rounding against the formula, and the learned-step
 * quantizer's straight-through / LSQ gradients and QDrop dropping against a JS reference.
 */
import { native } from '../../lib/native';

const build = (b: Builder, dtype: 'float32' | 'float64') => new (native().GradProgram)(b.desc, { dtype, trainable: b.trainable });
import { fakeQuantValue } from '../../lib/quant/types';
import { Builder, gradCheck, input, konst, param, randArray } from '../train/helpers';

function adaround(W: Float64Array, V: Float64Array, scale: number[], zero: number[], shape: number[], axis: number, qmin: number, qmax: number) {
  const b = new Builder();
  const w = b.add(konst(shape, W));
  const v = b.add(param(shape, V));
  const s = b.add(konst([scale.length], Float64Array.from(scale)));
  const z = b.add(konst([zero.length], Float64Array.from(zero)));
  b.output(...b.op('AdaRound', [w, v, s, z], [shape], { axis, qmin, qmax }));
  return b;
}

const rect = (v: number) => Math.min(1, Math.max(0, 1.2 / (1 + Math.exp(-v)) - 0.1));

test('AdaRound: soft output = s·(clamp(⌊W/s⌋ + h(V) + z) − z), gradient w.r.t. V matches finite differences', () => {
  const shape = [3, 4];
  const W = randArray(12, 1, -1, 1);
  const V = randArray(12, 2, -2.5, 2.5, [Math.log(0.1 / 1.1), Math.log(1.1 / 0.1)], 0.05); // away from the rectifier's kinks
  const scale = [0.1, 0.2, 0.15], zero = [8, 7, 9];
  const b = adaround(W, V, scale, zero, shape, 0, 0, 15);
  const p = build(b, 'float64');
  const [y] = p.forward(b.feeds);
  for (let i = 0; i < 12; i++) {
    const c = Math.floor(i / 4);
    const q = Math.min(15, Math.max(0, Math.floor(W[i] / scale[c]) + rect(V[i]) + zero[c]));
    expect(y[i]).toBeCloseTo(scale[c] * (q - zero[c]), 12);
  }
  expect(gradCheck(b).maxErr).toBeLessThan(1e-5);
});

test('AdaRound: hard rounding is ⌊W/s⌋ + [V ≥ 0], clamped to the grid', () => {
  const shape = [2, 5];
  const W = randArray(10, 3, -3, 3);
  const V = randArray(10, 4, -1, 1);
  const b = adaround(W, V, [0.25], [2], shape, 0, 0, 3); // per tensor, a narrow 2-bit grid: clamps happen
  const p = build(b, 'float32');
  p.setOption('', 'hard', 1);
  const [y] = p.forward(b.feeds);
  for (let i = 0; i < 10; i++) {
    const q = Math.min(3, Math.max(0, Math.floor(W[i] / 0.25) + (V[i] >= 0 ? 1 : 0) + 2));
    expect(y[i]).toBeCloseTo(0.25 * (q - 2), 6);
  }
});

function lsq(x: Float64Array, s: number, z: number, qmin: number, qmax: number, seed = 0) {
  const b = new Builder();
  const xi = b.add(input([x.length], x));
  const si = b.add(param([1], Float64Array.of(s)));
  b.output(...b.op('LsqQuant', [xi, si], [[x.length]], { zero_point: z, qmin, qmax, seed }));
  return b;
}

test('LsqQuant: forward is the fake quantizer; straight-through gradient for x, LSQ gradient for the step', () => {
  const x = randArray(200, 5, -3, 5);
  const s = 0.3, z = 4, qmin = 0, qmax = 15;
  const b = lsq(x, s, z, qmin, qmax);
  const p = build(b, 'float64');
  const [y] = p.forward(b.feeds);
  const g = randArray(200, 6);
  const { inputs, params } = p.backward([g]);
  let gs = 0;
  for (let i = 0; i < 200; i++) {
    expect(y[i]).toBeCloseTo(fakeQuantValue(x[i], s, z, qmin, qmax), 12);
    const v = x[i] / s;
    const r = Math.round(v) + z; // no exact .5 ties in random data
    const inside = r >= qmin && r <= qmax;
    expect(inputs[0][i]).toBeCloseTo(inside ? g[i] : 0, 12);
    gs += g[i] * (r < qmin ? qmin - z : r > qmax ? qmax - z : Math.round(v) - v);
  }
  expect(params[0][0]).toBeCloseTo(gs, 9);
});

test('LsqQuant with QDrop: about p of the elements pass unquantized, reproducibly per seed and step', () => {
  const x = randArray(20000, 7, -3, 3);
  const b = lsq(x, 0.5, 0, -8, 7, 42);
  const p = build(b, 'float32');
  p.setOption('', 'drop', 0.5);
  const [y1] = p.forward(b.feeds);
  const kept = Array.from(y1).filter((v, i) => Math.abs(v - Math.fround(x[i])) < 1e-7 && Math.abs(v - fakeQuantValue(Math.fround(x[i]), 0.5, 0, -8, 7)) > 1e-7).length;
  const quantizable = Array.from(x).filter((v) => Math.abs(Math.fround(v) - fakeQuantValue(Math.fround(v), 0.5, 0, -8, 7)) > 1e-7).length;
  expect(kept / quantizable).toBeGreaterThan(0.47);
  expect(kept / quantizable).toBeLessThan(0.53);
  const [y2] = p.forward(b.feeds); // the next step draws a new mask
  expect(Array.from(y2)).not.toEqual(Array.from(y1));
  const again = build(lsq(x, 0.5, 0, -8, 7, 42), 'float32');
  again.setOption('', 'drop', 0.5);
  expect(Array.from(again.forward(b.feeds)[0])).toEqual(Array.from(y1)); // same seed, same step → same mask
});
