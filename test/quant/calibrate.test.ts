/** Calibration: weight quantizers, the histogram MSE search against the exact one, the simulated graph. */
import { chooseSubset, subsetBatch } from '../../lib/data/subset';
import { loadDataset } from '../../lib/data/dataset';
import { Model } from '../../lib/engine/model';
import { discoverBlocks } from '../../lib/graph/blocks';
import { native } from '../../lib/native';
import { calibrateWeights, quantizeWeight } from '../../lib/quant/calibrate';
import { HistogramMse } from '../../lib/quant/histogram-mse';
import { planQuantization } from '../../lib/quant/plan';
import { simulatedGraph } from '../../lib/quant/simulate';
import { fakeQuantValue } from '../../lib/quant/types';
import { shipped } from '../helpers/fixtures';
import { randomTensor, rng } from '../helpers/graphs';

const model = Model.load(shipped('resnet20.onnx'));

test('weight codes stay on the grid and reconstruct the weights within half a step inside the clipping range', async () => {
  const r = rng(11);
  for (const bits of [2, 4, 8]) {
    const w = randomTensor([6, 3, 3, 3], r, -2, 2);
    const { params, codes } = await quantizeWeight(w.data as Float32Array, w.dims, bits, 0, 'minmax');
    expect(params.scale).toHaveLength(6);
    const per = 27;
    for (let i = 0; i < codes.length; i++) {
      expect(codes[i]).toBeGreaterThanOrEqual(0);
      expect(codes[i]).toBeLessThanOrEqual(2 ** bits - 1);
      const c = Math.floor(i / per);
      const deq = params.scale[c] * (codes[i] - params.zeroPoint[c]);
      expect(Math.abs(deq - w.data[i])).toBeLessThanOrEqual(params.scale[c] / 2 + 1e-6);
    }
  }
});

test('the MSE init never does worse than min-max on the weights (L2.4 error)', async () => {
  const g = model.graph;
  const plan = planQuantization(g, discoverBlocks(g), { wBits: 3, aBits: 8 });
  const mse = await calibrateWeights(g, plan, 'mse');
  const mm = await calibrateWeights(g, plan, 'minmax');
  const err = (wq: typeof mse[number]) => {
    const t = g.initializers.get(wq.weight)!;
    const per = t.data.length / wq.params.scale.length;
    let e = 0;
    for (let i = 0; i < t.data.length; i++) {
      const c = Math.floor(i / per);
      e += Math.abs(t.data[i] - wq.params.scale[c] * (wq.codes[i] - wq.params.zeroPoint[c])) ** 2.4;
    }
    return e;
  };
  mse.forEach((w, k) => expect(err(w)).toBeLessThanOrEqual(err(mm[k]) * (1 + 1e-6)));
});

test('the histogram MSE search picks a clipping range as good as the exact search (within 1% of its error)', async () => {
  const ds = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), mean: [0.286], std: [0.353] });
  const sub = chooseSubset(ds, 16, 0);
  const g = model.graph;
  const plan = planQuantization(g, discoverBlocks(g), { wBits: 4, aBits: 4 });
  const tensors = [0, 3, 9, 16].map((k) => plan.acts[k].tensor);
  const capture = model.captureProgram(8, tensors);
  const [batchA, batchB] = [capture.runSync([subsetBatch(sub, 0, 8)]), capture.runSync([subsetBatch(sub, 8, 8)])];
  for (const bits of [3, 4, 8]) {
    for (let k = 0; k < tensors.length; k++) {
      const h = new HistogramMse();
      const exact = new (native().quant.MseStream)('default', { bits, signed: false, p: 2.4, candidates: 80 });
      for (const b of [batchA, batchB]) { await h.observe(b[k]); exact.observe(b[k]); }
      for (const b of [batchA, batchB]) { await h.accumulate(b[k]); exact.accumulate(b[k]); }
      const hr = await h.result(bits);
      const er = exact.result();
      // The exact L2.4 error of the histogram's choice, against the exact optimum.
      const errors: Float64Array = er.errors;
      const idx = Math.round((1 - hr.ratio) / 0.01);
      expect(errors[idx]).toBeLessThanOrEqual(errors[er.index[0]] * 1.01);
    }
  }
});

test('the simulated graph: a FakeQuant per activation quantizer, weights replaced by their grid values', async () => {
  const g = model.graph;
  const plan = planQuantization(g, discoverBlocks(g), { wBits: 4, aBits: 4 });
  const weights = await calibrateWeights(g, plan, 'mse');
  const acts = plan.acts.map((a) => ({ tensor: a.tensor, consumers: a.consumers, params: { bits: 4, signed: false, qmin: 0, qmax: 15, scale: Float32Array.of(0.1), zeroPoint: Int32Array.of(0) } }));
  const sim = simulatedGraph(g, { weights, acts });
  expect(sim.nodes.filter((n) => n.opType === 'FakeQuant')).toHaveLength(plan.acts.length);
  const w = weights[3];
  const layer = sim.nodes.find((n) => n.name === w.layer)!;
  const q = sim.initializers.get(layer.inputs[1])!;
  const per = q.data.length / w.params.scale.length;
  for (let i = 0; i < q.data.length; i += 7) {
    const c = Math.floor(i / per);
    const onGrid = fakeQuantValue(q.data[i], w.params.scale[c], w.params.zeroPoint[c], 0, 15);
    expect(q.data[i]).toBeCloseTo(onGrid, 6);
  }
  // The FP graph is untouched.
  expect(g.nodes.some((n) => n.opType === 'FakeQuant')).toBe(false);
});
