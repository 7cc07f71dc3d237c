/**
 * Programs and GradPrograms built on a worker thread (NativeProgram.create, GradProgram.create:
 * issue 7, the event loop stays free while a network is set up) are the programs the synchronous
 * constructors build: the same outputs and gradients bit for bit, and the same typed errors.
 */
import { loadDataset } from '../../lib/data/dataset';
import { lower } from '../../lib/engine/lower';
import { Model } from '../../lib/engine/model';
import { NativeProgram } from '../../lib/engine/program';
import { BadOptionError, UnsupportedOpError } from '../../lib/errors';
import { specialize } from '../../lib/graph/specialize';
import { native } from '../../lib/native';
import { shipped } from '../helpers/fixtures';
import { graph, node } from '../helpers/graphs';

const BATCH = 4;
const model = Model.load(shipped('resnet20.onnx'));
const x = loadDataset({ data: shipped('test-2000-images-idx3-ubyte.gz'), mean: [0.286], std: [0.353], limit: BATCH }).batch(0, BATCH);
const spec = () => specialize(model.graph, { inputShapes: { [model.input.name]: model.inputShapeFor(BATCH) } });
const same = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

test('NativeProgram.create builds the program the constructor builds', async () => {
  const desc = { ...lower(spec()), threads: 1 };
  const sync = new NativeProgram(desc, 'resnet20');
  const built = await NativeProgram.create(desc, 'resnet20');
  expect(built).toBeInstanceOf(NativeProgram);
  expect(built.info).toEqual(sync.info);
  const [a] = sync.runSync([x]);
  const [b] = await built.run([x]);
  expect(a.length).toBe(BATCH * 10);
  expect(same(a, b)).toBe(true);
});

test('Model.programAsync: first calls made together share one build, and program() finds it', async () => {
  const m = Model.load(shipped('resnet20.onnx'));
  const [p, q] = await Promise.all([m.programAsync(BATCH), m.programAsync(BATCH)]);
  expect(p).toBe(q);
  expect(await m.programAsync(BATCH)).toBe(p);
  expect(m.program(BATCH)).toBe(p);
  expect(same((await p.run([x]))[0], model.runSync(x, BATCH))).toBe(true);
});

test('NativeProgram.create fails with the typed errors of the constructor', async () => {
  const g = graph({ inputs: [{ name: 'x', shape: [1, 4] }], outputs: ['y'], nodes: [node('Relu', ['x'], ['y'])] });
  const desc = lower(specialize(g, { inputShapes: { x: [1, 4] } }));
  // Found while building, on the worker thread.
  const unknown = { ...desc, ops: desc.ops.map((o) => ({ ...o, type: 'NoSuchOp' })) };
  expect(() => new NativeProgram(unknown)).toThrow(UnsupportedOpError);
  await expect(NativeProgram.create(unknown, 'the test graph')).rejects.toThrow(/the test graph: no native kernel for op NoSuchOp/);
  await expect(NativeProgram.create(unknown)).rejects.toBeInstanceOf(UnsupportedOpError);
  // Found while reading the description, on the calling thread.
  await expect(NativeProgram.create({ ...desc, isa: 'sse9' })).rejects.toBeInstanceOf(BadOptionError);
});

test('GradProgram.create: the same input gradient as the constructed GradProgram, and its option checks', async () => {
  const desc = lower(spec(), { fuseActivations: false });
  const options = { dtype: 'float32', trainable: [], threads: 1, inputGrads: true };
  const GradProgram = native().GradProgram;
  const sync = new GradProgram(desc, options);
  const built = await GradProgram.create(desc, options);
  expect(built).toBeInstanceOf(GradProgram);
  expect(built.info()).toEqual(sync.info());
  const dy = Float32Array.from({ length: BATCH * 10 }, (_, i) => ((i * 7) % 10) / 10 - 0.45);
  const a: Float32Array = await sync.inputGradAsync([x], [dy]);
  const b: Float32Array = await built.inputGradAsync([x], [dy]);
  expect(a.length).toBe(x.length);
  expect(a.some((v) => v !== 0)).toBe(true);
  expect(same(a, b)).toBe(true);
  // Options are read on the calling thread: a bad one throws there, like the constructor.
  expect(() => GradProgram.create(desc, { ...options, dtype: 'float16' })).toThrow(/Expected "float32" or "float64" for options.dtype/);
  // A description the build refuses rejects the promise.
  const unknown = { ...desc, ops: desc.ops.map((o, k) => (k === 0 ? { ...o, type: 'NoSuchOp' } : o)) };
  await expect(GradProgram.create(unknown, options)).rejects.toThrow(/NoSuchOp/);
});
