/** Block discovery on the fixture models (known architectures) and on small graphs built here. */
import { discoverBlocks } from '../../lib/graph/blocks';
import { Model } from '../../lib/engine/model';
import { BadOptionError } from '../../lib/errors';
import { fixtureModels, sharedAvailable } from '../helpers/fixtures';
import { graph, node, randomTensor, rng } from '../helpers/graphs';

const byName = new Map(fixtureModels().map((f) => [f.name, f]));
const EXPECTED: Record<string, { blocks: number; split: number; stem: number; head: number; layers: number }> = {
  resnet20: { blocks: 9, split: 9, stem: 1, head: 1, layers: 22 },
  mobilenetv2: { blocks: 9, split: 9, stem: 1, head: 2, layers: 29 },
  vit: { blocks: 6, split: 12, stem: 1, head: 1, layers: 38 },
  'vit-opset17': { blocks: 6, split: 12, stem: 1, head: 1, layers: 38 },
  vgg: { blocks: 0, split: 0, stem: 0, head: 0, layers: 9 },
  pointnet: { blocks: 0, split: 0, stem: 0, head: 0, layers: 8 },
};

describe.each(Object.entries(EXPECTED))('%s', (name, want) => {
  const fx = byName.get(name);
  (fx ? test : test.skip)('blocks, stem and head as the architecture is built', () => {
    const g = Model.load(fx!.file).graph;
    const s = discoverBlocks(g);
    expect(s.blocks).toHaveLength(want.blocks);
    expect(discoverBlocks(g, { split: true }).blocks).toHaveLength(want.split);
    expect(s.stem).toHaveLength(want.stem);
    expect(s.head).toHaveLength(want.head);
    expect(s.layers).toHaveLength(want.layers);
    // Every layer belongs to exactly one unit, and units follow network order.
    const inUnits = s.units.flatMap((u) => (u.kind === 'block' ? u.block.layers : [u.layer]));
    expect(inUnits).toEqual(s.layers.map((l) => l.name));
    if (!want.blocks) expect(s.units.every((u) => u.kind === 'layer')).toBe(true);
    // Consecutive blocks chain: each block's input is the previous block's output.
    for (let k = 1; k < s.blocks.length; k++) expect(s.blocks[k].input).toBe(s.blocks[k - 1].output);
  });
});

test('resnet20: a downsampling block holds its 1x1 shortcut conv; blocks are named by module', () => {
  const s = discoverBlocks(Model.load(byName.get('resnet20')!.file).graph);
  expect(s.blocks[3].name).toBe('/layer2/layer2.0');
  expect(s.blocks[3].layers.some((l) => l.includes('downsample'))).toBe(true);
  expect(s.blocks.every((b) => b.found === 'residual')).toBe(true);
});

(sharedAvailable() ? test : test.skip)('mobilenetv2: inverted residuals without a skip are found from module names', () => {
  const s = discoverBlocks(Model.load(byName.get('mobilenetv2')!.file).graph);
  expect(s.blocks.map((b) => b.found)).toEqual(['residual', 'module', 'residual', 'module', 'residual', 'residual', 'module', 'residual', 'module']);
  expect(s.blocks.map((b) => b.name)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9].map((k) => `/features/features.${k}`));
});

(sharedAvailable() ? test : test.skip)('vit: a transformer block holds both attention matmuls and its MLP', () => {
  const s = discoverBlocks(Model.load(byName.get('vit')!.file).graph);
  const b = s.blocks[0];
  expect(b.layers).toHaveLength(6);
  expect(b.layers.filter((l) => l.endsWith('attn/MatMul') || l.endsWith('attn/MatMul_1'))).toHaveLength(2);
  expect(s.layers.filter((l) => !l.weight)).toHaveLength(12);
});

test('blocks given by node-name prefix override discovery; a prefix matching nothing is refused', () => {
  const g = Model.load(byName.get('resnet20')!.file).graph;
  const s = discoverBlocks(g, { blockPrefixes: ['/layer1/', '/layer2/'] });
  expect(s.blocks.map((b) => b.layers.length)).toEqual([6, 7]);
  expect(s.head).toHaveLength(8); // layer3's seven convs (with the 1x1 shortcut) and the fc
  expect(() => discoverBlocks(g, { blockPrefixes: ['/nothing/'] })).toThrow(BadOptionError);
  expect(() => discoverBlocks(g, { blockPrefixes: ['/nothing/'] })).toThrow(/\/nothing\//);
});

(sharedAvailable() ? test : test.skip)('pointnet: user blocks of one conv each run on through the activation after it, so they chain', () => {
  // Without the run-on, the ReLU between two blocks belonged to neither, and a pack of them read a
  // value its subgraph did not compute.
  const g = Model.load(byName.get('pointnet')!.file).graph;
  const s = discoverBlocks(g, { blockPrefixes: ['/features/features.3/', '/features/features.6/', '/features/features.9/'] });
  expect(s.blocks.map((b) => b.layers)).toEqual([['/features/features.3/Conv'], ['/features/features.6/Conv'], ['/features/features.9/Conv']]);
  for (let k = 1; k < s.blocks.length; k++) expect(s.blocks[k].input).toBe(s.blocks[k - 1].output);
  expect(s.blocks[0].nodes.some((n) => /Relu/.test(n))).toBe(true);
  expect(s.stem).toEqual(['/features/features.0/Conv']);
  expect(() => discoverBlocks(g, { blockPrefixes: ['/features/features.3/', '/features/features.3/Conv'] })).toThrow(/overlaps/);
});

test('a residual graph without module names: the residual segment is a block, other layers are stem/head', () => {
  const r = rng(3);
  const g = graph({
    inputs: [{ name: 'x', shape: ['n', 8] }], outputs: ['y'],
    nodes: [
      node('Gemm', ['x', 'w0'], ['a'], {}, 'first'), node('Relu', ['a'], ['a1'], {}, 'r0'),
      node('Gemm', ['a1', 'w1'], ['b'], {}, 'inner1'), node('Relu', ['b'], ['b1'], {}, 'r1'),
      node('Gemm', ['b1', 'w2'], ['c'], {}, 'inner2'), node('Add', ['c', 'a1'], ['d'], {}, 'merge'),
      node('Gemm', ['d', 'w3'], ['y'], {}, 'last'),
    ],
    init: { w0: randomTensor([8, 8], r), w1: randomTensor([8, 8], r), w2: randomTensor([8, 8], r), w3: randomTensor([8, 4], r) },
  });
  const s = discoverBlocks(g);
  expect(s.blocks).toHaveLength(1);
  expect(s.blocks[0].layers).toEqual(['inner1', 'inner2']);
  expect(s.blocks[0].input).toBe('a1');
  expect(s.blocks[0].output).toBe('d');
  expect(s.stem).toEqual(['first']);
  expect(s.head).toEqual(['last']);
});
