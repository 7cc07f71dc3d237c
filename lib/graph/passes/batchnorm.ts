/**
 * BatchNorm folding. In inference a BatchNormalization is a per-channel affine map
 * y = a·x + c with a = γ/√(σ²+ε), c = β − a·μ. After a Conv / Gemm / MatMul with constant weights
 * it folds into the weights (rows or columns scaled by a) and the bias (a·b + c). Before a Gemm or
 * MatMul whose input channels it normalises it folds the other way: W' = W·diag(a), b' = b + W·c.
 * (Not before a padded Conv: the zero padding would not see the shift c.)
 * The folded BN's output keeps its name, so everything downstream is untouched.
 */
import { Graph, Node, attrFloat, attrInt } from '../ir';
import { constOf, freshName, inputChannels, outputChannels, singleUse, uses } from './util';

function affine(g: Graph, bn: Node): { a: Float64Array; c: Float64Array } | undefined {
  const [scale, bias, mean, variance] = bn.inputs.slice(1, 5).map((i) => constOf(g, i));
  if (!scale || !bias || !mean || !variance || bn.outputs.length > 1 || attrInt(bn, 'training_mode', 0)) return undefined;
  const eps = attrFloat(bn, 'epsilon', 1e-5);
  const n = scale.data.length;
  const a = new Float64Array(n), c = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    a[i] = scale.data[i] / Math.sqrt(variance.data[i] + eps);
    c[i] = bias.data[i] - a[i] * mean.data[i];
  }
  return { a, c };
}

/**
 * `ranks` gives the rank of every value: a BN over axis 1 of a Gemm/MatMul output is a per-output-
 * channel map only when that output is 2-D ([N, M]); on [N, T, M] tokens axis 1 is T.
 */
export function foldBatchNorm(g: Graph, ranks: Map<string, number>): Graph {
  let changed = true;
  while (changed) {
    changed = false;
    const u = uses(g);
    for (const bn of g.nodes) {
      if (bn.opType !== 'BatchNormalization') continue;
      const aff = affine(g, bn);
      if (!aff) continue;
      const layer = u.producer.get(bn.inputs[0]);
      const rank = ranks.get(bn.inputs[0]);
      const ok = (l: Node) => l.opType === 'Conv' || rank === 2;
      if (layer && ok(layer) && foldAfter(g, layer, bn, aff, singleUse(u, bn.inputs[0]))) { changed = true; break; }
      const next = u.consumers.get(bn.outputs[0]);
      if (next && next.length === 1 && ok(next[0]) && !u.graphOutputs.has(bn.outputs[0]) && foldBefore(g, next[0], bn, aff)) { changed = true; break; }
    }
  }
  return g;
}

function foldAfter(g: Graph, layer: Node, bn: Node, { a, c }: { a: Float64Array; c: Float64Array }, onlyUse: boolean): boolean {
  if (!onlyUse || !['Conv', 'Gemm', 'MatMul'].includes(layer.opType)) return false;
  const w = constOf(g, layer.inputs[1]);
  if (!w) return false;
  const oc = outputChannels(layer, w);
  if (!oc || oc.count !== a.length) return false;
  const chan = oc.of, m = oc.count;
  const biasName = layer.opType === 'MatMul' ? undefined : layer.inputs[2];
  const oldBias = constOf(g, biasName);
  if (biasName && !oldBias) return false;
  if (layer.opType === 'Gemm' && oldBias && oldBias.data.length !== m) return false;
  const betaG = layer.opType === 'Gemm' ? attrFloat(layer, 'beta', 1) : 1;

  const w2 = new Float32Array(w.data.length);
  for (let i = 0; i < w2.length; i++) w2[i] = w.data[i] * a[chan(i)];
  const b2 = new Float32Array(m);
  for (let o = 0; o < m; o++) b2[o] = a[o] * (oldBias ? betaG * oldBias.data[o] : 0) + c[o];
  const wName = freshName(g, layer.inputs[1]), bName = freshName(g, `${layer.name}.bias`);
  g.initializers.set(wName, { dtype: 'float32', dims: [...w.dims], data: w2 });
  g.initializers.set(bName, { dtype: 'float32', dims: [m], data: b2 });
  layer.inputs[1] = wName;
  if (layer.opType === 'Gemm') layer.attrs.beta = { type: 'float', value: 1 };
  layer.outputs = [bn.outputs[0]];
  if (layer.opType === 'MatMul') {
    // MatMul has no bias input: canonicalizeBias turns the MatMul + Add pair into one layer later.
    bn.opType = 'Add';
    bn.inputs = [`${bn.outputs[0]}__packptq_prebias`, bName];
    layer.outputs = [bn.inputs[0]];
    bn.attrs = {};
    return true;
  }
  layer.inputs[2] = bName;
  g.nodes = g.nodes.filter((n) => n !== bn);
  return true;
}

function foldBefore(g: Graph, layer: Node, bn: Node, { a, c }: { a: Float64Array; c: Float64Array }): boolean {
  // y = W (a⊙x + c) + b: input channels of W are scaled by a, and W·c joins the bias.
  if (layer.inputs[0] !== bn.outputs[0]) return false;
  const w = constOf(g, layer.inputs[1]);
  if (!w || w.dims.length !== 2) return false;
  if (layer.opType !== 'Gemm' && layer.opType !== 'MatMul') return false;
  const ic = inputChannels(layer, w), oc = outputChannels(layer, w);
  if (!ic || !oc || ic.count !== a.length) return false;
  const inChan = ic.of, outChan = oc.of, m = oc.count;
  const w2 = new Float32Array(w.data.length);
  const shift = new Float64Array(m);
  for (let i = 0; i < w2.length; i++) {
    w2[i] = w.data[i] * a[inChan(i)];
    shift[outChan(i)] += w.data[i] * c[inChan(i)];
  }
  const wName = freshName(g, layer.inputs[1]);
  g.initializers.set(wName, { dtype: 'float32', dims: [...w.dims], data: w2 });
  layer.inputs[0] = bn.inputs[0];
  layer.inputs[1] = wName;
  const bName = freshName(g, `${layer.name}.bias`);
  if (layer.opType === 'Gemm') {
    const old = constOf(g, layer.inputs[2]);
    if (layer.inputs[2] && (!old || old.data.length !== m)) return false;
    const beta = attrFloat(layer, 'beta', 1);
    const b2 = new Float32Array(m);
    for (let o = 0; o < m; o++) b2[o] = (old ? beta * old.data[o] : 0) + shift[o];
    g.initializers.set(bName, { dtype: 'float32', dims: [m], data: b2 });
    layer.inputs[2] = bName;
    layer.attrs.beta = { type: 'float', value: 1 };
    g.nodes = g.nodes.filter((n) => n !== bn);
    return true;
  }
  // MatMul: the shift becomes an Add after it, in place of the BN node.
  g.initializers.set(bName, { dtype: 'float32', dims: [m], data: Float32Array.from(shift) });
  const out = layer.outputs[0];
  bn.opType = 'Add';
  bn.inputs = [`${out}__packptq_prebias`, bName];
  bn.outputs = [out];
  bn.attrs = {};
  layer.outputs = [bn.inputs[0]];
  // Keep topological order: the Add must come after the MatMul.
  g.nodes = g.nodes.filter((n) => n !== bn);
  g.nodes.splice(g.nodes.indexOf(layer) + 1, 0, bn);
  return true;
}
