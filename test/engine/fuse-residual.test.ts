/**
 * fuseResidual (lib/engine/fuse-residual.ts): which Adds fold into their Conv, and that the fused
 * program computes what the unfused one does (resnet20 end to end, whose residual Adds are followed
 * by Relus, and hand-made graphs) on every ISA this CPU runs.
 */
import { Model } from '../../lib/engine/model';
import { NativeProgram } from '../../lib/engine/program';
import { fuseActivations } from '../../lib/engine/fuse-activations';
import { fuseResidual } from '../../lib/engine/fuse-residual';
import { lower, ProgramDesc } from '../../lib/engine/lower';
import { specialize } from '../../lib/graph/specialize';
import { randomArray, rng, simdVariants } from '../kernels/helpers';
import { shipped } from '../helpers/fixtures';

const isas = ['scalar', ...simdVariants.filter((v) => v.supported && !v.testOnly).map((v) => v.name)];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

// x [1,4,6,6] -> conv a (3x3 pad 1, 4->4) -> t2; x -> conv b (1x1) -> t4; Add(t2, t4) -> t5;
// Relu(t5) -> t6. Tensors: 0 x, 1 wa, 2 ba, 3 wb, 4..7 as named above minus one (t2 = 4, ...).
function graph(): ProgramDesc {
  const next = rng(11);
  const s = [1, 4, 6, 6];
  return {
    tensors: [
      { shape: s },
      { shape: [4, 4, 3, 3], data: randomArray(144, next) },
      { shape: [4], data: randomArray(4, next) },
      { shape: [4, 4, 1, 1], data: randomArray(16, next) },
      { shape: s }, { shape: s }, { shape: s }, { shape: s },
    ],
    inputs: [0],
    outputs: [7],
    ops: [
      { type: 'Conv', name: 'a', inputs: [0, 1, 2], outputs: [4], attrs: { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 } },
      { type: 'Conv', name: 'b', inputs: [0, 3], outputs: [5], attrs: { kernel: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 } },
      { type: 'Add', name: 'add', inputs: [4, 5], outputs: [6], attrs: {} },
      { type: 'Relu', name: 'relu', inputs: [6], outputs: [7], attrs: {} },
    ],
  };
}

const run = (d: ProgramDesc, isa: string, x: Float32Array[]) => new NativeProgram({ ...d, isa, threads: 1 }, 'fuse-residual test').runSync(x);

describe('fuseResidual', () => {
  test('folds Add(conv, other) into the conv, which moves to the Add\'s place; then the Relu folds too', () => {
    const d = fuseActivations(fuseResidual(graph()));
    // Conv a (the Add's first operand) is fused and runs after conv b, whose output it adds.
    expect(d.ops.map((o) => `${o.type}:${o.name}`)).toEqual(['Conv:b', 'Conv:a']);
    expect(d.ops[0].inputs).toEqual([0, 3]);
    expect(d.ops[1].inputs).toEqual([0, 1, 2, 5]);
    expect(d.ops[1].outputs).toEqual([7]);
    expect(d.ops[1].attrs.activation).toBe('relu');
    const x = [randomArray(144, rng(3))];
    for (const isa of isas) expect(maxAbsDiff(run(d, isa, x)[0], run(graph(), isa, x)[0])).toBeLessThanOrEqual(1e-5);
  });

  test('leaves the Add alone when the conv output is a program output or read elsewhere', () => {
    const asOutput = graph();
    asOutput.outputs = [7, 4, 5];
    expect(fuseResidual(asOutput).ops.map((o) => o.type)).toEqual(['Conv', 'Conv', 'Add', 'Relu']);
    const readTwice = graph();
    readTwice.tensors.push({ shape: [1, 4, 6, 6] }, { shape: [1, 4, 6, 6] });
    readTwice.ops.push({ type: 'Relu', name: 'other reader of b', inputs: [5], outputs: [8], attrs: {} });
    readTwice.ops.push({ type: 'Relu', name: 'other reader of a', inputs: [4], outputs: [9], attrs: {} });
    expect(fuseResidual(readTwice).ops.map((o) => o.type)).toEqual(['Conv', 'Conv', 'Add', 'Relu', 'Relu', 'Relu']);
  });

  test('the other operand may have other readers; a conv with an activation or a broadcasting Add is left alone', () => {
    const shared = graph();
    shared.tensors.push({ shape: [1, 4, 6, 6] });
    shared.ops.push({ type: 'Relu', name: 'reads conv a', inputs: [4], outputs: [8], attrs: {} });
    shared.outputs = [7, 8];
    const d = fuseResidual(shared);
    expect(d.ops.map((o) => `${o.type}:${o.name}`)).toEqual(['Conv:a', 'Conv:b', 'Relu:relu', 'Relu:reads conv a']);
    expect(d.ops[1].inputs).toEqual([0, 3, -1, 4]);
    const x = [randomArray(144, rng(5))];
    for (const isa of isas) {
      const [f, u] = [run(d, isa, x), run(shared, isa, x)];
      expect(maxAbsDiff(f[0], u[0])).toBeLessThanOrEqual(1e-5);
      expect(maxAbsDiff(f[1], u[1])).toBe(0);
    }

    const activated = graph();
    activated.ops[0].attrs = { ...activated.ops[0].attrs, activation: 'relu' };
    activated.ops[1].attrs = { ...activated.ops[1].attrs, activation: 'relu' };
    expect(fuseResidual(activated).ops.map((o) => o.type)).toEqual(['Conv', 'Conv', 'Add', 'Relu']);

    const broadcast = graph();
    broadcast.tensors.push({ shape: [1, 4, 1, 1], data: new Float32Array(4) });
    broadcast.ops[2].inputs = [4, 8]; // conv a + a per-channel constant
    expect(fuseResidual(broadcast).ops.map((o) => o.type)).toEqual(['Conv', 'Conv', 'Add', 'Relu']);
  });

  test('resnet20: every residual Add folds, and the fused program gives the unfused logits', () => {
    const model = Model.load(shipped('resnet20.onnx'));
    const batch = 4;
    const s = specialize(model.graph, { inputShapes: { [model.input.name]: model.inputShapeFor(batch) } });
    const plain = lower(s, { fuseActivations: false });
    const fused = lower(s);
    const adds = plain.ops.filter((o) => o.type === 'Add').length;
    expect(adds).toBeGreaterThan(0);
    expect(fused.ops.filter((o) => o.type === 'Add').length).toBe(0);
    expect(fused.ops.filter((o) => o.type === 'Conv' && o.inputs.length === 4).length).toBe(adds);
    const x = [randomArray(numel(model.inputShapeFor(batch)), rng(7))];
    for (const isa of isas) {
      const a = run(fused, isa, x)[0], b = run(plain, isa, x)[0];
      const scale = Math.max(...Array.from(b, Math.abs));
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-5 * scale);
    }
  });
});

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);
