/**
 * Each graph pass on small graphs built here (checked numerically: the rewritten graph must compute
 * what the original computes) and on every fixture model (same logits before and after all passes,
 * no foldable BatchNorm left, LayerNorm and GELU fused).
 */
import { canonicalize, foldBatchNorm, fuseGelu, fuseLayerNorm, fuseLinearBias, removeDeadNodes, removeIdentities, valueRanks, foldConstants } from '../../lib/graph/passes';
import { Graph, cloneGraph } from '../../lib/graph/ir';
import { Model } from '../../lib/engine/model';
import { fixtureModels } from '../helpers/fixtures';
import { float, graph, int, intList, ints, maxRelDiff, node, randomTensor, rng, run, scalar } from '../helpers/graphs';

const r = rng(7);
const bnParams = (c: number, prefix: string) => ({
  [`${prefix}.g`]: randomTensor([c], r, 0.5, 1.5), [`${prefix}.b`]: randomTensor([c], r),
  [`${prefix}.m`]: randomTensor([c], r), [`${prefix}.v`]: randomTensor([c], r, 0.2, 2),
});
const bn = (x: string, y: string, p: string) => node('BatchNormalization', [x, `${p}.g`, `${p}.b`, `${p}.m`, `${p}.v`], [y], { epsilon: float(1e-3) });

/** The pass must keep the numbers and leave the expected op counts. */
function check(g: Graph, pass: (g: Graph) => Graph, inputs: Record<string, ReturnType<typeof randomTensor>>, expectOps: Record<string, number>): Graph {
  const before = run(g, inputs);
  const after = pass(cloneGraph(g));
  const out = run(after, inputs);
  before.forEach((b, k) => expect(maxRelDiff(out[k], b)).toBeLessThan(1e-5));
  const counts: Record<string, number> = {};
  for (const n of after.nodes) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  for (const [op, c] of Object.entries(expectOps)) expect([op, counts[op] ?? 0]).toEqual([op, c]);
  return after;
}

test('BatchNorm after a Conv (with and without bias, grouped) folds into it', () => {
  for (const [group, withBias] of [[1, false], [1, true], [4, true]] as const) {
    const g = graph({
      inputs: [{ name: 'x', shape: ['n', 4, 6, 6] }], outputs: ['y'],
      nodes: [node('Conv', ['x', 'w', ...(withBias ? ['cb'] : [])], ['c'], { group: int(group), pads: intList([1, 1, 1, 1]) }), bn('c', 'y', 'bn')],
      init: { w: randomTensor([8, 4 / group, 3, 3], r), cb: randomTensor([8], r), ...bnParams(8, 'bn') },
    });
    check(g, (x) => foldBatchNorm(x, valueRanks(x)), { x: randomTensor([2, 4, 6, 6], r) }, { BatchNormalization: 0, Conv: 1 });
  }
});

test('BatchNorm after a Gemm (transB 0 and 1) and after a bias-free 2-D MatMul folds', () => {
  for (const transB of [0, 1]) {
    const g = graph({
      inputs: [{ name: 'x', shape: ['n', 5] }], outputs: ['y'],
      nodes: [node('Gemm', ['x', 'w', 'gb'], ['c'], { transB: int(transB), beta: float(0.5) }), bn('c', 'y', 'bn')],
      init: { w: randomTensor(transB ? [3, 5] : [5, 3], r), gb: randomTensor([3], r), ...bnParams(3, 'bn') },
    });
    check(g, (x) => foldBatchNorm(x, valueRanks(x)), { x: randomTensor([4, 5], r) }, { BatchNormalization: 0, Gemm: 1 });
  }
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 5] }], outputs: ['y'],
    nodes: [node('MatMul', ['x', 'w'], ['c']), bn('c', 'y', 'bn')], init: { w: randomTensor([5, 3], r), ...bnParams(3, 'bn') },
  });
  check(g, (x) => fuseLinearBias(foldBatchNorm(x, valueRanks(x))), { x: randomTensor([4, 5], r) }, { BatchNormalization: 0, MatMul: 1, Add: 0 });
});

test('BatchNorm before a Gemm folds into the following layer; before a padded Conv it stays', () => {
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 5] }], outputs: ['y'],
    nodes: [bn('x', 'b', 'bn'), node('Gemm', ['b', 'w', 'gb'], ['y'], { transB: int(1) })],
    init: { w: randomTensor([3, 5], r), gb: randomTensor([3], r), ...bnParams(5, 'bn') },
  });
  check(g, (x) => foldBatchNorm(x, valueRanks(x)), { x: randomTensor([4, 5], r) }, { BatchNormalization: 0, Gemm: 1 });
  const c = graph({
    inputs: [{ name: 'x', shape: ['n', 4, 5, 5] }], outputs: ['y'],
    nodes: [bn('x', 'b', 'bn'), node('Conv', ['b', 'w'], ['y'], { pads: intList([1, 1, 1, 1]) })],
    init: { w: randomTensor([2, 4, 3, 3], r), ...bnParams(4, 'bn') },
  });
  check(c, (x) => foldBatchNorm(x, valueRanks(x)), { x: randomTensor([1, 4, 5, 5], r) }, { BatchNormalization: 1 });
});

test('BatchNorm on 3-D MatMul outputs (axis 1 is not the output channel) is left alone', () => {
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 3, 5] }], outputs: ['y'],
    nodes: [node('MatMul', ['x', 'w'], ['c']), bn('c', 'y', 'bn')], init: { w: randomTensor([5, 3], r), ...bnParams(3, 'bn') },
  });
  check(g, (x) => foldBatchNorm(x, valueRanks(x)), { x: randomTensor([2, 3, 5], r) }, { BatchNormalization: 1 });
});

test('the decomposed LayerNorm of opset-13 exports fuses into LayerNormalization', () => {
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 7, 16] }], outputs: ['y'],
    nodes: [
      node('ReduceMean', ['x'], ['m'], { axes: intList([-1]) }), node('Sub', ['x', 'm'], ['d']), node('Pow', ['d', 'two'], ['p']),
      node('ReduceMean', ['p'], ['v'], { axes: intList([-1]) }), node('Add', ['v', 'eps'], ['ve']), node('Sqrt', ['ve'], ['s']),
      node('Div', ['d', 's'], ['nrm']), node('Mul', ['nrm', 'gamma'], ['sc']), node('Add', ['sc', 'beta'], ['y']),
    ],
    init: { two: scalar(2), eps: scalar(1e-5), gamma: randomTensor([16], r), beta: randomTensor([16], r) },
  });
  check(g, (x) => fuseLayerNorm(x, valueRanks(x)), { x: randomTensor([2, 7, 16], r, -3, 3) }, { LayerNormalization: 1, ReduceMean: 0, Sqrt: 0 });
});

test('erf-GELU fuses in both Mul orders', () => {
  for (const order of [0, 1]) {
    const tail = order === 0
      ? [node('Mul', ['x', 'e1'], ['t']), node('Mul', ['t', 'half'], ['y'])]
      : [node('Mul', ['e1', 'half'], ['t']), node('Mul', ['x', 't'], ['y'])];
    const g = graph({
      inputs: [{ name: 'x', shape: ['n', 10] }], outputs: ['y'],
      nodes: [node('Div', ['x', 'sqrt2'], ['d']), node('Erf', ['d'], ['e']), node('Add', ['e', 'one'], ['e1']), ...tail],
      init: { sqrt2: scalar(Math.SQRT2), one: scalar(1), half: scalar(0.5) },
    });
    check(g, fuseGelu, { x: randomTensor([3, 10], r, -4, 4) }, { Gelu: 1, Erf: 0, Mul: 0 });
  }
});

test('Identity and inference Dropout disappear; dead nodes and unused constants go', () => {
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'],
    nodes: [node('Identity', ['x'], ['a']), node('Dropout', ['a'], ['b']), node('Relu', ['b'], ['y']), node('Sigmoid', ['x'], ['unused'])],
    init: { orphan: randomTensor([3], r) },
  });
  const after = check(g, (x) => removeDeadNodes(removeIdentities(x)), { x: randomTensor([2, 4], r) }, { Identity: 0, Dropout: 0, Sigmoid: 0, Relu: 1 });
  expect(after.initializers.has('orphan')).toBe(false);
});

test('constant subgraphs fold; batch-dependent shape arithmetic stays for specialisation', () => {
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 2, 3] }], outputs: ['y'],
    nodes: [
      node('Transpose', ['wt'], ['w'], { perm: intList([1, 0]) }),
      node('Shape', ['x'], ['s']), node('Gather', ['s', 'zero'], ['n0']), node('Unsqueeze', ['n0', 'axes0'], ['n1']),
      node('Concat', ['n1', 'minus1'], ['shape'], { axis: int(0) }), node('Reshape', ['x', 'shape'], ['flat']),
      node('MatMul', ['flat', 'w'], ['y']),
    ],
    init: { wt: randomTensor([4, 6], r), zero: { dtype: 'int64', dims: [], data: Float64Array.of(0) }, axes0: ints([0]), minus1: ints([-1]) },
  });
  check(g, foldConstants, { x: randomTensor([3, 2, 3], r) }, { Transpose: 0, Shape: 1, Reshape: 1 });
});

describe.each(fixtureModels())('fixture $name', (fx) => {
  test('same logits before and after every pass; BatchNorm folded; LayerNorm and GELU fused', () => {
    const raw = Model.load(fx.file, { raw: true });
    const canon = Model.load(fx.file);
    const { loadDataset } = require('../../lib/data/dataset');
    const ds = loadDataset({ data: fx.data, labels: fx.labels, mean: fx.mean, std: fx.std, limit: 16 });
    const x = ds.batch(0, 16);
    expect(maxRelDiff(canon.runSync(x, 16), raw.runSync(x, 16))).toBeLessThan(1e-5);
    const ops = new Set(canon.graph.nodes.map((n) => n.opType));
    expect(ops.has('BatchNormalization')).toBe(false);
    for (const gone of ['Identity', 'Dropout', 'Erf', 'Sqrt', 'Pow', 'ReduceMean']) expect([gone, ops.has(gone)]).toEqual([gone, false]);
    if (fx.name.startsWith('vit')) {
      expect(canon.graph.nodes.filter((n) => n.opType === 'LayerNormalization')).toHaveLength(13);
      expect(canon.graph.nodes.filter((n) => n.opType === 'Gelu')).toHaveLength(6);
    }
  });
});

test('canonicalize leaves its input graph untouched', () => {
  const m = Model.load(fixtureModels()[0].file, { raw: true });
  const before = JSON.stringify(m.graph.nodes);
  canonicalize(m.graph);
  expect(JSON.stringify(m.graph.nodes)).toBe(before);
});
