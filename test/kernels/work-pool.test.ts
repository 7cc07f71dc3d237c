/**
 * The work pool every multi-threaded kernel and op runs on (native/kernels/work_pool.cpp): items
 * are dealt in contiguous shards, one per thread, each thread taking its own shard first and then
 * helping with the others. Whatever the timing, every item must run exactly once, on a thread id
 * below the thread count, and an item that throws must surface as a JS error without losing the
 * pool for the next call.
 */
import { kernels } from './helpers';

interface PoolRun { counts: Int32Array; tids: Int32Array }
const run = (n: number, threads: number, throwAt?: number): PoolRun =>
  throwAt === undefined ? kernels.workPool(n, threads) : kernels.workPool(n, threads, throwAt);

describe('work pool', () => {
  test.each([
    [0, 2], [1, 2], [2, 2], [3, 2], [7, 2], [64, 2], [1000, 2], [5, 1], [9, 3], [100, 8], [3, 8],
  ])('%i items on %i threads: each exactly once, thread ids in range', (n, threads) => {
    for (let rep = 0; rep < 20; rep++) {
      const { counts, tids } = run(n, threads);
      expect(Array.from(counts).filter((c) => c !== 1)).toEqual([]);
      expect(Array.from(tids).filter((t) => t < 0 || t >= threads)).toEqual([]);
    }
  });

  // Which thread runs which item depends on timing (a caller descheduled right after posting the
  // job finds its shard done by the helper), so only one thread has a fixed answer.
  test('on one thread every item runs on the caller', () => {
    expect(Array.from(run(10, 1).tids)).toEqual(new Array(10).fill(0));
  });

  test('an item that throws becomes a JS error with its code, and the pool keeps working', () => {
    for (const [n, threads, at] of [[10, 2, 0], [10, 2, 9], [100, 2, 57], [5, 1, 3], [40, 4, 20]]) {
      let error: (Error & { code?: string }) | undefined;
      try {
        run(n, threads, at);
      } catch (e) {
        error = e as Error & { code?: string };
      }
      expect(error?.message).toMatch(`work item ${at} failed on purpose`);
      expect(error?.code).toBe('NATIVE');
      const { counts } = run(n, threads);
      expect(Array.from(counts).every((c) => c === 1)).toBe(true);
    }
  });

  test('bad arguments are refused with BAD_OPTION', () => {
    expect(() => kernels.workPool(-1, 2)).toThrow(/n/);
    expect(() => kernels.workPool(4, 0)).toThrow(/threads/);
    let code: string | undefined;
    try {
      kernels.workPool(4, 1.5);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    expect(code).toBe('BAD_OPTION');
  });
});
