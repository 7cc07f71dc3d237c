/**
 * The importance score on a tiny residual network whose head is linear, so every quantity has an
 * independent closed form: L_b, g = W_hᵀ(P_fp − P_q), and the curvature of L along Δz from a
 * central finite difference of L itself.
 */
import { makeDataset } from '../../lib/data/dataset';
import { chooseSubset } from '../../lib/data/subset';
import { Model } from '../../lib/engine/model';
import { discoverBlocks } from '../../lib/graph/blocks';
import { blockOnly, blockScores } from '../../lib/pack/score';
import { calibrateWeights } from '../../lib/quant/calibrate';
import { planQuantization } from '../../lib/quant/plan';
import { simulatedGraph } from '../../lib/quant/simulate';
import { graph, int, node, randomTensor, rng } from '../helpers/graphs';

const r = rng(21);
const D = 6, C = 4;
const init = {
  ws: randomTensor([D, D], r), w1: randomTensor([D, D], r), w2: randomTensor([D, D], r, -0.5, 0.5), wh: randomTensor([C, D], r, -2, 2), bh: randomTensor([C], r),
};
const g = graph({
  inputs: [{ name: 'x', shape: ['n', D] }], outputs: ['logits'],
  nodes: [
    node('Gemm', ['x', 'ws'], ['a'], {}, '/stem/Gemm'), node('Relu', ['a'], ['a1'], {}, '/stem/Relu'),
    node('Gemm', ['a1', 'w1'], ['b'], {}, '/block/fc1/Gemm'), node('Relu', ['b'], ['b1'], {}, '/block/Relu'),
    node('Gemm', ['b1', 'w2'], ['c'], {}, '/block/fc2/Gemm'), node('Add', ['c', 'a1'], ['z'], {}, '/block/Add'),
    node('Gemm', ['z', 'wh', 'bh'], ['logits'], { transB: int(1) }, '/head/Gemm'),
  ],
  init,
});

function softmax(v: number[]): number[] {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
const head = (z: number[]) => Array.from({ length: C }, (_, c) => z.reduce((a, zi, i) => a + zi * init.wh.data[c * D + i], init.bh.data[c]));
const kl = (p: number[], q: number[]) => p.reduce((a, pi, i) => a + (pi > 0 ? pi * Math.log(pi / q[i]) : 0), 0);

test('S_b is minus the curvature of L along Δz (finite differences), L_b and E[gᵀΔz] match closed forms', async () => {
  const model = Model.fromGraph(g, 'tiny');
  const s = discoverBlocks(g);
  expect(s.blocks).toHaveLength(1);
  const plan = planQuantization(g, s, { wBits: 8, aBits: 8, firstLast: 'target' });
  const q = { weights: await calibrateWeights(g, plan, 'minmax'), acts: [] };
  const x = randomTensor([1, D], r);
  const ds = makeDataset({ source: 'tiny', data: x.data as Float32Array, sampleShape: [D] });
  const [score] = await blockScores(model, s, q, chooseSubset(ds, 1, 0), { batch: 1, threads: 1 });

  const capture = (m: Model) => m.captureProgram(1, ['z']).runSync([x.data as Float32Array])[0];
  const zf = Array.from(capture(model));
  const zq = Array.from(capture(Model.fromGraph(simulatedGraph(g, blockOnly(q, s.blocks[0].layers)), 'q')));
  const pq = softmax(head(zq));
  const L = (z: number[]) => kl(pq, softmax(head(z)));
  const dz = zf.map((v, i) => v - zq[i]);
  const norm2 = dz.reduce((a, v) => a + v * v, 0);
  expect(score.loss).toBeCloseTo(L(zf), 6);
  // g = W_hᵀ (P_fp − P_q)
  const pf = softmax(head(zf));
  const gz = Array.from({ length: D }, (_, i) => pf.reduce((a, p, c) => a + (p - pq[c]) * init.wh.data[c * D + i], 0));
  expect(score.gDz).toBeCloseTo(gz.reduce((a, gi, i) => a + gi * dz[i], 0), 5);
  expect(score.dz2).toBeCloseTo(norm2, 5);
  // Curvature along u = Δz/|Δz| at z_fp by central differences (h small against |Δz|).
  const u = dz.map((v) => v / Math.sqrt(norm2));
  const h = 1e-3;
  const phi = (t: number) => L(zf.map((v, i) => v + t * u[i]));
  const fd = (phi(h) - 2 * phi(0) + phi(-h)) / (h * h);
  expect(norm2).toBeGreaterThan(0);
  // The published sign: S_b = (L_b − E[gᵀΔz]) / (½E‖Δz‖²) = −μ (see lib/pack/score.ts).
  expect(Math.abs(score.paper.score + fd) / Math.abs(fd)).toBeLessThan(0.1);
  expect(score.omega).toBeCloseTo(score.paper.score * score.absDz, 12);
  expect(score.release.score).toBeCloseTo((score.loss - score.gDz / D) / (0.5 * score.dz2 / D), 9);
});
