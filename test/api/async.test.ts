/**
 * Embedding in a server: two quantize runs started together in one process each give what they
 * give alone (every native job owns its state; nothing is shared between runs).
 */
import { loadDataset } from '../../lib/data/dataset';
import { Model } from '../../lib/engine/model';
import { quantize } from '../../lib/pipeline/quantize';
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
