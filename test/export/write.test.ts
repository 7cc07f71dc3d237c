/**
 * Writing exports: atomic (a failed write throws IoError and leaves neither the target nor a
 * temporary file), and quantizers that cannot be exported are refused by name before any write.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { exportQdq, writeQdqModel } from '../../lib/export';
import { BadOptionError, IoError } from '../../lib/errors';
import { Graph } from '../../lib/graph/ir';
import { loadModelFile } from '../../lib/onnx';
import { QuantizedGraph, grid } from '../../lib/quant/types';
import { graph, node, randomTensor, rng } from '../helpers/graphs';

function small(): { g: Graph; q: QuantizedGraph } {
  const g = graph({
    inputs: [{ name: 'x', shape: ['batch', 4] }], outputs: ['y'],
    nodes: [node('Relu', ['x'], ['h'], {}, 'relu'), node('Gemm', ['h', 'w', 'b'], ['y'], { transB: { type: 'int', value: 1 } }, 'fc')],
    init: { w: randomTensor([3, 4], rng(1)), b: randomTensor([3], rng(2)) },
  });
  const q: QuantizedGraph = {
    weights: [{ layer: 'fc', weight: 'w', params: { ...grid(8, true), scale: Float32Array.of(0.01, 0.02, 0.03), zeroPoint: Int32Array.of(0, 1, -1), axis: 0 }, codes: Int32Array.from({ length: 12 }, (_, i) => i - 6) }],
    acts: [{ tensor: 'h', consumers: ['fc'], params: { ...grid(8, false), scale: Float32Array.of(0.1), zeroPoint: Int32Array.of(0) } }],
  };
  return { g, q };
}

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-write-')); });
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('writeQdqModel', () => {
  test('writes a model that decodes, leaving only the target file', () => {
    const { g, q } = small();
    const file = path.join(dir, 'm.onnx');
    writeQdqModel(file, g, q);
    expect(fs.readdirSync(dir)).toEqual(['m.onnx']);
    expect(loadModelFile(file).graph.node.map((n) => n.op_type)).toEqual(['Relu', 'DequantizeLinear', 'QuantizeLinear', 'DequantizeLinear', 'Gemm', 'Add']);
  });

  test('into a folder that does not exist: IoError naming the file, nothing written', () => {
    const { g, q } = small();
    const file = path.join(dir, 'missing', 'm.onnx');
    expect(() => writeQdqModel(file, g, q)).toThrow(IoError);
    expect(() => writeQdqModel(file, g, q)).toThrow(file);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('onto a directory (the rename fails after the temporary file was written): IoError, no temporary file left', () => {
    const { g, q } = small();
    const target = path.join(dir, 'taken.onnx');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), 'x');
    expect(() => writeQdqModel(target, g, q)).toThrow(IoError);
    expect(fs.readdirSync(dir)).toEqual(['taken.onnx']);
    expect(fs.readdirSync(target)).toEqual(['keep']);
  });

  test('an existing file is replaced only when the new one is complete', () => {
    const { g, q } = small();
    const file = path.join(dir, 'm.onnx');
    fs.writeFileSync(file, 'old');
    const bad = { ...q, acts: [{ ...q.acts[0], consumers: ['nope'] }] };
    expect(() => writeQdqModel(file, g, bad)).toThrow(BadOptionError);
    expect(fs.readFileSync(file, 'utf8')).toBe('old');
    writeQdqModel(file, g, q);
    expect(fs.readFileSync(file).length).toBeGreaterThan(100);
    expect(fs.readdirSync(dir)).toEqual(['m.onnx']);
  });
});

describe('exportQdq refuses quantizers it cannot write, naming them', () => {
  const cases: [string, (q: QuantizedGraph) => void, RegExp][] = [
    ['unknown layer', (q) => { q.weights[0].layer = 'ghost'; }, /layer "ghost".*no node "ghost"/],
    ['code outside the grid', (q) => { q.weights[0].codes[3] = 200; }, /code 200 at element 3 is outside \[-128, 127\]/],
    ['wrong number of codes', (q) => { q.weights[0].codes = new Int32Array(5); }, /5 codes for a weight of 12 elements/],
    ['per-channel scales on the wrong axis', (q) => { q.weights[0].params.axis = 1; }, /3 per-channel scales do not match axis 1/],
    ['zero point outside the storage type', (q) => { q.acts[0].params.zeroPoint[0] = 300; }, /"h": zero point 300/],
    ['per-channel activation', (q) => { q.acts[0].params.scale = Float32Array.of(1, 2); q.acts[0].params.zeroPoint = Int32Array.of(0, 0); }, /per tensor/],
    ['non-positive scale', (q) => { q.acts[0].params.scale[0] = 0; }, /scale 0/],
    ['9 bits', (q) => { q.acts[0].params.bits = 9; }, /1 to 8 bits/],
    ['consumer that does not read the tensor', (q) => { q.acts[0].consumers = ['relu']; }, /consumer "relu" does not read "h"/],
    ['tensor nobody produces', (q) => { q.acts[0].tensor = 'nothing'; }, /no node, input or initializer provides "nothing"/],
  ];
  test.each(cases)('%s', (_, spoil, message) => {
    const { g, q } = small();
    spoil(q);
    expect(() => exportQdq(g, q)).toThrow(BadOptionError);
    expect(() => exportQdq(g, q)).toThrow(message);
  });

  test('the canonical graph is not modified by an export', () => {
    const { g, q } = small();
    const before = JSON.stringify({ nodes: g.nodes, inputs: g.inputs, init: [...g.initializers.keys()] });
    exportQdq(g, q);
    expect(JSON.stringify({ nodes: g.nodes, inputs: g.inputs, init: [...g.initializers.keys()] })).toBe(before);
  });
});
