/**
 * Adaptive packing: consecutive blocks are grouped into packs from their importance scores. Packs
 * start at the left-to-right running minima of S (a block whose score is below every score before
 * it); equivalently, scanning from the right, the pack ending at e starts at the lowest-index
 * minimum of S over [0, e]. No hyperparameter. Strictly decreasing scores give one pack per block
 * (plain block-wise reconstruction); a minimum at block 0 gives one pack holding every block.
 */
export function packBlocks(scores: number[]): number[][] {
  if (!scores.length) return [];
  const starts: number[] = [];
  let min = Infinity;
  scores.forEach((s, k) => {
    // Block 0 always starts a pack; a NaN score (a block whose quantization changes nothing) never does.
    if (k === 0 || s < min) {
      starts.push(k);
      if (!Number.isNaN(s)) min = s;
    }
  });
  return starts.map((st, i) => {
    const end = i + 1 < starts.length ? starts[i + 1] : scores.length;
    return Array.from({ length: end - st }, (_, j) => st + j);
  });
}
