/**
 * The ONNX backend conformance node tests (Debian package libonnx-testdata): every test whose ops
 * packptq supports must either pass (outputs within the ONNX backend tolerance, rtol 1e-3, atol
 * 1e-7 plus a float32 rounding allowance) or be refused at load with a typed error that says why.
 * A wrong number, an untyped error or a crash fails the suite. Prints the pass count per op.
 */
import * as fs from 'fs';
import * as path from 'path';
import { PackPtqError } from '../../lib/errors';
import { Tensor } from '../../lib/graph/ir';
import { importGraph, tensorFromProto } from '../../lib/graph/import';
import { OPS } from '../../lib/graph/ops';
import { specialize } from '../../lib/graph/specialize';
import { lower } from '../../lib/engine/lower';
import { NativeProgram } from '../../lib/engine/program';
import { decodeModel } from '../../lib/onnx/decode';
import { loadTensorFile } from '../../lib/onnx/tensor';

const DIR = '/usr/share/libonnx-testdata/data/node';
const present = fs.existsSync(DIR);
if (!present) console.warn(`SKIPPED: ONNX conformance tests not found at ${DIR} (apt-get install libonnx-testdata)`);

type Outcome = { test: string; ops: string[]; status: 'pass' | 'refused' | 'fail'; reason?: string };

const REFUSAL_CODES = new Set(['UNSUPPORTED_OP', 'UNSUPPORTED_MODEL', 'ONNX_EXTERNAL_DATA']);

function runOne(dir: string): Outcome {
  const test = path.basename(dir);
  let ops: string[] = [];
  try {
    const model = decodeModel(fs.readFileSync(path.join(dir, 'model.onnx')), `${test}/model.onnx`);
    const g = importGraph(model, test);
    ops = [...new Set(g.nodes.map((n) => n.opType))];
    const dataDir = path.join(dir, 'test_data_set_0');
    const runtimeInputs = g.inputs.filter((v) => !g.initializers.has(v.name));
    const given = runtimeInputs.map((_, i) => path.join(dataDir, `input_${i}.pb`)).filter((f) => fs.existsSync(f));
    const values = given.map((f, i) => {
      const proto = loadTensorFile(f);
      // The suite stores bfloat16 inputs as their uint16 bit patterns: read them as the model declares.
      if (runtimeInputs[i].dtype === 'bfloat16' && proto.data_type === 4) proto.data_type = 16;
      return tensorFromProto(proto, f);
    });
    // Inputs that are shape-like for the op reading them (Reshape's shape, Slice's starts, ...), or
    // not float32, are bound as constants: packptq computes only float32 values at run time.
    const mustBeConst = new Set<string>();
    for (const n of g.nodes) for (const k of OPS[n.opType]?.constInputs ?? []) if (n.inputs[k]) mustBeConst.add(n.inputs[k]);
    const constants = new Map<string, Tensor>();
    const inputShapes: Record<string, number[]> = {};
    const feeds: Float32Array[] = [];
    runtimeInputs.forEach((v, i) => {
      const t = values[i];
      if (!t) return; // an omitted optional input
      const unread = !g.nodes.some((n) => n.inputs.includes(v.name));
      if (t.dtype !== 'float32' || v.dtype !== 'float32' || mustBeConst.has(v.name) || unread) constants.set(v.name, t);
      else {
        inputShapes[v.name] = t.dims;
        feeds.push(t.data as Float32Array);
      }
    });
    for (let i = values.length; i < runtimeInputs.length; i++) g.inputs = g.inputs.filter((x) => x !== runtimeInputs[i]);
    const s = specialize(g, { inputShapes, constants });
    const program = new NativeProgram(lower(s), test);
    const outs = program.runSync(feeds);
    for (let k = 0; k < s.outputs.length; k++) {
      const ref = tensorFromProto(loadTensorFile(path.join(dataDir, `output_${k}.pb`)));
      const got = outs[k];
      if (got.length !== ref.data.length) return { test, ops, status: 'fail', reason: `output ${k}: ${got.length} values, expected ${ref.data.length}` };
      for (let i = 0; i < got.length; i++) {
        const want = ref.data[i];
        const tol = 1e-7 + 1e-3 * Math.abs(want) + 4e-7 * Math.abs(want);
        const ok = Number.isNaN(want) ? Number.isNaN(got[i]) : (got[i] === want || Math.abs(got[i] - want) <= tol);
        if (!ok) return { test, ops, status: 'fail', reason: `output ${k}[${i}] = ${got[i]}, expected ${want}` };
      }
    }
    return { test, ops, status: 'pass' };
  } catch (err) {
    if (err instanceof PackPtqError && REFUSAL_CODES.has(err.code)) return { test, ops, status: 'refused', reason: err.message };
    // An ONNX_DECODE or version refusal of a file we cannot read at all is also a clear refusal.
    if (err instanceof PackPtqError && err.code === 'ONNX_DECODE') return { test, ops, status: 'refused', reason: err.message };
    return { test, ops, status: 'fail', reason: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

(present ? describe : describe.skip)('ONNX conformance node tests', () => {
  const dirs = present ? fs.readdirSync(DIR).filter((d) => d.startsWith('test_')).sort().map((d) => path.join(DIR, d)) : [];
  const outcomes = dirs.map(runOne);
  const supported = (o: Outcome) => o.ops.length > 0 && o.ops.every((op) => OPS[op]);
  const relevant = outcomes.filter(supported);

  test('per-op summary', () => {
    const byOp = new Map<string, { pass: number; refused: number; fail: number }>();
    for (const o of relevant) {
      const key = o.ops.length === 1 ? o.ops[0] : `${o.test.replace(/^test_/, '').split('_')[0]} (expanded)`;
      const e = byOp.get(key) ?? { pass: 0, refused: 0, fail: 0 };
      e[o.status]++;
      byOp.set(key, e);
    }
    const lines = [...byOp.entries()].sort().map(([op, e]) => `${op.padEnd(28)} pass ${e.pass}  refused ${e.refused}  fail ${e.fail}`);
    const refused = relevant.filter((o) => o.status === 'refused').map((o) => `${o.test}: ${o.reason}`);
    console.log(`ONNX conformance: ${relevant.filter((o) => o.status === 'pass').length} passed, ` +
      `${refused.length} refused with a reason, ${relevant.filter((o) => o.status === 'fail').length} failed ` +
      `(of ${relevant.length} tests using only supported ops; ${outcomes.length} tests in all)\n${lines.join('\n')}\n\nRefused:\n${refused.join('\n')}`);
    expect(relevant.filter((o) => o.status === 'pass').length).toBeGreaterThan(100);
  });

  test('no test of a supported op computes a wrong result or fails untyped', () => {
    const failed = relevant.filter((o) => o.status === 'fail').map((o) => `${o.test} [${o.ops.join(',')}]: ${o.reason}`);
    expect(failed).toEqual([]);
  });
});
