// Kernel variants and the function tables that dispatch to them.
//
// The public contract speaks in Isa (scalar, avx2, avx512). Internally there is one more variant,
// "avx512-logic": the AVX-512 template instantiation (same lane count, register blocking, panel
// sizes and tail handling) compiled for AVX2, where GCC splits each 16-lane vector into two ymm.
// It lets the tests exercise the AVX-512 source on machines without AVX-512; it is never chosen
// by default_isa() and is not a public Isa.
//
// Each SIMD variant lives in its own *_avx2.cpp / *_avx512.cpp object (built with its own -march)
// and exports one KernelTable; generic code reaches the variant only through that table, so no
// -march code can run on a CPU that lacks it (variant_supported() is checked first).
#pragma once
#include <cstddef>
#include <memory>

#include "core/isa.h"
#include "kernels/conv.h"

namespace packptq {

enum class KernelVariant { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Logic = 3 };

const char* variant_name(KernelVariant v);
// "scalar" | "avx2" | "avx512" | "avx512-logic"; false when unknown.
bool parse_variant(const char* name, KernelVariant* out);
bool variant_supported(KernelVariant v);
inline KernelVariant variant_of(Isa isa) { return static_cast<KernelVariant>(static_cast<int>(isa)); }

// Geometry of one depthwise-style (one input channel per output channel) convolution plane.
struct DwGeom {
  int H, W, OH, OW, KH, KW, sh, sw, pt, pl, dh, dw;
  int pb = 0, pr = 0;  // bottom / right pads (the flattened dw2 kernel sizes its planes with them)
};

// Precomputed layout of the flattened depthwise kernel (conv_impl.h dw2_plane): phase planes of
// Hq x Wq, tap offsets, and per column phase the first input column and its destination. Built by
// make_dw2_plan (conv.cpp) once per prepared conv; needs KH*KW <= 64 and stride_w <= 8.
struct Dw2Plan {
  int Hq, Wq;
  long PB, span, temp, total;  // plane size, computed outputs (whole passes), temp offset, floats
  int a0, rq0;                 // phase and row of input row 0
  int iw0[8], d0[8], cnt[8];  // per column phase: first input column, its destination, how many
  long toff[64];
};
bool make_dw2_plan(const DwGeom& g, int lanes, Dw2Plan* plan);

// Layout of the channels-on-lanes depthwise kernel (dw_chan_impl.h dwc_group), in positions of the
// zero-padded plane (Hp x Wp); the kernel scales them by its lane count. Arrays owned by the caller.
struct DwcPlan {
  int HW, P, taps;       // input positions, output positions, KH*KW
  const int* in_pos;     // [HW] padded position of input position ih*W + iw
  const int* out_pos;    // [P] padded position read by tap (0, 0) of output oh*OW + ow
  const int* tap_pos;    // [taps] offset of tap (kh, kw) from there
};

// One work item of the lanes conv (conv_lanes_impl.h): a 3x3 stride-1 convolution with pads 1, or
// a 1x1 stride-1 one without padding (taps 9 or 1), no dilation, one group; rows [r0, r1) of the
// space r = (n * groups + g) * R + row over images n, channel groups g of nb * lanes output
// channels and R rows per plane (lanes_rows: the output rows, or for 1x1 the tiles of the
// flattened plane). w holds, per group, [C][taps][nb * lanes] (channels past M zero); bias
// [groups * nb * lanes]; sum (optional) is shaped like y and added before the clamp.
struct LanesItem {
  const float* x;
  const float* w;
  const float* bias;
  float* y;
  const float* sum;
  int C, M, H, Wd;  // input channels, output channels, plane height and width (input = output)
  int taps, nb, groups;
  long r0, r1;
  bool clamp;
  float lo, hi;
};

// One work item of the convolution GEMM (conv_gemm_impl.h): output columns [c0, c1) of a column
// space j = oh*SR + n*Ws + ow (images side by side), all M rows of one group.
struct CgemmItem {
  int M, K;            // rows (output channels of the group), reduction length (Cg*KH*KW)
  int kcb, nkb;        // K blocks: nkb blocks of kcb (the last one shorter)
  int kc_max, chunk;   // sizing of the B chunk in `work` (chunk columns, a multiple of NR)
  const float* wp;     // weights packed by cgemm_pack_w for this kcb
  const float* src;    // B[k][j] = src[koff[k] + j]  (img == 0: padded copy, contiguous in j)
  const long* koff;    //           src[koff[k] + n*img + p]  (img > 0: the input, j = n*Ws + p)
  long img;
  int SR, Ws, OW, OH, nvalid;  // column space; columns with ow >= OW or n >= nvalid are dropped
  float* y;            // y[n*y_img + m*y_row + oh*OW + ow]
  long y_img, y_row;
  const float* bias;   // per row, or nullptr
  const float* sum;    // residual added after the last K block, before the clamp (indexed like y), or nullptr
  bool clamp;          // clamp to [lo, hi] after the last K block (fused Relu / Clip)
  float lo, hi;
  // Compact columns: j = n*OH*OW + oh*OW + ow, only the valid output positions (no columns
  // between images), packed from the padded copy run by run; needs img == 0 and always packs.
  bool compact = false;
  int c0, c1;          // the item's columns
  int m0 = 0, m1 = 0;  // the item's rows [m0, m1), m0 a multiple of MR (row split when columns are few)
  float* work;         // cgemm_work_floats(M, nkb, kc_max, chunk) floats, per thread
};

struct KernelTable {
  // Full sgemm contract of gemm.h.
  void (*sgemm)(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                float* C, int ldc, bool accumulate, int threads);
  // A pre-packed once (conv weights): floats needed, the packing, and sgemm taking the packed A.
  size_t (*packed_a_floats)(int M, int K);
  void (*pack_a)(bool transA, int M, int K, const float* A, int lda, float* out);
  void (*sgemm_packed_a)(int M, int N, int K, const float* Ap, bool transB, const float* B, int ldb, float* C,
                         int ldc, bool accumulate, int threads);
  // Direct convolution of one input plane into nout output planes (depthwise with channel
  // multiplier nout): y[o] = bias[o] + conv(x, w[o]). scratch holds dw_scratch_floats(g) floats.
  size_t (*dw_scratch_floats)(const DwGeom& g);
  void (*dw_plane)(const DwGeom& g, const float* x, const float* w, const float* bias, int nout, float* y,
                   float* scratch);
  // FMA throughput probe: GFLOP/s over about `seconds`, `threads` copies running concurrently.
  double (*peak_gflops)(int threads, double seconds);
  int lanes;  // floats per vector register of this variant
  // Convolution GEMM (conv_gemm_impl.h): its MR x NR tile, scratch size and one work item.
  int cgemm_mr, cgemm_nr;
  size_t (*cgemm_work_floats)(int M, int nkb, int kc_max, int chunk);
  void (*cgemm_item)(const CgemmItem& item);
  // Depthwise on flattened phase planes (conv_impl.h dw2_*): scratch must be zeroed once.
  void (*dw2_plane)(const DwGeom& g, const Dw2Plan& plan, const float* x, const float* w, const float* bias, int nout,
                    float* y, float* scratch, bool clamp, float lo, float hi);
  // Elementwise kernels of the executor (conv_act_impl.h): exact-erf Gelu, and Softmax / LogSoftmax
  // over `rows` contiguous rows of n floats.
  void (*gelu_erf)(const float* x, float* y, long n);
  void (*softmax_rows)(const float* x, float* y, long rows, long n, bool log);
  // Training's exact-Gelu backward: gx (+)= gy · Gelu'(x) over n floats.
  void (*gelu_erf_grad)(const float* x, const float* gy, float* gx, long n, bool accumulate);
  // AdaRound's rectified sigmoid h = clamp(1.2·sigmoid(v) − 0.1, 0, 1) over n floats.
  void (*rect_sigmoid)(const float* v, float* h, long n);
  // Depthwise with channels on lanes (dw_chan_impl.h): `lanes` output planes per call; x and y
  // hold one plane pointer per lane, w is [taps][lanes], bias [lanes]; scratch zeroed once.
  void (*dwc_group)(const DwcPlan& plan, const float* const* x, const float* w, const float* bias, float* const* y,
                    float* scratch, bool clamp, float lo, float hi);
  // y = act(y + s) over n floats: a residual Add fused into the conv before it (ConvOp's `sum`).
  void (*add_act)(float* y, const float* s, long n, bool clamp, float lo, float hi);
  // Windowed dot products (dot_windows_impl.h; contract in gemm.h dot_windows).
  void (*dot_windows)(const float* A, long lda, int M, const float* B, const long* boff, int J, long L, float* C,
                      long ldc);
  // 2x2 stride-2 unpadded MaxPool in floor mode over `planes` planes of H x W (OH = H/2, OW = W/2).
  void (*max_pool_2x2)(const float* x, float* y, long planes, int H, int W, int OH, int OW);
  // LayerNormalization over `rows` contiguous rows of n floats (conv_act_impl.h layer_norm_rows).
  void (*layer_norm_rows)(const float* x, float* y, long rows, long n, const float* scale, bool scale_scalar,
                          const float* bias, bool bias_scalar, float eps, float* mean_out, float* istd_out);
  // 3x3 stride-1 "same" convolution with output channels on the lanes (conv_lanes_impl.h).
  void (*lanes_item)(const LanesItem& item);
  int (*lanes_rows)(int taps, int nb, int H, int W);
  // Depthwise 3x3, stride 1 or 2 (both ways the same), pads 1 (top, left), OW < lanes and
  // W < 2*lanes (dw_rows_impl.h), over `planes` consecutive channels: plane c is x + c*H*W ->
  // y + c*OH*OW with taps w + c*9 and bias[c]; sum (optional) shaped like y.
  void (*dw_rows_planes)(const DwGeom& g, const float* x, const float* w, const float* bias, float* y, int planes,
                         const float* sum, bool clamp, float lo, float hi);
};

// nullptr for Scalar (the reference has no table) and for a variant this CPU cannot run.
const KernelTable* kernel_table(KernelVariant v);

// Variant-level entry points (the binding and tests use these; the Isa-level ones in gemm.h/conv.h
// forward here). They throw packptq::Error when the variant is not supported by the CPU.
void sgemm_variant(KernelVariant v, bool transA, bool transB, int M, int N, int K, const float* A, int lda,
                   const float* B, int ldb, float* C, int ldc, bool accumulate, int threads);
double peak_gflops(KernelVariant v, int threads, double seconds);
void conv2d_variant(KernelVariant v, const ConvShape& s, const float* x, const float* w, const float* bias, float* y,
                    int threads);
std::unique_ptr<PreparedConv> prepare_conv_variant(KernelVariant v, const ConvShape& s, const float* w,
                                                   const float* bias, const Activation& act = Activation());
// Throws Error(BadOption) naming the first field that makes the shape impossible.
void validate_conv_shape(const ConvShape& s);

// The scalar reference (gemm_scalar.cpp): a plain triple loop with double accumulation.
void sgemm_reference(bool transA, bool transB, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
                     float* C, int ldc, bool accumulate);
double peak_gflops_scalar(int threads, double seconds);

// Tables exported by the ISA objects.
extern const KernelTable kAvx2Table;
extern const KernelTable kAvx512Table;
extern const KernelTable kAvx512LogicTable;

}  // namespace packptq
