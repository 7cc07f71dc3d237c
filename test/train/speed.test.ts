/**
 * Float32 speed of one reconstruction iteration's forward + backward on resnet20's first two
 * residual blocks as one unit (batch 32, 16 channels, 28×28, four 3×3 convs, relus, two adds), with
 * weights and biases trainable and no gradient for the unit's input (as in reconstruction).
 * Prints, does not assert: machines here are shared and absolute times drift. Both thread counts
 * are measured in the same run, interleaved, so their ratio is meaningful.
 */
import { native } from '../../lib/native';
import { Builder, input, numel, param, randArray } from './helpers';

function resnetTwoBlocks(n: number): Builder {
  const b = new Builder();
  const s = [n, 16, 28, 28];
  const conv = { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
  let seed = 7;
  let x = b.add(input(s, randArray(numel(s), seed++, -1, 1)));
  for (let blk = 0; blk < 2; ++blk) {
    const w = () => b.add(param([16, 16, 3, 3], randArray(16 * 144, seed++, -0.12, 0.12)));
    const bias = () => b.add(param([16], randArray(16, seed++, -0.05, 0.05)));
    const [y1] = b.op('Conv', [x, w(), bias()], [s], conv);
    const [r1] = b.op('Relu', [y1], [s]);
    const [y2] = b.op('Conv', [r1, w(), bias()], [s], conv);
    const [a] = b.op('Add', [y2, x], [s]);
    [x] = b.op('Relu', [a], [s]);
  }
  return b.output(x);
}

test('resnet20 two-block unit, batch 32: forward+backward iterations/s (printed)', () => {
  const b = resnetTwoBlocks(32);
  const progs = [1, 2].map((threads) => new (native().GradProgram)(b.desc, { dtype: 'float32', trainable: b.trainable, threads, inputGrads: false }));
  const x = Float32Array.from(b.feeds[0]);
  const g = [Float32Array.from(randArray(x.length, 99, -1, 1))];
  const step = (p: any) => {
    p.forward([x]);
    p.backward(g);
  };
  progs.forEach((p) => [0, 1].forEach(() => step(p)));  // warm-up: first-touch of buffers
  const iters = 10;
  const rounds = 3;
  const seconds = [0, 0];
  for (let r = 0; r < rounds; ++r)
    progs.forEach((p, k) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters; ++i) step(p);
      seconds[k] += Number(process.hrtime.bigint() - t0) / 1e9;
    });
  // Per-op profile in a separate pass (profiling adds two clock reads per op).
  const shares = progs.map((p) => {
    p.setProfiling(true);
    p.resetProfile();
    for (let i = 0; i < iters; ++i) step(p);
    const prof: { type: string; forward: number; backward: number }[] = p.profile();
    p.setProfiling(false);
    const total = prof.reduce((s, o) => s + o.forward + o.backward, 0);
    const conv = prof.filter((o) => o.type === 'Conv').reduce((s, o) => s + o.forward + o.backward, 0);
    return { nativeMsPerIter: (1000 * total) / iters, convShare: conv / total };
  });
  // 4 conv forwards + 4 weight gradients + 3 input gradients (the unit input needs none).
  const gflop = (11 * 2 * 32 * 16 * 144 * 784) / 1e9;
  const lines = progs.map((p, k) => {
    const its = (rounds * iters) / seconds[k];
    return `threads ${k + 1}: ${its.toFixed(2)} it/s (${(1000 / its).toFixed(1)} ms/it incl. JS copies; ` +
      `${shares[k].nativeMsPerIter.toFixed(1)} ms in ops), conv/GEMM share ${(100 * shares[k].convShare).toFixed(1)}%, ` +
      `${(gflop * its).toFixed(1)} GFLOP/s on the convs' ${gflop.toFixed(2)} GFLOP`;
  });
  console.log(`GradProgram float32 speed, isa ${progs[0].info().isa}, resnet20 blocks 1-2 at batch 32:\n  ${lines.join('\n  ')}`);
  expect(seconds[0]).toBeGreaterThan(0);
});
