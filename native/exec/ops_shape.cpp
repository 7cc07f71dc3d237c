// Data-movement ops: Reshape/Identity, Transpose, Concat, Split, Slice, Gather, Where, Expand, Pad.
// Each checks at creation that every index it will touch lies inside its input, so a run can never
// read out of bounds whatever attributes it was given.
#include "exec/ops_common.h"  // first: it sets the optimisation options for the whole file

#include <algorithm>
#include <cmath>
#include <limits>

namespace packptq {
namespace {

using namespace opsx;

std::vector<int64_t> contiguous_strides(const Shape& s) {
  std::vector<int64_t> st(s.size(), 1);
  for (size_t d = s.size(); d-- > 1;) st[d - 1] = st[d] * s[d];
  return st;
}

// Copies numel floats on up to `threads` threads (large copies only).
void copy_floats(const float* src, float* dst, int64_t n, int threads) {
  if (src == dst || n == 0) return;
  parallel_for(n, threads_for(n, threads), [&](int64_t b, int64_t e) { std::memcpy(dst + b, src + b, sizeof(float) * (e - b)); });
}

// ---------------------------------------------------------------------------------------------
// Reshape / Identity

class CopyOp : public Op {
 public:
  explicit CopyOp(int64_t n) : n_(n) {}
  void run(const OpRun& r) override {
    if (r.in[0] != r.out[0]) copy_floats(r.in[0], r.out[0], n_, r.threads);  // equal when the arena aliases them
  }

 private:
  int64_t n_;
};

std::unique_ptr<Op> make_reshape(const OpInit& op) {
  // Reshape may carry its ONNX shape input as a second (constant) input; only the data is used.
  expect_io(op, 1, 2, 1, 1);
  if (numel(op.in_shapes[0]) != numel(op.out_shapes[0]))
    op.fail_shape("cannot reshape " + shape_str(op.in_shapes[0]) + " (" + str(numel(op.in_shapes[0])) +
                  " elements) to " + shape_str(op.out_shapes[0]) + " (" + str(numel(op.out_shapes[0])) + " elements)");
  return std::make_unique<CopyOp>(numel(op.in_shapes[0]));
}
std::unique_ptr<Op> make_identity(const OpInit& op) {
  expect_io(op, 1, 1, 1, 1);
  if (op.in_shapes[0] != op.out_shapes[0])
    op.fail_shape("output shape " + shape_str(op.out_shapes[0]) + " differs from input " + shape_str(op.in_shapes[0]));
  return std::make_unique<CopyOp>(numel(op.in_shapes[0]));
}

// ---------------------------------------------------------------------------------------------
// Transpose: a strided copy; when the two innermost output dims swap memory order, it runs in
// tiles so both the reads and the writes stay in cache.

class TransposeOp : public Op {
 public:
  explicit TransposeOp(StridedCopy c) : c_(std::move(c)) {
    const size_t nd = c_.dims.size();
    tiled_ = nd >= 2 && c_.strides[nd - 2] == 1 && c_.strides[nd - 1] == c_.dims[nd - 2] && c_.dims[nd - 1] >= 8 &&
             c_.dims[nd - 2] >= 8;
  }

  void run(const OpRun& r) override {
    if (!tiled_) return c_.run(r.in[0], r.out[0], r.threads);
    const size_t nd = c_.dims.size();
    const int64_t A = c_.dims[nd - 2], B = c_.dims[nd - 1];
    std::vector<int64_t> od(c_.dims.begin(), c_.dims.end() - 2);
    std::vector<int64_t> os(c_.strides.begin(), c_.strides.end() - 2);
    od.push_back(1);
    os.push_back(0);
    const float* in = r.in[0] + c_.base;
    float* out = r.out[0];
    int64_t rows = 1;
    for (int64_t d : od) rows *= d;
    const int t = threads_for(rows * A * B, r.threads);
    // With one outer block the tiles themselves are split over threads.
    if (rows == 1) {
      parallel_for((A + kTile - 1) / kTile, t, [&](int64_t b, int64_t e) { block(in, out, A, B, b * kTile, std::min(A, e * kTile)); });
      return;
    }
    const int64_t blk = A * B;
    parallel_for(rows, t, [&](int64_t r0, int64_t r1) {
      std::vector<int64_t> dims1(od.begin(), od.end() - 1);
      for (int64_t rr = r0; rr < r1; ++rr) {
        int64_t rem = rr, off = 0;
        for (size_t d = dims1.size(); d-- > 0;) {
          off += (rem % dims1[d]) * os[d];
          rem /= dims1[d];
        }
        block(in + off, out + rr * blk, A, B, 0, A);
      }
    });
  }

 private:
  static constexpr int64_t kTile = 32;
  // out[a, b] = in[a + b·A] for a in [a0, a1): a tiled 2-D transpose.
  static void block(const float* __restrict in, float* __restrict out, int64_t A, int64_t B, int64_t a0, int64_t a1) {
    for (int64_t at = a0; at < a1; at += kTile) {
      const int64_t ae = std::min(a1, at + kTile);
      for (int64_t bt = 0; bt < B; bt += kTile) {
        const int64_t be = std::min(B, bt + kTile);
        for (int64_t a = at; a < ae; ++a)
          for (int64_t b = bt; b < be; ++b) out[a * B + b] = in[a + b * A];
      }
    }
  }

  StridedCopy c_;
  bool tiled_ = false;
};

std::unique_ptr<Op> make_transpose(const OpInit& op) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& x = op.in_shapes[0];
  const size_t R = x.size();
  const auto perm = ints_attr(op, "perm", R);
  std::vector<char> seen(R, 0);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(R) || seen[p]) op.fail_shape("perm " + ints_str(perm) + " is not a permutation of the " + str(R) + " input dims");
    seen[p] = 1;
  }
  Shape want(R);
  for (size_t i = 0; i < R; ++i) want[i] = x[perm[i]];
  if (op.out_shapes[0] != want)
    op.fail_shape("output " + shape_str(op.out_shapes[0]) + " must be " + shape_str(want) + " for input " + shape_str(x) + " and perm " + ints_str(perm));
  const auto ist = contiguous_strides(x);
  StridedCopy c;
  for (size_t i = 0; i < R; ++i) {
    c.dims.push_back(want[i]);
    c.strides.push_back(ist[perm[i]]);
  }
  c.collapse();
  return std::make_unique<TransposeOp>(std::move(c));
}

// ---------------------------------------------------------------------------------------------
// Concat / Split: views as [outer, axis·inner] chunks.

class ConcatOp : public Op {
 public:
  ConcatOp(int64_t outer, std::vector<int64_t> chunks) : outer_(outer), chunks_(std::move(chunks)) {
    for (int64_t c : chunks_) total_ += c;
  }
  void run(const OpRun& r) override {
    const size_t K = chunks_.size();
    parallel_for(outer_, threads_for(outer_ * total_, r.threads), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        float* dst = r.out[0] + o * total_;
        for (size_t k = 0; k < K; ++k) {
          std::memcpy(dst, r.in[k] + o * chunks_[k], sizeof(float) * chunks_[k]);
          dst += chunks_[k];
        }
      }
    });
  }

 private:
  int64_t outer_, total_ = 0;
  std::vector<int64_t> chunks_;
};

class SplitOp : public Op {
 public:
  SplitOp(int64_t outer, std::vector<int64_t> chunks) : outer_(outer), chunks_(std::move(chunks)) {
    for (int64_t c : chunks_) total_ += c;
  }
  void run(const OpRun& r) override {
    const size_t K = chunks_.size();
    parallel_for(outer_, threads_for(outer_ * total_, r.threads), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const float* src = r.in[0] + o * total_;
        for (size_t k = 0; k < K; ++k) {
          std::memcpy(r.out[k] + o * chunks_[k], src, sizeof(float) * chunks_[k]);
          src += chunks_[k];
        }
      }
    });
  }

 private:
  int64_t outer_, total_ = 0;
  std::vector<int64_t> chunks_;
};

// Checks that `parts` agree with `whole` on every dim but `axis` and that their axis sizes add up.
void check_parts(const OpInit& op, const std::vector<Shape>& parts, const Shape& whole, int64_t axis, const char* what) {
  if (axis < 0 || axis >= static_cast<int64_t>(whole.size()))
    op.fail_shape("axis " + str(axis) + " out of range for " + shape_str(whole));
  int64_t sum = 0;
  for (const auto& p : parts) {
    bool ok = p.size() == whole.size();
    for (size_t d = 0; ok && d < p.size(); ++d)
      if (static_cast<int64_t>(d) != axis && p[d] != whole[d]) ok = false;
    if (!ok) op.fail_shape(std::string(what) + " shape " + shape_str(p) + " does not match " + shape_str(whole) + " outside axis " + str(axis));
    sum += p[axis];
  }
  if (sum != whole[axis])
    op.fail_shape(std::string(what) + " sizes along axis " + str(axis) + " add up to " + str(sum) + ", expected " + str(whole[axis]));
}

void outer_inner(const Shape& s, int64_t axis, int64_t* outer, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t d = 0; d < axis; ++d) *outer *= s[d];
  for (size_t d = axis + 1; d < s.size(); ++d) *inner *= s[d];
}

std::unique_ptr<Op> make_concat(const OpInit& op) {
  expect_io(op, 1, size_t(-1), 1, 1);
  for (size_t k = 0; k < op.in_shapes.size(); ++k)
    if (!present(op, k)) op.fail_shape("input " + str(k) + " is missing");
  const int64_t axis = int_attr(op, "axis");
  check_parts(op, op.in_shapes, op.out_shapes[0], axis, "input");
  int64_t outer, inner;
  outer_inner(op.out_shapes[0], axis, &outer, &inner);
  std::vector<int64_t> chunks;
  for (const auto& s : op.in_shapes) chunks.push_back(s[axis] * inner);
  return std::make_unique<ConcatOp>(outer, chunks);
}

std::unique_ptr<Op> make_split(const OpInit& op) {
  expect_io(op, 1, 2, 1, size_t(-1));
  const int64_t axis = int_attr(op, "axis");
  check_parts(op, op.out_shapes, op.in_shapes[0], axis, "output");
  if (op.attrs.nums.count("split")) {
    const auto split = op.attrs.ints("split");
    bool ok = split.size() == op.out_shapes.size();
    for (size_t k = 0; ok && k < split.size(); ++k) ok = split[k] == op.out_shapes[k][axis];
    if (!ok) op.fail_shape("split " + ints_str(split) + " does not match the " + str(op.out_shapes.size()) + " output shapes");
  }
  int64_t outer, inner;
  outer_inner(op.in_shapes[0], axis, &outer, &inner);
  std::vector<int64_t> chunks;
  for (const auto& s : op.out_shapes) chunks.push_back(s[axis] * inner);
  return std::make_unique<SplitOp>(outer, chunks);
}

// ---------------------------------------------------------------------------------------------
// Slice and Expand: strided copies.

class StridedOp : public Op {
 public:
  explicit StridedOp(StridedCopy c) : c_(std::move(c)) {}
  void run(const OpRun& r) override { c_.run(r.in[0], r.out[0], r.threads); }

 private:
  StridedCopy c_;
};

std::unique_ptr<Op> make_slice(const OpInit& op) {
  expect_io(op, 1, 5, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  const int64_t R = static_cast<int64_t>(x.size());
  if (static_cast<int64_t>(y.size()) != R) op.fail_shape("output " + shape_str(y) + " must have the input's rank " + str(R));
  const auto starts = ints_attr(op, "starts", size_t(-1));
  std::vector<int64_t> axes_d(starts.size());
  for (size_t i = 0; i < axes_d.size(); ++i) axes_d[i] = static_cast<int64_t>(i);
  const auto axes = ints_attr(op, "axes", starts.size(), &axes_d);
  const std::vector<int64_t> ones(starts.size(), 1);
  const auto steps = ints_attr(op, "steps", starts.size(), &ones);
  if (axes.size() != starts.size() || steps.size() != starts.size())
    op.fail_unsupported("starts, axes and steps must have one entry per sliced axis");
  const auto ist = contiguous_strides(x);
  std::vector<int64_t> start(R, 0), step(R, 1);
  std::vector<char> seen(R, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i];
    if (a < 0 || a >= R || seen[a]) op.fail_shape("axes " + ints_str(axes) + " must be distinct dims of input " + shape_str(x));
    seen[a] = 1;
    if (steps[i] == 0) op.fail_unsupported("steps must be non-zero");
    start[a] = starts[i];
    step[a] = steps[i];
  }
  StridedCopy c;
  for (int64_t d = 0; d < R; ++d) {
    if (!seen[d] && y[d] != x[d])
      op.fail_shape("output " + shape_str(y) + " differs from input " + shape_str(x) + " on unsliced dim " + str(d));
    if (y[d] > 0) {
      const int64_t first = start[d], last = start[d] + (y[d] - 1) * step[d];
      if (first < 0 || first >= x[d] || last < 0 || last >= x[d])
        op.fail_shape("slice of dim " + str(d) + " (start " + str(first) + ", step " + str(step[d]) + ", " + str(y[d]) +
                      " elements) reads outside input " + shape_str(x));
    }
    c.base += start[d] * ist[d];
    c.dims.push_back(y[d]);
    c.strides.push_back(step[d] * ist[d]);
  }
  if (numel(y) == 0) c.base = 0;
  c.collapse();
  return std::make_unique<StridedOp>(std::move(c));
}

std::unique_ptr<Op> make_expand(const OpInit& op) {
  expect_io(op, 1, 2, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  Broadcast b = make_broadcast(op, {x}, y, false);
  StridedCopy c;
  c.dims = b.dims;
  c.strides = b.strides[0];
  c.collapse();
  return std::make_unique<StridedOp>(std::move(c));
}

// ---------------------------------------------------------------------------------------------
// Gather along one axis with constant indices.

class GatherOp : public Op {
 public:
  GatherOp(int64_t outer, int64_t axis_len, int64_t inner, std::vector<int64_t> idx)
      : outer_(outer), axis_len_(axis_len), inner_(inner), idx_(std::move(idx)) {}
  void run(const OpRun& r) override {
    const int64_t ni = static_cast<int64_t>(idx_.size());
    parallel_for(outer_ * ni, threads_for(outer_ * ni * inner_, r.threads), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t o = t / ni, k = t % ni;
        std::memcpy(r.out[0] + t * inner_, r.in[0] + (o * axis_len_ + idx_[k]) * inner_, sizeof(float) * inner_);
      }
    });
  }

 private:
  int64_t outer_, axis_len_, inner_;
  std::vector<int64_t> idx_;
};

std::unique_ptr<Op> make_gather(const OpInit& op) {
  expect_io(op, 1, 2, 1, 1);
  const Shape& x = op.in_shapes[0];
  const int64_t axis = int_attr(op, "axis");
  if (axis < 0 || axis >= static_cast<int64_t>(x.size())) op.fail_shape("axis " + str(axis) + " out of range for input " + shape_str(x));
  const auto idx = ints_attr(op, "indices", size_t(-1));
  const std::vector<int64_t> flat{static_cast<int64_t>(idx.size())};
  const auto ishape = ints_attr(op, "indices_shape", size_t(-1), &flat);
  if (numel(ishape) != static_cast<int64_t>(idx.size()))
    op.fail_shape("indices_shape " + ints_str(ishape) + " does not hold the " + str(idx.size()) + " indices");
  for (int64_t i : idx)
    if (i < 0 || i >= x[axis])
      op.fail_shape("index " + str(i) + " out of range [0, " + str(x[axis]) + ") on axis " + str(axis) + " of input " + shape_str(x));
  Shape want(x.begin(), x.begin() + axis);
  want.insert(want.end(), ishape.begin(), ishape.end());
  want.insert(want.end(), x.begin() + axis + 1, x.end());
  if (op.out_shapes[0] != want) op.fail_shape("output " + shape_str(op.out_shapes[0]) + " must be " + shape_str(want));
  int64_t outer, inner;
  outer_inner(x, axis, &outer, &inner);
  return std::make_unique<GatherOp>(outer, x[axis], inner, idx);
}

// ---------------------------------------------------------------------------------------------
// Where(cond, x, y) with three-way broadcasting; cond is 0/1 floats (non-zero = true).

class WhereOp : public Op {
 public:
  explicit WhereOp(Broadcast b) : b_(std::move(b)) {}
  void run(const OpRun& r) override {
    const float* c = r.in[0];
    const float* a = r.in[1];
    const float* b = r.in[2];
    const int64_t sc = b_.strides[0].back(), sa = b_.strides[1].back(), sb = b_.strides[2].back();
    for_each_row(b_.dims, b_.strides, r.threads, [&](const int64_t* off, int64_t o, int64_t n) {
      const float* __restrict cr = c + off[0];
      const float* __restrict ar = a + off[1];
      const float* __restrict br = b + off[2];
      float* __restrict y = r.out[0] + o;
      if (sc == 1 && sa == 1 && sb == 1) {
        for (int64_t i = 0; i < n; ++i) y[i] = cr[i] != 0.f ? ar[i] : br[i];
      } else {
        for (int64_t i = 0; i < n; ++i) y[i] = cr[i * sc] != 0.f ? ar[i * sa] : br[i * sb];
      }
    });
  }

 private:
  Broadcast b_;
};

std::unique_ptr<Op> make_where(const OpInit& op) {
  expect_io(op, 3, 3, 1, 1);
  return std::make_unique<WhereOp>(make_broadcast(op, {op.in_shapes[0], op.in_shapes[1], op.in_shapes[2]}, op.out_shapes[0], true));
}

// ---------------------------------------------------------------------------------------------
// Pad: per dim, a map from output index to input index (−1 = the constant value). Negative pads
// crop. Reflect repeats its reflection for pads longer than the dim (numpy semantics).

class PadOp : public Op {
 public:
  PadOp(Shape out, Shape in, std::vector<std::vector<int64_t>> maps, float value)
      : out_(std::move(out)), in_(std::move(in)), maps_(std::move(maps)), value_(value) {}
  void run(const OpRun& r) override {
    const int64_t total = numel(out_);
    if (total == 0) return;
    const int nd = static_cast<int>(out_.size());
    if (nd == 0) {
      r.out[0][0] = r.in[0][0];
      return;
    }
    const int64_t W = out_[nd - 1];
    const int64_t rows = total / W;
    const auto ist = contiguous_strides(in_);
    const std::vector<int64_t>& last = maps_[nd - 1];
    parallel_for(rows, threads_for(total, r.threads), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        int64_t rem = row, off = 0;
        bool valid = true;
        for (int d = nd - 2; d >= 0; --d) {
          const int64_t m = maps_[d][rem % out_[d]];
          rem /= out_[d];
          if (m < 0) valid = false;
          else off += m * ist[d];
        }
        float* __restrict y = r.out[0] + row * W;
        if (!valid) {
          for (int64_t j = 0; j < W; ++j) y[j] = value_;
          continue;
        }
        const float* __restrict x = r.in[0] + off;
        for (int64_t j = 0; j < W; ++j) y[j] = last[j] < 0 ? value_ : x[last[j]];
      }
    });
  }

 private:
  Shape out_, in_;
  std::vector<std::vector<int64_t>> maps_;
  float value_;
};

std::unique_ptr<Op> make_pad(const OpInit& op) {
  expect_io(op, 1, 4, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  const size_t R = x.size();
  const auto pads = ints_attr(op, "pads", 2 * R);
  const std::string mode = op.attrs.s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    op.fail_unsupported("mode \"" + mode + "\" is not supported (constant, reflect, edge)");
  if (y.size() != R) op.fail_shape("output " + shape_str(y) + " must have the input's rank " + str(R));
  std::vector<std::vector<int64_t>> maps(R);
  for (size_t d = 0; d < R; ++d) {
    const int64_t b = pads[d], e = pads[R + d], n = x[d];
    if (n + b + e != y[d])
      op.fail_shape("output dim " + str(d) + " is " + str(y[d]) + ", expected " + str(n) + " + " + str(b) + " + " + str(e) + " from pads " + ints_str(pads));
    if (mode != "constant" && n == 0 && y[d] > 0) op.fail_shape("cannot " + mode + "-pad the empty dim " + str(d) + " of " + shape_str(x));
    if (mode != "constant" && (b < 0 || e < 0)) op.fail_unsupported("negative pads are only supported in constant mode");
    auto& m = maps[d];
    m.resize(y[d]);
    for (int64_t o = 0; o < y[d]; ++o) {
      int64_t i = o - b;
      if (mode == "constant") {
        if (i < 0 || i >= n) i = -1;
      } else if (mode == "edge" || n == 1) {
        i = std::min(std::max(i, int64_t(0)), n - 1);
      } else {
        const int64_t p = 2 * (n - 1);
        i = ((i % p) + p) % p;
        if (i >= n) i = p - i;
      }
      m[o] = i;
    }
  }
  return std::make_unique<PadOp>(y, x, std::move(maps), static_cast<float>(op.attrs.f("value", 0.0)));
}

PACKPTQ_REGISTER_OP("Reshape", make_reshape);
PACKPTQ_REGISTER_OP("Identity", make_identity);
PACKPTQ_REGISTER_OP("Transpose", make_transpose);
PACKPTQ_REGISTER_OP("Concat", make_concat);
PACKPTQ_REGISTER_OP("Split", make_split);
PACKPTQ_REGISTER_OP("Slice", make_slice);
PACKPTQ_REGISTER_OP("Gather", make_gather);
PACKPTQ_REGISTER_OP("Where", make_where);
PACKPTQ_REGISTER_OP("Expand", make_expand);
PACKPTQ_REGISTER_OP("Pad", make_pad);

}  // namespace
}  // namespace packptq
