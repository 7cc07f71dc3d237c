/**
 * Lets the event loop run (timers, I/O, an abort) between slices of work that must stay in
 * JavaScript — graph building, small numeric loops — so no slice holds it for long (issue 7: a
 * quantize run embedded in a server must not stall it).
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
