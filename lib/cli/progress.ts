/**
 * Progress display for long jobs: a cli-progress bar per phase (calibration, each unit's
 * reconstruction with its loss and ETA, evaluation) on stderr when it is a terminal; otherwise one
 * line per finished unit, and every minute a line for the unit in progress (iterations, loss, ETA:
 * a unit at the method defaults can take half an hour), so logs of a server run still show where
 * it is. --quiet silences both.
 */
import * as cliProgress from 'cli-progress';
import { ProgressEvent } from '../pipeline/quantize';

export interface ProgressOptions {
  quiet?: boolean;
  /** Whether stderr is a terminal (bar) or a log (lines); defaults to process.stderr.isTTY. */
  tty?: boolean;
  /** Log mode: milliseconds between lines for the unit in progress (default 60 000). */
  intervalMs?: number;
  /** Clock and sink, for tests. */
  now?: () => number;
  write?: (line: string) => void;
}

export function progressReporter(opts: ProgressOptions): { onProgress: (e: ProgressEvent) => void; stop: () => void } {
  if (opts.quiet) return { onProgress: () => {}, stop: () => {} };
  const tty = opts.tty ?? process.stderr.isTTY;
  const interval = opts.intervalMs ?? 60000;
  const now = opts.now ?? Date.now;
  const write = opts.write ?? ((line: string) => void process.stderr.write(line));
  let lastLine = now();
  let bar: cliProgress.SingleBar | undefined;
  let key = '';
  let last: ProgressEvent | undefined;
  const label = (e: ProgressEvent) =>
    e.phase === 'reconstruct' ? `unit ${(e.unitIndex ?? 0) + 1}/${e.units} ${e.unit}` : e.phase;
  const finishLine = (e: ProgressEvent) => {
    if (tty || !e) return;
    if (e.phase === 'reconstruct') write(`packptq: ${label(e)}: ${e.done}/${e.total} iterations, loss ${e.loss?.toFixed(5)}\n`);
    else write(`packptq: ${e.phase} done\n`);
    lastLine = now();
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
    if (!tty && e.phase === 'reconstruct' && e.done < e.total && now() - lastLine >= interval) {
      write(`packptq: ${label(e)}: ${e.done}/${e.total} iterations, ${extra}\n`);
      lastLine = now();
    }
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
