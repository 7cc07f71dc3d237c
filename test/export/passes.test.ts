/**
 * The graph rewrites around the export: fuseQdq (QDQ → FakeQuant on import) checked against
 * onnxruntime running the unfused QDQ graph, and the opset-21 upgrade checked by running graphs
 * before and after it in onnxruntime (and every fixture model exported without quantizers
 * against onnxruntime on the original file).
 */
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { exportQdq, NameSet, upgradeOpset } from '../../lib/export';
import { Graph, Tensor, cloneGraph } from '../../lib/graph/ir';
import { importGraph } from '../../lib/graph/import';
import { canonicalize } from '../../lib/graph/passes';
import { fuseQdq } from '../../lib/graph/passes/qdq';
import { encodeModel, loadModelFile } from '../../lib/onnx';
import { graphToModel } from '../../lib/onnx/from-graph';
import { SHARED, shipped, sharedAvailable } from '../helpers/fixtures';
import { float, graph, int, intList, node, randomTensor, rng, run, scalar } from '../helpers/graphs';

const t = (dtype: Tensor['dtype'], dims: number[], values: number[]): Tensor =>
  ({ dtype, dims, data: dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values) });

async function ortRun(g: Graph, x: Tensor, level: 'disabled' | 'all' = 'disabled'): Promise<Float32Array[]> {
  const session = await ort.InferenceSession.create(encodeModel(graphToModel(g, { opset: g.opset })), { graphOptimizationLevel: level });
  const out = await session.run({ [g.inputs[0].name]: new ort.Tensor('float32', x.data as Float32Array, x.dims) });
  await session.release();
  return g.outputs.map((o) => out[o.name].data as Float32Array);
}

const sweep = (n: number, lo: number, hi: number) => t('float32', [n], Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1)));

/** x → [Clip] → Q → DQ → [Clip] → Relu: a QDQ activation as another tool might write it. */
function qdqGraph(opts: { zero: Tensor; scale?: number; clipBefore?: [number, number]; clipAfter?: [number, number] }): Graph {
  const nodes = [];
  let x = 'x';
  const init: Record<string, Tensor> = { s: scalar(opts.scale ?? 0.05), z: opts.zero };
  if (opts.clipBefore) {
    init.lo = scalar(opts.clipBefore[0]); init.hi = scalar(opts.clipBefore[1]);
    nodes.push(node('Clip', [x, 'lo', 'hi'], ['xc'], {}, 'clip_before'));
    x = 'xc';
  }
  nodes.push(node('QuantizeLinear', [x, 's', 'z'], ['q'], {}, 'q'), node('DequantizeLinear', ['q', 's', 'z'], ['dq'], {}, 'dq'));
  let y = 'dq';
  if (opts.clipAfter) {
    init.lo2 = scalar(opts.clipAfter[0]); init.hi2 = scalar(opts.clipAfter[1]);
    nodes.push(node('Clip', [y, 'lo2', 'hi2'], ['dqc'], {}, 'clip_after'));
    y = 'dqc';
  }
  nodes.push(node('Relu', [y], ['y'], {}, 'relu'));
  return graph({ inputs: [{ name: 'x', shape: [4001] }], outputs: ['y'], nodes, init, opset: 21 });
}

describe('fuseQdq', () => {
  const x = sweep(4001, -20, 20);
  const variants: [string, Parameters<typeof qdqGraph>[0], string[]][] = [
    ['uint8', { zero: t('uint8', [], [128]) }, []],
    ['int8', { zero: t('int8', [], [-3]) }, []],
    ['uint4', { zero: t('uint4', [], [7]), scale: 0.9 }, []],
    ['int4', { zero: t('int4', [], [1]), scale: 0.7 }, []],
    ['uint8 after an off-grid Clip', { zero: t('uint8', [], [100]), clipBefore: [-1.2345, 3.21] }, []],
    ['int8 after a one-sided Clip', { zero: t('int8', [], [0]), clipBefore: [-0.5, 100] }, []],
    ['uint4 with a grid Clip after DQ', { zero: t('uint4', [], [3]), scale: 0.5, clipAfter: [-1, 4] }, []],
    ['uint4 with an off-grid Clip after DQ (kept)', { zero: t('uint4', [], [3]), scale: 0.5, clipAfter: [-1.1, 4] }, ['Clip']],
  ];
  test.each(variants)('%s: one FakeQuant, same values as onnxruntime on the QDQ graph', async (_, opts, kept) => {
    const g = qdqGraph(opts);
    const want = (await ortRun(g, x))[0];
    const fused = fuseQdq(cloneGraph(g));
    expect(fused.nodes.map((n) => n.opType)).toEqual(['FakeQuant', ...kept, 'Relu']);
    expect(fused.nodes[0].domain).toBe('packptq');
    const got = run(canonicalize(fused), { x })[0];
    for (let i = 0; i < x.data.length; i++) if (got[i] !== want[i]) throw new Error(`x=${x.data[i]}: ${got[i]} != onnxruntime ${want[i]}`);
  });

  test('scale and zero point from Constant nodes (before constant folding) fuse too', () => {
    const g = qdqGraph({ zero: t('uint8', [], [10]) });
    g.initializers.delete('s');
    g.nodes.unshift(node('Constant', [], ['s'], { value: { type: 'tensor', value: scalar(0.05) } }, 'const_s'));
    expect(fuseQdq(g).nodes.map((n) => n.opType)).toEqual(['Constant', 'FakeQuant', 'Relu']);
    expect(g.nodes[1].attrs).toMatchObject({ scale: float(Math.fround(0.05)), zero_point: int(10), qmin: int(0), qmax: int(255) });
  });

  test('left alone: per-axis activation scales, different scales on Q and DQ, quantized constants', () => {
    const perAxis = qdqGraph({ zero: t('uint8', [2], [0, 0]) });
    perAxis.initializers.set('s', t('float32', [2], [0.1, 0.2]));
    expect(fuseQdq(perAxis).nodes.map((n) => n.opType)).toEqual(['QuantizeLinear', 'DequantizeLinear', 'Relu']);
    const mismatch = qdqGraph({ zero: t('uint8', [], [0]) });
    mismatch.initializers.set('s2', scalar(0.1));
    mismatch.nodes[1].inputs[1] = 's2';
    expect(fuseQdq(mismatch).nodes.map((n) => n.opType)).toEqual(['QuantizeLinear', 'DequantizeLinear', 'Relu']);
    const weight = qdqGraph({ zero: t('uint8', [], [0]) });
    weight.initializers.set('w', randomTensor([4001], rng(1)));
    weight.nodes[0].inputs[0] = 'w';
    expect(fuseQdq(weight).nodes.map((n) => n.opType)).toEqual(['QuantizeLinear', 'DequantizeLinear', 'Relu']);
  });
});

describe('opset upgrade to 21', () => {
  const r = rng(3);
  const x = randomTensor([2, 3, 4], r);
  const build = (opset: number, nodes: ReturnType<typeof node>[], outputs: string[], init: Record<string, Tensor> = {}) =>
    graph({ inputs: [{ name: 'x', shape: [2, 3, 4] }], outputs, nodes, init, opset });
  const cases: [string, Graph][] = [
    ['ReduceMax axes attribute, keepdims 0 (opset 13)', build(13, [node('ReduceMax', ['x'], ['y'], { axes: intList([1]), keepdims: int(0) })], ['y'])],
    ['ReduceMean over the last axis, ReduceMin over all (opset 13)', build(13, [node('ReduceMean', ['x'], ['a'], { axes: intList([-1]) }), node('ReduceMin', ['x'], ['b'], {})], ['a', 'b'])],
    ['ReduceL2/ReduceSumSquare/ReduceLogSumExp/ReduceProd (opset 17)', build(17, [
      node('ReduceL2', ['x'], ['a'], { axes: intList([0, 2]) }), node('ReduceSumSquare', ['x'], ['b'], { axes: intList([2]), keepdims: int(0) }),
      node('ReduceLogSumExp', ['x'], ['c'], { axes: intList([1]) }), node('ReduceProd', ['x'], ['d'], { axes: intList([0]) })], ['a', 'b', 'c', 'd'])],
    ['ReduceSum, Squeeze, Unsqueeze, Split with attributes (opset 11)', build(11, [
      node('ReduceSum', ['x'], ['s'], { axes: intList([2]) }), node('Squeeze', ['s'], ['sq'], { axes: intList([2]) }),
      node('Unsqueeze', ['sq'], ['u'], { axes: intList([0]) }), node('Split', ['x'], ['p1', 'p2'], { axis: int(2), split: intList([1, 3]) }),
      node('Split', ['x'], ['e1', 'e2'], { axis: int(2) })], ['u', 'p1', 'p2', 'e1', 'e2'])],
    ['Softmax over the last axis (opset 11)', build(11, [node('Softmax', ['x'], ['y'], { axis: int(2) })], ['y'])],
  ];
  test.each(cases)('%s: onnxruntime gives the same values before and after', async (_, g) => {
    const before = await ortRun(g, x);
    const up = cloneGraph(g);
    upgradeOpset(up, 21, new NameSet(up), () => 3);
    expect(up.opset).toBe(21);
    expect(up.nodes.every((n) => !n.attrs.axes && !n.attrs.split)).toBe(true);
    const after = await ortRun(up, x);
    after.forEach((a, k) => expect(Array.from(a)).toEqual(Array.from(before[k])));
  });

  test('Softmax over a non-last axis before opset 13 is refused by name', () => {
    const g = build(11, [node('Softmax', ['x'], ['y'], { axis: int(1) }, 'sm')], ['y']);
    expect(() => upgradeOpset(g, 21, new NameSet(g), () => 3)).toThrow(/Softmax node "sm"/);
  });
});

const fixtures = [shipped('resnet20.onnx')];
if (sharedAvailable()) {
  for (const f of fs.readdirSync(path.join(SHARED, 'models')).sort()) if (f.endsWith('.onnx') && f !== 'resnet20.onnx') fixtures.push(path.join(SHARED, 'models', f));
} else {
  console.warn(`SKIPPED: ${SHARED}/models is absent; only resnet20 is exported without quantizers`);
}

describe.each(fixtures.map((f) => ({ name: path.basename(f), file: f })))('$name exported at opset 21 without quantizers', ({ file }) => {
  test('onnxruntime gives the original model\'s logits', async () => {
    const m = loadModelFile(file);
    const canonical = canonicalize(importGraph(m, file));
    const exported = encodeModel(exportQdq(canonical, { weights: [], acts: [] }));
    const input = canonical.inputs[0];
    const dims = input.shape!.map((d) => (typeof d === 'number' ? d : 4));
    const x = randomTensor(dims, rng(5));
    const outs: Float32Array[] = [];
    for (const model of [file, exported]) {
      const session = await ort.InferenceSession.create(model as never, { graphOptimizationLevel: 'disabled' });
      outs.push((await session.run({ [input.name]: new ort.Tensor('float32', x.data as Float32Array, dims) }))[canonical.outputs[0].name].data as Float32Array);
      await session.release();
    }
    let diff = 0, scale = 0;
    for (let i = 0; i < outs[0].length; i++) { diff = Math.max(diff, Math.abs(outs[0][i] - outs[1][i])); scale = Math.max(scale, Math.abs(outs[0][i])); }
    expect(diff).toBeLessThanOrEqual(1e-4 * scale);
  });
});
