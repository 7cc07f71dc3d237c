/**
 * Embedding in a server: two quantize runs started together in one process each give what they
 * give alone (every native job owns its state; nothing is shared between runs); an abort in any
 * phase ends a run promptly and cleanly.
 */
import { loadDataset } from '../../lib/data/dataset';
import { Model } from '../../lib/engine/model';
import { AbortError } from '../../lib/errors';
import { ProgressEvent, QuantizeOptions, quantize } from '../../lib/pipeline/quantize';
import { shipped } from '../helpers/fixtures';

const NORM = { mean: [0.286], std: [0.353] };
const model = Model.load(shipped('resnet20.onnx'));
const calib = loadDataset({ data: shipped('calib-1024-images-idx3-ubyte.gz'), ...NORM });
const run = () => quantize(model, { method: 'qdrop', wBits: 4, aBits: 4, calib, calibSize: 64, batch: 16, iters: 40, threads: 1, seed: 9 });

test('two runs started together give the results each gives alone', async () => {
  const alone = await run();
  const [a, b] = await Promise.all([run(), run()]);
  for (const r of [a, b])
    r.quantized.weights.forEach((w, k) => expect(Buffer.from(w.codes.buffer).equals(Buffer.from(alone.quantized.weights[k].codes.buffer))).toBe(true));
}, 300000);

/**
 * Cancelling in each phase. The abort comes from the phase's first progress event; the run must
 * reject with AbortError (code ABORT_ERR) before the phase's next unit of work: at most one more
 * event of that phase (the batch, or the reconstruction iterations, already in flight), none of a
 * later phase. And nothing follows the rejection: no progress event arrives afterwards (no native
 * job was left running to report).
 */
describe('an abort', () => {
  const evalSet = loadDataset({ data: shipped('test-2000-images-idx3-ubyte.gz'), ...NORM, limit: 256 });
  const cases: [ProgressEvent['phase'], Partial<QuantizeOptions>][] = [
    ['calibrate', { method: 'rtn', calibSize: 256 }],
    ['score', { method: 'packptq', calibSize: 128 }],
    // A million iterations: only a prompt cancellation lets this test finish.
    ['reconstruct', { method: 'qdrop', iters: 1_000_000 }],
    ['evaluate', { method: 'rtn' }],
  ];
  test.each(cases)('during %s rejects promptly with AbortError and leaves nothing behind', async (phase, extra) => {
    const ac = new AbortController();
    const events: ProgressEvent[] = [];
    let abortedAfter = -1;
    const err = await quantize(model, {
      wBits: 4, aBits: 4, calib, calibSize: 64, batch: 16, iters: 40, eval: evalSet, threads: 1, seed: 9, ...extra,
      signal: ac.signal,
      onProgress: (e) => {
        events.push(e);
        if (e.phase === phase && abortedAfter < 0) {
          abortedAfter = events.length;
          ac.abort();
        }
      },
    }).then(() => undefined, (e) => e);
    expect(err).toBeInstanceOf(AbortError);
    expect(err.code).toBe('ABORT_ERR');
    expect(abortedAfter).toBeGreaterThan(0);
    const after = events.slice(abortedAfter);
    expect(after.length).toBeLessThanOrEqual(1);
    for (const e of after) expect(e.phase).toBe(phase);
    // Nothing comes later: give a stray native job time to report.
    const seen = events.length;
    await new Promise((r) => setTimeout(r, 500));
    expect(events.length).toBe(seen);
  }, 300000);
});
