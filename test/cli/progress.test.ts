/**
 * The CLI's progress in log mode (stderr not a terminal): a line per finished phase or unit, and a
 * line for the unit in progress once per interval (iterations, loss, ETA), driven here by a fake
 * clock so the test decides exactly when an interval has passed.
 */
import { progressReporter } from '../../lib/cli/progress';
import { ProgressEvent } from '../../lib/pipeline/quantize';

function reporter(intervalMs: number) {
  let t = 0;
  const lines: string[] = [];
  const r = progressReporter({ tty: false, intervalMs, now: () => t, write: (l) => lines.push(l) });
  return { r, lines, advance: (ms: number) => (t += ms) };
}

const unit = (unitIndex: number, done: number, loss: number, eta: number): ProgressEvent =>
  ({ phase: 'reconstruct', unit: `/blocks/blocks.${unitIndex}`, unitIndex, units: 2, done, total: 1000, loss, eta });

test('log mode: one line per interval for the unit in progress, one when it finishes', () => {
  const { r, lines, advance } = reporter(60000);
  r.onProgress({ phase: 'calibrate', done: 1, total: 1 });
  r.onProgress(unit(0, 10, 5, 900));
  advance(30000);
  r.onProgress(unit(0, 300, 4, 600));  // half an interval: nothing yet
  expect(lines).toEqual(['packptq: calibrate done\n']);
  advance(30000);
  r.onProgress(unit(0, 600, 3.25, 300));  // a full interval since the last line
  expect(lines[1]).toBe('packptq: unit 1/2 /blocks/blocks.0: 600/1000 iterations, loss 3.25000 ETA 300s\n');
  advance(10000);
  r.onProgress(unit(0, 1000, 2.5, 0));
  r.onProgress(unit(1, 5, 9, 1000));  // the next unit starts: the finished one gets its line
  expect(lines[2]).toBe('packptq: unit 1/2 /blocks/blocks.0: 1000/1000 iterations, loss 2.50000\n');
  advance(59999);
  r.onProgress(unit(1, 500, 8, 500));  // 59.999 s after the finish line: still quiet
  expect(lines).toHaveLength(3);
  advance(1);
  r.onProgress(unit(1, 501, 7.5, 499));
  expect(lines[3]).toBe('packptq: unit 2/2 /blocks/blocks.1: 501/1000 iterations, loss 7.50000 ETA 499s\n');
  r.stop();
  expect(lines[4]).toBe('packptq: unit 2/2 /blocks/blocks.1: 501/1000 iterations, loss 7.50000\n');
});

test('--quiet writes nothing', () => {
  const lines: string[] = [];
  const q = progressReporter({ quiet: true, tty: false, intervalMs: 0, write: (l) => lines.push(l) });
  q.onProgress(unit(0, 500, 1, 1));
  q.stop();
  expect(lines).toEqual([]);
});
