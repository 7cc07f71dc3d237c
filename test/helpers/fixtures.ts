/**
 * Where test data lives: the small set shipped in test/fixtures (always there), and the full fixture
 * folder ../shared/fixtures when it sits beside the repository (CI and developer machines).
 */
import * as fs from 'fs';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');
export const SHIPPED = path.join(ROOT, 'test', 'fixtures');
export const SHARED = path.resolve(ROOT, '..', 'shared', 'fixtures');

export const shipped = (name: string): string => path.join(SHIPPED, name);

export function sharedAvailable(): boolean {
  return fs.existsSync(path.join(SHARED, 'models'));
}

/** Fixture models to test: the shipped resnet20 always, the rest when ../shared is present. */
export interface FixtureModel {
  name: string;
  file: string;
  data: string;
  labels: string;
  mean?: number[];
  std?: number[];
  /** Top-1 on its evaluation set as measured by onnxruntime (fixture README). */
  accuracy: number;
}

const FMNIST = { mean: [0.286], std: [0.353] };

export function fixtureModels(): FixtureModel[] {
  const metrics = JSON.parse(fs.readFileSync(shipped('metrics.json'), 'utf8'));
  const models: FixtureModel[] = [{
    name: 'resnet20', file: shipped('resnet20.onnx'),
    data: shipped('test-2000-images-idx3-ubyte.gz'), labels: shipped('test-2000-labels-idx1-ubyte.gz'),
    accuracy: metrics.resnet20.files['resnet20.onnx'].ort_acc2000, ...FMNIST,
  }];
  if (!sharedAvailable()) {
    console.warn(`SKIPPED: ${SHARED} is absent; testing only the shipped resnet20 fixture`);
    return models;
  }
  const fm = (f: string) => path.join(SHARED, 'data', 'fashion-mnist', f);
  for (const [name, key, file] of [['mobilenetv2', 'mobilenetv2', 'mobilenetv2.onnx'], ['vit', 'vit', 'vit.onnx'], ['vit-opset17', 'vit', 'vit-opset17.onnx'], ['vgg', 'vgg', 'vgg.onnx']]) {
    models.push({
      name, file: path.join(SHARED, 'models', file),
      data: fm('test-2000-images-idx3-ubyte.gz'), labels: fm('test-2000-labels-idx1-ubyte.gz'),
      accuracy: metrics[key].files[file].ort_acc2000, ...FMNIST,
    });
  }
  const pm = metrics.pointnet.files['pointnet.onnx'];
  models.push({
    name: 'pointnet', file: path.join(SHARED, 'models', 'pointnet.onnx'),
    data: path.join(SHARED, 'data', 'shapes3d', 'test-1000-points.npy'),
    labels: path.join(SHARED, 'data', 'shapes3d', 'test-1000-labels.npy'),
    accuracy: pm.ort_acc1000 ?? pm.ort_acc_test1000 ?? metrics.pointnet.acc1000,
  });
  return models;
}
