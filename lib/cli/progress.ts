/**
 * Progress display for long jobs: a cli-progress bar per phase (calibration, each unit's
 * reconstruction with its loss and ETA, evaluation) on stderr when it is a terminal; otherwise one
 * line per finished unit, so logs of a server run still show where it is. --quiet silences both.
 */
import * as cliProgress from 'cli-progress';
import { ProgressEvent } from '../pipeline/quantize';

export function progressReporter(opts: { quiet?: boolean }): { onProgress: (e: ProgressEvent) => void; stop: () => void } {
  if (opts.quiet) return { onProgress: () => {}, stop: () => {} };
  const tty = process.stderr.isTTY;
  let bar: cliProgress.SingleBar | undefined;
  let key = '';
  let last: ProgressEvent | undefined;
  const label = (e: ProgressEvent) =>
    e.phase === 'reconstruct' ? `unit ${(e.unitIndex ?? 0) + 1}/${e.units} ${e.unit}` : e.phase;
  const finishLine = (e: ProgressEvent) => {
    if (tty || !e) return;
    if (e.phase === 'reconstruct') process.stderr.write(`packptq: ${label(e)}: ${e.done}/${e.total} iterations, loss ${e.loss?.toFixed(5)}\n`);
    else process.stderr.write(`packptq: ${e.phase} done\n`);
  };
  const onProgress = (e: ProgressEvent) => {
    const k = `${e.phase}/${e.unitIndex ?? ''}`;
    if (k !== key) {
      bar?.stop();
      if (last) finishLine(last);
      key = k;
      if (tty) {
        bar = new cliProgress.SingleBar({
          stream: process.stderr, hideCursor: true, clearOnComplete: false,
          format: `{label} [{bar}] {value}/{total} {extra}`,
        }, cliProgress.Presets.shades_classic);
        bar.start(e.total, 0, { label: label(e), extra: '' });
      }
    }
    last = e;
    const extra = e.phase === 'reconstruct' ? `loss ${e.loss?.toFixed(5)} ETA ${Math.round(e.eta ?? 0)}s` : '';
    bar?.setTotal(e.total);
    bar?.update(e.done, { extra, label: label(e) });
  };
  return {
    onProgress,
    stop: () => {
      bar?.stop();
      if (last) finishLine(last);
    },
  };
}
