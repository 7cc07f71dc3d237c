// Differentiable ops: the building blocks of the Tape (tape.h), the executor reconstruction runs
// thousands of times per unit (forward with fake quantization, loss, backward, optimiser step).
//
// An op follows the canonical op set and attribute conventions of exec/op.h exactly, so a Tape is
// built from the same description a Program is. It differs from an exec Op in three ways:
//   - it is templated on the scalar type T: float for production, double for gradient checks;
//   - it reads every input (constants too) through pointers at run time and never caches constant
//     data, because constants are parameters an optimiser changes between iterations;
//   - it has a backward pass that ACCUMULATES (+=) input gradients, since a tensor read by several
//     ops (a residual skip) collects gradient from each of them.
//
// Adding an op (a quantizer with its own parameters, say): derive from GradOp<T>, write a factory
// template `template <typename T> std::unique_ptr<GradOp<T>> make_x(const GradInit&)` that checks
// shapes and attributes (failing through GradInit::fail_* so the message names the node), and
// register it in its .cpp with PACKPTQ_REGISTER_GRAD_OP("X", make_x). Its parameters are ordinary
// constant inputs; the Tape owns their values and gradients and exposes them by tensor id.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/isa.h"
#include "exec/op.h"  // Shape, numel, shape_str, Attrs, PACKPTQ_CONCAT

namespace packptq {
namespace train {

// What an op sees when it is created.
struct GradInit {
  std::string type, name;
  std::vector<Shape> in_shapes, out_shapes;
  std::vector<bool> present;     // false for a missing optional input (its shape is then empty)
  std::vector<bool> is_const;    // constant inputs (trainable parameters or fixed data)
  std::vector<bool> needs_grad;  // inputs whose gradient backward() will be asked for
  Attrs attrs;
  Isa isa = Isa::Scalar;

  [[noreturn]] void fail_shape(const std::string& why) const {
    fail(ErrorCode::ShapeMismatch, type + " node \"" + name + "\": " + why);
  }
  [[noreturn]] void fail_unsupported(const std::string& why) const {
    fail(ErrorCode::UnsupportedOp, type + " node \"" + name + "\": " + why);
  }
  bool has_input(size_t i) const { return i < in_shapes.size() && (i >= present.size() || present[i]); }
  bool wants_grad(size_t i) const { return i < needs_grad.size() && needs_grad[i]; }
};

// What an op sees when it runs. forward() reads `in` and writes every element of `out`; backward()
// reads `in`, `out` and `gout` (one gradient per output, same shape) and adds into `gin`, whose
// entries are nullptr for inputs that need no gradient (constants not being trained, indices,
// conditions): an op must skip that work, not just the write.
template <typename T>
struct GradArgs {
  std::vector<const T*> in;
  std::vector<T*> out;
  std::vector<const T*> gout;
  std::vector<T*> gin;
  int threads = 1;
  // Number of forward passes run before this one: ops with per-iteration randomness (QDrop's
  // dropping) seed from it so a run is reproducible.
  uint64_t step = 0;
  // gin_fresh[k] (when present): gin[k] holds stale values because this op is the first to write
  // that gradient in the reverse pass; the op must ASSIGN every element instead of adding. Only
  // set for inputs where assigns_input_grad(k) said yes; it spares the Tape zeroing the buffer.
  std::vector<bool> gin_fresh;
  bool fresh(size_t k) const { return k < gin_fresh.size() && gin_fresh[k]; }
};

template <typename T>
class GradOp {
 public:
  virtual ~GradOp() = default;
  // May save what backward needs (argmax positions, im2col buffers, row statistics) in the op.
  virtual void forward(const GradArgs<T>& a) = 0;
  // Called after the forward pass of the same iteration, with that pass's values.
  virtual void backward(const GradArgs<T>& a) = 0;
  // Whether backward() honours GradArgs::gin_fresh for input k (writes all of gin[k] when fresh).
  virtual bool assigns_input_grad(size_t k) const { return false; }
  // Tunables that change between iterations (an annealed temperature, soft vs hard rounding, a drop
  // probability). Returns whether the op knows `key`; unknown keys are the caller's error to report.
  virtual bool set_option(const std::string& key, double value) { return false; }
};

template <typename T>
using GradFactory = std::unique_ptr<GradOp<T>> (*)(const GradInit&);

// One registry per scalar type. A function-local static so registrars in any translation unit may
// run first; inline template, so all translation units share one instance.
template <typename T>
std::map<std::string, GradFactory<T>>& grad_registry() {
  static std::map<std::string, GradFactory<T>> r;
  return r;
}

template <typename T>
GradFactory<T> find_grad_op(const std::string& type) {
  auto& r = grad_registry<T>();
  auto it = r.find(type);
  return it == r.end() ? nullptr : it->second;
}

struct GradRegistrar {
  // Either factory may be null: an op that only makes sense in float (a SIMD-only quantizer) can
  // still be registered, and a float64 Tape using it fails with a clear message.
  GradRegistrar(const char* type, GradFactory<float> f, GradFactory<double> d) {
    if (f) grad_registry<float>()[type] = f;
    if (d) grad_registry<double>()[type] = d;
    names()[type] = true;
  }
  static std::map<std::string, bool>& names() {
    static std::map<std::string, bool> n;
    return n;
  }
};

// Every registered differentiable op type (either scalar type).
inline std::vector<std::string> registered_grad_ops() {
  std::vector<std::string> v;
  for (auto& kv : GradRegistrar::names()) v.push_back(kv.first);
  return v;
}

// Usage: PACKPTQ_REGISTER_GRAD_OP("Relu", make_relu) where make_relu is a factory template.
#define PACKPTQ_REGISTER_GRAD_OP(type, factory_template)                                          \
  static ::packptq::train::GradRegistrar PACKPTQ_CONCAT(packptq_grad_registrar_, __COUNTER__)( \
      type, &factory_template<float>, &factory_template<double>)

}  // namespace train
}  // namespace packptq
