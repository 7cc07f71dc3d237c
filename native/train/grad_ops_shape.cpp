// Data movement with gradients: Reshape, Concat, Split as block copies; Transpose, Slice, Expand,
// Gather and Pad as one "index map" op: y[i] = x[src[i]] (or a constant where src[i] < 0), whose
// gradient scatters back gx[src[i]] += gy[i]. The map is built and bounds-checked once at creation,
// so no attribute can make a run touch memory outside its tensors. Scatter runs on threads only when
// the map is injective (Transpose, Slice, constant Pad); Expand, Gather with repeated indices and
// edge/reflect Pad collide and scatter serially.
#include "train/grad_util.h"  // first: it sets the optimisation options for the whole file

#include <algorithm>
#include <cstring>

namespace packptq {
namespace train {
namespace {

using namespace gx;

template <typename T>
class CopyGrad : public GradOp<T> {
 public:
  explicit CopyGrad(int64_t n) : n_(n) {}
  void forward(const GradArgs<T>& a) override { std::memcpy(a.out[0], a.in[0], sizeof(T) * n_); }
  void backward(const GradArgs<T>& a) override {
    T* g = a.gin[0];
    if (!g) return;
    const T* gy = a.gout[0];
    parallel_for(n_, threads_for(n_, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) g[i] += gy[i];
    });
  }

 private:
  int64_t n_;
};

template <typename T>
std::unique_ptr<GradOp<T>> make_reshape(const GradInit& op) {
  // The ONNX shape input may ride along as a second (constant) input; only the data moves.
  expect_io(op, 1, 2, 1, 1);
  if (numel(op.in_shapes[0]) != numel(op.out_shapes[0]))
    op.fail_shape("cannot reshape " + shape_str(op.in_shapes[0]) + " to " + shape_str(op.out_shapes[0]));
  return std::make_unique<CopyGrad<T>>(numel(op.in_shapes[0]));
}

// Concat (forward joins, backward splits) and Split (the reverse), over [outer, chunk_k] blocks.
template <typename T>
class JoinGrad : public GradOp<T> {
 public:
  JoinGrad(bool concat, int64_t outer, std::vector<int64_t> chunks) : concat_(concat), outer_(outer), chunks_(std::move(chunks)) {
    for (int64_t c : chunks_) total_ += c;
  }
  void forward(const GradArgs<T>& a) override {
    for (int64_t o = 0; o < outer_; ++o) {
      int64_t at = o * total_;
      for (size_t k = 0; k < chunks_.size(); ++k) {
        if (concat_) std::memcpy(a.out[0] + at, a.in[k] + o * chunks_[k], sizeof(T) * chunks_[k]);
        else std::memcpy(a.out[k] + o * chunks_[k], a.in[0] + at, sizeof(T) * chunks_[k]);
        at += chunks_[k];
      }
    }
  }
  void backward(const GradArgs<T>& a) override {
    for (int64_t o = 0; o < outer_; ++o) {
      int64_t at = o * total_;
      for (size_t k = 0; k < chunks_.size(); ++k) {
        T* g = concat_ ? a.gin[k] : a.gin[0];
        if (g) {
          const T* src = concat_ ? a.gout[0] + at : a.gout[k] + o * chunks_[k];
          T* dst = concat_ ? g + o * chunks_[k] : g + at;
          for (int64_t j = 0; j < chunks_[k]; ++j) dst[j] += src[j];
        }
        at += chunks_[k];
      }
    }
  }

 private:
  bool concat_;
  int64_t outer_, total_ = 0;
  std::vector<int64_t> chunks_;
};

void check_parts(const GradInit& op, const std::vector<Shape>& parts, const Shape& whole, int64_t axis, const char* what) {
  if (axis < 0 || axis >= static_cast<int64_t>(whole.size())) op.fail_shape("axis " + str(axis) + " out of range for " + shape_str(whole));
  int64_t sum = 0;
  for (const auto& p : parts) {
    bool ok = p.size() == whole.size();
    for (size_t d = 0; ok && d < p.size(); ++d) ok = static_cast<int64_t>(d) == axis || p[d] == whole[d];
    if (!ok) op.fail_shape(std::string(what) + " shape " + shape_str(p) + " does not match " + shape_str(whole) + " outside axis " + str(axis));
    sum += p[axis];
  }
  if (sum != whole[axis]) op.fail_shape(std::string(what) + " sizes along axis " + str(axis) + " add up to " + str(sum) + ", expected " + str(whole[axis]));
}

template <typename T>
std::unique_ptr<GradOp<T>> make_join(const GradInit& op, bool concat) {
  if (concat) {
    expect_io(op, 1, size_t(-1), 1, 1);
    for (size_t k = 0; k < op.in_shapes.size(); ++k)
      if (!op.has_input(k)) op.fail_shape("input " + str(k) + " is missing");
  } else {
    expect_io(op, 1, 2, 1, size_t(-1));
  }
  const int64_t axis = int_attr(op, "axis");
  const Shape& whole = concat ? op.out_shapes[0] : op.in_shapes[0];
  const std::vector<Shape>& parts = concat ? op.in_shapes : op.out_shapes;
  check_parts(op, parts, whole, axis, concat ? "input" : "output");
  if (!concat && op.attrs.nums.count("split")) {
    const auto split = op.attrs.ints("split");
    bool ok = split.size() == parts.size();
    for (size_t k = 0; ok && k < split.size(); ++k) ok = split[k] == parts[k][axis];
    if (!ok) op.fail_shape("split " + shape_str(split) + " does not match the output shapes");
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= whole[d];
  for (size_t d = axis + 1; d < whole.size(); ++d) inner *= whole[d];
  std::vector<int64_t> chunks;
  for (const auto& p : parts) chunks.push_back(p[axis] * inner);
  return std::make_unique<JoinGrad<T>>(concat, outer, chunks);
}
template <typename T> std::unique_ptr<GradOp<T>> make_concat(const GradInit& op) { return make_join<T>(op, true); }
template <typename T> std::unique_ptr<GradOp<T>> make_split(const GradInit& op) { return make_join<T>(op, false); }

// ---------------------------------------------------------------------------------------------
// Index-map ops.

template <typename T>
class MapGrad : public GradOp<T> {
 public:
  MapGrad(std::vector<int64_t> src, bool injective, double fill) : src_(std::move(src)), injective_(injective), fill_(fill) {}
  void forward(const GradArgs<T>& a) override {
    const T* x = a.in[0];
    T* y = a.out[0];
    const int64_t n = static_cast<int64_t>(src_.size());
    const T fill = static_cast<T>(fill_);
    parallel_for(n, threads_for(n, a.threads), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) y[i] = src_[i] >= 0 ? x[src_[i]] : fill;
    });
  }
  void backward(const GradArgs<T>& a) override {
    T* g = a.gin[0];
    if (!g) return;
    const T* gy = a.gout[0];
    const int64_t n = static_cast<int64_t>(src_.size());
    auto body = [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i)
        if (src_[i] >= 0) g[src_[i]] += gy[i];
    };
    if (injective_) parallel_for(n, threads_for(n, a.threads), body);
    else body(0, n);
  }

 private:
  std::vector<int64_t> src_;
  bool injective_;
  double fill_;
};

// src over the output's multi-index: Σ idx[d]·stride[d] + base (strides may be 0 or negative).
std::vector<int64_t> strided_map(const Shape& out, const std::vector<int64_t>& strides, int64_t base) {
  const int R = static_cast<int>(out.size());
  const int64_t total = numel(out);
  std::vector<int64_t> src(total);
  std::vector<int64_t> idx(R, 0);
  int64_t off = base;
  for (int64_t i = 0; i < total; ++i) {
    src[i] = off;
    for (int d = R - 1; d >= 0; --d) {
      off += strides[d];
      if (++idx[d] < out[d]) break;
      off -= strides[d] * out[d];
      idx[d] = 0;
    }
  }
  return src;
}

template <typename T>
std::unique_ptr<GradOp<T>> make_transpose(const GradInit& op) {
  expect_io(op, 1, 1, 1, 1);
  const Shape& x = op.in_shapes[0];
  const size_t R = x.size();
  const auto perm = ints_attr(op, "perm", R);
  std::vector<char> seen(R, 0);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(R) || seen[p]) op.fail_shape("perm " + shape_str(perm) + " is not a permutation of the " + str(R) + " input dims");
    seen[p] = 1;
  }
  Shape want(R);
  std::vector<int64_t> st(R);
  const auto ist = contiguous_strides(x);
  for (size_t i = 0; i < R; ++i) want[i] = x[perm[i]], st[i] = ist[perm[i]];
  if (op.out_shapes[0] != want) op.fail_shape("output " + shape_str(op.out_shapes[0]) + " must be " + shape_str(want));
  return std::make_unique<MapGrad<T>>(strided_map(want, st, 0), true, 0.0);
}

template <typename T>
std::unique_ptr<GradOp<T>> make_slice(const GradInit& op) {
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
  const auto ist = contiguous_strides(x);
  std::vector<int64_t> start(R, 0), step(R, 1), st(R);
  std::vector<char> seen(R, 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t a = axes[i];
    if (a < 0 || a >= R || seen[a]) op.fail_shape("axes " + shape_str(axes) + " must be distinct dims of input " + shape_str(x));
    if (steps[i] == 0) op.fail_unsupported("steps must be non-zero");
    seen[a] = 1, start[a] = starts[i], step[a] = steps[i];
  }
  int64_t base = 0;
  for (int64_t d = 0; d < R; ++d) {
    if (!seen[d] && y[d] != x[d]) op.fail_shape("output " + shape_str(y) + " differs from input " + shape_str(x) + " on unsliced dim " + str(d));
    if (y[d] > 0) {
      const int64_t first = start[d], last = start[d] + (y[d] - 1) * step[d];
      if (first < 0 || first >= x[d] || last < 0 || last >= x[d])
        op.fail_shape("slice of dim " + str(d) + " (start " + str(first) + ", step " + str(step[d]) + ", " + str(y[d]) +
                      " elements) reads outside input " + shape_str(x));
    }
    base += start[d] * ist[d];
    st[d] = step[d] * ist[d];
  }
  return std::make_unique<MapGrad<T>>(numel(y) ? strided_map(y, st, base) : std::vector<int64_t>(), true, 0.0);
}

template <typename T>
std::unique_ptr<GradOp<T>> make_expand(const GradInit& op) {
  expect_io(op, 1, 2, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  if (x.size() > y.size()) op.fail_shape("input " + shape_str(x) + " has higher rank than output " + shape_str(y));
  const size_t off = y.size() - x.size();
  const auto ist = contiguous_strides(x);
  std::vector<int64_t> st(y.size(), 0);
  for (size_t d = off; d < y.size(); ++d) {
    const int64_t xd = x[d - off];
    if (xd != 1 && xd != y[d]) op.fail_shape("input " + shape_str(x) + " does not broadcast to output " + shape_str(y));
    st[d] = xd == 1 ? 0 : ist[d - off];
  }
  return std::make_unique<MapGrad<T>>(strided_map(y, st, 0), numel(x) == numel(y), 0.0);
}

template <typename T>
std::unique_ptr<GradOp<T>> make_gather(const GradInit& op) {
  expect_io(op, 1, 2, 1, 1);
  const Shape& x = op.in_shapes[0];
  const int64_t axis = int_attr(op, "axis");
  if (axis < 0 || axis >= static_cast<int64_t>(x.size())) op.fail_shape("axis " + str(axis) + " out of range for input " + shape_str(x));
  const auto idx = ints_attr(op, "indices", size_t(-1));
  const std::vector<int64_t> flat{static_cast<int64_t>(idx.size())};
  const auto ishape = ints_attr(op, "indices_shape", size_t(-1), &flat);
  if (numel(ishape) != static_cast<int64_t>(idx.size())) op.fail_shape("indices_shape " + shape_str(ishape) + " does not hold the " + str(idx.size()) + " indices");
  std::vector<char> used(x[axis], 0);
  bool injective = true;
  for (int64_t i : idx) {
    if (i < 0 || i >= x[axis]) op.fail_shape("index " + str(i) + " out of range [0, " + str(x[axis]) + ") on axis " + str(axis) + " of input " + shape_str(x));
    injective = injective && !used[i];
    used[i] = 1;
  }
  Shape want(x.begin(), x.begin() + axis);
  want.insert(want.end(), ishape.begin(), ishape.end());
  want.insert(want.end(), x.begin() + axis + 1, x.end());
  if (op.out_shapes[0] != want) op.fail_shape("output " + shape_str(op.out_shapes[0]) + " must be " + shape_str(want));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x[d];
  for (size_t d = axis + 1; d < x.size(); ++d) inner *= x[d];
  const int64_t ni = static_cast<int64_t>(idx.size());
  std::vector<int64_t> src(static_cast<size_t>(outer * ni * inner));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < ni; ++k)
      for (int64_t j = 0; j < inner; ++j) src[(o * ni + k) * inner + j] = (o * x[axis] + idx[k]) * inner + j;
  return std::make_unique<MapGrad<T>>(std::move(src), injective, 0.0);
}

template <typename T>
std::unique_ptr<GradOp<T>> make_pad(const GradInit& op) {
  expect_io(op, 1, 4, 1, 1);
  const Shape& x = op.in_shapes[0];
  const Shape& y = op.out_shapes[0];
  const size_t R = x.size();
  const auto pads = ints_attr(op, "pads", 2 * R);
  const std::string mode = op.attrs.s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge") op.fail_unsupported("mode \"" + mode + "\" is not supported (constant, reflect, edge)");
  if (y.size() != R) op.fail_shape("output " + shape_str(y) + " must have the input's rank " + str(R));
  // Per dim, output index → input index (−1 = the constant). Negative pads crop.
  std::vector<std::vector<int64_t>> maps(R);
  for (size_t d = 0; d < R; ++d) {
    const int64_t b = pads[d], e = pads[R + d], n = x[d];
    if (n + b + e != y[d]) op.fail_shape("output dim " + str(d) + " is " + str(y[d]) + ", expected " + str(n + b + e) + " from pads " + shape_str(pads));
    if (mode != "constant" && n == 0 && y[d] > 0) op.fail_shape("cannot " + mode + "-pad the empty dim " + str(d));
    if (mode != "constant" && (b < 0 || e < 0)) op.fail_unsupported("negative pads are only supported in constant mode");
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
      maps[d].push_back(i);
    }
  }
  const auto ist = contiguous_strides(x);
  const int64_t total = numel(y);
  std::vector<int64_t> src(total), idx(R, 0);
  for (int64_t i = 0; i < total; ++i) {
    int64_t s = 0;
    for (size_t d = 0; d < R && s >= 0; ++d) {
      const int64_t m = maps[d][idx[d]];
      s = m < 0 ? -1 : s + m * ist[d];
    }
    src[i] = s;
    for (size_t d = R; d-- > 0;) {
      if (++idx[d] < y[d]) break;
      idx[d] = 0;
    }
  }
  return std::make_unique<MapGrad<T>>(std::move(src), mode == "constant", op.attrs.f("value", 0.0));
}

}  // namespace

PACKPTQ_REGISTER_GRAD_OP("Reshape", make_reshape);
PACKPTQ_REGISTER_GRAD_OP("Concat", make_concat);
PACKPTQ_REGISTER_GRAD_OP("Split", make_split);
PACKPTQ_REGISTER_GRAD_OP("Transpose", make_transpose);
PACKPTQ_REGISTER_GRAD_OP("Slice", make_slice);
PACKPTQ_REGISTER_GRAD_OP("Expand", make_expand);
PACKPTQ_REGISTER_GRAD_OP("Gather", make_gather);
PACKPTQ_REGISTER_GRAD_OP("Pad", make_pad);

}  // namespace train
}  // namespace packptq
