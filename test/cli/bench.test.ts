/**
 * `packptq bench` as a user runs it, on a tiny configuration (short rounds, a small GEMM) so it
 * takes a few seconds. Speeds cannot be checked against a truth on a shared machine, so the test
 * checks the structure and the arithmetic tying the numbers together, not their size.
 */
import { cli } from '../helpers/cli';
import { shipped } from '../helpers/fixtures';

const MODEL = shipped('resnet20.onnx');
const TINY = ['--batch', '4', '--threads', '2', '--seconds', '0.05', '--rounds', '1', '--gemm-size', '64'];

test('--json prints one object: positive speeds for threads 1..N, and ratios consistent with them', () => {
  const r = cli(['bench', MODEL, ...TINY, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const lines = r.stdout.trim().split('\n');
  expect(lines).toHaveLength(1);
  const j = JSON.parse(lines[0]);
  expect(j.model).toBe(MODEL);
  expect(j.batch).toBe(4);
  expect(j.input).toBe('pattern');
  expect([j.wBits, j.aBits]).toEqual([8, 8]);
  expect(j.machine.logicalCpus).toBeGreaterThan(0);
  expect(['scalar', 'avx2', 'avx512']).toContain(j.machine.isa);
  expect(j.throughput.map((t: { threads: number }) => t.threads)).toEqual([1, 2]);
  for (const t of j.throughput) {
    expect(t.imagesPerSecond).toBeGreaterThan(0);
    expect(t.simulatedImagesPerSecond).toBeGreaterThan(0);
    expect(t.fakeQuantOverhead).toBeCloseTo(t.imagesPerSecond / t.simulatedImagesPerSecond - 1, 10);
  }
  expect(j.gemm).toMatchObject({ isa: j.machine.isa, M: 64, N: 64, K: 64 });
  expect(j.gemm.rows.map((g: { threads: number }) => g.threads)).toEqual([1, 2]);
  for (const g of j.gemm.rows) {
    expect(g.gflops).toBeGreaterThan(0);
    expect(g.peakGflops).toBeGreaterThan(0);
    expect(g.fractionOfPeak).toBeCloseTo(g.gflops / g.peakGflops, 10);
  }
  expect(j.seconds).toBeGreaterThan(0);
});

test('the table names every thread count and the fake-quant overhead; --data times real samples', () => {
  const r = cli(['bench', MODEL, ...TINY, '--threads', '1', '--quiet', '--data', shipped('test-2000-images-idx3-ubyte.gz'), '--mean', '0.2860', '--std', '0.3530']);
  expect(r.code).toBe(0);
  expect(r.stderr).toBe('');
  expect(r.stdout).toMatch(/input: data/);
  expect(r.stdout).toMatch(/threads\s+FP img\/s\s+W8A8 simulated img\/s\s+fake-quant overhead/);
  expect(r.stdout).toMatch(/^\s+1\s+\d+\s+\d+\s+-?\d+\.\d %$/m);
  expect(r.stdout).toMatch(/GEMM 64x64x64 \w+ GFLOP\/s/);
});

test('bad usage exits 2 with one line naming the option; a missing model exits 1', () => {
  const bad = cli(['bench', MODEL, '--seconds', '0']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/--seconds/);
  const badBits = cli(['bench', MODEL, '--w-bits', '9']);
  expect(badBits.code).toBe(2);
  expect(badBits.stderr).toMatch(/--w-bits/);
  const missing = cli(['bench', 'no-such-model.onnx', ...TINY]);
  expect(missing.code).toBe(1);
  expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  expect(missing.stderr).toMatch(/no-such-model\.onnx.*\[IO\]/);
});

test('--help of the program and of every command has an Examples section; bench is listed and lists its options', () => {
  for (const cmd of ['eval', 'inspect', 'quantize', 'analyze', 'bench']) {
    const r = cli([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\nExamples:\n\s+packptq /);
  }
  const top = cli(['--help']);
  expect(top.code).toBe(0);
  expect(top.stdout).toMatch(/\n {2}bench \[options\] <model>/);
  expect(top.stdout).toMatch(/\nExamples:\n\s+packptq /);
  const h = cli(['bench', '--help']).stdout;
  for (const opt of ['--batch', '--threads', '--seconds', '--rounds', '--gemm-size', '--json']) expect(h).toContain(opt);
});
