/** `packptq inspect` as a user runs it. */
import { cli } from '../helpers/cli';
import { fixtureModels, shipped } from '../helpers/fixtures';

test('human output: params, MACs, shapes, 9 blocks with their layers, stem and head', () => {
  const r = cli(['inspect', shipped('resnet20.onnx')]);
  expect(r.code).toBe(0);
  expect(r.stdout).toMatch(/MACs\/sample 31,021,952/); // the fixture README's figure
  expect(r.stdout).toMatch(/input\s+input \[batch,1,28,28\]/);
  expect(r.stdout).toMatch(/blocks\s+9/);
  expect(r.stdout).toMatch(/\[8\] \/layer3\/layer3\.2/);
  expect(r.stdout).toMatch(/stem\s+1 layer/);
});

test('--json gives {ops, params, macs, inputs, outputs, blocks, stem, head}', () => {
  const r = cli(['inspect', shipped('resnet20.onnx'), '--json']);
  expect(r.code).toBe(0);
  const o = JSON.parse(r.stdout);
  expect(o.ops.BatchNormalization).toBeUndefined();
  expect(o.ops.Conv).toBe(21);
  expect(o.macs).toBe(31021952);
  expect(o.blocks).toHaveLength(9);
  expect(o.blocks[0]).toEqual(expect.objectContaining({ name: '/layer1/layer1.0', layers: ['/layer1/layer1.0/conv1/Conv', '/layer1/layer1.0/conv2/Conv'] }));
  expect(o.stem).toEqual(['/conv1/Conv']);
  expect(o.head).toEqual(['/fc/Gemm']);
  expect(o.outputs).toEqual([{ name: 'logits', shape: ['batch', 10] }]);
});

test('--raw shows the graph before the passes (BatchNorm still there)', () => {
  const o = JSON.parse(cli(['inspect', shipped('resnet20.onnx'), '--raw', '--json']).stdout);
  expect(o.ops.BatchNormalization).toBe(21);
});

const vit = fixtureModels().find((f) => f.name === 'vit');
(vit ? test : test.skip)('vit: 6 blocks, 12 with --split', () => {
  expect(JSON.parse(cli(['inspect', vit!.file, '--json']).stdout).blocks).toHaveLength(6);
  expect(JSON.parse(cli(['inspect', vit!.file, '--json', '--split']).stdout).blocks).toHaveLength(12);
});

test('--blocks with a prefix that matches nothing exits 2 naming the prefix', () => {
  const r = cli(['inspect', shipped('resnet20.onnx'), '--blocks', '/nope/']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/"\/nope\/" matches no layer/);
});
