/**
 * packptq inside a worker_threads Worker: the compiled package (dist/lib/index.js, as a user's
 * worker would require it) loads the native addon in the worker's own context while this thread
 * has it loaded too, and computes there what it computes here: the same FP accuracy, and the
 * same integer codes and accuracy from a short round-to-nearest quantize. Then a worker is
 * terminated mid-run and the addon keeps working here.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import { evaluate, loadDataset, loadModel, quantize } from '../../lib/index';
import { ROOT, shipped } from '../helpers/fixtures';

const NORM = { mean: [0.286], std: [0.353] };
const MODEL = shipped('resnet20.onnx');
const CALIB = shipped('calib-1024-images-idx3-ubyte.gz');
const TEST = shipped('test-2000-images-idx3-ubyte.gz');
const ENTRY = path.join(ROOT, 'dist', 'lib', 'index.js');

// The worker's program: plain JavaScript against the compiled entry point.
const WORKER_SOURCE = `
const { parentPort, workerData: w } = require('worker_threads');
const crypto = require('crypto');
const p = require(w.entry);
(async () => {
  const model = await p.loadModel(w.model);
  const test = p.loadDataset({ data: w.test, mean: w.norm.mean, std: w.norm.std });
  const fp = await p.evaluate(model, test, { threads: 1 });
  const calib = p.loadDataset({ data: w.calib, mean: w.norm.mean, std: w.norm.std });
  const r = await p.quantize(model, { method: 'rtn', wBits: 4, aBits: 4, calib, calibSize: 128, eval: test, threads: 1 });
  const hash = crypto.createHash('sha256');
  for (const q of r.quantized.weights) hash.update(Buffer.from(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength));
  parentPort.postMessage({ fp: fp.accuracy, quant: r.quant.accuracy, codes: hash.digest('hex'), isAbortError: new p.AbortError() instanceof p.PackPtqError });
})().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));
`;

function runWorker(): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER_SOURCE, {
      eval: true, workerData: { entry: ENTRY, model: MODEL, test: TEST, calib: CALIB, norm: NORM },
    });
    let message: Record<string, unknown> | undefined;
    worker.on('message', (m) => { message = m; });
    worker.on('error', reject);
    worker.on('exit', (code) => (message ? resolve(message) : reject(new Error(`worker exited with ${code} and no message`))));
  });
}

test('loadModel, evaluate and an rtn quantize in a Worker give what they give on the main thread', async () => {
  const [inWorker, here] = await Promise.all([runWorker(), (async () => {
    const model = await loadModel(MODEL);
    const test = loadDataset({ data: TEST, ...NORM });
    const fp = await evaluate(model, test, { threads: 1 });
    const calib = loadDataset({ data: CALIB, ...NORM });
    const r = await quantize(model, { method: 'rtn', wBits: 4, aBits: 4, calib, calibSize: 128, eval: test, threads: 1 });
    const hash = require('crypto').createHash('sha256');
    for (const q of r.quantized.weights) hash.update(Buffer.from(q.codes.buffer, q.codes.byteOffset, q.codes.byteLength));
    return { fp: fp.accuracy, quant: r.quant!.accuracy, codes: hash.digest('hex') as string };
  })()]);
  expect(inWorker.error).toBeUndefined();
  expect(inWorker.fp).toBe(here.fp);
  expect(here.fp).toBeGreaterThan(0.9); // the fixture's FP accuracy, so both really ran the model
  expect(inWorker.quant).toBe(here.quant);
  expect(inWorker.codes).toBe(here.codes);
  expect(inWorker.isAbortError).toBe(true);
}, 300000);

test('terminating a worker mid-run leaves the addon working on this thread', async () => {
  const worker = new Worker(`
    const p = require(require('worker_threads').workerData.entry);
    const { parentPort, workerData: w } = require('worker_threads');
    (async () => {
      const model = await p.loadModel(w.model);
      const test = p.loadDataset({ data: w.test, mean: [0.286], std: [0.353] });
      parentPort.postMessage('started');
      for (;;) await p.evaluate(model, test, { threads: 1 });
    })();`, { eval: true, workerData: { entry: ENTRY, model: MODEL, test: TEST } });
  await new Promise<void>((resolve, reject) => { worker.once('message', () => resolve()); worker.once('error', reject); });
  await worker.terminate();
  const model = await loadModel(MODEL);
  const r = await evaluate(model, loadDataset({ data: TEST, ...NORM, limit: 256 }), { threads: 1 });
  expect(r.accuracy).toBeGreaterThan(0.9);
}, 300000);
