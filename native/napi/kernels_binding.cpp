// exports.kernels: direct access to the GEMM / convolution kernels and the FMA peak probe, for the
// kernel tests and benchmarks. Every argument is checked here before any native code touches a
// pointer (array lengths against M, N, K and the leading dimensions, overlapping outputs, ISA
// support), and every failure becomes a JS Error with a `code` (BAD_OPTION, SHAPE_MISMATCH,
// NATIVE), so a bad call from JavaScript can never crash the process.
//
// isa arguments: "scalar" | "avx2" | "avx512" | "avx512-logic" (test-only: the AVX-512 templates
// compiled for AVX2) | "default" (default_isa(), which honours PACKPTQ_SIMD at the time of the call).
#include "napi/kernels_binding.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/conv.h"
#include "kernels/gemm.h"
#include "kernels/variants.h"
#include "kernels/work_pool.h"
#include "napi/js_errors.h"

namespace packptq {
namespace {

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsString()) return "\"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsNumber() || v.IsBoolean()) return v.ToString().Utf8Value();
  if (v.IsTypedArray()) return "a typed array of another element type";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

// One message shape for argument errors, as in lib/errors.ts: "Expected X for NAME but received Y".
[[noreturn]] void expected(const std::string& what, const std::string& name, const Napi::Value& got) {
  fail(ErrorCode::BadOption, "Expected " + what + " for " + name + " but received " + describe(got));
}

Napi::Value arg(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

int64_t int_arg(const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi) {
  const std::string range = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!v.IsNumber()) expected(range, name, v);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < (double)lo || d > (double)hi) expected(range, name, v);
  return (int64_t)d;
}

bool bool_arg(const Napi::Value& v, const std::string& name) {
  if (!v.IsBoolean()) expected("a boolean", name, v);
  return v.As<Napi::Boolean>().Value();
}

constexpr int64_t kMaxDim = 2147483647;  // the kernels index with int dimensions
constexpr int64_t kMaxThreads = 1024;

KernelVariant variant_arg(const Napi::Value& v, const std::string& name = "isa") {
  const char* choices = "\"scalar\", \"avx2\", \"avx512\", \"avx512-logic\" or \"default\"";
  if (!v.IsString()) expected(choices, name, v);
  const std::string s = v.As<Napi::String>().Utf8Value();
  KernelVariant k;
  if (s == "default")
    k = variant_of(default_isa());
  else if (!parse_variant(s.c_str(), &k))
    expected(choices, name, v);
  if (!variant_supported(k))
    fail(ErrorCode::BadOption, std::string("isa ") + variant_name(k) + " is not supported by this CPU");
  return k;
}

struct FloatArg {
  float* data;
  size_t length;
};

FloatArg f32_arg(const Napi::Value& v, const std::string& name) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    expected("a Float32Array", name, v);
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return {a.Data(), a.ElementLength()};
}

// Elements a row-major rows x cols matrix with leading dimension ld spans.
int64_t span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

void need_length(const FloatArg& a, int64_t n, const std::string& name, const std::string& why) {
  if ((int64_t)a.length < n)
    fail(ErrorCode::ShapeMismatch, name + " has " + std::to_string(a.length) + " elements but " + why + " needs " +
                                       std::to_string(n));
}

void need_exact(const FloatArg& a, int64_t n, const std::string& name, const std::string& why) {
  if ((int64_t)a.length != n)
    fail(ErrorCode::ShapeMismatch, name + " has " + std::to_string(a.length) + " elements but " + why + " needs exactly " +
                                       std::to_string(n));
}

// The kernels read their inputs while writing the output: an output sharing memory with an input
// would give order-dependent garbage, so it is refused.
void no_overlap(const float* out, int64_t n_out, const float* in, int64_t n_in, const std::string& out_name,
                const std::string& in_name) {
  if (n_out == 0 || n_in == 0 || in == nullptr) return;
  if (out < in + n_in && in < out + n_out)
    fail(ErrorCode::BadOption, out_name + " must not share memory with " + in_name);
}

// ---- gemm ------------------------------------------------------------------------------------

struct GemmCall {
  KernelVariant v;
  bool ta, tb, acc;
  int M, N, K, lda, ldb, ldc, threads;
  const float *A, *B;
  float* C;
  void run() const { sgemm_variant(v, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, acc, threads); }
};

// (isa, transA, transB, M, N, K, A, lda, B, ldb, C, ldc, accumulate, threads)
GemmCall read_gemm(const Napi::CallbackInfo& info) {
  GemmCall g;
  g.v = variant_arg(arg(info, 0));
  g.ta = bool_arg(arg(info, 1), "transA");
  g.tb = bool_arg(arg(info, 2), "transB");
  g.M = (int)int_arg(arg(info, 3), "M", 0, kMaxDim);
  g.N = (int)int_arg(arg(info, 4), "N", 0, kMaxDim);
  g.K = (int)int_arg(arg(info, 5), "K", 0, kMaxDim);
  const FloatArg A = f32_arg(arg(info, 6), "A"), B = f32_arg(arg(info, 8), "B"), C = f32_arg(arg(info, 10), "C");
  // Stored shapes: A is M x K (K x M when transposed), B is K x N (N x K), C is M x N.
  const int64_t a_rows = g.ta ? g.K : g.M, a_cols = g.ta ? g.M : g.K;
  const int64_t b_rows = g.tb ? g.N : g.K, b_cols = g.tb ? g.K : g.N;
  g.lda = (int)int_arg(arg(info, 7), "lda", std::max<int64_t>(1, a_cols), kMaxDim);
  g.ldb = (int)int_arg(arg(info, 9), "ldb", std::max<int64_t>(1, b_cols), kMaxDim);
  g.ldc = (int)int_arg(arg(info, 11), "ldc", std::max<int64_t>(1, g.N), kMaxDim);
  g.acc = bool_arg(arg(info, 12), "accumulate");
  g.threads = (int)int_arg(arg(info, 13), "threads", 1, kMaxThreads);
  const int64_t na = span(a_rows, a_cols, g.lda), nb = span(b_rows, b_cols, g.ldb), nc = span(g.M, g.N, g.ldc);
  const std::string dims = "M=" + std::to_string(g.M) + " N=" + std::to_string(g.N) + " K=" + std::to_string(g.K);
  need_length(A, na, "A", dims + " lda=" + std::to_string(g.lda) + (g.ta ? " transposed" : ""));
  need_length(B, nb, "B", dims + " ldb=" + std::to_string(g.ldb) + (g.tb ? " transposed" : ""));
  need_length(C, nc, "C", dims + " ldc=" + std::to_string(g.ldc));
  // K = 0 multiplies nothing: the A and B regions are empty, so only C is touched.
  no_overlap(C.data, nc, A.data, na, "C", "A");
  no_overlap(C.data, nc, B.data, nb, "C", "B");
  g.A = A.data;
  g.B = B.data;
  g.C = C.data;
  return g;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    read_gemm(info).run();
    return info.Env().Undefined();
  });
}

template <typename Fn>
double time_reps(int reps, Fn&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// (...gemm arguments..., reps) -> total seconds of `reps` back-to-back native calls.
Napi::Value TimeGemm(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const GemmCall g = read_gemm(info);
    const int reps = (int)int_arg(arg(info, 14), "reps", 1, 1 << 30);
    return Napi::Number::New(info.Env(), time_reps(reps, [&] { g.run(); }));
  });
}

// ---- conv ------------------------------------------------------------------------------------

ConvShape shape_arg(const Napi::Value& v) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) expected("a convolution shape object", "shape", v);
  Napi::Object o = v.As<Napi::Object>();
  auto field = [&](const char* name, int dflt, bool required, int64_t lo) -> int {
    Napi::Value f = o.Get(name);
    if (f.IsUndefined()) {
      if (required) expected("an integer", std::string("shape.") + name, f);
      return dflt;
    }
    return (int)int_arg(f, std::string("shape.") + name, lo, kMaxDim);
  };
  ConvShape s;
  s.N = field("N", 1, true, 1);
  s.C = field("C", 1, true, 1);
  s.H = field("H", 1, true, 1);
  s.W = field("W", 1, true, 1);
  s.M = field("M", 1, true, 1);
  s.KH = field("KH", 1, true, 1);
  s.KW = field("KW", 1, true, 1);
  s.stride_h = field("strideH", 1, false, 1);
  s.stride_w = field("strideW", 1, false, 1);
  s.pad_top = field("padTop", 0, false, 0);
  s.pad_left = field("padLeft", 0, false, 0);
  s.pad_bottom = field("padBottom", 0, false, 0);
  s.pad_right = field("padRight", 0, false, 0);
  s.dil_h = field("dilH", 1, false, 1);
  s.dil_w = field("dilW", 1, false, 1);
  s.group = field("group", 1, false, 1);
  const Napi::Value cols = o.Get("columns");
  if (!cols.IsUndefined()) {
    s.columns = cols.IsString() ? conv_columns_code(cols.As<Napi::String>().Utf8Value().c_str()) : -1;
    if (s.columns < 0) expected("\"auto\", \"padded\" or \"compact\"", "shape.columns", cols);
  }
  const Napi::Value algo = o.Get("algorithm");
  if (!algo.IsUndefined()) {
    s.algorithm = algo.IsString() ? conv_algorithm_code(algo.As<Napi::String>().Utf8Value().c_str()) : -1;
    if (s.algorithm < 0) expected("\"auto\", \"gemm\", \"lanes\" or \"rows\"", "shape.algorithm", algo);
  }
  validate_conv_shape(s);
  return s;
}

int64_t weight_count(const ConvShape& s) { return (int64_t)s.M * (s.C / s.group) * s.KH * s.KW; }

struct ConvWeights {
  FloatArg w;
  const float* bias;
};

ConvWeights conv_weights(const ConvShape& s, const Napi::Value& wv, const Napi::Value& bv) {
  ConvWeights cw{f32_arg(wv, "w"), nullptr};
  need_exact(cw.w, weight_count(s), "w", "[M, C/group, KH, KW]");
  if (!bv.IsNull() && !bv.IsUndefined()) {
    const FloatArg b = f32_arg(bv, "bias");
    need_exact(b, s.M, "bias", "[M]");
    cw.bias = b.data;
  }
  return cw;
}

struct ConvIo {
  const float* x;
  float* y;
};

ConvIo conv_io(const ConvShape& s, const Napi::Value& xv, const Napi::Value& yv, const float* w, const float* bias) {
  const FloatArg x = f32_arg(xv, "x"), y = f32_arg(yv, "y");
  const int64_t nx = (int64_t)s.N * s.C * s.H * s.W, ny = (int64_t)s.N * s.M * s.OH() * s.OW();
  need_exact(x, nx, "x", "[N, C, H, W]");
  need_exact(y, ny, "y", "[N, M, OH, OW] = [" + std::to_string(s.N) + ", " + std::to_string(s.M) + ", " +
                             std::to_string(s.OH()) + ", " + std::to_string(s.OW()) + "]");
  no_overlap(y.data, ny, x.data, nx, "y", "x");
  no_overlap(y.data, ny, w, w ? weight_count(s) : 0, "y", "w");
  no_overlap(y.data, ny, bias, s.M, "y", "bias");
  return {x.data, y.data};
}

// (isa, shape, x, w, bias|null, y, threads)
Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const KernelVariant v = variant_arg(arg(info, 0));
    const ConvShape s = shape_arg(arg(info, 1));
    const ConvWeights cw = conv_weights(s, arg(info, 3), arg(info, 4));
    const ConvIo io = conv_io(s, arg(info, 2), arg(info, 5), cw.w.data, cw.bias);
    const int threads = (int)int_arg(arg(info, 6), "threads", 1, kMaxThreads);
    conv2d_variant(v, s, io.x, cw.w.data, cw.bias, io.y, threads);
    return info.Env().Undefined();
  });
}

// (isa, shape, x, w, bias|null, y, threads, reps) -> total seconds; every rep prepares afresh, as a
// one-shot conv2d() call does.
Napi::Value TimeConv2d(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const KernelVariant v = variant_arg(arg(info, 0));
    const ConvShape s = shape_arg(arg(info, 1));
    const ConvWeights cw = conv_weights(s, arg(info, 3), arg(info, 4));
    const ConvIo io = conv_io(s, arg(info, 2), arg(info, 5), cw.w.data, cw.bias);
    const int threads = (int)int_arg(arg(info, 6), "threads", 1, kMaxThreads);
    const int reps = (int)int_arg(arg(info, 7), "reps", 1, 1 << 30);
    return Napi::Number::New(info.Env(),
                             time_reps(reps, [&] { conv2d_variant(v, s, io.x, cw.w.data, cw.bias, io.y, threads); }));
  });
}

// The prepared conv owns copies of its weights, so the JS object only has to keep this state alive;
// the functions below share it and free it when the last of them is garbage-collected.
struct PreparedState {
  ConvShape shape;
  KernelVariant variant;
  std::unique_ptr<PreparedConv> conv;
};

// (isa, shape, w, bias|null) -> { isa, outputShape, run(x, y, threads), time(x, y, threads, reps),
//                                  updateWeights(w, bias|null) }
Napi::Value PrepareConv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    auto st = std::make_shared<PreparedState>();
    st->variant = variant_arg(arg(info, 0));
    st->shape = shape_arg(arg(info, 1));
    const ConvWeights cw = conv_weights(st->shape, arg(info, 2), arg(info, 3));
    st->conv = prepare_conv_variant(st->variant, st->shape, cw.w.data, cw.bias);

    Napi::Object o = Napi::Object::New(env);
    o.Set("isa", variant_name(st->variant));
    Napi::Array out = Napi::Array::New(env, 4);
    const int dims[4] = {st->shape.N, st->shape.M, st->shape.OH(), st->shape.OW()};
    for (uint32_t i = 0; i < 4; ++i) out.Set(i, Napi::Number::New(env, dims[i]));
    o.Set("outputShape", out);
    o.Set("run", Napi::Function::New(env, [st](const Napi::CallbackInfo& ci) -> Napi::Value {
            return guarded(ci.Env(), [&]() -> Napi::Value {
              const ConvIo io = conv_io(st->shape, arg(ci, 0), arg(ci, 1), nullptr, nullptr);
              st->conv->run(io.x, io.y, (int)int_arg(arg(ci, 2), "threads", 1, kMaxThreads));
              return ci.Env().Undefined();
            });
          }, "run"));
    o.Set("time", Napi::Function::New(env, [st](const Napi::CallbackInfo& ci) -> Napi::Value {
            return guarded(ci.Env(), [&]() -> Napi::Value {
              const ConvIo io = conv_io(st->shape, arg(ci, 0), arg(ci, 1), nullptr, nullptr);
              const int threads = (int)int_arg(arg(ci, 2), "threads", 1, kMaxThreads);
              const int reps = (int)int_arg(arg(ci, 3), "reps", 1, 1 << 30);
              return Napi::Number::New(ci.Env(), time_reps(reps, [&] { st->conv->run(io.x, io.y, threads); }));
            });
          }, "time"));
    o.Set("updateWeights", Napi::Function::New(env, [st](const Napi::CallbackInfo& ci) -> Napi::Value {
            return guarded(ci.Env(), [&]() -> Napi::Value {
              const ConvWeights w = conv_weights(st->shape, arg(ci, 0), arg(ci, 1));
              st->conv->update_weights(w.w.data, w.bias);
              return ci.Env().Undefined();
            });
          }, "updateWeights"));
    return o;
  });
}

// ---- probes and queries ------------------------------------------------------------------------

// (isa, threads, seconds) -> GFLOP/s of `threads` concurrent FMA loops.
Napi::Value PeakGflops(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const KernelVariant v = variant_arg(arg(info, 0));
    const int threads = (int)int_arg(arg(info, 1), "threads", 1, kMaxThreads);
    const Napi::Value sv = arg(info, 2);
    if (!sv.IsNumber()) expected("a number of seconds in (0, 60]", "seconds", sv);
    const double seconds = sv.As<Napi::Number>().DoubleValue();
    if (!(seconds > 0 && seconds <= 60)) expected("a number of seconds in (0, 60]", "seconds", sv);
    return Napi::Number::New(info.Env(), peak_gflops(v, threads, seconds));
  });
}

// (isa) -> boolean; unknown names are an error, not false, so typos do not read as "unsupported".
Napi::Value IsaSupported(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Value v = arg(info, 0);
    KernelVariant k;
    if (!v.IsString() || !parse_variant(v.As<Napi::String>().Utf8Value().c_str(), &k))
      expected("\"scalar\", \"avx2\", \"avx512\" or \"avx512-logic\"", "isa", v);
    return Napi::Boolean::New(info.Env(), variant_supported(k));
  });
}

Napi::Value DefaultIsa(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), isa_name(default_isa())); });
}

// () -> [{ name, supported, testOnly, lanes }] for every variant this build contains.
Napi::Value Variants(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const KernelVariant all[] = {KernelVariant::Scalar, KernelVariant::Avx2, KernelVariant::Avx512,
                                 KernelVariant::Avx512Logic};
    Napi::Array a = Napi::Array::New(env, 4);
    for (uint32_t i = 0; i < 4; ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", variant_name(all[i]));
      o.Set("supported", variant_supported(all[i]));
      o.Set("testOnly", all[i] == KernelVariant::Avx512Logic);
      const KernelTable* t = kernel_table(all[i]);
      o.Set("lanes", t ? t->lanes : (all[i] == KernelVariant::Scalar ? 1 : all[i] == KernelVariant::Avx2 ? 8 : 16));
      a.Set(i, o);
    }
    return a;
  });
}

// (n, threads, throwAt = -1) -> { counts: Int32Array(n), tids: Int32Array(n) }: runs n items through
// the work pool (work_pool.h) on `threads` threads, each item counting its own runs and recording
// the thread id it ran on; item `throwAt` throws instead, which must come back as a JS error. For
// the pool's tests: every item exactly once, thread ids below `threads`.
Napi::Value WorkPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const int n = (int)int_arg(arg(info, 0), "n", 0, 1 << 20);
    const int threads = (int)int_arg(arg(info, 1), "threads", 1, kMaxThreads);
    const int throw_at = info.Length() > 2 ? (int)int_arg(arg(info, 2), "throwAt", -1, 1 << 20) : -1;
    Napi::Int32Array counts = Napi::Int32Array::New(env, n), tids = Napi::Int32Array::New(env, n);
    std::vector<std::atomic<int>> c(n);
    std::vector<int> t(n, -1);
    run_items(n, threads, [&](int tid, int item) {
      // A few microseconds per item, so helpers join before the caller has taken everything.
      volatile double acc = 0;
      for (int k = 0; k < 2000; ++k) acc = acc + k * 1e-9;
      if (item == throw_at) fail(ErrorCode::Native, "work item " + std::to_string(item) + " failed on purpose");
      c[item].fetch_add(1, std::memory_order_relaxed);
      t[item] = tid;
    });
    for (int i = 0; i < n; ++i) {
      counts[i] = c[i].load();
      tids[i] = t[i];
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("counts", counts);
    o.Set("tids", tids);
    return o;
  });
}

}  // namespace

void register_kernel_bindings(Napi::Env env, Napi::Object exports) {
  Napi::Object k = Napi::Object::New(env);
  k.Set("gemm", Napi::Function::New(env, Gemm, "gemm"));
  k.Set("timeGemm", Napi::Function::New(env, TimeGemm, "timeGemm"));
  k.Set("conv2d", Napi::Function::New(env, Conv2d, "conv2d"));
  k.Set("timeConv2d", Napi::Function::New(env, TimeConv2d, "timeConv2d"));
  k.Set("prepareConv", Napi::Function::New(env, PrepareConv, "prepareConv"));
  k.Set("peakGflops", Napi::Function::New(env, PeakGflops, "peakGflops"));
  k.Set("isaSupported", Napi::Function::New(env, IsaSupported, "isaSupported"));
  k.Set("defaultIsa", Napi::Function::New(env, DefaultIsa, "defaultIsa"));
  k.Set("variants", Napi::Function::New(env, Variants, "variants"));
  k.Set("workPool", Napi::Function::New(env, WorkPool, "workPool"));
  exports.Set("kernels", k);
}

}  // namespace packptq
