// The SIMD sgemm, written once over the vector width with GCC vector extensions and instantiated
// per ISA in the *_avx2.cpp / *_avx512.cpp files (each compiled with its own -march). Only those
// files may include this header: every function here compiles to the instruction set of the file
// that instantiates it.
//
// Structure (the usual Goto/BLIS decomposition; the outer jc loop is the work items of the threads):
//   for jc in N by chunk       a rectangle of C per work item (column chunk <= NC, row range)
//     for pc in K by KC        B chunk (KC x chunk) packed into the thread's buffer
//       for ic in M by MC      A block (MC x KC) packed per thread, stays in L2
//         for jr in NC by NR   B micro-panel (KC x NR) stays in L1 across the ir loop
//           for ir in MC by MR micro-kernel: MR x NR tile of C held in registers for the whole kc loop
// Packed panels are zero padded to MR / NR, so the micro-kernel never branches on edges; partial
// tiles of C go through a small buffer instead.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "kernels/work_pool.h"

namespace packptq {
namespace simd {
// Internal linkage on purpose: each ISA object compiles these with its own -march, and shared
// (COMDAT) inline copies would let the linker keep an AVX-512 copy for the AVX2 object.
namespace {

template <int W>
struct VecOf {
  typedef float type __attribute__((vector_size(W * 4)));
};
// W / 2 doubles: the same register width as W floats.
template <int W>
struct DVecOf {
  typedef double type __attribute__((vector_size(W * 4)));
};

// memcpy is how GCC is told "unaligned, may alias floats": it becomes a single vmovups.
template <typename V>
inline V loadu(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
inline void storeu(float* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// W lanes per vector, MR x (NV*W) register tile, cache blocks KC/MC/NC (MC multiple of MR, NC of NR).
template <int W_, int MR_, int NV_, int KC_, int MC_, int NC_>
struct GemmConfig {
  static constexpr int W = W_, MR = MR_, NV = NV_, NR = W_ * NV_, KC = KC_, MC = MC_, NC = NC_;
  static_assert(MC_ % MR_ == 0 && NC_ % (W_ * NV_) == 0, "blocks must hold whole register tiles");
};

// AVX2 (16 ymm): 6x16 tile = 12 accumulators + 2 B vectors + 1 broadcast. B micro-panel
// 256x16x4 = 16 KB (half of L1d), A block 120x256x4 = 120 KB (a quarter of Zen 3's L2).
using Avx2Gemm = GemmConfig<8, 6, 2, 256, 120, 3072>;
// AVX-512 (32 zmm): 14x32 tile = 28 accumulators + 2 B vectors + 1 broadcast.
using Avx512Gemm = GemmConfig<16, 14, 2, 256, 112, 3072>;

// Grow-only 64-byte aligned scratch, one per thread and per ISA object (thread_local below):
// kernels are called thousands of times from the executor and must not allocate each time.
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t floats) {
    if (floats > n) {
      std::free(p);
      p = static_cast<float*>(std::aligned_alloc(64, ((floats * sizeof(float) + 63) / 64) * 64));
      if (p == nullptr) {
        n = 0;
        throw std::bad_alloc();
      }
      n = floats;
    }
    return p;
  }
  ~Scratch() { std::free(p); }
};

inline int round_up(int x, int m) { return (x + m - 1) / m * m; }

// ---- packing ---------------------------------------------------------------------------------

// Rows [i0, i0+mr) x cols [k0, k0+kc) of op(A) into one MR-row panel: out[k*MR + i]. Rows past mr are 0.
template <class Cfg>
inline void pack_a_panel(bool transA, const float* A, long lda, int i0, int mr, int k0, int kc, float* out) {
  constexpr int MR = Cfg::MR;
  if (!transA && mr == MR) {
    // Whole panel: one k at a time across the MR row streams, so each output row of the panel is
    // written at once (contiguous) instead of MR passes of stride-MR scalar stores. This packing
    // is as costly as the multiply when the other operand is thin (a conv's weight gradient).
    const float* src[MR];
    for (int i = 0; i < MR; ++i) src[i] = A + (long)(i0 + i) * lda + k0;
    for (int k = 0; k < kc; ++k) {
      float* dst = out + k * MR;
      for (int i = 0; i < MR; ++i) dst[i] = src[i][k];
    }
  } else if (!transA) {
    for (int i = 0; i < mr; ++i) {
      const float* src = A + (long)(i0 + i) * lda + k0;
      for (int k = 0; k < kc; ++k) out[k * MR + i] = src[k];
    }
    for (int i = mr; i < MR; ++i)
      for (int k = 0; k < kc; ++k) out[k * MR + i] = 0.f;
  } else {
    for (int k = 0; k < kc; ++k) {
      const float* src = A + (long)(k0 + k) * lda + i0;
      float* dst = out + k * MR;
      int i = 0;
      for (; i < mr; ++i) dst[i] = src[i];
      for (; i < MR; ++i) dst[i] = 0.f;
    }
  }
}

// Rows [k0, k0+kc) x cols [j0, j0+nr) of op(B) into one NR-column panel: out[k*NR + j]. Cols past nr are 0.
template <class Cfg>
inline void pack_b_panel(bool transB, const float* B, long ldb, int k0, int kc, int j0, int nr, float* out) {
  constexpr int NR = Cfg::NR;
  if (!transB) {
    for (int k = 0; k < kc; ++k) {
      const float* src = B + (long)(k0 + k) * ldb + j0;
      float* dst = out + k * NR;
      if (nr == NR) {
        std::memcpy(dst, src, sizeof(float) * NR);
      } else {
        int j = 0;
        for (; j < nr; ++j) dst[j] = src[j];
        for (; j < NR; ++j) dst[j] = 0.f;
      }
    }
  } else {
    for (int j = 0; j < nr; ++j) {
      const float* src = B + (long)(j0 + j) * ldb + k0;
      for (int k = 0; k < kc; ++k) out[k * NR + j] = src[k];
    }
    for (int j = nr; j < NR; ++j)
      for (int k = 0; k < kc; ++k) out[k * NR + j] = 0.f;
  }
}

// Whole op(A) pre-packed, laid out exactly as the driver walks it: for each KC block (offset
// pc * Mpad), all rows padded to MR in MR-row panels, panel r at (r * MR) * kc.
template <class Cfg>
size_t packed_a_floats(int M, int K) {
  return (size_t)round_up(std::max(M, 1), Cfg::MR) * (size_t)std::max(K, 1);
}
template <class Cfg>
void pack_a_full(bool transA, int M, int K, const float* A, int lda, float* out) {
  const int Mpad = round_up(M, Cfg::MR);
  for (int pc = 0; pc < K; pc += Cfg::KC) {
    const int kc = std::min(Cfg::KC, K - pc);
    float* blk = out + (size_t)pc * Mpad;
    for (int i = 0; i < M; i += Cfg::MR)
      pack_a_panel<Cfg>(transA, A, lda, i, std::min(Cfg::MR, M - i), pc, kc, blk + (size_t)i * kc);
  }
}

// ---- micro-kernel ----------------------------------------------------------------------------

// C[0:MR, 0:NR] (= or +=) a-panel · b-panel over kc. The accumulators are a fixed-size array
// indexed only by fully unrolled constant loops, so GCC keeps all of them in registers; the
// scalar * vector product broadcasts a[i] and the += contracts into vfmadd231ps.
template <class Cfg>
inline void micro_kernel(int kc, const float* __restrict a, const float* __restrict b, float* __restrict c,
                         long ldc, bool add) {
  constexpr int W = Cfg::W, MR = Cfg::MR, NV = Cfg::NV, NR = Cfg::NR;
  using V = typename VecOf<W>::type;
  V acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = V{};
  // Unrolled by 4, as the conv micro-kernel (AVX2, best of 3 alternated rounds: 256^3 and 512^3
  // 4-6 % faster, a ViT MLP's 1600x384x96 8 %, small shapes unchanged).
#pragma GCC unroll 4
  for (int p = 0; p < kc; ++p) {
    V bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = loadu<V>(b + j * W);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const float ai = a[i];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] += ai * bv[j];
    }
    a += MR;
    b += NR;
  }
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* cp = c + i * ldc + j * W;
      V v = acc[i][j];
      if (add) v += loadu<V>(cp);
      storeu<V>(cp, v);
    }
}

// Edge tile (mr < MR or nr < NR): full tile into a buffer, then only the valid part into C.
template <class Cfg>
inline void micro_kernel_edge(int kc, const float* a, const float* b, float* c, long ldc, bool add, int mr, int nr) {
  constexpr int W = Cfg::W;
  using V = typename VecOf<W>::type;
  alignas(64) float tile[Cfg::MR * Cfg::NR];
  micro_kernel<Cfg>(kc, a, b, tile, Cfg::NR, false);
  // Whole vectors, then a scalar tail: attention's small products (50 x 24 x 50 per head) are all
  // edge tiles, and copying them a float at a time took a third of their time.
  for (int i = 0; i < mr; ++i) {
    float* cr = c + i * ldc;
    const float* tr = tile + i * Cfg::NR;
    using H = typename VecOf<(W > 4 ? W / 2 : W)>::type;
    constexpr int WH = W > 4 ? W / 2 : W;
    int j = 0;
    if (add) {
      for (; j + W <= nr; j += W) storeu<V>(cr + j, loadu<V>(cr + j) + loadu<V>(tr + j));
      if (j + WH <= nr) storeu<H>(cr + j, loadu<H>(cr + j) + loadu<H>(tr + j)), j += WH;
      for (; j < nr; ++j) cr[j] += tr[j];
    } else {
      for (; j + W <= nr; j += W) storeu<V>(cr + j, loadu<V>(tr + j));
      if (j + WH <= nr) storeu<H>(cr + j, loadu<H>(tr + j)), j += WH;
      for (; j < nr; ++j) cr[j] = tr[j];
    }
  }
}

// ---- driver ----------------------------------------------------------------------------------

// A second thread pays for itself from ~0.4 MFLOP (a few microseconds) of work each. The bar was
// 2 MFLOP when threads were an OpenMP team (start-up and barriers, and a barrier waiting a whole
// time slice for a descheduled partner); the work pool (work_pool.h) costs well under a
// microsecond per call and keeps each thread on its own items, and at 0.4 MFLOP a ViT's batch-1
// token products (50 x 96 x 288 and the like) went from 1.06x to 1.39x on two threads.
inline int useful_threads(int M, int N, int K, int threads) {
  const double flops = 2.0 * M * N * K;
  if (threads <= 1) return 1;
  return std::max(1, std::min(threads, (int)(flops / 4e5)));
}

// C[m, n0:n1] (+)= op(A)[m, :] · op(B)[:, n0:n1] for the rows of a skinny op(A) (at most
// kSmallM rows, given contiguous in a): reads B in place. With transB each C element is a dot
// product of two contiguous K-rows (four B rows at a time share the A loads); otherwise C's row
// segment accumulates a[m][k] times B's row k, vectorised along n. Each C element sees its K terms
// in a fixed order whatever the split over n, so results do not depend on the thread count.
constexpr int kSmallM = 2;
template <int W>
void small_m_cols(bool transB, int M, int K, const float* a, const float* B, int ldb, float* C, int ldc,
                  bool accumulate, int n0, int n1) {
  using V = typename VecOf<W>::type;
  // C element = the lanes of a dot-product accumulator plus the K tail past the last full vector.
  auto finish = [&](V acc, const float* am, const float* bn, int k, float* c) {
    float lanes[W], t = 0.f;
    storeu<V>(lanes, acc);
    for (int i = 0; i < W; ++i) t += lanes[i];
    for (; k < K; ++k) t += am[k] * bn[k];
    *c = accumulate ? *c + t : t;
  };
  if (transB) {
    for (int m = 0; m < M; ++m) {
      const float* am = a + (size_t)m * K;
      int n = n0;
      for (; n + 4 <= n1; n += 4) {
        const float* b0 = B + (long)n * ldb;
        V acc[4] = {V{}, V{}, V{}, V{}};
        int k = 0;
        for (; k + W <= K; k += W) {
          const V av = loadu<V>(am + k);
#pragma GCC unroll 4
          for (int r = 0; r < 4; ++r) acc[r] += av * loadu<V>(b0 + (long)r * ldb + k);
        }
        for (int r = 0; r < 4; ++r) finish(acc[r], am, b0 + (long)r * ldb, k, C + (long)m * ldc + n + r);
      }
      for (; n < n1; ++n) {
        const float* bn = B + (long)n * ldb;
        V acc = V{};
        int k = 0;
        for (; k + W <= K; k += W) acc += loadu<V>(am + k) * loadu<V>(bn + k);
        finish(acc, am, bn, k, C + (long)m * ldc + n);
      }
    }
    return;
  }
  for (int m = 0; m < M; ++m) {
    float* c = C + (long)m * ldc;
    if (!accumulate) std::memset(c + n0, 0, sizeof(float) * (n1 - n0));
    const float* am = a + (size_t)m * K;
    for (int k = 0; k < K; ++k) {
      const V av = V{} + am[k];
      const float* bk = B + (long)k * ldb;
      int n = n0;
      for (; n + W <= n1; n += W) storeu<V>(c + n, loadu<V>(c + n) + av * loadu<V>(bk + n));
      for (; n < n1; ++n) c[n] += am[k] * bk[n];
    }
  }
}

// C = A · B for small row-major A and B (attention's per-head products, 50 x 24 x 50): no packing.
// A tile of MR rows x CV vectors reads its A elements as broadcasts from A's rows and its B
// vectors straight from B's rows. Packing both operands cost more than the multiply at these sizes
// (and every tile was an edge tile). Columns are covered by whole vectors; a last vector that would
// pass column N starts at N - W instead, overlapping the one before, and a last row block that would
// pass row M starts at M - MR: the overlapped outputs are computed again with the same FMAs in the
// same order and stored with the same bits, so C is only ever overwritten (hence !accumulate).
template <int W, int MR, int CV>
inline void small_nopack_tile(int K, const float* __restrict A, long lda, const float* __restrict B, long ldb,
                              float* __restrict C, long ldc, int i0, const int* j0) {
  using V = typename VecOf<W>::type;
  V acc[MR][CV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) acc[i][c] = V{};
  const float* a = A + (long)i0 * lda;
  for (int k = 0; k < K; ++k) {
    V bv[CV];
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) bv[c] = loadu<V>(B + (long)k * ldb + j0[c]);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const float ai = a[(long)i * lda + k];
#pragma GCC unroll 4
      for (int c = 0; c < CV; ++c) acc[i][c] += ai * bv[c];
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int c = 0; c < CV; ++c) storeu<V>(C + (long)(i0 + i) * ldc + j0[c], acc[i][c]);
}

// False (nothing done) when the shape does not suit: fewer than W columns or MR rows, or more
// than 64 vectors of columns.
template <int W>
bool small_nopack(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  // 2 x MR accumulators: 24 of AVX-512's 32 registers, 12 of AVX2's 16.
  constexpr int MR = W == 16 ? 12 : 6, CV = 2;
  constexpr int kMaxVectors = 64;  // column vectors per row (js below)
  if (N < W || M < MR || N > kMaxVectors * W) return false;
  int js[kMaxVectors], nv = 0;
  for (int j = 0; j < N; j += W) js[nv++] = j + W <= N ? j : N - W;
  for (int v = 0; v < nv; v += CV) {
    const int cv = std::min(CV, nv - v);
    for (int i0 = 0; i0 < M; i0 += MR) {
      const int i = std::min(i0, M - MR);
      if (cv == CV) small_nopack_tile<W, MR, CV>(K, A, lda, B, ldb, C, ldc, i, js + v);
      else small_nopack_tile<W, MR, 1>(K, A, lda, B, ldb, C, ldc, i, js + v);
    }
  }
  return true;
}

template <class Cfg>
struct GemmDriver {
  static constexpr int MR = Cfg::MR, NR = Cfg::NR, KC = Cfg::KC, MC = Cfg::MC, NC = Cfg::NC;

  // op(A) with at most kSmallM rows (fully connected layers at batch 1): each B element is used at
  // most twice, so packing B into panels, as the blocked path does, costs as much as the multiply
  // (vgg's 2304x512 classifier at batch 1: 0.26 ms against onnxruntime's 0.04). B is read in place,
  // columns split over the threads.
  static void run_small_m(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B,
                          int ldb, float* C, int ldc, bool accumulate, int threads) {
    static thread_local Scratch scratch;  // grow-only: no allocation after the first call
    const float* a = A;
    if (transA || (M > 1 && lda != K)) {  // op(A) rows made contiguous (at most 2 x K floats)
      float* buf = scratch.get((size_t)M * K);
      for (int m = 0; m < M; ++m)
        for (int k = 0; k < K; ++k) buf[(size_t)m * K + k] = transA ? A[(long)k * lda + m] : A[(long)m * lda + k];
      a = buf;
    }
    // Bound by reading B, not by its flops: a 1152x512 classifier at batch 1 (1.2 MFLOP, under
    // useful_threads' bar) streams 2.4 MB from L3 in ~30 us, which two cores share well.
    const int nt = (size_t)N * K >= ((size_t)64 << 10) ? std::max(1, threads) : useful_threads(M, N, K, threads);
    const int items = nt == 1 ? 1 : std::min(3 * nt, std::max(1, N / 64));
    const int per = (N + items - 1) / items;
    run_items(items, nt, [&](int, int item) {
      const int n0 = item * per, n1 = std::min(N, n0 + per);
      if (n0 < n1) small_m_cols<Cfg::W>(transB, M, K, a, B, ldb, C, ldc, accumulate, n0, n1);
    });
  }

  // Ap: op(A) pre-packed by pack_a_full, or nullptr to pack A from (A, lda, transA) on the fly.
  static void run(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* Ap,
                  const float* B, int ldb, float* C, int ldc, bool accumulate, int threads) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // empty sum: C = 0, or unchanged when accumulating
      if (!accumulate)
        for (int i = 0; i < M; ++i) std::memset(C + (long)i * ldc, 0, sizeof(float) * N);
      return;
    }
    if (M <= kSmallM && !Ap) {
      run_small_m(transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, threads);
      return;
    }
    const int nt = useful_threads(M, N, K, threads);
    // One thread's worth of small product (B's column pairs stay in L1 across the row blocks).
    if (!Ap && !transA && !transB && !accumulate && nt == 1 && K <= 256 && (long)M * N * K <= (1L << 20) &&
        small_nopack<Cfg::W>(M, N, K, A, lda, B, ldb, C, ldc))
      return;
    const int Mpad = round_up(M, MR), kc_max = std::min(KC, K);

    // Work items are rectangles of C: column chunks (whole NR panels, at most NC wide) times row
    // ranges (whole MR panels). An item packs its own B chunk and A blocks into its thread's
    // buffers, so threads share nothing and never wait for each other inside the call: on a shared
    // machine a descheduled thread only delays the items it holds. With several threads there are
    // ~3 items per thread, handed out dynamically; chunks stay >= 4 panels wide so the packing of A
    // (repeated per chunk) stays small next to the multiply. Items run through run_items (see
    // work_pool.h for why not an OpenMP team).
    // Chunk c covers panels [c * np / cchunks, (c + 1) * np / cchunks): sizes differ by at most one
    // panel. Chunks of ceil(np / cchunks) panels left the last one short (1024^2: 32 panels in
    // 6, 6, 6, 6, 6, 2), and with contiguous shards one of two threads had 18 of the 32 panels.
    const int np = (N + NR - 1) / NR, target = nt == 1 ? 1 : 3 * nt;
    int cchunks = (N + NC - 1) / NC;
    if (nt > 1) cchunks = std::max(cchunks, std::min(target, std::max(1, np / 4)));
    cchunks = std::min(cchunks, np);
    const int per_c = (np + cchunks - 1) / cchunks;  // the widest chunk
    int rchunks = 1;
    const int rpanels_all = Mpad / MR;
    if (nt > 1 && cchunks < target) rchunks = std::min(rpanels_all, (target + cchunks - 1) / cchunks);
    const int items = cchunks * rchunks;

    // Several column chunks share every row of A, and each item packed its A blocks itself: with ~3
    // chunks per thread that packed all of A three times per thread (1024^3 on two threads scaled
    // 1.62x instead of the FMA peak's 1.96x). Pack op(A) once instead, in parallel, in the layout
    // of pack_a_full, and run the items on it (capped at 32 MB of packed A).
    static thread_local Scratch a_scratch;
    if (!Ap && nt > 1 && cchunks > 1 && (size_t)Mpad * K <= ((size_t)8 << 20)) {
      float* packed = a_scratch.get((size_t)Mpad * K);
      const int kblocks = (K + KC - 1) / KC, rpanels = Mpad / MR;
      run_items(kblocks * rpanels, nt, [&](int, int item) {
        const int pc = (item / rpanels) * KC, i = (item % rpanels) * MR, kc = std::min(KC, K - pc);
        pack_a_panel<Cfg>(transA, A, lda, i, std::min(MR, M - i), pc, kc, packed + (size_t)pc * Mpad + (size_t)i * kc);
      });
      Ap = packed;
    }

    // All packing memory is taken here, on the calling thread: an allocation failure inside the
    // OpenMP team could not be turned into an exception.
    const size_t b_floats = (size_t)kc_max * per_c * NR;
    const size_t a_floats = Ap ? 0 : (size_t)std::min(MC, Mpad) * kc_max;
    const size_t per_thread = round_up((int)(b_floats + a_floats), 16);
    static thread_local Scratch scratch;
    float* buf = scratch.get(per_thread * nt);

    auto item_work = [&](int tid, int item) {
      float* Bp = buf + per_thread * tid;
      float* Abuf = Bp + b_floats;
      const int ri = item / cchunks, ci = item % cchunks;
      const int r0 = (int)((long)ri * rpanels_all / rchunks) * MR;
      const int r1 = std::min(M, (int)((long)(ri + 1) * rpanels_all / rchunks) * MR);
      const int q0 = (int)((long)ci * np / cchunks), q1 = (int)((long)(ci + 1) * np / cchunks);
      for (int pc = 0; pc < K; pc += KC) {
        const int kc = std::min(KC, K - pc);
        for (int q = q0; q < q1; ++q)
          pack_b_panel<Cfg>(transB, B, ldb, pc, kc, q * NR, std::min(NR, N - q * NR), Bp + (size_t)(q - q0) * kc * NR);
        const bool add = accumulate || pc > 0;
        for (int ic = r0; ic < r1; ic += MC) {
          const int mc = std::min(MC, r1 - ic);
          const float* Ablk;
          if (Ap) {
            Ablk = Ap + (size_t)pc * Mpad + (size_t)ic * kc;
          } else {
            for (int ir = 0; ir < mc; ir += MR)
              pack_a_panel<Cfg>(transA, A, lda, ic + ir, std::min(MR, mc - ir), pc, kc, Abuf + (size_t)ir * kc);
            Ablk = Abuf;
          }
          // B micro-panel (kc x NR) stays in L1 while the ir loop streams the A block from L2.
          for (int q = q0; q < q1; ++q) {
            const int nr = std::min(NR, N - q * NR);
            const float* bp = Bp + (size_t)(q - q0) * kc * NR;
            for (int ir = 0; ir < mc; ir += MR) {
              const int mr = std::min(MR, mc - ir);
              float* cp = C + (long)(ic + ir) * ldc + q * NR;
              if (mr == MR && nr == NR)
                micro_kernel<Cfg>(kc, Ablk + (size_t)ir * kc, bp, cp, ldc, add);
              else
                micro_kernel_edge<Cfg>(kc, Ablk + (size_t)ir * kc, bp, cp, ldc, add, mr, nr);
            }
          }
        }
      }
    };

    // Each C element is computed by one item with the same sequence of FMAs whatever the partition,
    // so results are identical for every thread count.
    run_items(items, nt, item_work);
  }
};

}  // namespace
}  // namespace simd
}  // namespace packptq
