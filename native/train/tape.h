// Tape<T>: the differentiable executor. Built from the same description as a Program (numbered
// tensors with shapes, constant data, inputs, outputs, ops of the canonical set with attributes),
// it keeps every intermediate value of the last forward pass so backward() can run the ops'
// gradients in reverse order. No arena reuse: reconstruction units at batch 32 fit in memory.
//
// Driving it (one reconstruction iteration):
//   tape.forward({x});                       // values of every tensor are kept
//   dL/dy = loss'(tape.output(0), target);   // the caller's loss
//   tape.backward({dLdy});                   // zeroes all gradients, then accumulates
//   for p in 0..num_params(): optimiser(tape.param(p), tape.param_grad(p), numel(param_shape(p)));
// Parameters are the constants listed as trainable (by tensor id). Their values live in the Tape
// and ops read them through pointers on every forward, so in-place updates take effect on the next
// forward pass. Gradients are also writable, so a regulariser can add its own term after backward().
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "exec/program.h"  // OpSpec
#include "train/grad_op.h"

namespace packptq {
namespace train {

struct TapeTensor {
  Shape shape;
  std::vector<double> data;  // constants only; converted to T when the Tape is built
  bool is_const = false;
};

struct TapeSpec {
  std::vector<TapeTensor> tensors;
  std::vector<int> inputs, outputs;
  std::vector<OpSpec> ops;
  std::vector<int> trainable;  // constant tensor ids, in parameter order
  bool input_grads = true;     // compute gradients w.r.t. the program inputs too
  Isa isa = Isa::Scalar;
  int threads = 1;
};

template <typename T>
class Tape {
 public:
  explicit Tape(TapeSpec spec);

  // inputs[i] holds numel(input_shape(i)) values.
  void forward(const std::vector<const T*>& inputs);
  // One gradient per program output (nullptr = zero). Requires a forward pass first; gradients
  // of the previous backward are discarded.
  void backward(const std::vector<const T*>& output_grads);

  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  size_t num_params() const { return params_.size(); }
  const Shape& input_shape(size_t i) const { return shapes_[inputs_.at(i)]; }
  const Shape& output_shape(size_t i) const { return shapes_[outputs_.at(i)]; }
  const Shape& param_shape(size_t i) const { return shapes_[params_.at(i)]; }
  int param_tensor(size_t i) const { return params_.at(i); }

  const T* output(size_t i) const { return values_[outputs_.at(i)].data(); }
  // nullptr when input gradients were not requested.
  const T* input_grad(size_t i) const;
  T* param(size_t i) { return values_[params_.at(i)].data(); }
  T* param_grad(size_t i) { return grads_[params_.at(i)].data(); }

  // Any tensor by id (intermediates included, for captures and tests); grad() is nullptr for a
  // tensor no gradient flows to.
  const T* value(int id) const;
  T* grad(int id);
  const Shape& shape(int id) const { return shapes_.at(id); }

  // Forwards a tunable to every op whose node name is `node` (all ops when empty); returns how many
  // accepted it.
  int set_option(const std::string& node, const std::string& key, double value);

  void set_threads(int t) { threads_ = t < 1 ? 1 : t; }
  int threads() const { return threads_; }
  Isa isa() const { return isa_; }
  uint64_t steps() const { return steps_; }
  size_t num_ops() const { return steps_list_.size(); }

  // Per-op seconds of forward and backward, accumulated while profiling is on.
  void set_profiling(bool on) { profiling_ = on; }
  struct OpTime {
    std::string type, name;
    double forward = 0, backward = 0;
  };
  std::vector<OpTime> profile() const;
  void reset_profile();

 private:
  struct Step {
    std::unique_ptr<GradOp<T>> op;
    std::vector<int> in, out;
    std::string type, name;
    bool backward = false;  // some input needs a gradient
    double fwd_s = 0, bwd_s = 0;
  };

  std::vector<Shape> shapes_;
  std::vector<bool> is_const_, needs_grad_;
  std::vector<std::vector<T>> values_, grads_;
  std::vector<int> inputs_, outputs_, params_;
  std::vector<Step> steps_list_;
  // Gradient buffers are zeroed lazily, right before the op that first accumulates into them in the
  // reverse pass (the tensor's last reader), so the memset leaves them hot in cache for that op
  // instead of streaming every buffer through memory at the start of backward().
  std::vector<std::vector<int>> zero_before_;  // per step
  std::vector<std::vector<bool>> fresh_at_;     // per step and input slot: assign, not add (no zeroing)
  std::vector<int> zero_at_start_;
  Isa isa_;
  int threads_;
  uint64_t steps_ = 0;
  bool forwarded_ = false, profiling_ = false;
};

extern template class Tape<float>;
extern template class Tape<double>;

}  // namespace train
}  // namespace packptq
