/**
 * Batch shards: a multi-threaded Program may run as one single-threaded Program per thread, each on
 * a part of the batch. Checked against the same Program run unsharded (its outputs must be the
 * same bits), and the test that decides whether a graph keeps its samples apart against graphs
 * built to mix them.
 */
import { Model } from '../../lib/engine/model';
import { batchParts, samplesIndependent } from '../../lib/engine/batch-shards';
import { lower } from '../../lib/engine/lower';
import { NativeProgram } from '../../lib/engine/program';
import { BadOptionError, ShapeMismatchError } from '../../lib/errors';
import { Graph } from '../../lib/graph/ir';
import { specialize } from '../../lib/graph/specialize';
import { fixtureModels } from '../helpers/fixtures';
import { graph, int, intList, ints, maxRelDiff, node, randomTensor, rng } from '../helpers/graphs';

const independent = (g: Graph, shape: number[]) => samplesIndependent(specialize(g, { inputShapes: { x: shape } }));

function input(shape: number[], seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() * 2 - 1);
}

describe.each(fixtureModels().map((f) => [f.name, f.file] as const))('%s', (name, file) => {
  test('samples are independent, and a sharded run gives the unsharded outputs', () => {
    const m = Model.load(file);
    for (const [batch, threads] of [[8, 2], [7, 3]]) {
      const x = input(m.inputShapeFor(batch), batch);
      const p = m.program(batch, { threads });
      p.setShards([]);
      const plain = p.runSync([x])[0];
      const sharded = m.program(batch, { threads }).runSync([x])[0]; // program() sets the shards again
      if (batch % threads === 0) {
        // Equal parts: every kernel sees the shapes it saw per sample before, so the same bits.
        expect(Buffer.from(sharded.buffer).equals(Buffer.from(plain.buffer))).toBe(true);
      } else {
        // Parts of 3 and 2 samples tile some GEMMs differently: float rounding only.
        expect(maxRelDiff(sharded, plain)).toBeLessThan(1e-5);
      }
    }
    expect(samplesIndependent(specialize(m.graph, { inputShapes: { [m.input.name]: m.inputShapeFor(4) } }))).toBe(true);
  });
});

test('batchParts splits near-evenly, larger parts first', () => {
  expect(batchParts(32, 2)).toEqual([16, 16]);
  expect(batchParts(7, 3)).toEqual([3, 2, 2]);
  expect(batchParts(5, 5)).toEqual([1, 1, 1, 1, 1]);
});

describe('graphs that mix samples are refused', () => {
  const r = rng(11);
  const w = randomTensor([4, 4], r);
  test('a per-sample chain is accepted (control)', () => {
    const g = graph({
      inputs: [{ name: 'x', shape: ['n', 3, 4] }], outputs: ['y'],
      nodes: [node('MatMul', ['x', 'w'], ['a']), node('Softmax', ['a'], ['b'], { axis: int(-1) }), node('Transpose', ['b'], ['c'], { perm: intList([1, 0, 2]) }),
        node('Transpose', ['c'], ['y'], { perm: intList([1, 0, 2]) })],
      init: { w },
    });
    expect(independent(g, [4, 3, 4])).toBe(true);
  });
  test('Softmax along the batch axis', () => {
    const g = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('Softmax', ['x'], ['y'], { axis: int(0) })] });
    expect(independent(g, [4, 4])).toBe(false);
  });
  test('a reduction over every axis, and one over the batch axis', () => {
    const all = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('ReduceMean', ['x'], ['y'], {})] });
    expect(independent(all, [4, 4])).toBe(false);
    const batch = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('ReduceSum', ['x', 'axes'], ['y'], { keepdims: int(1) })], init: { axes: ints([0]) } });
    expect(independent(batch, [4, 4])).toBe(false);
  });
  test('a Reshape that merges the batch with another axis', () => {
    const g = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('Reshape', ['x', 's'], ['y'])], init: { s: ints([2, -1]) } });
    expect(independent(g, [4, 4])).toBe(false);
  });
  test('a MatMul that contracts over the batch axis', () => {
    const g = graph({
      inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'],
      nodes: [node('Transpose', ['x'], ['t'], { perm: intList([1, 0]) }), node('MatMul', ['t', 'x'], ['y'])],
    });
    expect(independent(g, [4, 4])).toBe(false);
  });
  test('Concat and Gather along the batch axis', () => {
    const cat = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('Concat', ['x', 'x'], ['y'], { axis: int(0) })] });
    expect(independent(cat, [4, 4])).toBe(false);
    const gather = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('Gather', ['x', 'i'], ['y'], { axis: int(0) })], init: { i: ints([0, 1, 2, 3]) } });
    expect(independent(gather, [4, 4])).toBe(false);
  });
});

test('setShards refuses shards whose batches do not add up, or that are not Programs', () => {
  const g = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('Relu', ['x'], ['y'])] });
  const at = (b: number) => new NativeProgram(lower(specialize(g, { inputShapes: { x: [b, 4] } })));
  const p = at(6);
  expect(() => p.setShards([at(3), at(2)])).toThrow(ShapeMismatchError);
  expect(() => p.setShards([at(3), at(2)])).toThrow(/5 samples.*6/);
  expect(() => p.setShards([{} as NativeProgram])).toThrow(BadOptionError);
  // A valid set runs and gives the unsharded result.
  const x = Float32Array.from({ length: 24 }, (_, i) => i - 12);
  p.setThreads(2);
  p.setShards([at(3), at(3)]);
  expect(Array.from(p.runSync([x])[0])).toEqual(Array.from(x, (v) => Math.max(0, v)));
});
