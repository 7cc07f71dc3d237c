// FakeQuant: the simulated quantizer on an activation, y = s·(clamp(round_half_even(x/s) + z) − z),
// on the SIMD quantizer kernels (kernels/quant.h), which round half to even and divide exactly as
// onnxruntime's QuantizeLinear does, so a QDQ export reproduces this op bit for bit.
#include <cmath>

#include "exec/op.h"
#include "kernels/quant.h"

namespace packptq {
namespace {

class FakeQuantOp : public Op {
 public:
  explicit FakeQuantOp(const OpInit& in) : isa_(in.isa) {
    if (in.in_shapes[0] != in.out_shapes[0]) in.fail_shape("output shape must equal the input shape");
    n_ = numel(in.in_shapes[0]);
    scale_ = static_cast<float>(in.attrs.f("scale", 1.0));
    zero_ = static_cast<float>(in.attrs.i("zero_point", 0));
    qmin_ = static_cast<int>(in.attrs.i("qmin"));
    qmax_ = static_cast<int>(in.attrs.i("qmax"));
    if (!(scale_ > 0) || !std::isfinite(scale_)) in.fail_unsupported("scale must be a positive finite number");
    if (!(qmin_ < qmax_)) in.fail_unsupported("qmin must be below qmax");
    try {
      check_grid(qmin_, qmax_);
      check_params(1, &scale_, &zero_, qmin_, qmax_);
    } catch (const Error& e) {
      in.fail_unsupported(e.what());
    }
  }
  void run(const OpRun& r) override {
    QuantLayout L;
    L.inner = n_;
    fake_quant(isa_, r.in[0], n_, L, &scale_, &zero_, qmin_, qmax_, r.out[0], n_ > 65536 ? r.threads : 1);
  }

 private:
  Isa isa_;
  int64_t n_ = 0;
  float scale_ = 1, zero_ = 0;
  int qmin_ = 0, qmax_ = 255;
};

std::unique_ptr<Op> make_fake_quant(const OpInit& in) { return std::make_unique<FakeQuantOp>(in); }

}  // namespace

PACKPTQ_REGISTER_OP("FakeQuant", make_fake_quant);

}  // namespace packptq
