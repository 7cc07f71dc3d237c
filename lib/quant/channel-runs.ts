/**
 * The per-element JavaScript loops over a quantized weight (dequantization, AdaRound's initial V,
 * hard codes) walk it in runs of elements that share one channel's parameters, and give the event
 * loop a turn every SLICE elements: a large layer is tens of milliseconds of such a loop (and
 * several times that inside a vm context such as jest's), which must not hold the event loop of a
 * server that embeds a quantize run (issue 7).
 */
import { yieldToEventLoop } from '../engine/yield';
import { QuantParams } from './types';

/** Elements a loop handles between two turns of the event loop. */
export const SLICE = 1 << 15;

/** Elements that share one channel's parameters: the product of the dims after the channel axis. */
export function channelInner(p: QuantParams, dims: number[], n: number): number {
  return p.axis === undefined ? n : dims.slice(p.axis + 1).reduce((a, b) => a * b, 1);
}

/**
 * Calls body(from, to, ch) over [0, n) in order, ch being the channel of every element in
 * [from, to) (index i is in channel ⌊i / inner⌋ mod channels), yielding every SLICE elements.
 */
export async function forEachChannelRun(n: number, inner: number, channels: number, body: (from: number, to: number, ch: number) => void): Promise<void> {
  let sinceYield = 0;
  for (let start = 0; start < n; start += inner) {
    const ch = channels > 1 ? Math.floor(start / inner) % channels : 0;
    const end = Math.min(n, start + inner);
    for (let from = start; from < end; from += SLICE) {
      const to = Math.min(end, from + SLICE);
      body(from, to, ch);
      sinceYield += to - from;
      if (sinceYield >= SLICE) {
        sinceYield = 0;
        await yieldToEventLoop();
      }
    }
  }
}
