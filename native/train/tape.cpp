#include "train/tape.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace packptq {
namespace train {

namespace {
std::string node_str(const OpSpec& os) { return os.type + " node \"" + os.name + "\""; }
const char* dtype_name(float*) { return "float32"; }
const char* dtype_name(double*) { return "float64"; }
}  // namespace

template <typename T>
Tape<T>::Tape(TapeSpec spec)
    : inputs_(std::move(spec.inputs)),
      outputs_(std::move(spec.outputs)),
      params_(std::move(spec.trainable)),
      isa_(spec.isa),
      threads_(std::max(1, spec.threads)) {
  const int nt = static_cast<int>(spec.tensors.size());
  auto check_id = [&](int id, const std::string& where) {
    if (id < 0 || id >= nt) fail(ErrorCode::Native, where + ": tensor id " + std::to_string(id) + " out of range");
  };
  shapes_.resize(nt);
  is_const_.assign(nt, false);
  values_.resize(nt);
  for (int i = 0; i < nt; ++i) {
    auto& t = spec.tensors[i];
    for (int64_t d : t.shape)
      if (d < 0) fail(ErrorCode::ShapeMismatch, "tensor " + std::to_string(i) + " has a negative dimension " + shape_str(t.shape));
    shapes_[i] = t.shape;
    is_const_[i] = t.is_const;
    if (t.is_const) {
      if (static_cast<int64_t>(t.data.size()) != numel(t.shape))
        fail(ErrorCode::Native, "constant tensor " + std::to_string(i) + " holds " + std::to_string(t.data.size()) +
                                    " values but its shape " + shape_str(t.shape) + " needs " + std::to_string(numel(t.shape)));
      values_[i].assign(t.data.begin(), t.data.end());
      std::vector<double>().swap(t.data);
    }
  }
  // Who writes what: each tensor is written once (by an op) or given (input / constant), and read
  // only after that, so the op list is a valid topological order.
  std::vector<bool> ready(nt, false);
  for (int i = 0; i < nt; ++i) ready[i] = is_const_[i];
  for (int id : inputs_) {
    check_id(id, "program input");
    if (is_const_[id]) fail(ErrorCode::Native, "program input tensor " + std::to_string(id) + " is a constant");
    if (ready[id]) fail(ErrorCode::Native, "tensor " + std::to_string(id) + " is listed twice as a program input");
    ready[id] = true;
  }
  for (int id : outputs_) check_id(id, "program output");
  needs_grad_.assign(nt, false);
  for (size_t p = 0; p < params_.size(); ++p) {
    const int id = params_[p];
    check_id(id, "trainable parameter " + std::to_string(p));
    if (!is_const_[id]) fail(ErrorCode::BadOption, "trainable tensor " + std::to_string(id) + " is not a constant");
    if (needs_grad_[id]) fail(ErrorCode::BadOption, "tensor " + std::to_string(id) + " is listed twice as trainable");
    needs_grad_[id] = true;
  }
  if (spec.input_grads)
    for (int id : inputs_) needs_grad_[id] = true;

  for (auto& os : spec.ops) {
    GradFactory<T> factory = find_grad_op<T>(os.type);
    if (!factory) {
      const bool other = find_grad_op<float>(os.type) || find_grad_op<double>(os.type);
      fail(ErrorCode::UnsupportedOp, other ? node_str(os) + ": the op has no " + dtype_name(static_cast<T*>(nullptr)) + " gradient kernel"
                                           : "no differentiable kernel for op " + os.type + " (node \"" + os.name + "\")");
    }
    GradInit init;
    init.type = os.type;
    init.name = os.name;
    init.attrs = os.attrs;
    init.isa = isa_;
    bool any_grad = false;
    for (int id : os.inputs) {
      if (id < 0) {
        init.in_shapes.push_back({});
        init.present.push_back(false);
        init.is_const.push_back(false);
        init.needs_grad.push_back(false);
        continue;
      }
      check_id(id, node_str(os));
      if (!ready[id]) fail(ErrorCode::Native, node_str(os) + " reads tensor " + std::to_string(id) + " before any op writes it");
      init.in_shapes.push_back(shapes_[id]);
      init.present.push_back(true);
      init.is_const.push_back(is_const_[id]);
      init.needs_grad.push_back(needs_grad_[id]);
      any_grad = any_grad || needs_grad_[id];
    }
    if (os.outputs.empty()) fail(ErrorCode::Native, node_str(os) + " has no outputs");
    for (int id : os.outputs) {
      // lower.ts drops trailing omitted outputs; one in the middle has no buffer to write.
      if (id < 0) fail(ErrorCode::UnsupportedOp, node_str(os) + ": omitted optional outputs are not supported by the Tape");
      check_id(id, node_str(os));
      if (is_const_[id]) fail(ErrorCode::Native, node_str(os) + " writes the constant tensor " + std::to_string(id));
      if (ready[id]) fail(ErrorCode::Native, node_str(os) + " writes tensor " + std::to_string(id) + ", which is already a program input or another op's output");
      init.out_shapes.push_back(shapes_[id]);
      ready[id] = true;
      needs_grad_[id] = any_grad;
    }
    Step st;
    st.op = factory(init);
    st.in = os.inputs;
    st.out = os.outputs;
    st.type = os.type;
    st.name = os.name;
    st.backward = any_grad;
    steps_list_.push_back(std::move(st));
  }
  for (int id : outputs_)
    if (!ready[id]) fail(ErrorCode::Native, "program output tensor " + std::to_string(id) + " is never written");
  // The last reader of each tensor is the first to add to its gradient in the reverse pass.
  std::vector<int> last(nt, -1);
  for (size_t s = 0; s < steps_list_.size(); ++s)
    for (int id : steps_list_[s].in)
      if (id >= 0 && needs_grad_[id]) last[id] = static_cast<int>(s);
  std::vector<bool> is_output(nt, false);
  for (int id : outputs_) is_output[id] = true;
  zero_before_.assign(steps_list_.size(), {});
  fresh_at_.assign(steps_list_.size(), {});
  for (size_t s = 0; s < steps_list_.size(); ++s) fresh_at_[s].assign(steps_list_[s].in.size(), false);
  for (int i = 0; i < nt; ++i) {
    if (!needs_grad_[i]) continue;
    if (is_output[i] || last[i] < 0) {
      zero_at_start_.push_back(i);
      continue;
    }
    // The first writer may assign instead of add when it reads the tensor through one slot only
    // and says it honours gin_fresh there; otherwise the buffer is zeroed just before it runs.
    const Step& st = steps_list_[last[i]];
    int slot = -1, uses = 0;
    for (size_t k = 0; k < st.in.size(); ++k)
      if (st.in[k] == i) slot = static_cast<int>(k), ++uses;
    if (st.backward && uses == 1 && st.op->assigns_input_grad(static_cast<size_t>(slot))) fresh_at_[last[i]][slot] = true;
    else zero_before_[last[i]].push_back(i);
  }
  grads_.resize(nt);
  for (int i = 0; i < nt; ++i) {
    if (!is_const_[i]) values_[i].assign(static_cast<size_t>(numel(shapes_[i])), T(0));
    if (needs_grad_[i]) grads_[i].assign(static_cast<size_t>(numel(shapes_[i])), T(0));
  }
}

template <typename T>
void Tape<T>::forward(const std::vector<const T*>& inputs) {
  if (inputs.size() != inputs_.size())
    fail(ErrorCode::ShapeMismatch, "the tape takes " + std::to_string(inputs_.size()) + " inputs, got " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) fail(ErrorCode::BadData, "input " + std::to_string(i) + " is null");
    auto& v = values_[inputs_[i]];
    std::memcpy(v.data(), inputs[i], sizeof(T) * v.size());
  }
  GradArgs<T> a;
  a.threads = threads_;
  a.step = steps_;
  for (auto& st : steps_list_) {
    a.in.clear();
    a.out.clear();
    for (int id : st.in) a.in.push_back(id >= 0 ? values_[id].data() : nullptr);
    for (int id : st.out) a.out.push_back(values_[id].data());
    if (profiling_) {
      const auto t0 = std::chrono::steady_clock::now();
      st.op->forward(a);
      st.fwd_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } else {
      st.op->forward(a);
    }
  }
  ++steps_;
  forwarded_ = true;
}

template <typename T>
void Tape<T>::backward(const std::vector<const T*>& output_grads) {
  if (!forwarded_) fail(ErrorCode::Native, "backward() needs a forward() pass first");
  if (output_grads.size() != outputs_.size())
    fail(ErrorCode::ShapeMismatch, "the tape has " + std::to_string(outputs_.size()) + " outputs but received " +
                                       std::to_string(output_grads.size()) + " output gradients");
  for (int id : zero_at_start_) std::memset(grads_[id].data(), 0, sizeof(T) * grads_[id].size());
  // Outputs listed twice, or also read by later ops, simply accumulate.
  for (size_t i = 0; i < outputs_.size(); ++i) {
    auto& g = grads_[outputs_[i]];
    const T* src = output_grads[i];
    if (!src || g.empty()) continue;
    for (size_t j = 0; j < g.size(); ++j) g[j] += src[j];
  }
  GradArgs<T> a;
  a.threads = threads_;
  a.step = steps_ - 1;
  for (auto it = steps_list_.rbegin(); it != steps_list_.rend(); ++it) {
    Step& st = *it;
    const size_t si = static_cast<size_t>(steps_list_.rend() - it - 1);
    for (int id : zero_before_[si]) std::memset(grads_[id].data(), 0, sizeof(T) * grads_[id].size());
    if (!st.backward) continue;
    a.gin_fresh = fresh_at_[si];
    a.in.clear();
    a.out.clear();
    a.gout.clear();
    a.gin.clear();
    for (int id : st.in) {
      a.in.push_back(id >= 0 ? values_[id].data() : nullptr);
      a.gin.push_back(id >= 0 && needs_grad_[id] ? grads_[id].data() : nullptr);
    }
    for (int id : st.out) {
      a.out.push_back(values_[id].data());
      a.gout.push_back(grads_[id].data());
    }
    if (profiling_) {
      const auto t0 = std::chrono::steady_clock::now();
      st.op->backward(a);
      st.bwd_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } else {
      st.op->backward(a);
    }
  }
}

template <typename T>
const T* Tape<T>::input_grad(size_t i) const {
  const int id = inputs_.at(i);
  return grads_[id].empty() ? nullptr : grads_[id].data();
}

template <typename T>
const T* Tape<T>::value(int id) const {
  if (id < 0 || id >= static_cast<int>(values_.size())) fail(ErrorCode::BadOption, "tensor id " + std::to_string(id) + " out of range");
  return values_[id].data();
}

template <typename T>
T* Tape<T>::grad(int id) {
  if (id < 0 || id >= static_cast<int>(grads_.size())) fail(ErrorCode::BadOption, "tensor id " + std::to_string(id) + " out of range");
  return grads_[id].empty() ? nullptr : grads_[id].data();
}

template <typename T>
int Tape<T>::set_option(const std::string& node, const std::string& key, double value) {
  int n = 0;
  for (auto& st : steps_list_)
    if ((node.empty() || st.name == node) && st.op->set_option(key, value)) ++n;
  return n;
}

template <typename T>
std::vector<typename Tape<T>::OpTime> Tape<T>::profile() const {
  std::vector<OpTime> v;
  for (auto& st : steps_list_) v.push_back({st.type, st.name, st.fwd_s, st.bwd_s});
  return v;
}

template <typename T>
void Tape<T>::reset_profile() {
  for (auto& st : steps_list_) st.fwd_s = st.bwd_s = 0;
}

template class Tape<float>;
template class Tape<double>;

}  // namespace train
}  // namespace packptq
