/** Structurally broken graphs are refused with a typed error that names the node. */
import { BadGraphError, ShapeMismatchError, UnsupportedOpError } from '../../lib/errors';
import { specialize } from '../../lib/graph/specialize';
import { graph, int, node, randomTensor, rng } from '../helpers/graphs';

const r = rng(5);
const shapes = { inputShapes: { x: [2, 4] } };

test('a cycle', () => {
  const g = graph({
    inputs: [{ name: 'x', shape: [2, 4] }], outputs: ['y'],
    nodes: [node('Add', ['x', 'b'], ['a'], {}, 'first'), node('Relu', ['a'], ['b'], {}, 'loop'), node('Relu', ['b'], ['y'], {}, 'out')],
  });
  expect(() => specialize(g, shapes)).toThrow(BadGraphError);
  expect(() => specialize(g, shapes)).toThrow(/cycle through (Add node "first"|Relu node "(loop|out)")/);
});

test('a dangling input', () => {
  const g = graph({ inputs: [{ name: 'x', shape: [2, 4] }], outputs: ['y'], nodes: [node('Add', ['x', 'ghost'], ['y'], {}, 'adder')] });
  expect(() => specialize(g, shapes)).toThrow(BadGraphError);
  expect(() => specialize(g, shapes)).toThrow(/Add node "adder" reads "ghost"/);
});

test('a value written twice', () => {
  const g = graph({ inputs: [{ name: 'x', shape: [2, 4] }], outputs: ['y'], nodes: [node('Relu', ['x'], ['y'], {}, 'a'), node('Neg', ['x'], ['y'], {}, 'b')] });
  expect(() => specialize(g, shapes)).toThrow(BadGraphError);
});

test('shapes that cannot be inferred (no broadcast, bad reshape, wrong conv channels)', () => {
  const add = graph({ inputs: [{ name: 'x', shape: [2, 4] }], outputs: ['y'], nodes: [node('Add', ['x', 'w'], ['y'], {}, 'badd')], init: { w: randomTensor([3], r) } });
  expect(() => specialize(add, shapes)).toThrow(ShapeMismatchError);
  expect(() => specialize(add, shapes)).toThrow(/Add node "badd"/);
  const reshape = graph({
    inputs: [{ name: 'x', shape: [2, 4] }], outputs: ['y'], nodes: [node('Reshape', ['x', 's'], ['y'], {}, 'rs')],
    init: { s: { dtype: 'int64', dims: [2], data: Float64Array.of(3, 3) } },
  });
  expect(() => specialize(reshape, shapes)).toThrow(/Reshape node "rs": cannot reshape/);
  const conv = graph({
    inputs: [{ name: 'x', shape: [1, 3, 5, 5] }], outputs: ['y'], nodes: [node('Conv', ['x', 'w'], ['y'], { group: int(1) }, 'cv')],
    init: { w: randomTensor([4, 2, 3, 3], r) },
  });
  expect(() => specialize(conv, { inputShapes: { x: [1, 3, 5, 5] } })).toThrow(/Conv node "cv": input \[1,3,5,5\] has 3 channels/);
});

test('an op of another domain or an unknown op', () => {
  const g = graph({ inputs: [{ name: 'x', shape: [2, 4] }], outputs: ['y'], nodes: [{ ...node('Relu', ['x'], ['y'], {}, 'ms'), domain: 'com.microsoft' }] });
  expect(() => specialize(g, shapes)).toThrow(UnsupportedOpError);
  expect(() => specialize(g, shapes)).toThrow(/Relu node "ms" is in domain "com.microsoft"/);
});

test('a given input shape that contradicts the declared one', () => {
  const g = graph({ inputs: [{ name: 'x', shape: ['n', 4] }], outputs: ['y'], nodes: [node('Relu', ['x'], ['y'])] });
  expect(() => specialize(g, { inputShapes: { x: [2, 5] } })).toThrow(ShapeMismatchError);
});
