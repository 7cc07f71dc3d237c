/**
 * conv2d and prepared convs: every SIMD variant against the scalar reference over a sweep of conv
 * geometries (1x1, 3x3, 5x3, depthwise, channel multipliers, grouped, strides 1/2/3, asymmetric pads,
 * pads larger than the kernel, dilation 2, 1-D, batch > 1, bias or none, 1 and 2 threads); the
 * reference itself against a JS loop; argument checking. Convs under a megaflop run on one thread
 * whatever they are given, so the multi-thread paths (column chunks, row blocks, images over
 * threads, the shared padded copy) are reached by the cases above that size.
 *
 * Error bound (per output element): |y_simd - y_ref| <= 1e-5 * sum |x| |w| over the element's taps
 * + 2^-22 * |bias|, the same relative bound as the GEMM tests (see gemm.test.ts for why). The
 * magnitude sum is computed by the reference on |x| and |w| with no bias.
 */
import { bitwiseEqual, kernels, randomArray, rng, simdVariants, skipReason } from './helpers';

interface Shape {
  N: number; C: number; H: number; W: number; M: number; KH: number; KW: number;
  strideH?: number; strideW?: number; padTop?: number; padLeft?: number; padBottom?: number; padRight?: number;
  dilH?: number; dilW?: number; group?: number;
}

const full = (s: Shape): Required<Shape> => ({
  strideH: 1, strideW: 1, padTop: 0, padLeft: 0, padBottom: 0, padRight: 0, dilH: 1, dilW: 1, group: 1, ...s,
});
const outHW = (s: Required<Shape>) => [
  Math.floor((s.H + s.padTop + s.padBottom - s.dilH * (s.KH - 1) - 1) / s.strideH) + 1,
  Math.floor((s.W + s.padLeft + s.padRight - s.dilW * (s.KW - 1) - 1) / s.strideW) + 1,
];

const CASES: [string, Shape][] = [
  ['1x1 pointwise (input is the GEMM B matrix)', { N: 2, C: 8, H: 5, W: 5, M: 12, KH: 1, KW: 1 }],
  ['1x1 stride 2', { N: 1, C: 6, H: 9, W: 7, M: 5, KH: 1, KW: 1, strideH: 2, strideW: 2 }],
  ['1x1 with padding', { N: 1, C: 3, H: 4, W: 4, M: 4, KH: 1, KW: 1, padTop: 1, padLeft: 2, padBottom: 0, padRight: 1 }],
  ['3x3 pad 1', { N: 2, C: 3, H: 9, W: 9, M: 5, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['3x3 K past one KC block (C=32)', { N: 1, C: 32, H: 6, W: 7, M: 20, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['5x3 asymmetric pads, strides (1,2)', { N: 1, C: 4, H: 10, W: 11, M: 6, KH: 5, KW: 3, strideH: 1, strideW: 2, padTop: 1, padLeft: 0, padBottom: 2, padRight: 1 }],
  ['3x3 stride 3', { N: 1, C: 5, H: 13, W: 14, M: 7, KH: 3, KW: 3, strideH: 3, strideW: 3 }],
  ['3x3 stride 2 pad 1', { N: 1, C: 16, H: 28, W: 28, M: 32, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['3x3 dilation 2', { N: 1, C: 4, H: 12, W: 10, M: 6, KH: 3, KW: 3, dilH: 2, dilW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2 }],
  ['pads larger than the kernel', { N: 1, C: 2, H: 4, W: 3, M: 3, KH: 3, KW: 2, padTop: 4, padLeft: 5, padBottom: 4, padRight: 3 }],
  ['grouped, not depthwise (4 groups, 2 in / 3 out each)', { N: 2, C: 8, H: 7, W: 6, M: 12, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 4 }],
  ['grouped 1x1', { N: 1, C: 6, H: 5, W: 5, M: 4, KH: 1, KW: 1, group: 2 }],
  ['depthwise 3x3 pad 1', { N: 2, C: 7, H: 11, W: 11, M: 7, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 7 }],
  ['depthwise 3x3 stride 2, asymmetric pads', { N: 1, C: 5, H: 14, W: 13, M: 5, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 0, padLeft: 1, padBottom: 1, padRight: 0, group: 5 }],
  ['depthwise 5x5 dilation 2 stride 3', { N: 1, C: 3, H: 17, W: 19, M: 3, KH: 5, KW: 5, strideH: 3, strideW: 3, dilH: 2, dilW: 2, padTop: 3, padLeft: 4, padBottom: 2, padRight: 1, group: 3 }],
  ['depthwise, wide rows (many vectors per row)', { N: 1, C: 2, H: 5, W: 75, M: 2, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 2 }],
  ['depthwise 7x7 planes (one vector per row)', { N: 3, C: 6, H: 7, W: 7, M: 6, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 6 }],
  ['depthwise with channel multiplier 2', { N: 1, C: 4, H: 6, W: 9, M: 8, KH: 3, KW: 2, padTop: 1, padLeft: 0, padBottom: 1, padRight: 1, group: 4 }],
  ['single input channel stem (C=1, M=16)', { N: 2, C: 1, H: 28, W: 28, M: 16, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['1-D conv (H=1) with pads', { N: 2, C: 6, H: 1, W: 40, M: 10, KH: 1, KW: 5, padLeft: 2, padRight: 2 }],
  ['1-D depthwise (H=1) stride 2', { N: 1, C: 4, H: 1, W: 33, M: 4, KH: 1, KW: 3, strideW: 2, padLeft: 1, padRight: 1, group: 4 }],
  ['1-D pointwise (PointNet layer)', { N: 2, C: 3, H: 1, W: 64, M: 16, KH: 1, KW: 1 }],
  ['batch 5 (threads over images)', { N: 5, C: 3, H: 8, W: 8, M: 4, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  // Paths of the conv GEMM: B read in place from the padded copy (M <= 64), B packed (M > 64), tiles
  // crossing output rows / images written through the chunk buffer (K blocks accumulate there), a
  // last row panel with fewer than MR rows, and 1x1 / stride-2 copies with vector deinterleaving.
  ['3x3 M > 64 (packed B), M not a multiple of the tile, rows crossing panels', { N: 3, C: 5, H: 9, W: 11, M: 70, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['3x3 M > 64, K past one KC block, 7x7 images side by side', { N: 4, C: 32, H: 7, W: 7, M: 68, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['3x3 in-place B, K in three blocks, 7x7 images', { N: 5, C: 64, H: 7, W: 7, M: 12, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['1x1 stride 2 over wide rows (deinterleaved copy)', { N: 3, C: 4, H: 6, W: 45, M: 8, KH: 1, KW: 1, strideH: 2, strideW: 2 }],
  ['3x3 stride 2 pad 1 over wide odd rows', { N: 2, C: 3, H: 7, W: 53, M: 9, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['pointwise, images of 49 positions (panels cross images), M > 64', { N: 3, C: 6, H: 7, W: 7, M: 72, KH: 1, KW: 1 }],
  ['depthwise stride 2 over wide rows (vector deinterleave)', { N: 2, C: 3, H: 6, W: 75, M: 3, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 3 }],
  ['depthwise stride 2, pad 0, even width', { N: 1, C: 2, H: 9, W: 40, M: 2, KH: 3, KW: 3, strideH: 2, strideW: 2, group: 2 }],
  ['kernel as large as the padded input', { N: 1, C: 2, H: 3, W: 4, M: 3, KH: 5, KW: 4, padTop: 1, padLeft: 0, padBottom: 1, padRight: 0 }],
  // Batch 1 on two threads: more than 64 output rows split into row blocks that read the padded
  // copy in place (K past one KC block), and 34 column panels split into uneven chunks.
  ['batch 1, 72 output channels split in row blocks, K = 288', { N: 1, C: 32, H: 7, W: 7, M: 72, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  // Batch 1 on two threads builds the shared padded copy in parts of input rows (each thread the
  // rows its column chunks read): an odd row count, and a stride-2 split at an odd input row (its
  // first row falls in the other row phase).
  ['batch 1, stride 2, copy split at an odd input row', { N: 1, C: 16, H: 30, W: 27, M: 24, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['batch 1, 31 input rows, copy split in unequal parts', { N: 1, C: 8, H: 31, W: 20, M: 16, KH: 3, KW: 3, padTop: 2, padLeft: 1, padBottom: 0, padRight: 1 }],
  ['batch 1, 28x28 output in uneven column chunks', { N: 1, C: 8, H: 28, W: 28, M: 12, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  // Depthwise with channels on lanes (dw_chan_impl.h, planes up to 1024 outputs): groups of 8 / 16
  // channels with a partial last group, batch > 1, the overlapping last block of positions (49,
  // 196 positions), stride 2, channel multipliers, dilation with asymmetric pads, 5x5 stride 3,
  // and planes of exactly / fewer than one vector of positions (the latter take dw2_plane).
  ['depthwise 7x7, 20 channels, batch 3 (partial channel group)', { N: 3, C: 20, H: 7, W: 7, M: 20, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 20 }],
  ['depthwise 14x14 stride 2, 13 channels, batch 2', { N: 2, C: 13, H: 14, W: 14, M: 13, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 13 }],
  ['depthwise 14x14, 24 channels, batch 2', { N: 2, C: 24, H: 14, W: 14, M: 24, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 24 }],
  ['depthwise 28x28 stride 1, 17 channels', { N: 1, C: 17, H: 28, W: 28, M: 17, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 17 }],
  ['depthwise 7x7 channel multiplier 3 (outputs of one group span lanes)', { N: 2, C: 5, H: 7, W: 7, M: 15, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 5 }],
  ['depthwise 10x9 dilation 2, asymmetric pads', { N: 2, C: 9, H: 10, W: 9, M: 9, KH: 3, KW: 3, dilH: 2, dilW: 2, padTop: 2, padLeft: 1, padBottom: 0, padRight: 3, group: 9 }],
  ['depthwise 5x5 stride 3 on 11x11', { N: 1, C: 18, H: 11, W: 11, M: 18, KH: 5, KW: 5, strideH: 3, strideW: 3, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, group: 18 }],
  ['depthwise 4x4 (16 positions), 3x2 kernel', { N: 2, C: 11, H: 4, W: 4, M: 11, KH: 3, KW: 2, padTop: 1, padLeft: 0, padBottom: 1, padRight: 1, group: 11 }],
  ['depthwise 3x3 planes (fewer positions than lanes)', { N: 2, C: 10, H: 3, W: 3, M: 10, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 10 }],
];

function operands(s: Required<Shape>, seed: number) {
  const next = rng(seed);
  const [OH, OW] = outHW(s);
  return {
    x: randomArray(s.N * s.C * s.H * s.W, next),
    w: randomArray(s.M * (s.C / s.group) * s.KH * s.KW, next),
    bias: randomArray(s.M, next),
    ySize: s.N * s.M * OH * OW,
  };
}

function conv(isa: string, s: Required<Shape>, x: Float32Array, w: Float32Array, bias: Float32Array | null, threads: number) {
  const y = new Float32Array(s.N * s.M * outHW(s)[0] * outHW(s)[1]).fill(NaN); // every element must be written
  kernels.conv2d(isa, s, x, w, bias, y, threads);
  return y;
}

function firstBad(got: Float32Array, ref: Float32Array, mag: Float32Array, bias: Float32Array | null, s: Required<Shape>): string | undefined {
  const P = got.length / (s.N * s.M);
  for (let i = 0; i < got.length; i++) {
    const m = Math.floor(i / P) % s.M;
    const bound = 1e-5 * mag[i] + (bias ? 2 ** -22 * Math.abs(bias[m]) : 0);
    const d = Math.abs(got[i] - ref[i]);
    if (!(d <= bound)) return `y[${i}] = ${got[i]} but the reference gives ${ref[i]} (|diff| ${d} > bound ${bound})`;
  }
  return undefined;
}

describe('scalar reference conv2d', () => {
  // conv.h's formula as a JS loop (double accumulation in the same order, one rounding).
  function jsConv(s: Required<Shape>, x: Float32Array, w: Float32Array, bias: Float32Array | null): Float32Array {
    const [OH, OW] = outHW(s);
    const Cg = s.C / s.group, Mg = s.M / s.group;
    const y = new Float32Array(s.N * s.M * OH * OW);
    for (let n = 0; n < s.N; n++)
      for (let m = 0; m < s.M; m++)
        for (let oh = 0; oh < OH; oh++)
          for (let ow = 0; ow < OW; ow++) {
            let acc = bias ? bias[m] : 0;
            const g = Math.floor(m / Mg);
            for (let c = 0; c < Cg; c++)
              for (let kh = 0; kh < s.KH; kh++) {
                const ih = oh * s.strideH - s.padTop + kh * s.dilH;
                if (ih < 0 || ih >= s.H) continue;
                for (let kw = 0; kw < s.KW; kw++) {
                  const iw = ow * s.strideW - s.padLeft + kw * s.dilW;
                  if (iw < 0 || iw >= s.W) continue;
                  acc += x[((n * s.C + g * Cg + c) * s.H + ih) * s.W + iw] * w[((m * Cg + c) * s.KH + kh) * s.KW + kw];
                }
              }
            y[((n * s.M + m) * OH + oh) * OW + ow] = acc;
          }
    return y;
  }

  test.each([
    CASES[3], CASES[5], CASES[9], CASES[10], CASES[14],
  ])('matches a JS loop exactly: %s', (_name, shape) => {
    const s = full(shape);
    const o = operands(s, 3);
    expect(bitwiseEqual(conv('scalar', s, o.x, o.w, o.bias, 1), jsConv(s, o.x, o.w, o.bias))).toBe(true);
    expect(bitwiseEqual(conv('scalar', s, o.x, o.w, null, 1), jsConv(s, o.x, o.w, null))).toBe(true);
  });

  test('a hand-computed 1-D case', () => {
    // x = [1 2 3 4], w = [1 0 -1], pad 1 each side: y[i] = x[i-1] - x[i+1], plus bias 0.5.
    const y = new Float32Array(4);
    kernels.conv2d('scalar', { N: 1, C: 1, H: 1, W: 4, M: 1, KH: 1, KW: 3, padLeft: 1, padRight: 1 },
      new Float32Array([1, 2, 3, 4]), new Float32Array([1, 0, -1]), new Float32Array([0.5]), y, 1);
    expect(Array.from(y)).toEqual([-1.5, -1.5, -1.5, 3.5]);
  });
});

describe.each(simdVariants.map((v) => [v.name, v] as const))('%s conv2d vs the scalar reference', (name, v) => {
  const why = skipReason(v);
  if (why) {
    test.skip(`skipped: ${why}`, () => undefined);
    // eslint-disable-next-line no-console
    console.warn(`[conv.test] SKIPPING ${name}: ${why}`);
    return;
  }

  test.each(CASES)('%s, with and without bias, 1 and 2 threads', (_label, shape) => {
    const s = full(shape);
    const o = operands(s, s.C * 97 + s.M * 13 + s.W);
    const mag = conv('scalar', s, o.x.map(Math.abs), o.w.map(Math.abs), null, 1);
    const problems: string[] = [];
    for (const bias of [o.bias, null]) {
      const ref = conv('scalar', s, o.x, o.w, bias, 1);
      for (const threads of [1, 2]) {
        const bad = firstBad(conv(name, s, o.x, o.w, bias, threads), ref, mag, bias, s);
        if (bad) problems.push(`bias=${bias !== null} threads=${threads}: ${bad}`);
      }
    }
    expect(problems).toEqual([]);
  });

  test('a prepared conv gives conv2d\'s result on every run, and follows updateWeights', () => {
    const s = full(CASES[10][1]);
    const o = operands(s, 5);
    const p = kernels.prepareConv(name, s, o.w, o.bias);
    expect(p.isa).toBe(name);
    expect(p.outputShape).toEqual([s.N, s.M, ...outHW(s)]);
    const y1 = new Float32Array(o.ySize), y2 = new Float32Array(o.ySize);
    p.run(o.x, y1, 1);
    p.run(o.x, y2, 2);
    const direct = conv(name, s, o.x, o.w, o.bias, 1);
    expect(bitwiseEqual(y1, direct)).toBe(true);
    expect(bitwiseEqual(y2, direct)).toBe(true);
    // The prepared conv owns a copy: changing the caller's array changes nothing until updateWeights.
    const w2 = o.w.map((t) => t * 2);
    o.w.fill(0);
    p.run(o.x, y1, 1);
    expect(bitwiseEqual(y1, direct)).toBe(true);
    p.updateWeights(w2, null);
    p.run(o.x, y1, 1);
    const ref = conv('scalar', s, o.x, w2, null, 1);
    const mag = conv('scalar', s, o.x.map(Math.abs), w2.map(Math.abs), null, 1);
    expect(firstBad(y1, ref, mag, null, s)).toBeUndefined();
    expect(p.time(o.x, y1, 1, 3)).toBeGreaterThan(0);
  });

  test('prepared depthwise conv', () => {
    const s = full(CASES[12][1]);
    const o = operands(s, 6);
    const p = kernels.prepareConv(name, s, o.w, o.bias);
    const y = new Float32Array(o.ySize);
    p.run(o.x, y, 2);
    expect(bitwiseEqual(y, conv(name, s, o.x, o.w, o.bias, 1))).toBe(true);
  });
});

// The GEMM conv computes either whole super rows of the padded copy ("padded" columns, the gap
// between images computed and dropped, B read in place when M <= 64) or only the valid positions
// ("compact", B packed run by run; the default when M > 64 over 256+ positions per image
// group). shape.columns forces each form, so both run over every GEMM-conv case (not depthwise) on 1 and 2 threads (batch 1 on two threads
// splits the columns into chunks; the residual per chunk is covered through the fused tests below).
// A prepared conv with `extra` shape fields forcing a path, on every SIMD variant the CPU runs
// (test-only ones included) and 1 and 2 threads, against the scalar reference, with the bias and,
// when `noBias`, also without it; the problems found.
function forcedProblems(s: Required<Shape>, extra: Record<string, string>, seed: number, noBias = false): string[] {
  const isas = simdVariants.filter((v) => !skipReason(v)).map((v) => v.name);
  const o = operands(s, seed);
  const mag = conv('scalar', s, o.x.map(Math.abs), o.w.map(Math.abs), null, 1);
  const cases: [Float32Array | null, Float32Array][] = [[o.bias, conv('scalar', s, o.x, o.w, o.bias, 1)]];
  if (noBias) cases.push([null, conv('scalar', s, o.x, o.w, null, 1)]);
  const problems: string[] = [];
  for (const isa of isas)
    for (const threads of [1, 2])
      for (const [bias, want] of cases) {
        const p = kernels.prepareConv(isa, { ...s, ...extra }, o.w, bias);
        const y = new Float32Array(o.ySize).fill(NaN);
        p.run(o.x, y, threads);
        const bad = firstBad(y, want, mag, bias, s);
        if (bad) problems.push(`${isa} threads=${threads}${noBias ? ` bias=${bias !== null}` : ''}: ${bad}`);
      }
  return problems;
}

describe.each(['padded', 'compact'])('conv columns forced %s', (columns) => {
  const gemmCases = CASES.filter(([, sh]) => (sh.group ?? 1) === 1 || sh.C / (sh.group ?? 1) > 1);
  test.each(gemmCases)('%s', (_label, shape) =>
    expect(forcedProblems(full(shape), { columns }, shape.C * 53 + shape.M * 7 + shape.W)).toEqual([]));
});

// The lanes conv (conv_lanes_impl.h: 3x3 stride 1 pads 1 and 1x1, output channels on the lanes,
// chosen by itself on AVX-512): forced on every SIMD variant (AVX2 takes it only when forced), on 1
// and 2 threads. The sweep reaches its tile logic: rows of 1..3 positions (both padding columns in
// one tile), one tile per row up to 16 positions, rows cut into 2-4 tiles of unequal widths (17,
// 31, 33, 45, 75), heights 1 and 2 (kernel rows skipped at both image edges in one output row),
// output channels 1, 5, 17, 33, 70 (partial lane groups, the second weight vector of a two-vector
// group partly or wholly past M), a single input channel, 64 input channels, batches of 3 (work
// items crossing images and channel groups), and shapes over a megaflop so two threads split them.
const LANES_CASES: [string, Shape][] = [
  ['1x1 plane, M=5', { N: 2, C: 3, H: 1, W: 1, M: 5, KH: 3, KW: 3 }],
  ['2x3 plane, M=17', { N: 1, C: 4, H: 2, W: 3, M: 17, KH: 3, KW: 3 }],
  ['one row of 7, M=33', { N: 2, C: 6, H: 1, W: 7, M: 33, KH: 3, KW: 3 }],
  ['7x7, M=70, batch 3', { N: 3, C: 12, H: 7, W: 7, M: 70, KH: 3, KW: 3 }],
  ['14x14, 64 in, 64 out', { N: 1, C: 64, H: 14, W: 14, M: 64, KH: 3, KW: 3 }],
  ['16 wide, M=16', { N: 1, C: 8, H: 5, W: 16, M: 16, KH: 3, KW: 3 }],
  ['17 wide (tiles 8 + 9), M=1', { N: 2, C: 5, H: 4, W: 17, M: 1, KH: 3, KW: 3 }],
  ['28x28, one input channel, M=16', { N: 2, C: 1, H: 28, W: 28, M: 16, KH: 3, KW: 3 }],
  ['28x28, 16 in, 16 out, batch 1', { N: 1, C: 16, H: 28, W: 28, M: 16, KH: 3, KW: 3 }],
  ['31 wide, M=32', { N: 1, C: 7, H: 9, W: 31, M: 32, KH: 3, KW: 3 }],
  ['33 wide, M=20', { N: 1, C: 9, H: 6, W: 33, M: 20, KH: 3, KW: 3 }],
  ['45 wide, batch 3, M=40', { N: 3, C: 10, H: 11, W: 45, M: 40, KH: 3, KW: 3 }],
  ['75 wide, 2 rows, M=9', { N: 1, C: 3, H: 2, W: 75, M: 9, KH: 3, KW: 3 }],
].map(([label, sh]) => [label as string, { ...(sh as Shape), padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }]);
// 1x1: the plane flattened and cut into tiles (1, 5, 17 = 8 + 9 with one weight vector, 49 =
// 12 + 12 + 12 + 13 with two, 196), chosen by itself on AVX-512 for batch-1 7x7 planes.
LANES_CASES.push(...([
  ['1x1 on one position, M=5', { N: 2, C: 3, H: 1, W: 1, M: 5, KH: 1, KW: 1 }],
  ['1x1 on 5 positions, M=33', { N: 1, C: 6, H: 1, W: 5, M: 33, KH: 1, KW: 1 }],
  ['1x1 on 17 positions, M=16, batch 3', { N: 3, C: 9, H: 1, W: 17, M: 16, KH: 1, KW: 1 }],
  ['1x1 7x7, 384 in, 96 out (mobilenetv2 projection)', { N: 1, C: 384, H: 7, W: 7, M: 96, KH: 1, KW: 1 }],
  ['1x1 7x7, 64 in, 70 out, batch 2', { N: 2, C: 64, H: 7, W: 7, M: 70, KH: 1, KW: 1 }],
  ['1x1 14x14, one input channel, M=20', { N: 1, C: 1, H: 14, W: 14, M: 20, KH: 1, KW: 1 }],
] as [string, Shape][]));

describe('lanes conv forced (3x3 stride 1 pads 1, channels on lanes)', () => {
  test.each(LANES_CASES)('%s', (_label, shape) =>
    expect(forcedProblems(full(shape), { algorithm: 'lanes' }, shape.C * 59 + shape.M * 3 + shape.W, true)).toEqual([]));

  // The fused residual and activations, in a one-op Program: act(conv + bias + sum).
  test.each(LANES_CASES.filter(([, sh]) => [1, 7, 17, 28, 45].includes(sh.W)))('%s, with a residual and Relu / Clip', (_label, shape) =>
    expect(fusedResidualProblems(full(shape), { algorithm: 'lanes' }, shape.C * 43 + shape.M)).toEqual([]));

  test('the algorithm name is checked', () => {
    const s = full(LANES_CASES[0][1]);
    const o = operands(s, 2);
    expect(() => kernels.prepareConv('avx2', { ...s, algorithm: 'winograd' }, o.w, o.bias)).toThrow(/"auto", "gemm", "lanes" or "rows" for shape.algorithm/);
    expect(() => convProgram(s, o.w, o.bias, { algorithm: 'winograd' }, 'avx2', 1)).toThrow(/algorithm must be "auto", "gemm", "lanes" or "rows", got "winograd"/);
  });
});

// The depthwise row kernel (dw_rows_impl.h: 3x3, stride 1 or 2, pads 1 at the top and left,
// output rows narrower than a vector, input rows narrower than two; by itself on AVX-512): forced
// on every SIMD variant, 1 and 2 threads. Input widths 1 to 31 (AVX2 takes outputs up to 7 wide;
// wider ones fall back to its usual kernel there), heights 1 and odd ones, bottom/right padding 1
// or 0, batches of 3 (items cut at image boundaries).
const ROWS_CASES: [string, Shape][] = ([
  ['stride 2, 1x1 plane', { N: 2, C: 3, H: 1, W: 1 }],
  ['stride 2, 2x2', { N: 1, C: 4, H: 2, W: 2 }],
  ['stride 2, 7x7', { N: 3, C: 5, H: 7, W: 7 }],
  ['stride 2, 13x13, no bottom/right padding', { N: 1, C: 6, H: 13, W: 13, padBottom: 0, padRight: 0 }],
  ['stride 2, 14x14, 24 channels, batch 3', { N: 3, C: 24, H: 14, W: 14 }],
  ['stride 2, 9x15', { N: 1, C: 7, H: 9, W: 15 }],
  ['stride 2, 28x28, 96 channels (mobilenetv2)', { N: 1, C: 96, H: 28, W: 28 }],
  ['stride 2, 31x31, no right padding', { N: 2, C: 3, H: 31, W: 31, padRight: 0 }],
  ['stride 1, 1x1 plane', { N: 1, C: 2, H: 1, W: 1, strideH: 1, strideW: 1 }],
  ['stride 1, 5x7, no bottom padding', { N: 2, C: 9, H: 5, W: 7, strideH: 1, strideW: 1, padBottom: 0 }],
  ['stride 1, 14x14, 144 channels (mobilenetv2)', { N: 1, C: 144, H: 14, W: 14, strideH: 1, strideW: 1 }],
  ['stride 1, 11x15, no right padding, batch 3', { N: 3, C: 4, H: 11, W: 15, strideH: 1, strideW: 1, padRight: 0 }],
] as [string, Partial<Shape>][]).map(([label, sh]) => [label, {
  N: 1, C: 1, H: 1, W: 1, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1,
  ...sh, M: sh.C!, group: sh.C!,
} as Shape]);

describe('depthwise row kernel forced', () => {
  test.each(ROWS_CASES)('%s', (_label, shape) =>
    expect(forcedProblems(full(shape), { algorithm: 'rows' }, shape.C * 61 + shape.W)).toEqual([]));

  test.each(ROWS_CASES)('%s, with a residual and Relu / Clip', (_label, shape) =>
    expect(fusedResidualProblems(full(shape), { algorithm: 'rows' }, shape.C * 67 + shape.H)).toEqual([]));
});

describe('conv2d argument checking', () => {
  const s = full({ N: 1, C: 4, H: 5, W: 5, M: 6, KH: 3, KW: 3, group: 2 });
  const x = new Float32Array(100), w = new Float32Array(6 * 2 * 9), y = new Float32Array(6 * 9);

  test('accepts a valid call', () => expect(() => kernels.conv2d('avx2', s, x, w, null, y, 1)).not.toThrow());
  test('group must divide C and M', () =>
    expect(() => kernels.conv2d('scalar', { ...s, group: 3 }, x, w, null, y, 1)).toThrow(/group 3 must divide C=4 and M=6/));
  test('kernel larger than the padded input', () =>
    expect(() => kernels.conv2d('scalar', { ...s, KH: 7 }, x, w, null, y, 1)).toThrow(/larger than the padded input/));
  test('wrong x, w, bias and y lengths', () => {
    expect(() => kernels.conv2d('avx2', s, new Float32Array(99), w, null, y, 1)).toThrow(/x has 99 elements but \[N, C, H, W\] needs exactly 100/);
    expect(() => kernels.conv2d('avx2', s, x, new Float32Array(5), null, y, 1)).toThrow(/w has 5 elements/);
    expect(() => kernels.conv2d('avx2', s, x, w, new Float32Array(5), y, 1)).toThrow(/bias has 5 elements but \[M\] needs exactly 6/);
    expect(() => kernels.conv2d('avx2', s, x, w, null, new Float32Array(53), 1)).toThrow(/y has 53 elements but \[N, M, OH, OW\] = \[1, 6, 3, 3\]/);
  });
  test('missing, non-integer or negative shape fields', () => {
    expect(() => kernels.conv2d('avx2', { ...s, KW: undefined }, x, w, null, y, 1)).toThrow(/for shape.KW but received undefined/);
    expect(() => kernels.conv2d('avx2', { ...s, strideH: 0 }, x, w, null, y, 1)).toThrow(/for shape.strideH but received 0/);
    expect(() => kernels.conv2d('avx2', { ...s, padTop: -1 }, x, w, null, y, 1)).toThrow(/for shape.padTop/);
    expect(() => kernels.conv2d('avx2', null, x, w, null, y, 1)).toThrow(/convolution shape object for shape/);
  });
  test('y sharing memory with x is refused', () => {
    const buf = new Float32Array(200);
    expect(() => kernels.conv2d('avx2', s, buf.subarray(0, 100), w, null, buf.subarray(50, 104), 1)).toThrow(/y must not share memory with x/);
  });
  test('prepared conv checks its run arguments too', () => {
    const p = kernels.prepareConv('avx2', s, w, null);
    expect(() => p.run(x, new Float32Array(3), 1)).toThrow(/y has 3 elements/);
    expect(() => p.run(x, y, 0)).toThrow(/for threads/);
    expect(() => p.updateWeights(new Float32Array(3), null)).toThrow(/w has 3 elements/);
  });
});

/**
 * The fused epilogue (bias + Relu / Clip applied while the output tile is written, op.h's
 * `activation` attribute) on the paths it changes: side-by-side image columns (3x3 on small planes,
 * batch > 1), the input read directly as B across image boundaries (pointwise 7x7), stride-phase
 * copies (3x3 / 1x1 stride 2), two K blocks (K = 288: the clamp only after the last one), grouped,
 * the flattened depthwise kernel, and B packed (M > 64) or read in place with partial tiles
 * accumulating over K blocks in the chunk buffer. Each runs in a one-op native Program and is compared with the
 * scalar reference followed by the clamp in JS, under the same bound (a clamp never widens a gap).
 */
import { NativeProgram } from '../../lib/engine/program';
import { fuseActivations } from '../../lib/engine/fuse-activations';
import type { ProgramDesc } from '../../lib/engine/lower';

const FUSED_CASES: [string, Shape][] = [
  ['3x3 pad 1 on 7x7 planes, batch 6 (images side by side)', { N: 6, C: 8, H: 7, W: 7, M: 12, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['pointwise 7x7, batch 5 (panels across images)', { N: 5, C: 16, H: 7, W: 7, M: 20, KH: 1, KW: 1 }],
  ['3x3 stride 2 pad 1', { N: 3, C: 6, H: 15, W: 14, M: 8, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['1x1 stride 2 shortcut', { N: 2, C: 8, H: 14, W: 14, M: 16, KH: 1, KW: 1, strideH: 2, strideW: 2 }],
  ['two K blocks (C=32, 3x3)', { N: 2, C: 32, H: 9, W: 9, M: 16, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['grouped 3x3', { N: 2, C: 8, H: 6, W: 6, M: 12, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 4 }],
  ['depthwise 3x3 stride 2', { N: 3, C: 5, H: 14, W: 14, M: 5, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 5 }],
  ['depthwise 3x3 on 28x28', { N: 2, C: 3, H: 28, W: 28, M: 3, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 3 }],
  ['M > 64 (packed B), two K blocks, 7x7 images, partial row panel', { N: 3, C: 32, H: 7, W: 7, M: 70, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['in-place B, three K blocks, tiles through the chunk buffer', { N: 3, C: 64, H: 7, W: 7, M: 8, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['depthwise 7x7, channels on lanes, partial group, batch 3', { N: 3, C: 20, H: 7, W: 7, M: 20, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 20 }],
  ['depthwise 14x14 stride 2, channels on lanes, 13 channels', { N: 2, C: 13, H: 14, W: 14, M: 13, KH: 3, KW: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 13 }],
  // (over a megaflop: smaller convs run on one thread whatever they are given)
  ['batch 1, 14x14 (column chunks on two threads, residual added per chunk)', { N: 1, C: 16, H: 14, W: 14, M: 24, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1 }],
  ['depthwise 40x40 (plane-at-a-time kernel)', { N: 1, C: 3, H: 40, W: 40, M: 3, KH: 3, KW: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, group: 3 }],
];

const ACTS: [string, Record<string, number | string>, number, number][] = [
  ['relu', { activation: 'relu' }, 0, Infinity],
  ['clip(-0.25, 0.5)', { activation: 'clip', act_min: -0.25, act_max: 0.5 }, -0.25, 0.5],
];

// withSum: a second program input, the residual `sum` the conv adds before its activation.
function convProgram(s: Required<Shape>, w: Float32Array, bias: Float32Array, attrs: Record<string, number | string>, isa: string, threads: number, withSum = false) {
  const [OH, OW] = outHW(s);
  const desc: ProgramDesc = {
    tensors: [
      { shape: [s.N, s.C, s.H, s.W] },
      { shape: [s.M, s.C / s.group, s.KH, s.KW], data: w },
      { shape: [s.M], data: bias },
      { shape: [s.N, s.M, OH, OW] },
      { shape: [s.N, s.M, OH, OW] },
    ],
    inputs: withSum ? [0, 4] : [0],
    outputs: [3],
    ops: [{
      type: 'Conv', name: 'conv', inputs: withSum ? [0, 1, 2, 4] : [0, 1, 2], outputs: [3],
      attrs: {
        kernel: [s.KH, s.KW], strides: [s.strideH, s.strideW], pads: [s.padTop, s.padLeft, s.padBottom, s.padRight],
        dilations: [s.dilH, s.dilW], group: s.group, ...attrs,
      },
    }],
    isa, threads,
  };
  return new NativeProgram(desc, 'fused conv test');
}

// act(conv + bias + sum) from a one-op Program (extra attributes `attrs`, e.g. a forced algorithm)
// on `isas` (default: the real SIMD ones; Programs take no test-only variant) and 1 and 2
// threads, against the reference plus the residual, then the clamp; the problems found.
function fusedResidualProblems(s: Required<Shape>, attrs: Record<string, string>, seed: number, sumSeed = seed * 7 + 5,
  isas = simdVariants.filter((v) => v.supported && !v.testOnly).map((v) => v.name)): string[] {
  const o = operands(s, seed);
  const sum = randomArray(o.ySize, rng(sumSeed));
  const mag = conv('scalar', s, o.x.map(Math.abs), o.w.map(Math.abs), null, 1).map((v, i) => v + Math.abs(sum[i]));
  const raw = conv('scalar', s, o.x, o.w, o.bias, 1).map((v, i) => Math.fround(v + sum[i]));
  const problems: string[] = [];
  for (const [name, act, lo, hi] of [...ACTS, ['none', {}, -Infinity, Infinity] as const]) {
    const ref = raw.map((v) => Math.min(Math.max(v, lo), hi));
    for (const isa of isas)
      for (const threads of [1, 2]) {
        const got = convProgram(s, o.w, o.bias, { ...act, ...attrs }, isa, threads, true).runSync([o.x, sum])[0];
        const bad = firstBad(got, ref, mag, o.bias, s);
        if (bad) problems.push(`${name} ${isa} threads=${threads}: ${bad}`);
      }
  }
  return problems;
}

describe('fused conv epilogue (bias + Relu / Clip) vs the scalar reference then the clamp', () => {
  const isas = ['scalar', ...simdVariants.filter((v) => v.supported && !v.testOnly).map((v) => v.name)];
  test.each(FUSED_CASES)('%s', (_label, shape) => {
    const s = full(shape);
    const o = operands(s, s.C * 31 + s.M);
    const mag = conv('scalar', s, o.x.map(Math.abs), o.w.map(Math.abs), null, 1);
    const raw = conv('scalar', s, o.x, o.w, o.bias, 1);
    const problems: string[] = [];
    for (const [name, attrs, lo, hi] of [...ACTS, ['none', {}, -Infinity, Infinity] as const]) {
      const ref = raw.map((v) => Math.min(Math.max(v, lo), hi));
      for (const isa of isas)
        for (const threads of [1, 2]) {
          const got = convProgram(s, o.w, o.bias, attrs, isa, threads).runSync([o.x])[0];
          const bad = firstBad(got, ref, mag, o.bias, s);
          if (bad) problems.push(`${name} ${isa} threads=${threads}: ${bad}`);
        }
    }
    expect(problems).toEqual([]);
  });

  // The fused residual (Conv input `sum`, lib/engine/fuse-residual.ts): act(conv + bias + sum) on
  // the same paths (direct tiles take it in the micro-kernel, buffered ones when copied out,
  // depthwise after each item), compared with the reference plus the residual, then the clamp.
  test.each(FUSED_CASES)('%s, with a residual', (_label, shape) => {
    const s = full(shape);
    expect(fusedResidualProblems(s, {}, s.C * 37 + s.M, s.M * 7 + 1, isas)).toEqual([]);
  });

  // The same with the GEMM conv's column form forced (the internal `columns` attribute): compact
  // columns pack B run by run and add the residual per chunk of valid positions.
  test.each(FUSED_CASES.filter(([, sh]) => (sh.group ?? 1) === 1))('%s, with a residual, columns padded and compact', (_label, shape) => {
    const s = full(shape);
    const o = operands(s, s.C * 41 + s.M);
    const sum = randomArray(o.ySize, rng(s.M * 5 + 3));
    const mag = conv('scalar', s, o.x.map(Math.abs), o.w.map(Math.abs), null, 1).map((v, i) => v + Math.abs(sum[i]));
    const ref = conv('scalar', s, o.x, o.w, o.bias, 1).map((v, i) => Math.max(Math.fround(v + sum[i]), 0));
    const problems: string[] = [];
    for (const columns of ['padded', 'compact'])
      for (const isa of isas.slice(1))
        for (const threads of [1, 2]) {
          const got = convProgram(s, o.w, o.bias, { activation: 'relu', columns }, isa, threads, true).runSync([o.x, sum])[0];
          const bad = firstBad(got, ref, mag, o.bias, s);
          if (bad) problems.push(`${columns} ${isa} threads=${threads}: ${bad}`);
        }
    expect(problems).toEqual([]);
  });

  test('an unknown activation is refused', () => {
    const s = full(FUSED_CASES[0][1]);
    const o = operands(s, 1);
    expect(() => convProgram(s, o.w, o.bias, { activation: 'swish' }, 'scalar', 1)).toThrow(/unknown fused activation "swish"/);
  });
});

describe('fuseActivations (lowering peephole)', () => {
  const base = (): ProgramDesc => ({
    tensors: [{ shape: [1, 4] }, { shape: [4, 3], data: new Float32Array(12) }, { shape: [1, 3] }, { shape: [1, 3] }, { shape: [1, 3] }],
    inputs: [0],
    outputs: [4],
    ops: [
      { type: 'MatMul', name: 'mm', inputs: [0, 1], outputs: [2], attrs: {} },
      { type: 'Clip', name: 'clip', inputs: [2], outputs: [3], attrs: { min: 0, max: 6 } },
      { type: 'Relu', name: 'relu', inputs: [3], outputs: [4], attrs: {} },
    ],
  });

  test('folds a Clip read only by itself into its producer, and not a second activation', () => {
    const d = fuseActivations(base());
    expect(d.ops.map((o) => o.type)).toEqual(['MatMul', 'Relu']);
    expect(d.ops[0].attrs).toEqual({ activation: 'clip', act_min: 0, act_max: 6 });
    expect(d.ops[0].outputs).toEqual([3]);
  });

  test('leaves the pair alone when the intermediate is also a program output or read twice', () => {
    const d1 = base();
    d1.outputs = [4, 2];
    expect(fuseActivations(d1).ops.map((o) => o.type)).toEqual(['MatMul', 'Clip', 'Relu']);
    const d2 = base();
    d2.ops.push({ type: 'Relu', name: 'other', inputs: [2], outputs: [4], attrs: {} });
    expect(fuseActivations(d2).ops.map((o) => o.type)).toEqual(['MatMul', 'Clip', 'Relu', 'Relu']);
  });

  test('looks through the Reshape after a 1-D conv: the Relu folds into the conv, the Reshape writes its output', () => {
    // x [1,2,5] -> Reshape [1,2,1,5] -> Conv 1x1 -> [1,3,1,5] -> Reshape [1,3,5] -> Relu -> y
    const r = rng(5);
    const w = Float32Array.from({ length: 6 }, () => r() * 2 - 1);
    const desc = (): ProgramDesc => ({
      tensors: [{ shape: [1, 2, 5] }, { shape: [1, 2, 1, 5] }, { shape: [3, 2, 1, 1], data: w }, { shape: [1, 3, 1, 5] }, { shape: [1, 3, 5] }, { shape: [1, 3, 5] }],
      inputs: [0],
      outputs: [5],
      ops: [
        { type: 'Reshape', name: 'in4', inputs: [0], outputs: [1], attrs: {} },
        { type: 'Conv', name: 'conv', inputs: [1, 2], outputs: [3], attrs: { kernel: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 } },
        { type: 'Reshape', name: 'out3', inputs: [3], outputs: [4], attrs: {} },
        { type: 'Relu', name: 'relu', inputs: [4], outputs: [5], attrs: {} },
      ],
    });
    const fused = fuseActivations(desc());
    expect(fused.ops.map((o) => o.type)).toEqual(['Reshape', 'Conv', 'Reshape']);
    expect(fused.ops[1].attrs.activation).toBe('relu');
    expect(fused.ops[2].outputs).toEqual([5]);
    const x = Float32Array.from({ length: 10 }, () => r() * 2 - 1);
    const want = new NativeProgram({ ...desc(), isa: 'scalar' }).runSync([x])[0];
    expect(Array.from(new NativeProgram({ ...fused, isa: 'scalar' }).runSync([x])[0])).toEqual(Array.from(want));
    expect(want.some((v) => v === 0) && want.some((v) => v > 0)).toBe(true);
  });
});

describe('Reshape shares its input memory in the arena', () => {
  test('a reshaped value read at the end keeps its memory after its source is last read', () => {
    // a = Relu(x) is read only by the Reshape; b = Reshape(a) is a program output. c, d, e are the
    // same size and are written later: had a's memory been freed after the Reshape, they would
    // land on it and b would come out as e.
    const desc: ProgramDesc = {
      tensors: [{ shape: [2, 6] }, { shape: [2, 6] }, { shape: [3, 4] }, { shape: [2, 6] }, { shape: [2, 6] }, { shape: [2, 6] }],
      inputs: [0],
      outputs: [5, 2],
      ops: [
        { type: 'Relu', name: 'a', inputs: [0], outputs: [1], attrs: {} },
        { type: 'Reshape', name: 'b', inputs: [1], outputs: [2], attrs: {} },
        { type: 'Neg', name: 'c', inputs: [0], outputs: [3], attrs: {} },
        { type: 'Sigmoid', name: 'd', inputs: [3], outputs: [4], attrs: {} },
        { type: 'Add', name: 'e', inputs: [3, 4], outputs: [5], attrs: {} },
      ],
    };
    const x = Float32Array.from({ length: 12 }, (_, i) => (i - 5.5) / 3);
    const [e, b] = new NativeProgram({ ...desc, isa: 'scalar' }).runSync([x]);
    expect(Array.from(b)).toEqual(Array.from(x, (v) => Math.max(0, v)));
    x.forEach((v, i) => expect(e[i]).toBeCloseTo(-v + 1 / (1 + Math.exp(v)), 6));
  });
});
