/**
 * Harness for the differentiable executor tests: build GradProgram descriptions from small tensor
 * specs, and check analytic gradients against central finite differences (the independent truth:
 * only the forward pass is used to compute them).
 */
import { native } from '../../lib/native';

export type Attr = number | number[] | string;

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Uniform in [lo, hi), optionally keeping every value at least `gap` away from each of `avoid`
 * (kinks of Relu, Clip, HardSigmoid, ...), so finite differences never straddle one. */
export function randArray(n: number, seed: number, lo = -2, hi = 2, avoid: number[] = [], gap = 0.05): Float64Array {
  const r = mulberry32(seed);
  const d = new Float64Array(n);
  for (let i = 0; i < n; ++i) {
    let v = lo + (hi - lo) * r();
    while (avoid.some((k) => Math.abs(v - k) < gap)) v = lo + (hi - lo) * r();
    d[i] = v;
  }
  return d;
}

/** A tensor of a test program: a runtime input (default), a fixed constant, or a trainable one. */
export interface Spec {
  shape: number[];
  data: Float64Array;
  kind?: 'input' | 'const' | 'param';
}
export const input = (shape: number[], data: Float64Array): Spec => ({ shape, data, kind: 'input' });
export const konst = (shape: number[], data: Float64Array): Spec => ({ shape, data, kind: 'const' });
export const param = (shape: number[], data: Float64Array): Spec => ({ shape, data, kind: 'param' });

export interface OpDesc { type: string; name: string; inputs: number[]; outputs: number[]; attrs: Record<string, Attr> }
export interface Desc { tensors: { shape: number[]; data?: Float64Array | Float32Array }[]; inputs: number[]; outputs: number[]; ops: OpDesc[] }

/** Incremental builder for multi-op programs. */
export class Builder {
  desc: Desc = { tensors: [], inputs: [], outputs: [], ops: [] };
  feeds: Float64Array[] = [];
  trainable: number[] = [];
  add(s: Spec): number {
    const id = this.desc.tensors.length;
    if (s.kind === 'const' || s.kind === 'param') {
      this.desc.tensors.push({ shape: s.shape, data: s.data });
      if (s.kind === 'param') this.trainable.push(id);
    } else {
      this.desc.tensors.push({ shape: s.shape });
      this.desc.inputs.push(id);
      this.feeds.push(s.data);
    }
    return id;
  }
  temp(shape: number[]): number {
    this.desc.tensors.push({ shape });
    return this.desc.tensors.length - 1;
  }
  op(type: string, inputs: number[], outShapes: number[][], attrs: Record<string, Attr> = {}): number[] {
    const outs = outShapes.map((s) => this.temp(s));
    this.desc.ops.push({ type, name: `${type}_${this.desc.ops.length}`, inputs, outputs: outs, attrs });
    return outs;
  }
  output(...ids: number[]): this {
    this.desc.outputs.push(...ids);
    return this;
  }
}

/** A single-op program; inputs with `missing` become -1. */
export function single(type: string, ins: (Spec | null)[], outShapes: number[][], attrs: Record<string, Attr> = {}): Builder {
  const b = new Builder();
  const ids = ins.map((s) => (s ? b.add(s) : -1));
  b.output(...b.op(type, ids, outShapes, attrs));
  return b;
}

export interface CheckResult { maxErr: number; checked: number; worst: string }

/**
 * L = Σ_k Σ r_k ⊙ y_k with fixed random r_k. Compares backward()'s gradients of L with respect to
 * every program input and every trainable constant with central differences, step
 * h = 1e-6·max(1, |x|). Error per element: |a − n| / max(|a|, |n|, 1e-3·max|n|) (the floor keeps
 * entries that are ~0 next to large ones from dividing noise by noise). At most `maxPerTensor`
 * elements per tensor are perturbed (all of them for small tensors).
 */
export function gradCheck(b: Builder, opts: { maxPerTensor?: number; seed?: number; threads?: number } = {}): CheckResult {
  const gp = new (native().GradProgram)(b.desc, { dtype: 'float64', trainable: b.trainable, threads: opts.threads ?? 1 });
  const feeds = b.feeds.map((f) => Float64Array.from(f));
  const outs: Float64Array[] = gp.forward(feeds);
  const rs = outs.map((o, k) => randArray(o.length, 1000 + k + (opts.seed ?? 0), -1, 1));
  const loss = (): number => {
    const ys: Float64Array[] = gp.forward(feeds);
    let s = 0;
    ys.forEach((y, k) => y.forEach((v, i) => (s += v * rs[k][i])));
    return s;
  };
  gp.forward(feeds);
  const g = gp.backward(rs) as { inputs: (Float64Array | null)[]; params: Float64Array[] };
  const maxPer = opts.maxPerTensor ?? 200;
  let maxErr = 0;
  let checked = 0;
  let worst = '';
  const pick = (n: number, seed: number): number[] => {
    if (n <= maxPer) return [...Array(n).keys()];
    const r = mulberry32(seed);
    return [...Array(maxPer)].map(() => Math.floor(r() * n));
  };
  const compare = (what: string, analytic: Float64Array, get: (i: number) => number, set: (i: number, v: number) => void, n: number) => {
    const idx = pick(n, 77 + checked);
    const num: number[] = [];
    for (const i of idx) {
      const x = get(i);
      const h = 1e-6 * Math.max(1, Math.abs(x));
      set(i, x + h);
      const lp = loss();
      set(i, x - h);
      const lm = loss();
      set(i, x);
      num.push((lp - lm) / (2 * h));
    }
    const scale = Math.max(...num.map(Math.abs), ...idx.map((i) => Math.abs(analytic[i])));
    idx.forEach((i, j) => {
      const a = analytic[i];
      const e = Math.abs(a - num[j]) / Math.max(Math.abs(a), Math.abs(num[j]), 1e-3 * scale, 1e-12);
      if (e > maxErr) {
        maxErr = e;
        worst = `${what}[${i}]: analytic ${a}, numeric ${num[j]}`;
      }
      checked++;
    });
  };
  feeds.forEach((f, k) => {
    const a = g.inputs[k];
    if (!a) throw new Error(`no gradient for input ${k}`);
    compare(`input ${k}`, a, (i) => f[i], (i, v) => (f[i] = v), f.length);
  });
  g.params.forEach((a, p) => {
    const v = Float64Array.from(gp.getParam(p) as Float64Array);
    compare(`param ${p}`, a, (i) => v[i], (i, x) => {
      v[i] = x;
      gp.setParam(p, v);
    }, v.length);
  });
  return { maxErr, checked, worst };
}

/**
 * The Tape's float64 forward pass against the inference executor (native.Program, float32, an
 * independent implementation of the same op set): max |Δ| relative to max |y|, per output.
 */
export function forwardVsProgram(b: Builder): number {
  const gp = new (native().GradProgram)(b.desc, { dtype: 'float64', trainable: b.trainable });
  const ys: Float64Array[] = gp.forward(b.feeds);
  const desc32 = {
    ...b.desc,
    tensors: b.desc.tensors.map((t) => (t.data ? { shape: t.shape, data: Float32Array.from(t.data) } : { shape: t.shape })),
  };
  const prog = new (native().Program)(desc32);
  const zs: Float32Array[] = prog.runSync(b.feeds.map((f) => Float32Array.from(f)));
  let worst = 0;
  ys.forEach((y, k) => {
    const scale = Math.max(1e-6, ...Array.from(y, Math.abs));
    y.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - zs[k][i]) / scale)));
  });
  return worst;
}
