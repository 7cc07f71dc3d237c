#include "exec/program.h"

#include "core/parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace packptq {

Program::Program(ProgramSpec spec)
    : tensors_(std::move(spec.tensors)),
      inputs_(std::move(spec.inputs)),
      outputs_(std::move(spec.outputs)),
      isa_(spec.isa),
      threads_(std::max(1, spec.threads)) {
  const int nt = static_cast<int>(tensors_.size());
  auto check_id = [&](int id, const std::string& where) {
    if (id < 0 || id >= nt) fail(ErrorCode::Native, where + ": tensor id " + std::to_string(id) + " out of range");
  };
  for (int id : inputs_) check_id(id, "program input");
  for (int id : outputs_) check_id(id, "program output");
  for (auto& t : tensors_) {
    for (int64_t d : t.shape)
      if (d < 0) fail(ErrorCode::ShapeMismatch, "negative dimension in tensor shape " + shape_str(t.shape));
    if (t.is_const && static_cast<int64_t>(t.data.size()) != numel(t.shape))
      fail(ErrorCode::Native, "constant data size does not match shape " + shape_str(t.shape));
  }
  // Every tensor an op reads must be a constant, a program input, or written by an earlier op.
  std::vector<bool> ready(nt, false);
  for (int i = 0; i < nt; ++i) ready[i] = tensors_[i].is_const;
  for (int id : inputs_) ready[id] = true;

  size_t scratch_floats = 0;
  for (auto& os : spec.ops) {
    OpFactory factory = find_op(os.type);
    if (!factory) fail(ErrorCode::UnsupportedOp, "no native kernel for op " + os.type + " (node \"" + os.name + "\")");
    OpInit init;
    init.type = os.type;
    init.name = os.name;
    init.attrs = os.attrs;
    init.isa = isa_;
    for (int id : os.inputs) {
      if (id < 0) {
        init.in_shapes.push_back({});
        init.const_data.push_back(nullptr);
        init.present.push_back(false);
        continue;
      }
      check_id(id, os.type + " node \"" + os.name + "\"");
      if (!ready[id]) fail(ErrorCode::Native, os.type + " node \"" + os.name + "\" reads a tensor no earlier op writes");
      init.in_shapes.push_back(tensors_[id].shape);
      init.const_data.push_back(tensors_[id].is_const ? tensors_[id].data.data() : nullptr);
      init.present.push_back(true);
    }
    for (int id : os.outputs) {
      if (id < 0) {  // an omitted optional output: the op sees an empty shape and a null pointer
        init.out_shapes.push_back({});
        continue;
      }
      check_id(id, os.type + " node \"" + os.name + "\"");
      if (tensors_[id].is_const) fail(ErrorCode::Native, os.type + " node \"" + os.name + "\" writes a constant");
      init.out_shapes.push_back(tensors_[id].shape);
      ready[id] = true;
    }
    Step st;
    st.op = factory(init);
    st.in = os.inputs;
    st.out = os.outputs;
    st.type = os.type;
    st.name = os.name;
    scratch_floats = std::max(scratch_floats, (st.op->scratch_bytes() + sizeof(float) - 1) / sizeof(float));
    steps_.push_back(std::move(st));
  }
  for (int id : outputs_)
    if (!ready[id]) fail(ErrorCode::Native, "a program output is never written");
  scratch_.assign(scratch_floats + 16, 0.f);
  for (auto& st : steps_) st.op->set_scratch(scratch_.data());
  plan_arena();
}

// Lifetimes: a tensor lives from the op that writes it (or the start, for inputs) to the last op
// that reads it (or the end, for outputs). Tensors whose lifetimes overlap get disjoint arena
// ranges; the rest share memory. Placed largest first at the lowest free offset.
void Program::plan_arena() {
  const int nt = static_cast<int>(tensors_.size());
  const int end = static_cast<int>(steps_.size());
  // A Reshape or Identity output shares its input's memory: every tensor is written once, by its
  // producer, before anything reads it, so the two names can never disagree. The copy step then
  // finds its source and destination equal and does nothing (a 1-D conv is a reshape to 2-D and
  // back: those copies were a tenth of PointNet's time).
  std::vector<int> root(nt);
  for (int i = 0; i < nt; ++i) root[i] = i;
  for (auto& st : steps_)
    if ((st.type == "Reshape" || st.type == "Identity") && st.in.size() >= 1 && st.out.size() == 1 && st.in[0] >= 0 &&
        st.out[0] >= 0 && !tensors_[st.in[0]].is_const && !tensors_[st.out[0]].is_const)
      root[st.out[0]] = root[st.in[0]];
  std::vector<int> first(nt, end + 1), last(nt, -2);
  for (int id : inputs_) first[root[id]] = -1, last[root[id]] = std::max(last[root[id]], -1);
  for (int s = 0; s < end; ++s) {
    for (int id : steps_[s].in)
      if (id >= 0) last[root[id]] = std::max(last[root[id]], s);
    for (int id : steps_[s].out)
      if (id >= 0) first[root[id]] = std::min(first[root[id]], s), last[root[id]] = std::max(last[root[id]], s);
  }
  for (int id : outputs_) last[root[id]] = end;

  std::vector<int> order;
  for (int i = 0; i < nt; ++i)
    if (!tensors_[i].is_const && root[i] == i && first[i] <= end) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return numel(tensors_[a].shape) > numel(tensors_[b].shape); });

  offset_.assign(nt, -1);
  struct Placed { int64_t off, size; int first, last; };
  std::vector<Placed> placed;
  int64_t total = 0;
  for (int id : order) {
    // Round sizes up to 16 floats so every tensor starts 64-byte aligned relative to the arena.
    const int64_t size = (numel(tensors_[id].shape) + 15) / 16 * 16;
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (auto& p : placed)
      if (!(p.last < first[id] || last[id] < p.first)) busy.push_back({p.off, p.off + p.size});
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto& b : busy) {
      if (off + size <= b.first) break;
      off = std::max(off, b.second);
    }
    offset_[id] = off;
    placed.push_back({off, size, first[id], last[id]});
    total = std::max(total, off + size);
  }
  for (int i = 0; i < nt; ++i)
    if (root[i] != i) offset_[i] = offset_[root[i]];
  arena_.assign(static_cast<size_t>(total) + 16, 0.f);
}

float* Program::ptr(int tensor) {
  if (tensors_[tensor].is_const) return tensors_[tensor].data.data();
  return arena_.data() + offset_[tensor];
}

void Program::set_shards(std::vector<std::shared_ptr<Program>> shards) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!shards.empty()) {
    // Same interface but for the leading (batch) dim, and the batches add up to ours.
    auto rest_matches = [](const Shape& a, const Shape& b) {
      return a.size() == b.size() && !a.empty() && std::equal(a.begin() + 1, a.end(), b.begin() + 1);
    };
    for (size_t io = 0; io < 2; ++io) {
      const std::vector<int>& ids = io ? outputs_ : inputs_;
      for (size_t i = 0; i < ids.size(); ++i) {
        const Shape& full = tensors_[ids[i]].shape;
        int64_t sum = 0;
        for (auto& sh : shards) {
          if (!sh || (io ? sh->num_outputs() : sh->num_inputs()) != ids.size())
            fail(ErrorCode::BadOption, "a batch shard must have the program's inputs and outputs");
          const Shape& part = io ? sh->output_shape(i) : sh->input_shape(i);
          if (!rest_matches(full, part))
            fail(ErrorCode::ShapeMismatch, std::string("batch shard ") + (io ? "output " : "input ") + std::to_string(i) + " has shape " +
                                               shape_str(part) + ", which is not a batch part of " + shape_str(full));
          sum += part[0];
        }
        if (sum != full[0])
          fail(ErrorCode::ShapeMismatch, "batch shards hold " + std::to_string(sum) + " samples, the program " + std::to_string(full[0]));
      }
    }
  }
  shards_ = std::move(shards);
}

// Each shard runs on a pool thread with one thread inside; the kernels it calls run their items
// inline (a nested call to the busy pool does), so nothing waits on anything but the shards.
void Program::run_shards(const std::vector<const float*>& inputs, std::vector<std::vector<float>>* outputs) {
  const int n = static_cast<int>(shards_.size());
  std::vector<std::vector<std::vector<float>>> parts(n);
  std::vector<std::vector<const float*>> in(n);
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const int64_t per_sample = numel(tensors_[inputs_[i]].shape) / tensors_[inputs_[i]].shape[0];
    int64_t at = 0;
    for (int k = 0; k < n; ++k) {
      in[k].push_back(inputs[i] + at * per_sample);
      at += shards_[k]->input_shape(i)[0];
    }
  }
  for (auto& sh : shards_) sh->set_threads(1);
  run_items(n, n, [&](int, int k) { shards_[k]->run(in[k], &parts[k]); });
  outputs->resize(outputs_.size());
  for (size_t i = 0; i < outputs_.size(); ++i) {
    auto& out = (*outputs)[i];
    out.clear();
    out.reserve(numel(tensors_[outputs_[i]].shape));
    for (int k = 0; k < n; ++k) out.insert(out.end(), parts[k][i].begin(), parts[k][i].end());
  }
}

void Program::run(const std::vector<const float*>& inputs, std::vector<std::vector<float>>* outputs) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (inputs.size() != inputs_.size())
    fail(ErrorCode::ShapeMismatch, "program expects " + std::to_string(inputs_.size()) + " inputs, got " +
                                       std::to_string(inputs.size()));
  if (!shards_.empty() && threads_ >= static_cast<int>(shards_.size()) && !profiling_) {
    run_shards(inputs, outputs);
    return;
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    std::memcpy(ptr(inputs_[i]), inputs[i], sizeof(float) * numel(tensors_[inputs_[i]].shape));
  OpRun r;
  r.threads = threads_;
  for (auto& st : steps_) {
    r.in.clear();
    r.out.clear();
    for (int id : st.in) r.in.push_back(id >= 0 ? ptr(id) : nullptr);
    for (int id : st.out) r.out.push_back(id >= 0 ? ptr(id) : nullptr);
    if (profiling_) {
      auto t0 = std::chrono::steady_clock::now();
      st.op->run(r);
      st.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } else {
      st.op->run(r);
    }
  }
  outputs->resize(outputs_.size());
  for (size_t i = 0; i < outputs_.size(); ++i) {
    const float* src = ptr(outputs_[i]);
    (*outputs)[i].assign(src, src + numel(tensors_[outputs_[i]].shape));
  }
}

std::vector<std::pair<std::string, double>> Program::profile() const {
  std::vector<std::pair<std::string, double>> v;
  for (auto& st : steps_) v.push_back({st.type + " " + st.name, st.seconds});
  return v;
}

}  // namespace packptq
