/** Quantizer placement on the fixture graphs and on hand-made ones. */
import { Model } from '../../lib/engine/model';
import { BadOptionError } from '../../lib/errors';
import { discoverBlocks } from '../../lib/graph/blocks';
import { planQuantization } from '../../lib/quant/plan';
import { fixtureModels, shipped } from '../helpers/fixtures';

const resnet = Model.load(shipped('resnet20.onnx'));
const rs = discoverBlocks(resnet.graph);

test('resnet20: a weight quantizer per layer, activation quantizers at layer inputs except the model input', () => {
  const plan = planQuantization(resnet.graph, rs, { wBits: 4, aBits: 4 });
  expect(plan.layers).toHaveLength(22);
  expect(plan.layers.every((l) => l.weight && l.wBits)).toBe(true);
  const first = plan.layers[0];
  expect(first.layer).toBe('/conv1/Conv');
  expect(first.actInputs).toEqual([]); // reads the model input
  // A block input read by conv1 and the 1x1 shortcut gets ONE shared quantizer.
  const shared = plan.acts.filter((a) => a.consumers.length === 2);
  expect(shared).toHaveLength(2);
  expect(shared[0].consumers.some((c) => c.includes('downsample'))).toBe(true);
  expect(plan.acts).toHaveLength(19); // 21 reads by 21 non-first layers, 2 of them shared
  for (const a of plan.acts) expect(resnet.graph.nodes.some((n) => n.outputs.includes(a.tensor))).toBe(true);
});

test('first and last layer at 8 bits by default; at the target with firstLast "target"', () => {
  const p8 = planQuantization(resnet.graph, rs, { wBits: 3, aBits: 3 });
  expect(p8.layers[0].wBits).toBe(8);
  expect(p8.layers[21].wBits).toBe(8);
  expect(p8.layers[5].wBits).toBe(3);
  const fcInput = p8.acts.find((a) => a.consumers.includes('/fc/Gemm'))!;
  expect(fcInput.bits).toBe(8);
  const pt = planQuantization(resnet.graph, rs, { wBits: 3, aBits: 3, firstLast: 'target' });
  expect(pt.layers.map((l) => l.wBits)).toEqual(new Array(22).fill(3));
});

test('weights are per output channel: axis 0 for Conv and transB Gemm', () => {
  const plan = planQuantization(resnet.graph, rs, { wBits: 4, aBits: 8 });
  expect(plan.layers.every((l) => l.weightAxis === 0)).toBe(true);
  expect(planQuantization(resnet.graph, rs, { wBits: 4, aBits: 8, weightGranularity: 'tensor' }).layers.every((l) => l.weightAxis === undefined)).toBe(true);
});

test('per-layer bits by pattern and excluded layers', () => {
  const plan = planQuantization(resnet.graph, rs, { wBits: 4, aBits: 8, layerBits: [{ pattern: '/layer3/*', wBits: 6 }], exclude: ['/layer1/layer1.0/conv2'] });
  expect(plan.layers.filter((l) => l.layer.startsWith('/layer3/')).every((l) => l.wBits === 6)).toBe(true);
  const ex = plan.layers.find((l) => l.layer === '/layer1/layer1.0/conv2/Conv')!;
  expect(ex.excluded).toBe(true);
  expect(ex.weight).toBeUndefined();
  expect(plan.acts.some((a) => a.consumers.includes(ex.layer))).toBe(false);
});

test('bad options are refused before any work, naming the option', () => {
  expect(() => planQuantization(resnet.graph, rs, { wBits: 1, aBits: 8 })).toThrow(/--w-bits/);
  expect(() => planQuantization(resnet.graph, rs, { wBits: 4, aBits: 9 })).toThrow(BadOptionError);
  expect(() => planQuantization(resnet.graph, rs, { wBits: 4, aBits: 8, exclude: ['/nothing/*'] })).toThrow(/--exclude: the pattern "\/nothing\/\*" matches no layer/);
  expect(() => planQuantization(resnet.graph, rs, { wBits: 4, aBits: 8, layerBits: [{ pattern: 'zzz', wBits: 4 }] })).toThrow(BadOptionError);
});

const vitFx = fixtureModels().find((f) => f.name === 'vit');
(vitFx ? test : test.skip)('vit: both operands of the attention matmuls are quantized; MatMul weights per column', () => {
  const m = Model.load(vitFx!.file);
  const plan = planQuantization(m.graph, discoverBlocks(m.graph), { wBits: 4, aBits: 4 });
  const attn = plan.layers.filter((l) => !l.weight);
  expect(attn).toHaveLength(12);
  for (const l of attn) expect(l.actInputs).toHaveLength(2);
  const qkv = plan.layers.find((l) => l.layer.endsWith('attn/qkv/MatMul'))!;
  expect(qkv.weightAxis).toBe(1);
});
