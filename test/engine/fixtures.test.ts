/**
 * The engine against two independent truths: onnxruntime-node's logits on the same inputs, and the
 * fixture models' accuracy as measured by onnxruntime when the fixtures were made.
 */
import * as ort from 'onnxruntime-node';
import { loadDataset } from '../../lib/data/dataset';
import { evaluate } from '../../lib/engine/evaluate';
import { Model } from '../../lib/engine/model';
import { fixtureModels } from '../helpers/fixtures';

const models = fixtureModels();

describe.each(models)('$name', (fx) => {
  let model: Model;
  beforeAll(() => {
    model = Model.load(fx.file);
  });

  test('logits match onnxruntime within 1e-4 of the largest logit (batch 32 and batch 1)', async () => {
    const ds = loadDataset({ data: fx.data, labels: fx.labels, mean: fx.mean, std: fx.std, limit: 64 });
    const session = await ort.InferenceSession.create(fx.file, { intraOpNumThreads: 1 });
    for (const batch of [32, 1]) {
      for (let start = 0; start < (batch === 1 ? 3 : 64); start += batch) {
        const x = ds.batch(start, batch);
        const dims = [batch, ...ds.sampleShape];
        const ref = (await session.run({ [model.input.name]: new ort.Tensor('float32', x, dims) }))[model.output.name].data as Float32Array;
        const ours = model.runSync(x, batch);
        expect(ours.length).toBe(ref.length);
        let maxLogit = 0, maxDiff = 0;
        for (let i = 0; i < ref.length; i++) {
          maxLogit = Math.max(maxLogit, Math.abs(ref[i]));
          maxDiff = Math.max(maxDiff, Math.abs(ref[i] - ours[i]));
        }
        expect(maxDiff).toBeLessThanOrEqual(1e-4 * maxLogit);
      }
    }
    await session.release();
  });

  test('accuracy on the evaluation set equals the fixture figure (within one sample)', async () => {
    const ds = loadDataset({ data: fx.data, labels: fx.labels, mean: fx.mean, std: fx.std });
    const r = await evaluate(model, ds, { batch: 32, threads: 2 });
    expect(Math.abs(r.correct! - Math.round(fx.accuracy * ds.samples))).toBeLessThanOrEqual(1);
  });
});
