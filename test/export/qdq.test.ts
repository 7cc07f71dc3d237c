/**
 * QDQ export against two independent truths: onnxruntime-node running the exported file must give
 * the logits of packptq's simulated quantized model (simulatedGraph on the engine), and loading the
 * export back into packptq (fuseQdq + canonicalize) must reproduce the simulated model itself.
 * The QuantizedGraph is built here (test/export/helpers.ts), not by lib/quant.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as ort from 'onnxruntime-node';
import { loadDataset } from '../../lib/data/dataset';
import { writeQdqModel } from '../../lib/export';
import { Graph } from '../../lib/graph/ir';
import { importGraph } from '../../lib/graph/import';
import { canonicalize } from '../../lib/graph/passes';
import { fuseQdq } from '../../lib/graph/passes/qdq';
import { loadModelFile } from '../../lib/onnx';
import { simulatedGraph } from '../../lib/quant/simulate';
import { QuantizedGraph } from '../../lib/quant/types';
import { SHARED, shipped, sharedAvailable } from '../helpers/fixtures';
import { buildQuantizedGraph, compareLogits, runWithOutputs } from './helpers';

const BATCH = 32;
const TEST_SAMPLES = 256;
const CLASSES = 10;

const test2000 = loadDataset({ data: shipped('test-2000-images-idx3-ubyte.gz'), mean: [0.2860], std: [0.3530], limit: TEST_SAMPLES });
const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), mean: [0.2860], std: [0.3530], limit: 4 * BATCH });
const batchesOf = (ds: typeof test2000) =>
  Array.from({ length: Math.ceil(ds.samples / BATCH) }, (_, k) => {
    const count = Math.min(BATCH, ds.samples - k * BATCH);
    return { data: ds.batch(k * BATCH, count), shape: [count, ...ds.sampleShape] };
  });
const testBatches = batchesOf(test2000);
const calibBatches = batchesOf(calib);

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

const logitsOf = (g: Graph) => concat(runWithOutputs(g, [], testBatches).map((o) => o[0]));

async function ortLogits(file: string, input: string, output: string, level: 'disabled' | 'all' = 'all'): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, graphOptimizationLevel: level });
  const parts: Float32Array[] = [];
  for (const b of testBatches) parts.push((await session.run({ [input]: new ort.Tensor('float32', b.data, b.shape) }))[output].data as Float32Array);
  await session.release();
  return concat(parts);
}

interface Case { model: string; file: string; w: number; a: number }
const cases: Case[] = [
  { model: 'resnet20', file: shipped('resnet20.onnx'), w: 8, a: 8 },
  { model: 'resnet20', file: shipped('resnet20.onnx'), w: 4, a: 8 },
  { model: 'resnet20', file: shipped('resnet20.onnx'), w: 4, a: 4 },
  // 6 and 3 bits sit in uint8/uint4 storage narrower than the type: the exported Clip is exercised.
  { model: 'resnet20', file: shipped('resnet20.onnx'), w: 6, a: 6 },
  { model: 'resnet20', file: shipped('resnet20.onnx'), w: 3, a: 3 },
];
if (sharedAvailable()) {
  cases.push({ model: 'vit', file: path.join(SHARED, 'models', 'vit.onnx'), w: 8, a: 8 });
  cases.push({ model: 'vit-opset17', file: path.join(SHARED, 'models', 'vit-opset17.onnx'), w: 4, a: 8 });
  // 3-bit activations after MaxPool: stored in 8 bits, or onnxruntime's QDQ propagation makes the
  // pool run on uint4 and the session cannot be created.
  cases.push({ model: 'vgg', file: path.join(SHARED, 'models', 'vgg.onnx'), w: 3, a: 3 });
} else {
  console.warn(`SKIPPED: ${SHARED}/models is absent; the ViT and VGG QDQ exports are not tested`);
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-qdq-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const canonicals = new Map<string, Graph>();
const report: string[] = [];
afterAll(() => console.log(`QDQ export vs simulation (${TEST_SAMPLES} images):\n${report.join('\n')}`));

describe.each(cases)('$model W$w A$a', (c) => {
  let canonical: Graph, q: QuantizedGraph, file: string, sim: Float32Array;
  beforeAll(() => {
    if (!canonicals.has(c.file)) canonicals.set(c.file, canonicalize(importGraph(loadModelFile(c.file), c.file)));
    canonical = canonicals.get(c.file)!;
    q = buildQuantizedGraph(canonical, c.w, c.a, calibBatches);
    file = path.join(tmp, `${c.model}-w${c.w}a${c.a}.onnx`);
    writeQdqModel(file, canonical, q, { metadata: { 'test.case': `${c.model} W${c.w}A${c.a}` } });
    sim = logitsOf(simulatedGraph(canonical, q));
  });

  test('the file is a QDQ model: opset 21, IR 10, integer weights, float interface, metadata', () => {
    const m = loadModelFile(file);
    expect(m.ir_version).toBe(10);
    expect(m.opset_import.find((o) => !o.domain)!.version).toBe(21);
    const meta = Object.fromEntries(m.metadata_props.map((p) => [p.key, p.value]));
    expect(meta).toMatchObject({ 'packptq.w_bits': String(c.w), 'packptq.a_bits': String(c.a), 'test.case': `${c.model} W${c.w}A${c.a}` });
    expect(meta['packptq.version']).toMatch(/^\d+\.\d+\.\d+/);
    const ops = m.graph.node.map((n) => n.op_type);
    expect(ops.filter((o) => o === 'QuantizeLinear').length).toBe(q.acts.length);
    expect(ops.filter((o) => o === 'DequantizeLinear').length).toBe(q.acts.length + q.weights.length);
    // 2–4-bit activations produced by a Clip/Relu are stored in 8 bits (onnxruntime cannot load
    // Clip/Relu → 4-bit QuantizeLinear), and so are those after a MaxPool or Slice (its QDQ
    // propagation would run them on 4-bit codes); their narrower grid then needs its own Clip.
    const producer = (t: string) => canonical.nodes.find((n) => n.outputs.includes(t))?.opType ?? '';
    const eightBit = (t: string) => ['Clip', 'Relu', 'MaxPool', 'Slice'].includes(producer(t));
    const widened = q.acts.filter((a) => a.params.bits <= 4 && eightBit(a.tensor)).length;
    const exactRange = q.acts.filter((a) => a.params.bits === 8 || (a.params.bits === 4 && !eightBit(a.tensor))).length;
    expect(ops.filter((o) => o === 'Clip').length).toBe(canonical.nodes.filter((n) => n.opType === 'Clip').length + q.acts.length - exactRange);
    expect(widened).toBeLessThanOrEqual(q.acts.length);
    expect(ops).not.toContain('FakeQuant');
    const storage = c.w <= 4 ? 22 : 3; // INT4 : INT8
    for (const w of q.weights) expect(m.graph.initializer.find((t) => t.name === `${w.weight}_quantized`)?.data_type).toBe(storage);
    // No FP copy of a quantized weight is left in the file.
    for (const w of q.weights) expect(m.graph.initializer.some((t) => t.name === w.weight)).toBe(false);
    for (const v of [...m.graph.input, ...m.graph.output]) expect(v.type!.tensor_type!.elem_type).toBe(1);
    const names = m.graph.node.flatMap((n) => n.output);
    expect(new Set(names).size).toBe(names.length);
  });

  // Two runs: with graph optimizations disabled onnxruntime executes the ops as written (float
  // Conv/MatMul between Q/DQ pairs); by default it substitutes integer kernels (QLinearMatMul,
  // MatMulIntegerToFloat, ...) whose exact integer accumulation and fixed-point requantization
  // round a few near-tie values to the neighbouring code, which then propagates. Both must agree.
  test.each(['disabled', 'all'] as const)('onnxruntime (graph optimizations: %s) runs it and matches the simulated model', async (level) => {
    const ref = await ortLogits(file, canonical.inputs[0].name, canonical.outputs[0].name, level);
    const r = compareLogits(ref, sim, CLASSES);
    report.push(`  ${c.model} W${c.w}A${c.a}: onnxruntime (${level}) vs simulation max|Δ|/max|logit| = ${r.maxRel.toExponential(2)}, top-1 agreement ${(100 * r.agreement).toFixed(2)}%`);
    // With the integer kernels, a near-tie code that rounds the other way changes everything after
    // it, and which near-ties flip depends on the last bits of both sides' float sums: vit W8A8
    // gave 100 % against packptq's scalar kernels and 99.22 % (2 of 256 images) against its AVX-512
    // ones on the same host, and vit W3A3 moved 20 of 10 000 images (README). A wrong scale, zero
    // point or axis moves far more than 1 %.
    expect(r.agreement).toBeGreaterThanOrEqual(level === 'disabled' ? 0.995 : 0.99);
    expect(r.maxRel).toBeLessThanOrEqual(level === 'disabled' ? 0.02 : 0.15);
  });

  test('packptq loads its own export back (fuseQdq + canonicalize) and reproduces the simulated model', () => {
    // Model.load runs canonicalize; fuseQdq is applied first here, as canonicalize will do itself.
    const g = canonicalize(fuseQdq(importGraph(loadModelFile(file), file)));
    expect(g.nodes.some((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear')).toBe(false);
    // The same canonical layers as before the export (biases back in their layers), plus the quantizers.
    const counts = (h: Graph) => h.nodes.reduce((m, n) => m.set(n.opType, (m.get(n.opType) ?? 0) + 1), new Map<string, number>());
    expect(counts(g)).toEqual(counts(canonical).set('FakeQuant', q.acts.length));
    const back = logitsOf(g);
    const r = compareLogits(back, sim, CLASSES);
    report.push(`  ${c.model} W${c.w}A${c.a}: re-imported export vs simulation max|Δ|/max|logit| = ${r.maxRel.toExponential(2)}, top-1 agreement ${(100 * r.agreement).toFixed(2)}%`);
    expect(r.maxRel).toBeLessThanOrEqual(1e-5);
    expect(r.agreement).toBe(1);
  });
});
