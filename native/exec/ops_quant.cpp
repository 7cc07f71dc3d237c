// FakeQuant: the simulated quantizer on an activation, y = s·(clamp(round_half_even(x/s) + z) − z).
// nearbyint rounds half to even under the default rounding mode, exactly as onnxruntime's
// QuantizeLinear, so a QDQ export reproduces this op bit for bit.
#include <cmath>

#include "core/parallel.h"
#include "exec/op.h"

namespace packptq {
namespace {

class FakeQuantOp : public Op {
 public:
  explicit FakeQuantOp(const OpInit& in) {
    if (in.in_shapes[0] != in.out_shapes[0]) in.fail_shape("output shape must equal the input shape");
    n_ = numel(in.in_shapes[0]);
    scale_ = static_cast<float>(in.attrs.f("scale", 1.0));
    zero_ = static_cast<float>(in.attrs.i("zero_point", 0));
    qmin_ = static_cast<float>(in.attrs.i("qmin"));
    qmax_ = static_cast<float>(in.attrs.i("qmax"));
    if (!(scale_ > 0) || !std::isfinite(scale_)) in.fail_unsupported("scale must be a positive finite number");
    if (!(qmin_ < qmax_)) in.fail_unsupported("qmin must be below qmax");
  }
  void run(const OpRun& r) override {
    const float* x = r.in[0];
    float* y = r.out[0];
    const float s = scale_, z = zero_, lo = qmin_, hi = qmax_;
    parallel_for(n_, n_ > 65536 ? r.threads : 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float q = std::nearbyint(x[i] / s) + z;
        q = q < lo ? lo : (q > hi ? hi : q);
        y[i] = s * (q - z);
      }
    });
  }

 private:
  int64_t n_ = 0;
  float scale_ = 1, zero_ = 0, qmin_ = 0, qmax_ = 255;
};

std::unique_ptr<Op> make_fake_quant(const OpInit& in) { return std::make_unique<FakeQuantOp>(in); }

}  // namespace

PACKPTQ_REGISTER_OP("FakeQuant", make_fake_quant);

}  // namespace packptq
