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

test('AdaRound float32 (vector rectified sigmoid, parallel over elements) agrees with float64 on every ISA and thread count', () => {
  // Large enough to run on two threads; per channel along axis 0 and along axis 1 (MatMul weights).
  const supported = native().simdInfo().supported as Record<string, boolean>;
  for (const [shape, axis] of [[[48, 900], 0], [[900, 48], 1]] as [number[], number][]) {
    const n = shape[0] * shape[1], C = shape[axis];
    const W = randArray(n, 5, -1, 1), V = randArray(n, 6, -8, 8);
    const scale = Array.from({ length: C }, (_, c) => 0.05 + 0.002 * c), zero = Array.from({ length: C }, (_, c) => c % 5);
    const b = adaround(W, V, scale, zero, shape, axis, 0, 7);
    const ref = build(b, 'float64');
    const [y64] = ref.forward(b.feeds);
    const r = randArray(n, 7, -1, 1);
    const g64 = ref.backward([r]).params[0] as Float64Array;
    for (const isa of ['scalar', 'avx2', 'avx512'].filter((i) => supported[i])) {
      for (const threads of [1, 2]) {
        const p = new (native().GradProgram)({ ...b.desc, isa }, { dtype: 'float32', trainable: b.trainable, threads });
        const [y32] = p.forward(b.feeds.map((f) => Float32Array.from(f)));
        const g32 = p.backward([Float32Array.from(r)]).params[0] as Float32Array;
        let ey = 0, eg = 0, gmax = 0;
        for (let i = 0; i < n; i++) gmax = Math.max(gmax, Math.abs(g64[i]));
        for (let i = 0; i < n; i++) {
          ey = Math.max(ey, Math.abs(y32[i] - y64[i]));
          eg = Math.max(eg, Math.abs(g32[i] - g64[i]) / gmax);
        }
        expect(gmax).toBeGreaterThan(0);
        if (ey > 1e-5 || eg > 1e-5) throw new Error(`${isa} threads ${threads} axis ${axis}: output error ${ey}, gradient error ${eg}`);
      }
    }
  }
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

test('LsqQuant float32: the SIMD kernels equal the scalar reference (forward, mask, gradients) with and without QDrop', () => {
  const n = 4099; // not a multiple of any vector width: tails are exercised
  const x = randArray(n, 8, -4, 6);
  x[5] = NaN; x[17] = 1e9; x[18] = -1e9; x[19] = 0.75; x[20] = 1.25; // NaN, clamps, exact ties (s = 0.5)
  const g = randArray(n, 9);
  const supported = native().simdInfo().supported as Record<string, boolean>;
  const isas = ['scalar', 'avx2', 'avx512'].filter((isa) => supported[isa]);
  expect(isas.length).toBeGreaterThan(1);
  for (const drop of [0, 0.5]) {
    const runs = isas.map((isa) => {
      const b = lsq(x, 0.5, 3, 0, 7, 11);
      const p = new (native().GradProgram)({ ...b.desc, isa }, { dtype: 'float32', trainable: b.trainable });
      p.setOption('', 'drop', drop);
      const [y] = p.forward(b.feeds);
      const { inputs, params } = p.backward([Float32Array.from(g)]);
      // and the step gradient without the NaN element, to compare real values
      const finite = lsq(x.map((v) => (Number.isNaN(v) ? 0 : v)), 0.5, 3, 0, 7, 11);
      const q = new (native().GradProgram)({ ...finite.desc, isa }, { dtype: 'float32', trainable: finite.trainable });
      q.setOption('', 'drop', drop);
      q.forward(finite.feeds);
      const gsFinite = q.backward([Float32Array.from(g)]).params[0][0];
      return { y: Array.from(y), gx: Array.from(inputs[0]), gs: params[0][0], gsFinite };
    });
    for (const r of runs.slice(1)) {
      expect(r.y).toEqual(runs[0].y);
      expect(r.gx).toEqual(runs[0].gx);
      // A NaN input (inside the grid once rounded to 0) makes the step gradient NaN on every path.
      if (Number.isNaN(runs[0].gs)) expect(r.gs).toBeNaN();
      else expect(Math.abs(r.gs - runs[0].gs)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(runs[0].gs)));
      expect(Number.isFinite(r.gsFinite)).toBe(true);
      expect(Math.abs(r.gsFinite - runs[0].gsFinite)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(runs[0].gsFinite)));
    }
    if (!drop) // and the reference is the fake quantizer itself (NaN → code z, i.e. 0)
      for (let i = 0; i < n; i++) expect(runs[0].y[i]).toBe(Number.isNaN(x[i]) ? 0 : Math.fround(fakeQuantValue(Math.fround(x[i]), 0.5, 3, 0, 7)));
  }
});

test('LsqQuant float32 over several parallel blocks: mask, output and gradients do not depend on the thread count', () => {
  const n = 100003; // three full blocks of 32768 and a ragged tail
  const x = randArray(n, 31, -4, 6);
  const g = Float32Array.from(randArray(n, 32));
  const runs = [1, 2].map((threads) => {
    const b = lsq(x, 0.5, 3, 0, 7, 13);
    const p = new (native().GradProgram)(b.desc, { dtype: 'float32', trainable: b.trainable, threads });
    p.setOption('', 'drop', 0.5);
    const [y] = p.forward(b.feeds.map((f: Float64Array) => Float32Array.from(f)));
    const { inputs, params } = p.backward([g]);
    return { y: Buffer.from(y.buffer), gx: Buffer.from(inputs[0].buffer), gs: params[0][0] };
  });
  expect(runs[1].y.equals(runs[0].y)).toBe(true);
  expect(runs[1].gx.equals(runs[0].gx)).toBe(true);
  expect(runs[1].gs).toBe(runs[0].gs);
});
