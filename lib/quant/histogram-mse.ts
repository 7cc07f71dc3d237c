/**
 * The BRECQ clipping search for activations, on a histogram. The exact search costs one L_p error
 * evaluation per element and candidate (80 per element); over a calibration set's activations that
 * is minutes. Here the values are first binned (4096 bins over the observed range, each bin keeping
 * its count and the sum of its values, and exact zeros — the bulk of post-ReLU activations — kept
 * apart), then every candidate is scored on the bins: Σ_bins count·|x̄ − x̂(x̄)|^p with x̄ the bin's
 * mean. A bin is 1/4096 of the range, under 1/270 of a 4-bit quantization step, so the scores track
 * the exact ones closely; test/quant/calibrate.test.ts compares the two choices.
 *
 * The arithmetic runs natively (HistogramMse in native/kernels/quant_calib.cpp) on a worker thread:
 * binning a model's activations and sweeping 80 candidates over the bins of each was seconds of
 * JavaScript that held the event loop (issue 7). Every method returns a Promise; await each before
 * the next (the native object refuses overlapping calls).
 */
import { native } from '../native';

export const HISTOGRAM_BINS = 4096;

export interface HistogramMseResult {
  scale: Float32Array;
  zero: Int32Array;
  /** The winning clipping ratio 1 − 0.01·i. */
  ratio: number;
  /** Its estimated L_p error on the bins. */
  error: number;
}

export class HistogramMse {
  private readonly h = new (native().quant.HistogramMse)();

  /** Pass 1: the global range. */
  observe(x: Float32Array): Promise<void> {
    return this.h.observeAsync(x);
  }

  /** Pass 2: the histogram over the frozen range. */
  accumulate(x: Float32Array): Promise<void> {
    return this.h.accumulateAsync(x);
  }

  range(): { min: number; max: number } {
    return this.h.range();
  }

  /** The candidate with the lowest estimated L_p error: ratios 1.00, 0.99, ... (80 of them). */
  result(bits: number, p = 2.4, candidates = 80): Promise<HistogramMseResult> {
    return this.h.resultAsync(bits, { p, candidates });
  }
}
