// The executor's op interface. The TypeScript compiler (lib/engine/compile.ts) lowers an ONNX graph
// to a list of ops in packptq's canonical op set below, with every tensor shape concrete and every
// shape-like input (Slice starts, Reduce axes, Clip bounds, Gather indices, ...) turned into an
// attribute. So a native op never parses ONNX conventions (negative axes, optional inputs, opset
// differences): it receives normalised attributes and checks only that shapes agree.
//
// Runtime tensors are float32. Constant inputs (weights) are float32 too and are given to the op at
// creation, so it can re-lay them out once.
//
// Canonical op set and attributes (all axes non-negative, all lists explicit):
//   Conv           inputs x, w, [bias], [sum]; ints kernel(kh,kw) strides(2) pads(t,l,b,r) dilations(2)
//                  group. 1-D convs arrive as 2-D with H = 1. sum (output-shaped, set by the lowering
//                  peephole lib/engine/fuse-residual.ts) is a residual added before the activation.
//   Gemm           inputs a, b, [c]; floats alpha beta; ints transA transB. c broadcast to [M,N].
//   MatMul         inputs a, b, [bias]; numpy batched broadcast; rank ≥ 1 each.
//   Conv, Gemm and MatMul also take an optional fused activation, set by the lowering peephole
//   (lib/engine/fuse-activations.ts) when a Relu or Clip is the only reader of their output:
//                  string activation ("relu" | "clip"); floats act_min act_max ("clip" bounds).
//                  The output is clamped as it is written (NaN becomes the lower bound, as in Relu).
//                  Only the inference executor knows it: programs for the differentiable executor
//                  are lowered with fuseActivations: false.
//   Add Sub Mul Div Pow   inputs a, b; numpy broadcast to the output shape.
//   Sqrt Relu Sigmoid Tanh Erf Abs Neg Exp Log Reciprocal Identity   one input, same shape.
//   Clip           floats min max.       LeakyRelu  float alpha.
//   HardSigmoid    floats alpha beta.    HardSwish  (no attrs).
//   Gelu           string approximate ("none" | "tanh").
//   Softmax        int axis: softmax along that single axis (opset < 13 coercion is done in TS by
//                  emitting Reshape → Softmax → Reshape).
//   LogSoftmax     int axis.
//   LayerNormalization  inputs x, scale, [bias]; int axis (normalise over dims axis..rank-1); float epsilon.
//   BatchNormalization  inputs x, scale, B, mean, var (all constant); float epsilon. Inference form.
//   MaxPool AveragePool  ints kernel(2) strides(2) pads(4) dilations(2); int count_include_pad
//                  (AveragePool); int ceil_mode is resolved in TS into the output shape.
//   GlobalAveragePool GlobalMaxPool  (no attrs) over all dims ≥ 2.
//   ReduceMean ReduceMax ReduceMin ReduceSum ReduceProd ReduceL2 ...  ints axes (sorted, non-negative,
//                  never empty); int keepdims.
//   Reshape        (Flatten, Squeeze, Unsqueeze, Dropout-in-inference all lower to it) copy of data.
//   Transpose      ints perm.
//   Concat         int axis; any number of inputs.
//   Split          int axis; ints split (sizes); any number of outputs.
//   Slice          ints starts ends axes steps, one entry per axis in `axes`, already clamped so that
//                  element i of the output along axis a is input index starts[a] + i·steps[a].
//   Gather         int axis; ints indices (non-negative); ints indices_shape.
//   Where          inputs cond (0/1 floats), x, y; broadcast.
//   Expand         input x, broadcast to the output shape.
//   Pad            ints pads (begin..., end...); string mode ("constant" | "reflect" | "edge");
//                  float value.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/isa.h"

namespace packptq {

using Shape = std::vector<int64_t>;

inline int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
std::string shape_str(const Shape& s);

class Attrs {
 public:
  std::map<std::string, std::vector<double>> nums;
  std::map<std::string, std::string> strs;

  bool has(const std::string& k) const { return nums.count(k) || strs.count(k); }
  int64_t i(const std::string& k, int64_t dflt) const;
  int64_t i(const std::string& k) const;  // required
  double f(const std::string& k, double dflt) const;
  std::vector<int64_t> ints(const std::string& k) const;  // required
  std::vector<int64_t> ints(const std::string& k, const std::vector<int64_t>& dflt) const;
  std::string s(const std::string& k, const std::string& dflt) const;
};

// What an op sees when it is created: its identity (for messages), shapes, attributes and the data
// of inputs that are constants (nullptr for runtime inputs; also nullptr for a missing optional
// input, whose shape is then empty and `present` false).
struct OpInit {
  std::string type, name;
  std::vector<Shape> in_shapes, out_shapes;
  std::vector<const float*> const_data;
  std::vector<bool> present;
  Attrs attrs;
  Isa isa = Isa::Scalar;

  [[noreturn]] void fail_shape(const std::string& why) const;
  [[noreturn]] void fail_unsupported(const std::string& why) const;
};

// What an op sees at run time. Input pointers of constants point at the op's constant data.
struct OpRun {
  std::vector<const float*> in;
  std::vector<float*> out;
  int threads = 1;
};

class Op {
 public:
  virtual ~Op() = default;
  virtual void run(const OpRun& r) = 0;
  // Bytes of scratch memory the op wants at run time (given through scratch()), 0 if none.
  virtual size_t scratch_bytes() const { return 0; }
  void set_scratch(float* p) { scratch_ = p; }

 protected:
  float* scratch_ = nullptr;
};

using OpFactory = std::unique_ptr<Op> (*)(const OpInit&);

// Registry: each ops_*.cpp file registers its ops with a static Registrar.
void register_op(const char* type, OpFactory factory);
OpFactory find_op(const std::string& type);
std::vector<std::string> registered_ops();

struct Registrar {
  Registrar(const char* type, OpFactory f) { register_op(type, f); }
};

#define PACKPTQ_CONCAT_(a, b) a##b
#define PACKPTQ_CONCAT(a, b) PACKPTQ_CONCAT_(a, b)
// Usage: PACKPTQ_REGISTER_OP("Relu", make_relu);
#define PACKPTQ_REGISTER_OP(type, factory) \
  static ::packptq::Registrar PACKPTQ_CONCAT(packptq_registrar_, __COUNTER__)(type, factory)

}  // namespace packptq
