/** The method-defaults table refuses short runs and counts every unit of a resumed run. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { defaultsTable, rowFromReport } from '../../benchmarks/defaults';

function report(extra: Record<string, unknown>, iters = [20000, 20000]): string {
  const r = {
    date: '2026-11-27T00:00:00Z', model: '/x/resnet20.onnx', command: 'packptq quantize ...', method: 'qdrop',
    options: { wBits: 3, aBits: 3, threads: 1, iters: 20000 },
    accuracy: { fp: 0.9286, quantized: 0.9259, samples: 10000 },
    size: { avgWeightBits: 3.01, avgActBits: 3.26 },
    pack: null,
    units: [
      { name: 'u0', iters: iters[0], seconds: 600, lossStart: 2, lossEnd: 1 },
      { name: 'u1', iters: iters[1], seconds: 1200, lossStart: 4, lossEnd: 3 },
    ],
    seconds: 1300, times: { reconstruct: 1200 },
    ...extra,
  };
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'packptq-defaults-')), 'r.json');
  fs.writeFileSync(f, JSON.stringify(r));
  return f;
}

test('a run in one process keeps its own wall time', () => {
  const row = rowFromReport(report({}));
  expect(row.seconds).toBe(1300);
  expect(row.resumed).toBe(false);
  expect(defaultsTable([row])).toContain('| 21.7 min |');
});

test('a resumed run adds the units an earlier process finished, and is marked', () => {
  // This process: 100 s outside reconstruction + unit u1 (1200 s); u0 (600 s) ran before.
  const row = rowFromReport(report({ resumedFromUnit: 1 }));
  expect(row.seconds).toBe(1900);
  expect(defaultsTable([row])).toContain('31.7 min †');
});

test('a report whose units ran fewer iterations than asked is refused', () => {
  expect(() => rowFromReport(report({}, [20000, 1000]))).toThrow(/u1 ran 1000 of 20000/);
});
