/**
 * The equalization pass on hand-made graphs: which links it finds (and refuses), and that applying
 * scales leaves the FP outputs unchanged while dividing the linked activation's channels by them.
 */
import { Graph, cloneGraph, makeTensor } from '../../lib/graph/ir';
import { applyEqualization, findEqualizeLinks } from '../../lib/graph/passes/equalize';
import { graph, int, intList, maxRelDiff, node, randomTensor, rng, run } from '../helpers/graphs';

const r = rng(11);

/** conv(3→8) → ReLU → MaxPool → conv(8→4) → ReLU → ReduceMean(2,3) → Gemm(4→5, transB) and side exits. */
function cnn(): Graph {
  return graph({
    inputs: [{ name: 'x', shape: ['N', 3, 9, 9] }],
    outputs: ['y', 'side1', 'side2'],
    nodes: [
      node('Conv', ['x', 'w1', 'b1'], ['c1'], { pads: intList([1, 1, 1, 1]) }, 'conv1'),
      node('Relu', ['c1'], ['r1'], {}, 'relu1'),
      node('MaxPool', ['r1'], ['p1'], { kernel_shape: intList([2, 2]), strides: intList([2, 2]) }, 'pool1'),
      node('Conv', ['p1', 'w2', 'b2'], ['c2'], { pads: intList([1, 1, 1, 1]) }, 'conv2'),
      node('Relu', ['c2'], ['r2'], {}, 'relu2'),
      node('ReduceMean', ['r2'], ['m2'], { axes: intList([2, 3]), keepdims: int(0) }, 'mean2'),
      node('Gemm', ['m2', 'w3', 'b3'], ['y'], { transB: int(1) }, 'fc'),
      // Not homogeneous: ReLU6 between two convs.
      node('Conv', ['x', 'w4', 'b4'], ['c4'], {}, 'conv4'),
      node('Clip', ['c4', 'lo', 'hi'], ['k4'], {}, 'relu6'),
      node('Conv', ['k4', 'w5'], ['side1'], {}, 'conv5'),
      // The ReLU output also feeds a residual Add: scaling it would change the sum.
      node('Conv', ['x', 'w6', 'b6'], ['c6'], {}, 'conv6'),
      node('Relu', ['c6'], ['r6'], {}, 'relu6b'),
      node('Conv', ['r6', 'w7'], ['c7'], {}, 'conv7'),
      node('Add', ['c7', 'r6'], ['side2'], {}, 'residual'),
    ],
    init: {
      w1: randomTensor([8, 3, 3, 3], r), b1: randomTensor([8], r),
      w2: randomTensor([4, 8, 3, 3], r), b2: randomTensor([4], r),
      w3: randomTensor([5, 4], r), b3: randomTensor([5], r),
      w4: randomTensor([3, 3, 1, 1], r), b4: randomTensor([3], r), lo: makeTensor('float32', [], [0]), hi: makeTensor('float32', [], [6]),
      w5: randomTensor([2, 3, 1, 1], r),
      w6: randomTensor([3, 3, 1, 1], r), b6: randomTensor([3], r), w7: randomTensor([3, 3, 1, 1], r),
    },
  });
}

/** Tokens [N, T, C]: MatMul(6→7) → LeakyReLU → MatMul(7→2), channels last. */
function tokens(): Graph {
  return graph({
    inputs: [{ name: 'x', shape: ['N', 4, 6] }],
    outputs: ['y'],
    nodes: [
      node('MatMul', ['x', 'w1'], ['h'], {}, 'mm1'),
      node('Add', ['h', 'b1'], ['hb'], {}, 'bias1'),
      node('LeakyRelu', ['hb'], ['a'], { alpha: { type: 'float', value: 0.1 } }, 'act'),
      node('MatMul', ['a', 'w2'], ['y'], {}, 'mm2'),
    ],
    init: { w1: randomTensor([6, 7], r), b1: randomTensor([7], r), w2: randomTensor([7, 2], r) },
  });
}

function positiveScales(n: number): Float64Array {
  return Float64Array.from({ length: n }, () => Math.exp(3 * (r() - 0.5)));
}

test('finds Conv→ReLU→MaxPool→Conv and Conv→ReLU→ReduceMean→Gemm, refuses ReLU6 and a ReLU output with two uses', () => {
  const links = findEqualizeLinks(cnn());
  expect(links.map((l) => [l.producer, l.consumer, l.value, l.axis, l.channels])).toEqual([
    ['conv1', 'conv2', 'p1', 1, 8],
    ['conv2', 'fc', 'm2', 1, 4],
  ]);
});

test('applied scales keep every output and divide the linked channels by s', () => {
  const g = cnn();
  const x = randomTensor([2, 3, 9, 9], r);
  const probe = (h: Graph) => run({ ...h, outputs: [...h.outputs, { name: 'p1', dtype: 'float32' }, { name: 'm2', dtype: 'float32' }] }, { x });
  const before = probe(g);
  const eq = cloneGraph(g);
  const scales = findEqualizeLinks(g).map((l) => {
    const s = positiveScales(l.channels);
    applyEqualization(eq, l, s);
    return s;
  });
  const after = probe(eq);
  for (let k = 0; k < 3; k++) expect(maxRelDiff(after[k], before[k])).toBeLessThan(1e-5);
  // p1 is [2, 8, 4, 4]: channel c divided by s_c; m2 is [2, 4].
  const p1Want = before[3].map((v, i) => v / scales[0][Math.floor(i / 16) % 8]);
  expect(maxRelDiff(after[3], p1Want)).toBeLessThan(1e-5);
  const m2Want = before[4].map((v, i) => v / scales[1][i % 4]);
  expect(maxRelDiff(after[4], m2Want)).toBeLessThan(1e-5);
  // The source graph's initializers were replaced in the copy, not written into.
  expect(maxRelDiff(probe(g)[0], before[0])).toBe(0);
});

test('a channels-last MatMul pair across LeakyReLU: bias folded in, axis 2', () => {
  const g = tokens();
  // The MatMul + Add bias is one layer only after the canonical fusion; here the Add sits between
  // and is not homogeneous (a bias shift), so nothing is found until the bias is part of the layer.
  expect(findEqualizeLinks(g)).toEqual([]);
  const fused = graph({
    inputs: [{ name: 'x', shape: ['N', 4, 6] }], outputs: ['y'],
    nodes: [node('MatMul', ['x', 'w1', 'b1'], ['hb'], {}, 'mm1'), g.nodes[2], g.nodes[3]],
    init: Object.fromEntries(g.initializers),
  });
  const links = findEqualizeLinks(fused);
  expect(links.map((l) => [l.producer, l.consumer, l.axis, l.channels])).toEqual([['mm1', 'mm2', 2, 7]]);
  const x = randomTensor([3, 4, 6], r);
  const before = run(fused, { x });
  const eq = cloneGraph(fused);
  applyEqualization(eq, links[0], positiveScales(7));
  expect(maxRelDiff(run(eq, { x })[0], before[0])).toBeLessThan(1e-5);
});
