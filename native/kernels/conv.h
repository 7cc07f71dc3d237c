// 2-D convolution, NCHW, grouped (depthwise included), with strides, explicit pads and dilations.
// 1-D convolutions are run as 2-D with H = 1. The weight layout is ONNX's [M, C/group, KH, KW].
// Output: y[n, m, oh, ow] = bias[m] + Σ x[n, g·Cg + c, oh·sh − pt + kh·dh, ow·sw − pl + kw·dw] · w[m, c, kh, kw]
// with zero padding outside the input.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/isa.h"

namespace packptq {

struct ConvShape {
  int N = 1, C = 1, H = 1, W = 1;       // input
  int M = 1;                            // output channels
  int KH = 1, KW = 1;
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int dil_h = 1, dil_w = 1;
  int group = 1;
  // Column form of the GEMM conv (conv.cpp use_compact_columns): 0 chooses (or follows
  // PACKPTQ_CONV_COLUMNS), 1 padded super rows, 2 compact valid positions. Tests force each.
  int columns = 0;
  // Algorithm where there is a choice (conv.cpp use_lanes, DirectConv::use_dw_s2): 0 chooses (or
  // follows PACKPTQ_CONV_ALGORITHM); for 3x3 stride-1 pads-1 and 1x1 stride-1 unpadded convs, 1 the
  // GEMM conv and 2 the lanes conv (output channels on lanes); for narrow depthwise 3x3 stride-1/2
  // convs, 3 ("rows") the row kernel, anything else the channels-on-lanes one. A forced column form
  // implies the GEMM conv. A shape the forced algorithm does not take runs the one it would anyway.
  int algorithm = 0;
  int OH() const { return (H + pad_top + pad_bottom - dil_h * (KH - 1) - 1) / stride_h + 1; }
  int OW() const { return (W + pad_left + pad_right - dil_w * (KW - 1) - 1) / stride_w + 1; }
};

// An activation fused into the output write (Relu = clamp to [0, +inf), ReLU6/Clip = [lo, hi]).
// NaN becomes lo, as the standalone Relu op does.
struct Activation {
  bool clamp = false;
  float lo = 0.f, hi = 0.f;
  static Activation none() { return Activation(); }
  static Activation range(float lo, float hi) {
    Activation a;
    a.clamp = true;
    a.lo = lo;
    a.hi = hi;
    return a;
  }
};

// ConvShape::columns from its name: "auto" 0, "padded" 1, "compact" 2; -1 for anything else.
int conv_columns_code(const char* name);
// ConvShape::algorithm from its name: "auto" 0, "gemm" 1, "lanes" 2, "rows" 3; -1 otherwise.
int conv_algorithm_code(const char* name);

// One call, no preparation: the reference path and the one benchmarks use for "unprepared" numbers.
void conv2d(Isa isa, const ConvShape& s, const float* x, const float* w, const float* bias, float* y, int threads);

// A convolution prepared once for fixed shape and weights (weights re-laid-out, scratch sized), then
// run many times. The executor uses this; `weights` must stay valid and unchanged while it lives
// unless update_weights() is called.
class PreparedConv {
 public:
  virtual ~PreparedConv() = default;
  // sum (optional, shaped like y): a residual added before the activation, y = act(conv(x) + sum),
  // so a following Add (and Relu / Clip) need not make another pass over y. Must not alias y.
  virtual void run(const float* x, float* y, int threads, const float* sum = nullptr) = 0;
  virtual void update_weights(const float* w, const float* bias) = 0;
};

std::unique_ptr<PreparedConv> prepare_conv(Isa isa, const ConvShape& s, const float* w, const float* bias,
                                           const Activation& act = Activation());

}  // namespace packptq
