/**
 * Fusions of the decomposed forms PyTorch exports at opset 13 into single ops the engine runs in
 * one kernel and the quantizer treats as one unit:
 *  - LayerNorm: ReduceMean → Sub → Pow(2) → ReduceMean → Add(ε) → Sqrt → Div → Mul(γ) → Add(β)
 *    becomes LayerNormalization(x, γ, β) over the last axis (the opset-17 op maps to the same).
 *  - GELU (erf form): Div(√2) → Erf → Add(1) → Mul(x) → Mul(0.5) (either Mul order) becomes Gelu.
 *  - A MatMul with a constant weight followed by an Add of a constant bias becomes one MatMul with
 *    the bias as a third input (packptq's canonical linear layer; export writes the Add back).
 */
import { Graph, Node, attrInts, attrInt } from '../ir';
import { Uses, constOf, scalarOf, singleUse, uses } from './util';

const close = (a: number | undefined, b: number, tol = 1e-4) => a !== undefined && Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

/** The single consumer of `name` if it has type `op` (and `name` is used nowhere else). */
function next(u: Uses, name: string, op: string): Node | undefined {
  const c = u.consumers.get(name);
  return c && c.length === 1 && c[0].opType === op && !u.graphOutputs.has(name) ? c[0] : undefined;
}

/** The input of a binary node that is not `name`. */
const other = (n: Node, name: string) => (n.inputs[0] === name ? n.inputs[1] : n.inputs[0]);

function lastAxisOnly(g: Graph, n: Node, rank: number | undefined): boolean {
  const axes = g.opset >= 18 ? Array.from(constOf(g, n.inputs[1])?.data ?? []) : attrInts(n, 'axes');
  return !!axes && axes.length === 1 && (axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1)) && attrInt(n, 'keepdims', 1) === 1;
}

export function fuseLayerNorm(g: Graph, ranks: Map<string, number>): Graph {
  for (;;) {
    const u = uses(g);
    let done = true;
    for (const mean of g.nodes) {
      if (mean.opType !== 'ReduceMean') continue;
      const x = mean.inputs[0];
      if (!lastAxisOnly(g, mean, ranks.get(x))) continue;
      const subs = (u.consumers.get(mean.outputs[0]) ?? []);
      const sub = subs.length === 1 && subs[0].opType === 'Sub' && subs[0].inputs[0] === x && subs[0].inputs[1] === mean.outputs[0] ? subs[0] : undefined;
      if (!sub || u.graphOutputs.has(mean.outputs[0])) continue;
      const d = sub.outputs[0];
      const dUsers = u.consumers.get(d) ?? [];
      const pow = dUsers.find((n) => n.opType === 'Pow' && n.inputs[0] === d && close(scalarOf(g, n.inputs[1]), 2));
      const div = dUsers.find((n) => n.opType === 'Div' && n.inputs[0] === d);
      if (!pow || !div || dUsers.length !== 2 || u.graphOutputs.has(d)) continue;
      const var_ = next(u, pow.outputs[0], 'ReduceMean');
      if (!var_ || !lastAxisOnly(g, var_, ranks.get(d))) continue;
      const addEps = next(u, var_.outputs[0], 'Add');
      const eps = addEps && scalarOf(g, other(addEps, var_.outputs[0]));
      if (!addEps || eps === undefined) continue;
      const sqrt = next(u, addEps.outputs[0], 'Sqrt');
      if (!sqrt || div.inputs[1] !== sqrt.outputs[0] || !singleUse(u, sqrt.outputs[0])) continue;
      const mul = next(u, div.outputs[0], 'Mul');
      const gamma = mul && other(mul, div.outputs[0]);
      if (!mul || !constOf(g, gamma)) continue;
      const add = next(u, mul.outputs[0], 'Add');
      const beta = add && other(add, mul.outputs[0]);
      if (!add || !constOf(g, beta)) continue;
      const ln: Node = {
        name: mean.name.replace(/\/ReduceMean$/, '') + '/LayerNormalization',
        opType: 'LayerNormalization', domain: '',
        inputs: [x, gamma!, beta!], outputs: [add.outputs[0]],
        attrs: { axis: { type: 'int', value: -1 }, epsilon: { type: 'float', value: eps } },
      };
      const dead = new Set([mean, sub, pow, var_, addEps, sqrt, div, mul, add]);
      g.nodes = g.nodes.flatMap((n) => (n === add ? [ln] : dead.has(n) ? [] : [n]));
      done = false;
      break;
    }
    if (done) return g;
  }
}

export function fuseGelu(g: Graph): Graph {
  for (;;) {
    const u = uses(g);
    let done = true;
    for (const div of g.nodes) {
      // x/√2 may also be exported as x·(1/√2).
      const isDiv = div.opType === 'Div' && close(scalarOf(g, div.inputs[1]), Math.SQRT2);
      const isMul = div.opType === 'Mul' && close(scalarOf(g, div.inputs[1]), Math.SQRT1_2);
      if (!isDiv && !isMul) continue;
      const x = div.inputs[0];
      const erf = next(u, div.outputs[0], 'Erf');
      const add1 = erf && next(u, erf.outputs[0], 'Add');
      if (!add1 || !close(scalarOf(g, other(add1, erf!.outputs[0])), 1)) continue;
      // Either (x · (erf+1)) · 0.5 or x · ((erf+1) · 0.5) or ((erf+1)·x)·0.5.
      const m1 = next(u, add1.outputs[0], 'Mul');
      if (!m1) continue;
      const m1other = other(m1, add1.outputs[0]);
      const m2 = next(u, m1.outputs[0], 'Mul');
      if (!m2) continue;
      const m2other = other(m2, m1.outputs[0]);
      const ok = (m1other === x && close(scalarOf(g, m2other), 0.5)) || (close(scalarOf(g, m1other), 0.5) && m2other === x);
      if (!ok) continue;
      const gelu: Node = {
        name: div.name.replace(/\/(Div|Mul)$/, '') + '/Gelu', opType: 'Gelu', domain: '',
        inputs: [x], outputs: [m2.outputs[0]], attrs: { approximate: { type: 'string', value: 'none' } },
      };
      const dead = new Set([div, erf!, add1, m1, m2]);
      g.nodes = g.nodes.flatMap((n) => (n === m2 ? [gelu] : dead.has(n) ? [] : [n]));
      done = false;
      break;
    }
    if (done) return g;
  }
}

export function fuseLinearBias(g: Graph): Graph {
  const u = uses(g);
  const dead = new Set<Node>();
  for (const mm of g.nodes) {
    if (mm.opType !== 'MatMul' || mm.inputs.length > 2) continue;
    const w = constOf(g, mm.inputs[1]);
    if (!w || w.dims.length !== 2) continue;
    const add = next(u, mm.outputs[0], 'Add');
    const b = add && constOf(g, other(add, mm.outputs[0]));
    if (!add || !b || b.data.length !== w.dims[1] || (b.dims.length !== 1 && b.dims.some((d, i) => i < b.dims.length - 1 && d !== 1))) continue;
    mm.inputs = [mm.inputs[0], mm.inputs[1], other(add, mm.outputs[0])];
    mm.outputs = [add.outputs[0]];
    dead.add(add);
  }
  g.nodes = g.nodes.filter((n) => !dead.has(n));
  return g;
}
