// Convolution as a GEMM whose B panels are packed straight from the input (no im2col matrix), with
// the bias and the activation applied as the output tile is written. Written once over the vector
// width, instantiated in the *_avx2.cpp / *_avx512.cpp files; the generic side (conv.cpp) owns all
// memory, the threads and the geometry, and calls cgemm_item() once per work item.
//
// The column space. Output positions of a group of images are numbered j = oh*SR + n*Ws + ow: the
// images sit side by side in one "super row" of width SR = nb*Ws per output row (conv.cpp builds a
// zero-padded, stride-phase-split copy of the input in that layout). Then the B row of every tap k
// is contiguous in j: B[k][j] = src[koff[k] + j], so a B panel is KC plain copies of NR floats and
// several small images (7x7) fill the NR-wide panels of one GEMM instead of wasting a third of them.
// Columns with ow >= OW (the gap between images) are computed and dropped. 1x1 stride-1 unpadded
// convs read the input itself (no copy): there j = n*Ws + p with Ws = P, and a panel that crosses
// an image boundary is packed in two runs (B[k][j] = src[koff[k] + n*img + p]).
//
// Per work item (a range of columns): for each KC block, pack the chunk's B panels (L2), then for
// each NR panel (L1) run every MR-row panel of the pre-packed weights (micro-kernel of gemm_impl.h
// semantics, MR x NR accumulators in registers) and write the tile through the epilogue: first K
// block adds the bias, later ones accumulate into y, the last applies the clamp (Relu / Clip).
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernels/gemm_impl.h"
#include "kernels/variants.h"

namespace packptq {
namespace simd {
namespace {

// Conv tiles: M (output channels, 16..384 in the fixtures, always a multiple of 4) on broadcasts,
// output positions on vector lanes. AVX2: 4 x 24 = 12 accumulators, 3 B loads + 4 broadcasts per
// 12 FMAs; no padding rows for M = 16/32/64 (a 6-row tile wastes 11 % at M = 16).
using Avx2Conv = GemmConfig<8, 4, 3, 256, 120, 3072>;
using Avx512Conv = GemmConfig<16, 8, 2, 256, 112, 3072>;

template <int W>
struct IVecOf {
  typedef int type __attribute__((vector_size(W * 4)));
};

template <int W>
inline typename VecOf<W>::type clamp_v(typename VecOf<W>::type v, float lo, float hi) {
  using V = typename VecOf<W>::type;
  const V lv = V{} + lo, hv = V{} + hi;
  v = v > lv ? v : lv;  // NaN becomes lo, as the standalone Relu op does
  v = v < hv ? v : hv;
  return v;
}
inline float clamp_s(float v, float lo, float hi) {
  v = v > lo ? v : lo;
  return v < hi ? v : hi;
}

// MR x NR tile = a-panel · b-panel over kc, then the epilogue, stored to rows c + i*ldc.
// first: add bias (or nothing); else add what c holds. last && act: clamp.
// IND: B is not packed; row p of the panel is b + ko[p] (the padded input copy itself).
// NVC < Cfg::NV: only the first NVC vectors of columns (a panel's last, partial tile: a batch-1
// 7x7 output has 49 positions, and its third 24-wide panel holds one).
template <class Cfg, bool IND = false, int NVC = Cfg::NV>
inline void conv_micro_kernel(int kc, const float* __restrict a, const float* __restrict b, float* __restrict c,
                              long ldc, bool first, const float* bias, bool clamp, float lo, float hi,
                              const long* __restrict ko = nullptr) {
  constexpr int W = Cfg::W, MR = Cfg::MR, NV = NVC, NR = Cfg::NR;
  using V = typename VecOf<W>::type;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  // Unrolled by 4: the loop's own index, pointer and compare ops came every 12 FMAs (AVX2, best of
  // 4 alternated rounds: 3x3 convs 16-128 channels 1-5 % faster; resnet20 batch 32 one thread
  // against onnxruntime 0.72-0.76 -> 0.80-0.81).
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = loadu<V>((IND ? b + ko[p] : b) + j * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] += ai * bv[j];
    }
    a += MR;
    if (!IND) b += NR;
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    const float bi = first && bias ? bias[i] : 0.f;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* cp = c + i * ldc + j * W;
      V v = acc[i][j];
      if (first) v += bi;
      else v += loadu<V>(cp);
      if (clamp) v = clamp_v<W>(v, lo, hi);
      storeu<V>(cp, v);
    }
  }
}

// Copies len floats (a pure copy, so overlapping vector stores inside the run are harmless).
template <int W>
inline void copy_run(float* __restrict dst, const float* __restrict src, int len) {
  using V = typename VecOf<W>::type;
  if (len >= W) {
    int e = 0;
    for (; e + W <= len; e += W) {
      storeu<V>(dst + e, loadu<V>(src + e));
      __asm__("" : "+r"(e));  // keeps GCC from turning the loop into a memmove call
    }
    if (e < len) storeu<V>(dst + len - W, loadu<V>(src + len - W));
    return;
  }
  if constexpr (W > 4) {
    copy_run<W / 2>(dst, src, len);  // len < W: two overlapping half vectors, or narrower still
  } else {
    for (int e = 0; e < len; ++e) {
      dst[e] = src[e];
      __asm__("" : "+r"(e));
    }
  }
}

// y[i] = act(y[i] + s[i]): a residual Add (and the activation after it) fused into the conv.
template <int W>
void add_act(float* y, const float* s, long n, bool clamp, float lo, float hi) {
  using V = typename VecOf<W>::type;
  long i = 0;
  for (; i + W <= n; i += W) {
    V v = loadu<V>(y + i) + loadu<V>(s + i);
    if (clamp) v = clamp_v<W>(v, lo, hi);
    storeu<V>(y + i, v);
  }
  if constexpr (W > 4) {
    if (i < n) add_act<W / 2>(y + i, s + i, n - i, clamp, lo, hi);  // row tails: 28 = 3 x 8 + 4
  } else {
    for (; i < n; ++i) {
      const float v = y[i] + s[i];
      y[i] = clamp ? clamp_s(v, lo, hi) : v;
    }
  }
}

// The residual over the outputs of columns [c0, c1) of a work item, right after their last K block
// (they are still in L2): it.y = act(it.y + it.sum) along the same output runs the tiles use.
// A pass of its own, not a term in the tile epilogue: any extra state in cgemm_item's tile loop
// cost the 3x3 convs half their speed (register allocation of the inlined micro-kernel).
template <int W>
__attribute__((noinline)) void cgemm_add_sum(const CgemmItem& it, int c0, int c1) {
  if (it.compact) {  // runs inside one image: n*P + p -> y + n*y_img + p
    const int P = it.OH * it.OW;
    for (int j = c0; j < c1;) {
      const int n = j / P, p = j - n * P, len = std::min(c1 - j, P - p);
      const long off = (long)n * it.y_img + p;
      for (int m = it.m0; m < it.m1; ++m)
        add_act<W>(it.y + off + m * it.y_row, it.sum + off + m * it.y_row, len, it.clamp, it.lo, it.hi);
      j += len;
    }
    return;
  }
  int j = c0;
  int oh = j / it.SR, r = j - oh * it.SR, n = r / it.Ws, ow = r - n * it.Ws;
  while (j < c1) {
    const int len = std::min(c1 - j, it.Ws - ow);
    if (oh < it.OH && n < it.nvalid && ow < it.OW) {
      const long off = (long)n * it.y_img + (long)oh * it.OW + ow;
      const int cnt = std::min(len, it.OW - ow);
      for (int m = it.m0; m < it.m1; ++m)
        add_act<W>(it.y + off + m * it.y_row, it.sum + off + m * it.y_row, cnt, it.clamp, it.lo, it.hi);
    }
    j += len;
    ow = 0;
    if (++n * it.Ws >= it.SR) n = 0, ++oh;
  }
}

// One NR-float row of a B panel, in full vectors (memcpy of a constant 96 bytes became 16-byte moves).
template <class Cfg>
inline void copy_panel_row(float* __restrict dst, const float* __restrict src) {
  using V = typename VecOf<Cfg::W>::type;
#pragma GCC unroll 4
  for (int j = 0; j < Cfg::NV; ++j) storeu<V>(dst + j * Cfg::W, loadu<V>(src + j * Cfg::W));
}

// Per-thread work: the B chunk (kc_max x chunk), then the C buffer of the chunk (Mpad x chunk, or
// Mpad x NR with a single K block) that holds the tiles which cannot be written straight to y
// (panels crossing an output row or image, or the last row panel when M is not a multiple of MR).
template <class Cfg>
size_t cgemm_work_floats(int M, int nkb, int kc_max, int chunk) {
  // With one K block a tile is copied out right after it is computed: one panel's worth suffices.
  const size_t cb_cols = nkb > 1 ? round_up(chunk, Cfg::NR) : Cfg::NR;
  // W floats between the B chunk and the C buffer: compact packing writes whole vectors past a
  // panel row's last run (see cgemm_item).
  return (size_t)kc_max * round_up(chunk, Cfg::NR) + Cfg::W + (size_t)round_up(M, Cfg::MR) * cb_cols + 64;
}

template <class Cfg>
void cgemm_item(const CgemmItem& it) {
  constexpr int W = Cfg::W, MR = Cfg::MR, NR = Cfg::NR;
  using V = typename VecOf<W>::type;
  const int M = it.M, K = it.K, Mpad = round_up(M, MR);
  const long ldcb = round_up(it.chunk, NR);
  // With up to 64 output channels the packing costs more than reading the padded copy in place
  // (AVX2, measured: 16->16 @28 64 -> 77 GFLOP/s, 32->32 @14 67 -> 75, 64->64 @7 65 -> 68; even at
  // M = 128). The copy has NR floats of slack past its end, as the packing already relies on.
  // An item holding only some of the output rows (batch 1 on several threads) never packs: every
  // row block would pack the same panels again (vgg's 128-channel 7x7 convs at batch 1 on two
  // threads: 1.4x over one thread when packing, 1.6x without).
  const bool nopack = it.img == 0 && !it.compact && (Mpad <= 64 || it.m1 - it.m0 < M);
  const int P = it.OH * it.OW;  // compact columns per image
  // Packed panels on a 64-byte boundary (the per-thread buffer is a std::vector, 16-byte aligned):
  // otherwise nearly every B vector load of the micro-kernel straddles two cache lines.
  float* Bp = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(it.work) + 63) & ~uintptr_t(63));
  float* Cb = Bp + (size_t)it.kc_max * ldcb + W;
  // Output runs of one panel: columns [jj, jj+len) go to y + yoff + m*y_row (contiguous).
  int run_jj[NR + 1], run_len[NR + 1];
  long run_off[NR + 1];
  for (int c0 = it.c0; c0 < it.c1; c0 += it.chunk) {
    const int c1 = std::min(it.c1, c0 + it.chunk);
    const int np = (c1 - c0 + NR - 1) / NR;
    for (int kb = 0; kb < it.nkb; ++kb) {
      const int k0 = kb * it.kcb, kc = std::min(it.kcb, K - k0);
      const bool first = kb == 0, last = kb == it.nkb - 1;
      // ---- pack the chunk's B panels for this K block ----
      // With few output channels the packing costs up to an eighth of the multiply: the micro-kernel
      // then reads the padded copy directly (`nopack`).
      for (int q = 0; q < np && !nopack; ++q) {
        const int j0 = c0 + q * NR, nr = std::min(NR, c1 - j0);
        float* out = Bp + (size_t)q * kc * NR;
        if (it.compact) {
          // Runs of valid positions inside one output row of one image are contiguous in the
          // padded copy: column oh*SR + n*Ws + ow. Each run is copied in whole vectors, ascending,
          // so the floats a run writes past its end are overwritten by the next run (or the next
          // row; past the chunk's last row lies the W-float gap before Cb), and the reads past a
          // run's end stay inside the copy, which has NR floats of slack. A 7-float run is one
          // vector load and store instead of a 4-wide copy and three scalars.
          int src_col[NR + 1], dst_col[NR + 1], len_of[NR + 1], nr_runs = 0;
          for (int jj = 0; jj < nr;) {
            const int j = j0 + jj, n = j / P, pp = j - n * P, oh = pp / it.OW, ow = pp - oh * it.OW;
            const int len = std::min(nr - jj, it.OW - ow);
            src_col[nr_runs] = oh * it.SR + n * it.Ws + ow;
            dst_col[nr_runs] = jj;
            len_of[nr_runs++] = len;
            jj += len;
          }
          const long* ko = it.koff + k0;
          if (nr_runs == 1 && nr == NR) {
            const float* s = it.src + src_col[0];
            for (int k = 0; k < kc; ++k) copy_panel_row<Cfg>(out + (size_t)k * NR, s + ko[k]);
          } else {
            for (int k = 0; k < kc; ++k) {
              float* o = out + (size_t)k * NR;
              const float* s = it.src + ko[k];
              for (int r = 0; r < nr_runs; ++r) {
                float* __restrict d = o + dst_col[r];
                const float* __restrict q = s + src_col[r];
                for (int e = 0; e < len_of[r]; e += W) storeu<V>(d + e, loadu<V>(q + e));
              }
              if (nr < NR) std::memset(o + nr, 0, sizeof(float) * (NR - nr));
            }
          }
        } else if (it.img == 0) {  // contiguous columns (the padded copy has slack past its end)
          const float* s = it.src + j0;
          const long* ko = it.koff + k0;
          for (int k = 0; k < kc; ++k) copy_panel_row<Cfg>(out + (size_t)k * NR, s + ko[k]);
        } else {  // the input itself: split the panel where it crosses an image boundary
          int jj = 0;
          while (jj < nr) {
            const int j = j0 + jj, n = j / it.Ws, p = j - n * it.Ws;
            const int len = std::min(nr - jj, it.Ws - p);
            const float* s = it.src + (long)n * it.img + p;
            if (len == NR)
              for (int k = 0; k < kc; ++k) copy_panel_row<Cfg>(out + (size_t)k * NR, s + it.koff[k0 + k]);
            else
              for (int k = 0; k < kc; ++k) copy_run<W>(out + (size_t)k * NR + jj, s + it.koff[k0 + k], len);
            jj += len;
          }
          if (nr < NR)
            for (int k = 0; k < kc; ++k) std::memset(out + (size_t)k * NR + nr, 0, sizeof(float) * (NR - nr));
        }
      }
      // ---- multiply, panel by panel ----
      const float* Ablk = it.wp + (size_t)k0 * Mpad;
      for (int q = 0; q < np; ++q) {
        const int j0 = c0 + q * NR, nr = std::min(NR, c1 - j0);
        const float* bp = Bp + (size_t)q * kc * NR;
        // Where the panel's columns go: maximal runs inside one output row of one image.
        int nruns = 0;
        if (it.compact) {
          for (int j = j0; j < j0 + nr;) {
            const int n = j / P, pp = j - n * P, len = std::min(j0 + nr - j, P - pp);
            run_jj[nruns] = j - j0;
            run_len[nruns] = len;
            run_off[nruns] = (long)n * it.y_img + pp;
            ++nruns;
            j += len;
          }
        } else {
          int j = j0;
          const int jend = j0 + nr;
          int oh = j / it.SR, r = j - oh * it.SR, n = r / it.Ws, ow = r - n * it.Ws;
          while (j < jend) {
            const int len = std::min(jend - j, it.Ws - ow);
            if (oh < it.OH && n < it.nvalid && ow < it.OW) {
              run_jj[nruns] = j - j0;
              run_len[nruns] = std::min(len, it.OW - ow);
              run_off[nruns] = (long)n * it.y_img + (long)oh * it.OW + ow;
              ++nruns;
            }
            j += len;
            ow = 0;
            if (++n * it.Ws >= it.SR) n = 0, ++oh;
          }
        }
        if (nruns == 0) continue;
        const bool direct = nruns == 1 && run_jj[0] == 0 && run_len[0] == NR;
        const bool clamp = last && it.clamp && !it.sum;  // with a residual, cgemm_add_sum clamps
        for (int ir = it.m0; ir < it.m1; ir += MR) {
          const int mr = std::min(MR, it.m1 - ir);
          const float* ap = Ablk + (size_t)ir * kc;
          const float* bias = it.bias ? it.bias + ir : nullptr;  // padded to Mpad by the caller
          float* cdst = direct && mr == MR ? it.y + run_off[0] + (long)ir * it.y_row : Cb + ((size_t)(it.nkb > 1 ? q : 0) * Mpad + ir) * NR;
          const long cld = direct && mr == MR ? it.y_row : NR;
          // A partial panel computes only the vectors that hold its columns (the tile goes through
          // the C buffer, where the copy-out reads no further than nr).
          const int nv = (nr + W - 1) / W;
          const float* bsrc = nopack ? it.src + j0 : bp;
          auto tile = [&](auto nvc) {
            constexpr int NVC = decltype(nvc)::value;
            if (nopack)
              conv_micro_kernel<Cfg, true, NVC>(kc, ap, bsrc, cdst, cld, first, bias, clamp, it.lo, it.hi, it.koff + k0);
            else
              conv_micro_kernel<Cfg, false, NVC>(kc, ap, bsrc, cdst, cld, first, bias, clamp, it.lo, it.hi);
          };
          if (nv == 1)
            tile(std::integral_constant<int, 1>{});
          else if (nv == 2 && Cfg::NV > 2)
            tile(std::integral_constant<int, 2>{});
          else
            tile(std::integral_constant<int, Cfg::NV>{});
          // A scattered or partial tile went whole into the chunk's C buffer (panel-major, so one
          // tile is contiguous), where it accumulates over the K blocks with the same epilogue;
          // after the last K block its valid runs are copied out with vector moves.
          if ((direct && mr == MR) || !last) continue;
          const float* cb = cdst;
          for (int i = 0; i < mr; ++i) {
            const float* t = cb + i * NR;
            float* yrow = it.y + (long)(ir + i) * it.y_row;
            for (int u = 0; u < nruns; ++u) copy_run<W>(yrow + run_off[u], t + run_jj[u], run_len[u]);
          }
        }
      }
    }
    if (it.sum) cgemm_add_sum<W>(it, c0, c1);
  }
}

}  // namespace
}  // namespace simd
}  // namespace packptq
