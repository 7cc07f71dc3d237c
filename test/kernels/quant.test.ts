/**
 * Quantizer kernels: every variant (scalar reference, avx2, avx512-logic, avx512 where the CPU has
 * it) against an independent JavaScript reference of the contract
 *   q = clamp(round_half_even(x / s) + z, qmin, qmax),  x̂ = s·(q − z)   (float32 division / product)
 * written here from the specification, not from the C++.
 *
 * Fake quantization, codes and masks must match the reference BIT FOR BIT (they are exact
 * operations, and exported QDQ models must reproduce them). The calibration search must pick the
 * same candidate as a brute-force double-precision search; its errors may differ from the brute
 * force by the summation order and the kernels' |d|^p polynomial: relative 1e-12 is allowed.
 */
import * as ort from 'onnxruntime-node';
import { native } from '../../lib/native';
import { encodeModel } from '../../lib/onnx/encode';
import { bitwiseEqual, rng } from './helpers';

const quant = native().quant;
const F = Math.fround;
const MIN_SCALE: number = quant.MIN_SCALE;

interface Variant { name: string; supported: boolean; testOnly: boolean; lanes: number }
const variants: Variant[] = quant.variants();
const runnable = variants.filter((v) => v.supported).map((v) => v.name);
for (const v of variants.filter((v) => !v.supported)) {
  console.warn(`SKIPPED: ${v.name} quantizer kernels cannot run on this CPU (no AVX-512F/BW/VL/DQ); ` +
    'their logic is tested through avx512-logic');
}

interface Layout { outer: number; channels: number; inner: number }

// ---- the JavaScript reference -------------------------------------------------------------------

function rne(v: number): number {
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function refQuant(x: Float32Array, L: Layout, scale: ArrayLike<number>, zero: ArrayLike<number>, qmin: number, qmax: number) {
  const n = x.length, y = new Float32Array(n), q = new Int32Array(n), mask = new Uint8Array(n);
  for (let o = 0; o < L.outer; o++) for (let c = 0; c < L.channels; c++) for (let i = 0; i < L.inner; i++) {
    const idx = (o * L.channels + c) * L.inner + i, s = F(scale[c]), z = zero[c];
    const t = F(x[idx] / s); // double division of two floats, rounded once: the float32 quotient
    let v = Number.isNaN(t) ? z : rne(t) + z;
    mask[idx] = !Number.isNaN(t) && v >= qmin && v <= qmax ? 1 : 0;
    v = Math.min(Math.max(v, qmin), qmax);
    q[idx] = v;
    y[idx] = F(s * (v - z));
  }
  return { y, q, mask };
}

function refParams(lo: number, hi: number, qmin: number, qmax: number, symmetric: boolean) {
  if (lo > hi) lo = hi = 0;
  const span = qmax - qmin, l = Math.min(lo, 0), h = Math.max(hi, 0);
  const s = Math.max(F(symmetric ? Math.max(-l, h) / (span / 2) : (h - l) / span), F(MIN_SCALE));
  const z = symmetric ? rne(qmin + span / 2) : rne(qmin - l / s);
  return { s, z: Math.min(Math.max(z, qmin), qmax) };
}

function channelData(x: Float32Array, L: Layout, c: number): Float32Array {
  const out = new Float32Array(L.outer * L.inner);
  for (let o = 0; o < L.outer; o++) for (let i = 0; i < L.inner; i++) out[o * L.inner + i] = x[(o * L.channels + c) * L.inner + i];
  return out;
}

interface MseOpts { bits: number; signed: boolean; symmetric?: boolean; p?: number; candidates?: number }

function refMse(data: Float32Array, o: MseOpts) {
  const qmin = o.signed ? -(2 ** (o.bits - 1)) : 0, qmax = o.signed ? 2 ** (o.bits - 1) - 1 : 2 ** o.bits - 1;
  const p = o.p ?? 2.4, nc = o.candidates ?? 80;
  let lo = Infinity, hi = -Infinity;
  for (const v of data) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const errors: number[] = [], params: { s: number; z: number }[] = [];
  for (let k = 0; k < nc; k++) {
    const r = 1 - 0.01 * k;
    const { s, z } = refParams(F(lo * r), F(hi * r), qmin, qmax, !!o.symmetric);
    let e = 0;
    for (const v of data) {
      const t = F(v / s), qq = Math.min(Math.max(rne(t) + z, qmin), qmax);
      e += Math.abs(F(v - F(s * (qq - z)))) ** p;
    }
    errors.push(e);
    params.push({ s, z });
  }
  let best = 0;
  for (let k = 1; k < nc; k++) if (errors[k] < errors[best]) best = k;
  return { best, errors, params, lo, hi };
}

// ---- data ---------------------------------------------------------------------------------------

function normal(n: number, seed: number, sd = 1): Float32Array {
  const next = rng(seed), a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = sd * Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  return a;
}
/** Student's t with 2 degrees of freedom: infinite variance, the outliers clipping is for. */
function heavy(n: number, seed: number): Float32Array {
  const next = rng(seed), g = normal(n, seed + 1), a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = g[i] / Math.sqrt(-Math.log(1 - next()));
  return a;
}
const relu = (a: Float32Array) => a.map((v) => Math.max(v, 0));

function expectCode(fn: () => unknown, code: string, message?: RegExp) {
  let err: any;
  try { fn(); } catch (e) { err = e; }
  // Not toBeInstanceOf(Error): the addon's errors come from the outer realm, not jest's vm context.
  expect(err).toBeDefined();
  expect(typeof err.message).toBe('string');
  expect(err.code).toBe(code);
  if (message) expect(err.message).toMatch(message);
}

const LAYOUTS: Layout[] = [
  { outer: 1, channels: 1, inner: 1 },
  { outer: 1, channels: 1, inner: 67 }, // odd, not a multiple of 8 or 16
  { outer: 1, channels: 16, inner: 3 * 3 * 5 }, // conv weight [16,5,3,3] per output channel
  { outer: 3, channels: 5, inner: 7 }, // a middle axis
  { outer: 13, channels: 37, inner: 1 }, // MatMul [K,N] per column
  { outer: 2, channels: 3, inner: 4099 }, // spans longer than one work item
];

function paramsFor(L: Layout, seed: number, qmin: number, qmax: number) {
  const next = rng(seed), scale = new Float32Array(L.channels), zero = new Int32Array(L.channels);
  for (let c = 0; c < L.channels; c++) {
    scale[c] = F(0.01 + next() * 0.2);
    zero[c] = qmin + Math.floor(next() * (qmax - qmin + 1));
  }
  return { scale, zero };
}

// ---- fake quantization and codes ----------------------------------------------------------------

describe.each(runnable)('quantize on %s', (isa) => {
  test.each(LAYOUTS)('matches the reference bit for bit: %o', (L) => {
    const n = L.outer * L.channels * L.inner;
    for (const [qmin, qmax] of [[-128, 127], [0, 255], [-2, 1], [0, 15]]) {
      const x = normal(n, n + qmax, 3);
      const { scale, zero } = paramsFor(L, qmin + 1000, qmin, qmax);
      const ref = refQuant(x, L, scale, zero, qmin, qmax);
      expect(bitwiseEqual(quant.fakeQuant(isa, x, L, scale, zero, qmin, qmax), ref.y)).toBe(true);
      const m = quant.fakeQuantMask(isa, x, L, scale, new Float32Array(zero), qmin, qmax);
      expect(bitwiseEqual(m.y, ref.y)).toBe(true);
      expect(Array.from(m.mask)).toEqual(Array.from(ref.mask));
      expect(Array.from(quant.quantize(isa, x, L, scale, zero, qmin, qmax))).toEqual(Array.from(ref.q));
      const type = qmin < 0 ? 'int8' : 'uint8';
      const small = quant.quantize(isa, x, L, scale, zero, qmin, qmax, { type });
      expect(small).toBeInstanceOf(qmin < 0 ? Int8Array : Uint8Array);
      expect(Array.from(small)).toEqual(Array.from(ref.q));
    }
  });

  test('ties round half to even, exactly at k + 0.5', () => {
    for (const s of [0.25, 2 ** -10, 3, 1e-3]) {
      const x = new Float32Array(2 * 200);
      for (let k = -100; k < 100; k++) {
        x[2 * (k + 100)] = F((k + 0.5) * s);
        x[2 * (k + 100) + 1] = F((k - 0.5) * s);
      }
      const L = { outer: 1, channels: 1, inner: x.length };
      const q = quant.quantize(isa, x, L, s, 0, -32768, 65535);
      for (let i = 0; i < x.length; i++) {
        const t = F(x[i] / F(s));
        if (t === Math.trunc(t) + 0.5 * Math.sign(t)) expect(Math.abs(q[i] % 2)).toBe(0); // an exact tie went to even
        expect(q[i]).toBe(rne(t));
      }
    }
  });

  test('clamps at both ends and keeps every output finite, for extreme and tiny scales', () => {
    const x = new Float32Array([0, 1, -1, 1e-30, -1e-30, 1e30, -1e30, 3.4e38, -3.4e38, 1e-45, 5, -5, 0.5, -0.5]);
    const L = { outer: 1, channels: 1, inner: x.length };
    for (const s of [1e-30, 1e30, 1e-38, 1e-45, 1e-8, 1e36]) {
      for (const [qmin, qmax, z] of [[-128, 127, 0], [0, 255, 17], [-2, 1, -2], [0, 3, 3]]) {
        const ref = refQuant(x, L, [s], [z], qmin, qmax);
        const y = quant.fakeQuant(isa, x, L, s, z, qmin, qmax);
        expect(bitwiseEqual(y, ref.y)).toBe(true);
        expect(y.every(Number.isFinite)).toBe(true);
        const q = quant.quantize(isa, x, L, s, z, qmin, qmax);
        expect(Math.min(...q)).toBeGreaterThanOrEqual(qmin);
        expect(Math.max(...q)).toBeLessThanOrEqual(qmax);
      }
    }
    // The extremes: far outside the grid on both sides lands exactly on qmin / qmax.
    expect(Array.from(quant.quantize(isa, new Float32Array([-1e30, 1e30]), { outer: 1, channels: 1, inner: 2 }, 1, 3, 0, 7))).toEqual([0, 7]);
  });

  test('NaN maps to the zero-point (x̂ = 0, mask 0), infinities clamp', () => {
    const x = new Float32Array([NaN, Infinity, -Infinity, 1]);
    const L = { outer: 1, channels: 1, inner: 4 };
    const r = quant.fakeQuantMask(isa, x, L, 0.5, 3, 0, 15);
    expect(Array.from(r.y)).toEqual([0, 6, -1.5, 1]);
    expect(Array.from(r.mask)).toEqual([0, 0, 0, 1]);
    expect(Array.from(quant.quantize(isa, x, L, 0.5, 3, 0, 15))).toEqual([3, 15, 0, 5]);
  });

  test('zero ranges: an all-zero tensor round-trips to itself, all-equal tensors stay finite', () => {
    const zeros = new Float32Array(37);
    const L = { outer: 1, channels: 1, inner: 37 };
    const { scale, zero } = quant.params(0, 0, { bits: 4, signed: false });
    expect(scale[0]).toBe(F(MIN_SCALE));
    expect(bitwiseEqual(quant.fakeQuant(isa, zeros, L, scale, zero, 0, 15), zeros)).toBe(true);
    for (const v of [5, -5, 1e-12, 3e37]) {
      const x = new Float32Array(37).fill(v);
      const p = quant.params(v, v, { bits: 8, signed: true });
      const y = quant.fakeQuant(isa, x, L, p.scale, p.zero, -128, 127);
      expect(y.every(Number.isFinite)).toBe(true);
      if (Math.abs(v) > 1e-6) expect(Math.abs(y[0] - v)).toBeLessThanOrEqual(Math.abs(v) * 1e-2);
    }
  });

  test('in place (out = x) equals the out-of-place result; threads do not change a bit', () => {
    const n = 100003, x = heavy(n, 7), L = { outer: 1, channels: 1, inner: n };
    const want = quant.fakeQuant(isa, x, L, 0.05, 3, -8, 7);
    expect(bitwiseEqual(quant.fakeQuant(isa, x, L, 0.05, 3, -8, 7, { threads: 2 }), want)).toBe(true);
    const copy = x.slice();
    expect(quant.fakeQuant(isa, copy, L, 0.05, 3, -8, 7, { out: copy })).toBe(copy);
    expect(bitwiseEqual(copy, want)).toBe(true);
    const Lc = { outer: 7, channels: 3, inner: 4761 }, sc = new Float32Array([0.1, 0.01, 1]), zc = new Int32Array([0, 1, -2]);
    const xc = x.subarray(0, 7 * 3 * 4761);
    expect(bitwiseEqual(quant.fakeQuant(isa, xc, Lc, sc, zc, -8, 7, { threads: 2 }), quant.fakeQuant(isa, xc, Lc, sc, zc, -8, 7))).toBe(true);
  });

  test.each(LAYOUTS)('minMax matches the reference and ignores NaN: %o', (L) => {
    const n = L.outer * L.channels * L.inner, x = heavy(n, n);
    if (n > 2) x[1] = NaN;
    const r = quant.minMax(x, L, { isa });
    for (let c = 0; c < L.channels; c++) {
      const d = channelData(x, L, c).filter((v) => !Number.isNaN(v));
      expect(r.min[c]).toBe(d.length ? Math.min(...d) : Infinity);
      expect(r.max[c]).toBe(d.length ? Math.max(...d) : -Infinity);
    }
  });
});

test('params follows the documented derivation (asymmetric, symmetric, signed, unsigned)', () => {
  const next = rng(5);
  for (let t = 0; t < 300; t++) {
    const lo = F((next() - 0.7) * 10 ** (next() * 8 - 4)), hi = F(lo + next() * 10 ** (next() * 8 - 4));
    for (const bits of [2, 3, 4, 8]) for (const signed of [false, true]) for (const symmetric of [false, true]) {
      const qmin = signed ? -(2 ** (bits - 1)) : 0, qmax = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
      const got = quant.params(new Float32Array([lo]), new Float32Array([hi]), { bits, signed, symmetric });
      const want = refParams(lo, hi, qmin, qmax, symmetric);
      expect(got.scale[0]).toBe(want.s);
      expect(got.zero[0]).toBe(want.z);
      if (symmetric) expect(got.zero[0]).toBe(signed ? 0 : 2 ** (bits - 1));
    }
  }
});

// ---- the BRECQ search ---------------------------------------------------------------------------

interface MseCase { name: string; data: Float32Array; L: Layout; o: MseOpts }
const MSE_CASES: MseCase[] = [
  { name: 'normal weights per channel, 4-bit asymmetric', data: normal(16 * 45, 1, 0.1), L: { outer: 1, channels: 16, inner: 45 }, o: { bits: 4, signed: false } },
  { name: 'heavy-tailed weights per channel, 3-bit signed', data: heavy(8 * 301, 2), L: { outer: 1, channels: 8, inner: 301 }, o: { bits: 3, signed: true } },
  { name: 'MatMul [K,N] per column, 2-bit', data: heavy(61 * 9, 3), L: { outer: 61, channels: 9, inner: 1 }, o: { bits: 2, signed: false } },
  { name: 'middle axis, 8-bit symmetric', data: normal(3 * 4 * 77, 4), L: { outer: 3, channels: 4, inner: 77 }, o: { bits: 8, signed: true, symmetric: true } },
  { name: 'heavy-tailed activations per tensor, 4-bit', data: relu(heavy(9001, 5)), L: { outer: 1, channels: 1, inner: 9001 }, o: { bits: 4, signed: false } },
  { name: 'normal activations per tensor, p = 2, 60 candidates', data: normal(5003, 6), L: { outer: 1, channels: 1, inner: 5003 }, o: { bits: 3, signed: false, p: 2, candidates: 60 } },
  { name: 'unsigned symmetric, p = 3.5', data: heavy(2 * 999, 8), L: { outer: 1, channels: 2, inner: 999 }, o: { bits: 4, signed: false, symmetric: true, p: 3.5 } },
];

describe.each(runnable)('mseSearch on %s', (isa) => {
  test.each(MSE_CASES)('picks the brute-force candidate: $name', ({ data, L, o }) => {
    const r = quant.mseSearch(isa, data, L, o);
    for (let c = 0; c < L.channels; c++) {
      const ref = refMse(channelData(data, L, c), o);
      expect(r.index[c]).toBe(ref.best);
      expect(r.ratio[c]).toBe(F(1 - 0.01 * ref.best));
      expect(r.scale[c]).toBe(ref.params[ref.best].s);
      expect(r.zero[c]).toBe(ref.params[ref.best].z);
      expect(r.min[c]).toBe(ref.lo);
      expect(r.max[c]).toBe(ref.hi);
      expect(Math.abs(r.error[c] - ref.errors[ref.best])).toBeLessThanOrEqual(1e-12 * ref.errors[ref.best]);
      expect(Math.abs(r.minMaxError[c] - ref.errors[0])).toBeLessThanOrEqual(1e-12 * ref.errors[0]);
      expect(r.error[c]).toBeLessThanOrEqual(r.minMaxError[c]);
    }
  });

  test('clipping pays off: a few outliers in normal data are clipped, and the error drops', () => {
    const x = normal(20000, 11);
    for (let i = 0; i < 20; i++) x[i * 997] = (i % 2 ? -1 : 1) * (4 + i / 10);
    const r = quant.mseSearch(isa, x, { outer: 1, channels: 1, inner: 20000 }, { bits: 3, signed: true });
    expect(r.ratio[0]).toBeLessThan(0.9);
    expect(r.error[0]).toBeLessThan(0.8 * r.minMaxError[0]);
  });

  test('an all-zero channel keeps ratio 1, scale MIN_SCALE and error 0', () => {
    const x = normal(3 * 50, 12);
    x.fill(0, 50, 100);
    const r = quant.mseSearch(isa, x, { outer: 1, channels: 3, inner: 50 }, { bits: 4, signed: false });
    expect([r.ratio[1], r.scale[1], r.error[1], r.zero[1]]).toEqual([1, F(MIN_SCALE), 0, 0]);
  });

  test('threads do not change a bit', () => {
    const x = heavy(50000, 13);
    for (const L of [{ outer: 1, channels: 1, inner: 50000 }, { outer: 1, channels: 50, inner: 1000 }]) {
      const a = quant.mseSearch(isa, x, L, { bits: 4, signed: false }), b = quant.mseSearch(isa, x, L, { bits: 4, signed: false, threads: 2 });
      expect(Array.from(b.error)).toEqual(Array.from(a.error));
      expect(Array.from(b.index)).toEqual(Array.from(a.index));
    }
  });

  test('the stream over batches equals the one-shot search', () => {
    const x = relu(heavy(4096 * 5 + 1234, 14)), L = { outer: 1, channels: 1, inner: x.length };
    for (const o of [{ bits: 4, signed: false }, { bits: 3, signed: false, p: 2 }]) {
      const one = quant.mseSearch(isa, x, L, o);
      // Batches of whole 4096-element chunks add the very same chunk sums in the same order.
      for (const sizes of [[4096, 8192, 4096 * 2 + 1234], [1, 999, 4096, 7000, 9618]]) {
        const st = new quant.MseStream(isa, o);
        const batches: Float32Array[] = [];
        let at = 0;
        for (const s of sizes) { batches.push(x.subarray(at, at + s)); at += s; }
        expect(at).toBe(x.length);
        for (const b of batches) st.observe(b);
        expect(st.range()).toEqual({ min: one.min[0], max: one.max[0] });
        for (const b of batches) st.accumulate(b);
        const r = st.result();
        expect(r.index[0]).toBe(one.index[0]);
        expect(r.scale[0]).toBe(one.scale[0]);
        expect(r.zero[0]).toBe(one.zero[0]);
        expect(r.errors.length).toBe(80);
        if (sizes[0] === 4096) expect(r.error[0]).toBe(one.error[0]);
        else expect(Math.abs(r.error[0] - one.error[0])).toBeLessThanOrEqual(1e-12 * one.error[0]);
        expect(st.observed).toBe(x.length);
        expect(st.accumulated).toBe(x.length);
      }
    }
  });

  test('the stream enforces its two passes', () => {
    const st = new quant.MseStream(isa, { bits: 4, signed: false });
    expectCode(() => st.result(), 'BAD_OPTION', /before any accumulate/);
    expectCode(() => st.accumulate(new Float32Array(4)), 'BAD_OPTION', /before any observe/);
    st.observe(new Float32Array([1, -2, 3]));
    st.accumulate(new Float32Array([1, -2, 3]));
    expectCode(() => st.observe(new Float32Array(4)), 'BAD_OPTION', /observe\(\) after accumulate/);
    expect(st.result().errors).toBeInstanceOf(Float64Array);
  });

  test('infinite or NaN data is refused with BAD_DATA', () => {
    const L = { outer: 1, channels: 1, inner: 3 };
    expectCode(() => quant.mseSearch(isa, new Float32Array([1, Infinity, 2]), L, { bits: 4 }), 'BAD_DATA', /infinite/);
    expectCode(() => quant.mseSearch(isa, new Float32Array([1, NaN, 2]), L, { bits: 4 }), 'BAD_DATA', /NaN/);
    const st = new quant.MseStream(isa, { bits: 4 });
    st.observe(new Float32Array([1, 2]));
    st.accumulate(new Float32Array([NaN]));
    expectCode(() => st.result(), 'BAD_DATA', /NaN/);
  });
});

// ---- percentiles --------------------------------------------------------------------------------

function exactPercentile(values: number[], q: number): number {
  const s = values.slice().sort((a, b) => a - b);
  const k = Math.min(Math.max(Math.ceil((q / 100) * s.length) - 1, 0), s.length - 1);
  return s[k];
}

describe('percentile', () => {
  const QS = [0, 0.01, 1, 25, 50, 90, 99, 99.9, 99.99, 100];
  const sets: [string, Float32Array][] = [
    ['normal', normal(30011, 21)],
    ['heavy-tailed', heavy(30011, 22)],
    ['post-ReLU with many zeros', relu(normal(20000, 23))],
    ['tiny and denormal values', normal(5000, 24, 1e-39)],
    ['wide dynamic range', normal(5000, 25).map((v, i) => v * 10 ** ((i % 60) - 30))],
  ];
  test.each(sets)('one-shot and streamed estimates bracket the exact value within the bound: %s', (_, x) => {
    for (const abs of [false, true]) {
      const vals = Array.from(x, (v) => (abs ? Math.abs(v) : v));
      const h = new quant.Histogram({ abs });
      for (let at = 0; at < x.length; at += 4999) h.add(x.subarray(at, at + 4999));
      expect(h.count).toBe(x.length);
      for (const q of QS) {
        const exact = exactPercentile(vals, q);
        for (const e of [quant.percentile(x, q, { abs }), h.percentile(q)]) {
          expect(e.lower).toBeLessThanOrEqual(exact);
          expect(e.upper).toBeGreaterThanOrEqual(exact);
          expect(Math.abs(e.value - exact)).toBeLessThanOrEqual(Math.max(2 ** -11 * Math.abs(exact), 2 ** -137));
        }
      }
      expect(h.percentile(0).value).toBe(Math.min(...vals));
      expect(h.percentile(100).value).toBe(Math.max(...vals));
    }
  });

  test('NaNs are counted apart, infinities are the extreme values', () => {
    const h = new quant.Histogram();
    h.add(new Float32Array([NaN, 1, 2, Infinity, -Infinity, NaN]));
    expect([h.count, h.nans, h.min, h.max]).toEqual([4, 2, -Infinity, Infinity]);
    expect(h.percentile(100).value).toBe(Infinity);
    expect(h.percentile(0).value).toBe(-Infinity);
    expect(Math.abs(h.percentile(50).value - 1)).toBeLessThanOrEqual(2 ** -11);
    expectCode(() => new quant.Histogram().percentile(50), 'BAD_OPTION', /empty/);
  });
});

// ---- onnxruntime as the oracle ------------------------------------------------------------------

/** QuantizeLinear -> (codes, DequantizeLinear) at opset 13, per tensor or along axis 1 of [outer, C, inner]. */
function qdqModel(L: Layout, scale: Float32Array, zero: Int32Array, signed: boolean): Uint8Array {
  const FLOAT = 1, QTYPE = signed ? 3 : 2;
  const perAxis = L.channels > 1;
  const dims = [L.outer, L.channels, L.inner];
  const tensorType = (elem: number) => ({ tensor_type: { elem_type: elem, shape: { dim: dims.map((d) => ({ dim_value: d })) } } });
  const init = (name: string, type: number, bytes: Uint8Array) =>
    ({ name, data_type: type, dims: perAxis ? [L.channels] : [], raw_data: bytes });
  const zp = signed ? new Int8Array(zero) : new Uint8Array(zero);
  const axis = perAxis ? [{ name: 'axis', type: 2, i: 1 }] : [];
  const model = {
    ir_version: 7,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'qdq',
      node: [
        { op_type: 'QuantizeLinear', input: ['x', 's', 'z'], output: ['q'], attribute: axis },
        { op_type: 'DequantizeLinear', input: ['q', 's', 'z'], output: ['y'], attribute: axis },
      ],
      initializer: [
        init('s', FLOAT, new Uint8Array(scale.slice(0, perAxis ? L.channels : 1).buffer)),
        init('z', QTYPE, new Uint8Array(zp.slice(0, perAxis ? L.channels : 1).buffer)),
      ],
      input: [{ name: 'x', type: tensorType(FLOAT) }],
      output: [{ name: 'q', type: tensorType(QTYPE) }, { name: 'y', type: tensorType(FLOAT) }],
    },
  };
  return encodeModel(model as any);
}

describe('against onnxruntime QuantizeLinear / DequantizeLinear', () => {
  // Power-of-two scales make (k + 0.5)·s exact, so those cases hold hundreds of exact ties.
  const cases: [string, Layout, boolean, boolean][] = [
    ['per tensor, uint8', { outer: 1, channels: 1, inner: 1031 }, false, false],
    ['per tensor, int8, exact ties', { outer: 1, channels: 1, inner: 1031 }, true, true],
    ['per channel axis 1, uint8, exact ties', { outer: 3, channels: 5, inner: 67 }, false, true],
    ['per channel axis 1, int8', { outer: 2, channels: 16, inner: 9 }, true, false],
  ];
  test.each(cases)('%s: codes and x̂ match bit for bit on every variant', async (_, L, signed, pow2) => {
    const n = L.outer * L.channels * L.inner, [qmin, qmax] = signed ? [-128, 127] : [0, 255];
    const { scale, zero } = paramsFor(L, n, qmin, qmax);
    if (pow2) scale.forEach((v, c) => (scale[c] = 2 ** Math.round(Math.log2(v))));
    // Exact ties (k + 0.5)·s of every channel, values far outside the grid, and ordinary values.
    const x = normal(n, n, 5);
    for (let o = 0; o < L.outer; o++) for (let c = 0; c < L.channels; c++) for (let i = 0; i < L.inner; i++) {
      const idx = (o * L.channels + c) * L.inner + i;
      if (i % 3 === 0) x[idx] = F((Math.round(x[idx] / scale[c]) + 0.5) * scale[c]);
      if (i % 17 === 5) x[idx] = (i % 2 ? -1 : 1) * 1e6;
    }
    if (pow2) {
      let ties = 0;
      for (let i = 0; i < n; i++) {
        const t = x[i] / scale[Math.floor(i / L.inner) % L.channels];
        if (t - Math.floor(t) === 0.5) ties++;
      }
      expect(ties).toBeGreaterThan(n / 4);
    }
    const session = await ort.InferenceSession.create(qdqModel(L, scale, zero, signed));
    const out = await session.run({ x: new ort.Tensor('float32', x, [L.outer, L.channels, L.inner]) });
    await session.release();
    const codes = Array.from(out.q.data as Int8Array | Uint8Array), y = out.y.data as Float32Array;
    for (const isa of runnable) {
      expect(Array.from(quant.quantize(isa, x, L, scale, zero, qmin, qmax))).toEqual(codes);
      expect(bitwiseEqual(quant.fakeQuant(isa, x, L, scale, zero, qmin, qmax), y)).toBe(true);
    }
  });
});

// ---- argument checking --------------------------------------------------------------------------

describe('bad arguments throw BAD_OPTION and never crash', () => {
  const x = new Float32Array(12), L = { outer: 1, channels: 3, inner: 4 }, s = new Float32Array([1, 1, 1]), z = new Int32Array(3);
  const cases: [string, () => unknown, RegExp][] = [
    ['unknown isa', () => quant.fakeQuant('sse9', x, L, s, z, 0, 15), /isa/],
    ['x not a Float32Array', () => quant.fakeQuant('scalar', [1, 2], L, s, z, 0, 15), /Float32Array for x/],
    ['layout not covering x', () => quant.fakeQuant('scalar', x, { outer: 1, channels: 5, inner: 4 }, s, z, 0, 15), /does not cover/],
    ['channels 0', () => quant.fakeQuant('scalar', x, { outer: 1, channels: 0, inner: 4 }, s, z, 0, 15), /layout.channels/],
    ['fractional inner', () => quant.fakeQuant('scalar', x, { outer: 1, channels: 3, inner: 4.5 }, s, z, 0, 15), /layout.inner/],
    ['layout missing', () => quant.fakeQuant('scalar', x, undefined, s, z, 0, 15), /layout/],
    ['scale length', () => quant.fakeQuant('scalar', x, L, new Float32Array(2), z, 0, 15), /scale has 2 entries/],
    ['zero length', () => quant.fakeQuant('scalar', x, L, s, new Int32Array(4), 0, 15), /zero has 4 entries/],
    ['scale 0', () => quant.fakeQuant('scalar', x, L, new Float32Array([1, 0, 1]), z, 0, 15), /scale.*channel 1/],
    ['scale NaN', () => quant.fakeQuant('scalar', x, L, new Float32Array([NaN, 1, 1]), z, 0, 15), /scale.*channel 0/],
    ['scale overflowing x̂', () => quant.fakeQuant('scalar', x, L, 3e38, 0, 0, 15), /scale/],
    ['zero outside the grid', () => quant.fakeQuant('scalar', x, L, s, new Int32Array([0, 16, 0]), 0, 15), /zero-point/],
    ['fractional zero', () => quant.fakeQuant('scalar', x, L, s, new Float32Array([0, 0.5, 0]), 0, 15), /zero-point/],
    ['qmin >= qmax', () => quant.fakeQuant('scalar', x, L, s, z, 3, 3), /qmin < qmax/],
    ['qmin not an integer', () => quant.fakeQuant('scalar', x, L, s, z, 0.5, 3), /qmin/],
    ['int8 codes of an unsigned grid', () => quant.quantize('scalar', x, L, s, z, 0, 255, { type: 'int8' }), /int8/],
    ['unknown code type', () => quant.quantize('scalar', x, L, s, z, 0, 15, { type: 'int4' }), /type/],
    ['partially overlapping out', () => quant.fakeQuant('scalar', x.subarray(0, 8), { outer: 1, channels: 1, inner: 8 }, 1, 0, 0, 15, { out: x.subarray(2, 10) }), /overlap/],
    ['out of another length', () => quant.fakeQuant('scalar', x, L, s, z, 0, 15, { out: new Float32Array(3) }), /out has 3/],
    ['threads 0', () => quant.fakeQuant('scalar', x, L, s, z, 0, 15, { threads: 0 }), /threads/],
    ['bits 9', () => quant.mseSearch('scalar', x, L, { bits: 9 }), /bits/],
    ['bits 1', () => quant.params(0, 1, { bits: 1 }), /bits/],
    ['no grid', () => quant.mseSearch('scalar', x, L, {}), /bits/],
    ['p 0', () => quant.mseSearch('scalar', x, L, { bits: 4, p: 0 }), /p/],
    ['p 9', () => new quant.MseStream('scalar', { bits: 4, p: 9 }), /p/],
    ['candidates 101', () => quant.mseSearch('scalar', x, L, { bits: 4, candidates: 101 }), /candidates/],
    ['signed not boolean', () => quant.mseSearch('scalar', x, L, { bits: 4, signed: 'yes' }), /boolean/],
    ['options not an object', () => quant.mseSearch('scalar', x, L, 4), /options/],
    ['percentile 101', () => quant.percentile(x, 101), /\[0, 100\]/],
    ['histogram batch', () => new quant.Histogram().add([1, 2]), /Float32Array/],
    ['stream batch', () => new quant.MseStream('scalar', { bits: 4 }).observe(null), /Float32Array/],
    ['minMax layout', () => quant.minMax(x, { outer: 2, channels: 3, inner: 4 }), /does not cover/],
  ];
  test.each(cases)('%s', (_, fn, message) => expectCode(fn, 'BAD_OPTION', message));

  test('an unsupported variant is refused, not run', () => {
    for (const v of variants.filter((v) => !v.supported)) {
      expectCode(() => quant.fakeQuant(v.name, x, L, s, z, 0, 15), 'BAD_OPTION', /not supported/);
    }
  });
});
