// A compiled Program: a list of ops over a tensor arena, built once for fixed shapes and run many
// times. It owns its constants (copied in at creation) and its arena, so a run touches no memory it
// did not plan for. Runs of one Program are serialised (one arena); separate Programs run in parallel.
#pragma once
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "exec/op.h"

namespace packptq {

struct TensorSpec {
  Shape shape;
  std::vector<float> data;  // non-empty for constants
  bool is_const = false;
};

struct OpSpec {
  std::string type, name;
  std::vector<int> inputs;   // tensor ids, -1 for a missing optional input
  std::vector<int> outputs;  // tensor ids
  Attrs attrs;
};

struct ProgramSpec {
  std::vector<TensorSpec> tensors;
  std::vector<int> inputs, outputs;
  std::vector<OpSpec> ops;
  Isa isa = Isa::Scalar;
  int threads = 1;
};

class Program {
 public:
  explicit Program(ProgramSpec spec);

  // inputs[i] holds numel(input_shape(i)) floats; outputs are resized and filled.
  void run(const std::vector<const float*>& inputs, std::vector<std::vector<float>>* outputs);

  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }
  const Shape& input_shape(size_t i) const { return tensors_[inputs_[i]].shape; }
  const Shape& output_shape(size_t i) const { return tensors_[outputs_[i]].shape; }
  size_t arena_bytes() const { return arena_.size() * sizeof(float); }
  size_t num_ops() const { return steps_.size(); }
  Isa isa() const { return isa_; }
  int threads() const { return threads_; }
  void set_threads(int t) { threads_ = t < 1 ? 1 : t; }
  // Batch shards: Programs of the same graph compiled for parts of this Program's batch (their
  // batches add up to it; every other dim of every input and output matches). While threads() is
  // at least their count, run() splits the batch among them and runs each on its own thread with
  // one thread inside, instead of sharing every op between threads: a batch-32 op is long enough,
  // but the join after each of a network's ~50 ops and the halved GEMM panels cost a two-thread
  // run a quarter of its speed. Only valid for graphs whose samples do not interact (the caller
  // checks). An empty list turns sharding off.
  void set_shards(std::vector<std::shared_ptr<Program>> shards);
  size_t num_shards() const { return shards_.size(); }
  // Per-op accumulated seconds (profiling); enabled by set_profiling(true).
  void set_profiling(bool on) { profiling_ = on; }
  std::vector<std::pair<std::string, double>> profile() const;

 private:
  struct Step {
    std::unique_ptr<Op> op;
    std::vector<int> in, out;
    std::string type, name;
    double seconds = 0;
  };
  void plan_arena();
  void run_shards(const std::vector<const float*>& inputs, std::vector<std::vector<float>>* outputs);
  float* ptr(int tensor);

  std::vector<TensorSpec> tensors_;
  std::vector<int> inputs_, outputs_;
  std::vector<Step> steps_;
  std::vector<int64_t> offset_;  // arena offset (floats) per non-constant tensor, -1 for constants
  std::vector<float> arena_;
  std::vector<float> scratch_;
  Isa isa_;
  int threads_;
  bool profiling_ = false;
  std::vector<std::shared_ptr<Program>> shards_;
  std::mutex mutex_;
};

}  // namespace packptq
