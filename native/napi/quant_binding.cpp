// exports.quant: the quantizer kernels (fake quantization, integer codes, STE mask) and the
// calibration numerics (min/max, BRECQ L_p clipping search one-shot and streamed, percentile
// histograms). Every argument is checked here before native code touches a pointer, and every
// failure is a JS Error with a `code` ('BAD_OPTION' for bad arguments, 'BAD_DATA' for data that
// cannot be calibrated, e.g. infinities), so no call from JavaScript can crash the process.
//
//   isa: "scalar" | "avx2" | "avx512" | "avx512-logic" (test-only) | "default"
//   layout: {outer, channels, inner}, integers with outer·channels·inner = x.length
//   scale: Float32Array(channels) | number;  zero: Float32Array | Int32Array (channels) | number
//   grid options: {bits: 2..8, signed?: false} or {qmin, qmax}
//
//   fakeQuant(isa, x, layout, scale, zero, qmin, qmax, {threads?, out?}) -> Float32Array
//       out may be x itself (in place); any other overlap with x is refused.
//   fakeQuantMask(isa, x, layout, scale, zero, qmin, qmax, {threads?}) -> {y: Float32Array, mask: Uint8Array}
//   quantize(isa, x, layout, scale, zero, qmin, qmax, {threads?, type?: 'int32'|'int8'|'uint8'})
//       -> Int32Array | Int8Array | Uint8Array of codes
//   minMax(x, layout, {isa?, threads?}) -> {min: Float32Array, max: Float32Array} (NaN ignored)
//   params(min, max, {...grid, symmetric?}) -> {scale: Float32Array, zero: Int32Array}
//   mseSearch(isa, x, layout, {...grid, symmetric?, p? = 2.4, candidates? = 80, threads?})
//       -> {scale, zero: Int32Array, ratio, error: Float64Array, minMaxError: Float64Array, index: Int32Array,
//           min, max, qmin, qmax}
//   new MseStream(isa, {...grid, symmetric?, p?, candidates?, threads?}): observe(x), accumulate(x),
//       result() -> {scale, zero, ratio, error, minMaxError, index, min, max, errors: Float64Array, qmin, qmax},
//       range() -> {min, max}, observed, accumulated
//   new Histogram({abs?: false}): add(x), percentile(q) -> {value, lower, upper}, count, nans, min, max
//   new HistogramMse(): observe(x), accumulate(x), result(bits, {p? = 2.4, candidates? = 80})
//       -> {scale: Float32Array(1), zero: Int32Array(1), ratio, error, index}, range() -> {min, max}
//
//   Asynchronous twins, run on a libuv worker thread so the event loop stays free (calibration of
//   a whole model is seconds of arithmetic): mseSearchAsync, quantizeAsync (same arguments,
//   Promise of the same result), MseStream and HistogramMse observeAsync / accumulateAsync /
//   resultAsync (HistogramMse only). The data is copied before the call returns, so the caller may
//   reuse its arrays at once; an object refuses a second call while an asynchronous one runs.
//   percentile(x, q, {abs?}) -> {value, lower, upper}
//   grid(bits, signed) -> {qmin, qmax};  variants() -> [{name, supported, testOnly, lanes}];  MIN_SCALE
//   timeFakeQuant(isa, x, layout, scale, zero, qmin, qmax, threads, reps) -> seconds (native loop)
#include "napi/quant_binding.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/quant.h"
#include "napi/js_errors.h"

namespace packptq {
namespace {

// Runs `work` on a libuv worker thread and settles a Promise: resolved with `done(env)` back on the
// main thread, rejected with a coded Error (as `guarded` makes) when `work` throws. `keep` (the
// object whose native state `work` touches) stays alive until then.
class TaskWorker : public Napi::AsyncWorker {
 public:
  TaskWorker(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
             std::function<void()> finally, Napi::Object keep)
      : Napi::AsyncWorker(env), work_(std::move(work)), done_(std::move(done)), finally_(std::move(finally)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (!keep.IsEmpty()) keep_ = Napi::Persistent(keep);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      work_();
    } catch (const Error& e) {
      code_ = e.code_name();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      SetError("out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    if (finally_) finally_();
    settle(deferred_, [&] {
      try {
        deferred_.Resolve(done_(Env()));
      } catch (const Error& e) {
        deferred_.Reject(js_error(Env(), e.code_name(), e.what()).Value());
      }
    });
  }
  void OnError(const Napi::Error& e) override {
    if (finally_) finally_();
    reject_quietly(deferred_, Env(), code_.c_str(), e.Message());
  }

 private:
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  std::function<void()> finally_;
  Napi::ObjectReference keep_;
  std::string code_ = "NATIVE";
  Napi::Promise::Deferred deferred_;
};

Napi::Promise queue_task(Napi::Env env, std::function<void()> work, std::function<Napi::Value(Napi::Env)> done,
                         std::function<void()> finally = nullptr, Napi::Object keep = Napi::Object()) {
  auto* w = new TaskWorker(env, std::move(work), std::move(done), std::move(finally), keep);
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

// A Float32Array's contents, copied for a worker thread (the caller may change its array meanwhile).
std::shared_ptr<std::vector<float>> copy_f32(const Napi::Float32Array& a) {
  return std::make_shared<std::vector<float>>(a.Data(), a.Data() + a.ElementLength());
}

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

[[noreturn]] void expected(const std::string& what, const std::string& name, const Napi::Value& got) {
  fail(ErrorCode::BadOption, "Expected " + what + " for " + name + " but received " + describe(got));
}

Napi::Value arg(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

int64_t int_val(const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi) {
  const std::string range = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  if (!v.IsNumber()) expected(range, name, v);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < (double)lo || d > (double)hi) expected(range, name, v);
  return (int64_t)d;
}

bool is_type(const Napi::Value& v, napi_typedarray_type t) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == t;
}

Napi::Float32Array f32(const Napi::Value& v, const std::string& name) {
  if (!is_type(v, napi_float32_array)) expected("a Float32Array", name, v);
  return v.As<Napi::Float32Array>();
}

// An options object's field (undefined when the object or the field is absent).
Napi::Value field(const Napi::Value& opts, const char* key) {
  if (opts.IsUndefined() || opts.IsNull()) return opts.Env().Undefined();
  if (!opts.IsObject() || opts.IsArray() || opts.IsTypedArray()) expected("an options object", "options", opts);
  return opts.As<Napi::Object>().Get(key);
}

bool bool_field(const Napi::Value& opts, const char* key, bool dflt) {
  const Napi::Value v = field(opts, key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) expected("a boolean", key, v);
  return v.As<Napi::Boolean>().Value();
}

int threads_field(const Napi::Value& opts) {
  const Napi::Value v = field(opts, "threads");
  return v.IsUndefined() ? 1 : (int)int_val(v, "threads", 1, 1024);
}

KernelVariant variant_val(const Napi::Value& v, const std::string& name = "isa") {
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

QuantLayout layout_val(const Napi::Value& v, int64_t n) {
  if (!v.IsObject() || v.IsArray() || v.IsTypedArray()) expected("a layout {outer, channels, inner}", "layout", v);
  const Napi::Object o = v.As<Napi::Object>();
  const int64_t big = (int64_t)1 << 53;
  QuantLayout L;
  L.outer = int_val(o.Get("outer"), "layout.outer", 0, big);
  L.channels = int_val(o.Get("channels"), "layout.channels", 1, big);
  L.inner = int_val(o.Get("inner"), "layout.inner", 0, big);
  check_layout(L, n);
  return L;
}

// Per-channel float parameters: a typed array of exactly `channels` entries, or one number
// broadcast to every channel.
std::vector<float> channel_floats(const Napi::Value& v, int64_t channels, const std::string& name, bool allow_int) {
  if (v.IsNumber()) return std::vector<float>(channels, (float)v.As<Napi::Number>().DoubleValue());
  std::vector<float> out;
  if (is_type(v, napi_float32_array)) {
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
  } else if (allow_int && is_type(v, napi_int32_array)) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    for (size_t i = 0; i < a.ElementLength(); ++i) out.push_back((float)a.Data()[i]);  // |z| <= 65535: exact
  } else {
    expected(allow_int ? "a Float32Array, an Int32Array or a number" : "a Float32Array or a number", name, v);
  }
  if ((int64_t)out.size() != channels)
    fail(ErrorCode::BadOption, name + " has " + std::to_string(out.size()) + " entries but layout.channels is " +
                                   std::to_string(channels));
  return out;
}

QuantGrid grid_val(const Napi::Value& opts) {
  const Napi::Value bits = field(opts, "bits");
  if (!bits.IsUndefined()) return quant_grid((int)int_val(bits, "bits", 2, 8), bool_field(opts, "signed", false));
  const Napi::Value a = field(opts, "qmin"), b = field(opts, "qmax");
  if (a.IsUndefined() && b.IsUndefined()) expected("{bits, signed} or {qmin, qmax}", "the quantization grid", opts);
  const QuantGrid g{(int)int_val(a, "qmin", -32768, 65535), (int)int_val(b, "qmax", -32768, 65535)};
  check_grid(g.qmin, g.qmax);
  return g;
}

MseOptions mse_options(const Napi::Value& opts) {
  MseOptions o;
  const QuantGrid g = grid_val(opts);
  o.qmin = g.qmin;
  o.qmax = g.qmax;
  o.symmetric = bool_field(opts, "symmetric", false);
  const Napi::Value p = field(opts, "p");
  if (!p.IsUndefined()) {
    if (!p.IsNumber()) expected("a number in (0, 8]", "p", p);
    o.p = p.As<Napi::Number>().DoubleValue();
  }
  const Napi::Value c = field(opts, "candidates");
  if (!c.IsUndefined()) o.candidates = (int)int_val(c, "candidates", 1, 100);
  check_mse_options(o);
  return o;
}

// The arguments shared by fakeQuant, fakeQuantMask, quantize and timeFakeQuant.
struct QuantCall {
  KernelVariant v;
  Napi::Float32Array x;
  QuantLayout L;
  std::vector<float> scale, zero;
  int qmin, qmax;
};

QuantCall quant_call(const Napi::CallbackInfo& info) {
  QuantCall c;
  c.v = variant_val(arg(info, 0));
  c.x = f32(arg(info, 1), "x");
  c.L = layout_val(arg(info, 2), (int64_t)c.x.ElementLength());
  c.scale = channel_floats(arg(info, 3), c.L.channels, "scale", false);
  c.zero = channel_floats(arg(info, 4), c.L.channels, "zero", true);
  c.qmin = (int)int_val(arg(info, 5), "qmin", -32768, 65535);
  c.qmax = (int)int_val(arg(info, 6), "qmax", -32768, 65535);
  check_grid(c.qmin, c.qmax);
  check_params(c.L.channels, c.scale.data(), c.zero.data(), c.qmin, c.qmax);
  return c;
}

void run(const QuantCall& c, QuantOut kind, void* out, uint8_t* mask, int threads) {
  quantize_variant(c.v, kind, c.x.Data(), (int64_t)c.x.ElementLength(), c.L, c.scale.data(), c.zero.data(), c.qmin,
                   c.qmax, out, mask, threads);
}

Napi::Value FakeQuant(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const QuantCall c = quant_call(info);
    const Napi::Value opts = arg(info, 7);
    const int threads = threads_field(opts);
    const size_t n = c.x.ElementLength();
    Napi::Value outv = field(opts, "out");
    Napi::Float32Array y;
    if (outv.IsUndefined()) {
      y = Napi::Float32Array::New(info.Env(), n);
    } else {
      y = f32(outv, "out");
      if (y.ElementLength() != n)
        fail(ErrorCode::BadOption, "out has " + std::to_string(y.ElementLength()) + " elements but x has " +
                                       std::to_string(n));
      const float *a = c.x.Data(), *b = y.Data();
      if (n > 0 && a != b && a < b + n && b < a + n)
        fail(ErrorCode::BadOption, "out must be x itself or must not overlap x");
    }
    run(c, QuantOut::FakeQuant, y.Data(), nullptr, threads);
    return y;
  });
}

Napi::Value FakeQuantMask(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const QuantCall c = quant_call(info);
    const int threads = threads_field(arg(info, 7));
    const size_t n = c.x.ElementLength();
    Napi::Float32Array y = Napi::Float32Array::New(info.Env(), n);
    Napi::Uint8Array mask = Napi::Uint8Array::New(info.Env(), n);
    run(c, QuantOut::FakeQuantMask, y.Data(), mask.Data(), threads);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("y", y);
    o.Set("mask", mask);
    return o;
  });
}

Napi::Value Quantize(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const QuantCall c = quant_call(info);
    const Napi::Value opts = arg(info, 7);
    const int threads = threads_field(opts);
    const size_t n = c.x.ElementLength();
    const Napi::Value tv = field(opts, "type");
    const std::string type = tv.IsUndefined() ? "int32" : tv.IsString() ? tv.As<Napi::String>().Utf8Value() : "";
    if (type == "int32") {
      Napi::Int32Array q = Napi::Int32Array::New(info.Env(), n);
      run(c, QuantOut::CodesI32, q.Data(), nullptr, threads);
      return q;
    }
    if (type == "int8") {
      Napi::Int8Array q = Napi::Int8Array::New(info.Env(), n);
      run(c, QuantOut::CodesI8, q.Data(), nullptr, threads);
      return q;
    }
    if (type == "uint8") {
      Napi::Uint8Array q = Napi::Uint8Array::New(info.Env(), n);
      run(c, QuantOut::CodesU8, q.Data(), nullptr, threads);
      return q;
    }
    expected("\"int32\", \"int8\" or \"uint8\"", "type", tv);
  });
}

// quantize() on a worker thread (calibrateWeights: every layer's codes).
Napi::Value QuantizeAsync(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const QuantCall c = quant_call(info);
    const Napi::Value opts = arg(info, 7);
    const int threads = threads_field(opts);
    const Napi::Value tv = field(opts, "type");
    const std::string type = tv.IsUndefined() ? "int32" : tv.IsString() ? tv.As<Napi::String>().Utf8Value() : "";
    if (type != "int32" && type != "int8" && type != "uint8") expected("\"int32\", \"int8\" or \"uint8\"", "type", tv);
    const QuantOut kind = type == "int32" ? QuantOut::CodesI32 : type == "int8" ? QuantOut::CodesI8 : QuantOut::CodesU8;
    const size_t width = type == "int32" ? 4 : 1;
    auto x = copy_f32(c.x);
    auto out = std::make_shared<std::vector<uint8_t>>(x->size() * width);
    auto args = std::make_shared<QuantCall>(c);
    args->x = Napi::Float32Array();  // no JS handle on the worker thread
    return queue_task(
        info.Env(),
        [x, out, args, kind, threads] {
          quantize_variant(args->v, kind, x->data(), (int64_t)x->size(), args->L, args->scale.data(), args->zero.data(),
                           args->qmin, args->qmax, out->data(), nullptr, threads);
        },
        [x, out, type](Napi::Env env) -> Napi::Value {
          const size_t n = x->size();
          if (type == "int32") {
            Napi::Int32Array q = Napi::Int32Array::New(env, n);
            std::memcpy(q.Data(), out->data(), n * 4);
            return q;
          }
          if (type == "int8") {
            Napi::Int8Array q = Napi::Int8Array::New(env, n);
            std::memcpy(q.Data(), out->data(), n);
            return q;
          }
          Napi::Uint8Array q = Napi::Uint8Array::New(env, n);
          std::memcpy(q.Data(), out->data(), n);
          return q;
        });
  });
}

Napi::Value TimeFakeQuant(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const QuantCall c = quant_call(info);
    const int threads = (int)int_val(arg(info, 7), "threads", 1, 1024);
    const int reps = (int)int_val(arg(info, 8), "reps", 1, 1 << 30);
    std::vector<float> y(c.x.ElementLength());
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) run(c, QuantOut::FakeQuant, y.data(), nullptr, threads);
    return Napi::Number::New(info.Env(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  });
}

Napi::Value MinMax(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Float32Array x = f32(arg(info, 0), "x");
    const QuantLayout L = layout_val(arg(info, 1), (int64_t)x.ElementLength());
    const Napi::Value opts = arg(info, 2);
    const Napi::Value isa = field(opts, "isa");
    const KernelVariant v = isa.IsUndefined() ? variant_of(default_isa()) : variant_val(isa);
    Napi::Float32Array mn = Napi::Float32Array::New(info.Env(), L.channels);
    Napi::Float32Array mx = Napi::Float32Array::New(info.Env(), L.channels);
    min_max_variant(v, x.Data(), (int64_t)x.ElementLength(), L, mn.Data(), mx.Data(), threads_field(opts));
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("min", mn);
    o.Set("max", mx);
    return o;
  });
}

Napi::Value Params(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Value a = arg(info, 0), b = arg(info, 1);
    const int64_t C = is_type(a, napi_float32_array) ? (int64_t)a.As<Napi::Float32Array>().ElementLength() : 1;
    const std::vector<float> lo = channel_floats(a, C, "min", false), hi = channel_floats(b, C, "max", false);
    const Napi::Value opts = arg(info, 2);
    const QuantGrid g = grid_val(opts);
    const bool sym = bool_field(opts, "symmetric", false);
    Napi::Float32Array s = Napi::Float32Array::New(info.Env(), C);
    Napi::Int32Array z = Napi::Int32Array::New(info.Env(), C);
    for (int64_t c = 0; c < C; ++c) {
      const QuantParams p = params_from_range(lo[c], hi[c], g.qmin, g.qmax, sym);
      s.Data()[c] = p.scale;
      z.Data()[c] = (int32_t)p.zero;
    }
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("scale", s);
    o.Set("zero", z);
    return o;
  });
}

Napi::Object choices_to_js(Napi::Env env, const std::vector<MseChoice>& r, const MseOptions& o) {
  const size_t C = r.size();
  Napi::Float32Array s = Napi::Float32Array::New(env, C), ratio = Napi::Float32Array::New(env, C),
                     mn = Napi::Float32Array::New(env, C), mx = Napi::Float32Array::New(env, C);
  Napi::Int32Array z = Napi::Int32Array::New(env, C), idx = Napi::Int32Array::New(env, C);
  Napi::Float64Array err = Napi::Float64Array::New(env, C), e0 = Napi::Float64Array::New(env, C);
  for (size_t c = 0; c < C; ++c) {
    s.Data()[c] = r[c].scale;
    z.Data()[c] = (int32_t)r[c].zero;
    ratio.Data()[c] = r[c].ratio;
    idx.Data()[c] = r[c].index;
    err.Data()[c] = r[c].error;
    e0.Data()[c] = r[c].minmax_error;
    mn.Data()[c] = r[c].lo;
    mx.Data()[c] = r[c].hi;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("scale", s);
  out.Set("zero", z);
  out.Set("ratio", ratio);
  out.Set("index", idx);
  out.Set("error", err);
  out.Set("minMaxError", e0);
  out.Set("min", mn);
  out.Set("max", mx);
  out.Set("qmin", o.qmin);
  out.Set("qmax", o.qmax);
  return out;
}

Napi::Value MseSearch(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const KernelVariant v = variant_val(arg(info, 0));
    Napi::Float32Array x = f32(arg(info, 1), "x");
    const QuantLayout L = layout_val(arg(info, 2), (int64_t)x.ElementLength());
    const Napi::Value opts = arg(info, 3);
    const MseOptions o = mse_options(opts);
    const auto r = mse_search_variant(v, x.Data(), (int64_t)x.ElementLength(), L, o, threads_field(opts));
    return choices_to_js(info.Env(), r, o);
  });
}

// mseSearch() on a worker thread: a layer's 80-candidate search is up to tens of milliseconds.
Napi::Value MseSearchAsync(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const KernelVariant v = variant_val(arg(info, 0));
    Napi::Float32Array xa = f32(arg(info, 1), "x");
    const QuantLayout L = layout_val(arg(info, 2), (int64_t)xa.ElementLength());
    const Napi::Value opts = arg(info, 3);
    const MseOptions o = mse_options(opts);
    const int threads = threads_field(opts);
    auto x = copy_f32(xa);
    auto r = std::make_shared<std::vector<MseChoice>>();
    return queue_task(
        info.Env(), [v, x, L, o, threads, r] { *r = mse_search_variant(v, x->data(), (int64_t)x->size(), L, o, threads); },
        [r, o](Napi::Env env) -> Napi::Value { return choices_to_js(env, *r, o); });
  });
}

// Refuses a call while an asynchronous one on the same object runs (they would share its state).
void check_idle(bool busy, const char* what) {
  if (busy) fail(ErrorCode::BadOption, std::string(what) + ": an asynchronous call on this object is still running; await it first");
}

class MseStreamWrap : public Napi::ObjectWrap<MseStreamWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "MseStream",
                       {InstanceMethod("observe", &MseStreamWrap::Observe),
                        InstanceMethod("accumulate", &MseStreamWrap::Accumulate),
                        InstanceMethod("observeAsync", &MseStreamWrap::ObserveAsync),
                        InstanceMethod("accumulateAsync", &MseStreamWrap::AccumulateAsync),
                        InstanceMethod("result", &MseStreamWrap::Result), InstanceMethod("range", &MseStreamWrap::Range),
                        InstanceAccessor("observed", &MseStreamWrap::Observed, nullptr),
                        InstanceAccessor("accumulated", &MseStreamWrap::Accumulated, nullptr)});
  }
  explicit MseStreamWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MseStreamWrap>(info) {
    guarded(info.Env(), [&]() -> Napi::Value {
      const KernelVariant v = variant_val(arg(info, 0));
      const Napi::Value opts = arg(info, 1);
      opts_ = mse_options(opts);
      stream_.reset(new MseStream(v, opts_, threads_field(opts)));
      return info.Env().Undefined();
    });
  }

 private:
  Napi::Value Observe(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "MseStream");
      Napi::Float32Array x = f32(arg(info, 0), "batch");
      stream_->observe(x.Data(), (int64_t)x.ElementLength());
      return info.Env().Undefined();
    });
  }
  Napi::Value Accumulate(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "MseStream");
      Napi::Float32Array x = f32(arg(info, 0), "batch");
      stream_->accumulate(x.Data(), (int64_t)x.ElementLength());
      return info.Env().Undefined();
    });
  }
  Napi::Value ObserveAsync(const Napi::CallbackInfo& info) { return Later(info, false); }
  Napi::Value AccumulateAsync(const Napi::CallbackInfo& info) { return Later(info, true); }
  Napi::Value Later(const Napi::CallbackInfo& info, bool accumulate) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "MseStream");
      auto x = copy_f32(f32(arg(info, 0), "batch"));
      MseStream* st = stream_.get();
      busy_ = true;
      return queue_task(
          info.Env(),
          [st, x, accumulate] {
            if (accumulate) st->accumulate(x->data(), (int64_t)x->size());
            else st->observe(x->data(), (int64_t)x->size());
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, [this] { busy_ = false; }, Value());
    });
  }
  Napi::Value Result(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "MseStream");
      Napi::Object o = choices_to_js(info.Env(), {stream_->result()}, opts_);
      const auto& e = stream_->errors();
      Napi::Float64Array all = Napi::Float64Array::New(info.Env(), e.size());
      std::copy(e.begin(), e.end(), all.Data());
      o.Set("errors", all);
      return o;
    });
  }
  Napi::Value Range(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("min", stream_->lo());
    o.Set("max", stream_->hi());
    return o;
  }
  Napi::Value Observed(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)stream_->observed()); }
  Napi::Value Accumulated(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), (double)stream_->accumulated());
  }

  MseOptions opts_;
  std::unique_ptr<MseStream> stream_;
  bool busy_ = false;
};

Napi::Object hist_choice_to_js(Napi::Env env, const HistogramMse::Choice& c) {
  Napi::Object o = Napi::Object::New(env);
  Napi::Float32Array s = Napi::Float32Array::New(env, 1);
  Napi::Int32Array z = Napi::Int32Array::New(env, 1);
  s.Data()[0] = c.scale;
  z.Data()[0] = c.zero;
  o.Set("scale", s);
  o.Set("zero", z);
  o.Set("ratio", c.ratio);
  o.Set("error", c.error);
  o.Set("index", c.index);
  return o;
}

class HistogramMseWrap : public Napi::ObjectWrap<HistogramMseWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "HistogramMse",
                       {InstanceMethod("observe", &HistogramMseWrap::Observe),
                        InstanceMethod("accumulate", &HistogramMseWrap::Accumulate),
                        InstanceMethod("result", &HistogramMseWrap::Result),
                        InstanceMethod("observeAsync", &HistogramMseWrap::ObserveAsync),
                        InstanceMethod("accumulateAsync", &HistogramMseWrap::AccumulateAsync),
                        InstanceMethod("resultAsync", &HistogramMseWrap::ResultAsync),
                        InstanceMethod("range", &HistogramMseWrap::Range)});
  }
  explicit HistogramMseWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HistogramMseWrap>(info), hist_(new HistogramMse()) {}

 private:
  struct ResultArgs {
    int bits;
    double p;
    int candidates;
  };
  static ResultArgs result_args(const Napi::CallbackInfo& info) {
    ResultArgs a{(int)int_val(arg(info, 0), "bits", 2, 8), 2.4, 80};
    const Napi::Value opts = arg(info, 1);
    const Napi::Value p = field(opts, "p");
    if (!p.IsUndefined()) {
      if (!p.IsNumber()) expected("a number in (0, 8]", "p", p);
      a.p = p.As<Napi::Number>().DoubleValue();
    }
    const Napi::Value c = field(opts, "candidates");
    if (!c.IsUndefined()) a.candidates = (int)int_val(c, "candidates", 1, 100);
    return a;
  }
  Napi::Value Observe(const Napi::CallbackInfo& info) { return Now(info, false); }
  Napi::Value Accumulate(const Napi::CallbackInfo& info) { return Now(info, true); }
  Napi::Value Now(const Napi::CallbackInfo& info, bool accumulate) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "HistogramMse");
      Napi::Float32Array x = f32(arg(info, 0), "batch");
      if (accumulate) hist_->accumulate(x.Data(), (int64_t)x.ElementLength());
      else hist_->observe(x.Data(), (int64_t)x.ElementLength());
      return info.Env().Undefined();
    });
  }
  Napi::Value ObserveAsync(const Napi::CallbackInfo& info) { return Later(info, false); }
  Napi::Value AccumulateAsync(const Napi::CallbackInfo& info) { return Later(info, true); }
  Napi::Value Later(const Napi::CallbackInfo& info, bool accumulate) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "HistogramMse");
      auto x = copy_f32(f32(arg(info, 0), "batch"));
      HistogramMse* h = hist_.get();
      busy_ = true;
      return queue_task(
          info.Env(),
          [h, x, accumulate] {
            if (accumulate) h->accumulate(x->data(), (int64_t)x->size());
            else h->observe(x->data(), (int64_t)x->size());
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); }, [this] { busy_ = false; }, Value());
    });
  }
  Napi::Value Result(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "HistogramMse");
      const ResultArgs a = result_args(info);
      return hist_choice_to_js(info.Env(), hist_->result(a.bits, a.p, a.candidates));
    });
  }
  Napi::Value ResultAsync(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      check_idle(busy_, "HistogramMse");
      const ResultArgs a = result_args(info);
      HistogramMse* h = hist_.get();
      auto out = std::make_shared<HistogramMse::Choice>();
      busy_ = true;
      return queue_task(
          info.Env(), [h, a, out] { *out = h->result(a.bits, a.p, a.candidates); },
          [out](Napi::Env env) -> Napi::Value { return hist_choice_to_js(env, *out); }, [this] { busy_ = false; }, Value());
    });
  }
  Napi::Value Range(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("min", hist_->lo());
    o.Set("max", hist_->hi());
    return o;
  }

  std::unique_ptr<HistogramMse> hist_;
  bool busy_ = false;
};

Napi::Object estimate_to_js(Napi::Env env, const QuantHistogram::Estimate& e) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("value", e.value);
  o.Set("lower", e.lower);
  o.Set("upper", e.upper);
  return o;
}

double percent_val(const Napi::Value& v) {
  if (!v.IsNumber()) expected("a number in [0, 100]", "q", v);
  const double q = v.As<Napi::Number>().DoubleValue();
  if (!(q >= 0 && q <= 100)) expected("a number in [0, 100]", "q", v);
  return q;
}

class HistogramWrap : public Napi::ObjectWrap<HistogramWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Histogram",
                       {InstanceMethod("add", &HistogramWrap::Add), InstanceMethod("percentile", &HistogramWrap::Percentile),
                        InstanceAccessor("count", &HistogramWrap::Count, nullptr),
                        InstanceAccessor("nans", &HistogramWrap::Nans, nullptr),
                        InstanceAccessor("min", &HistogramWrap::Min, nullptr),
                        InstanceAccessor("max", &HistogramWrap::Max, nullptr)});
  }
  explicit HistogramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<HistogramWrap>(info) {
    guarded(info.Env(), [&]() -> Napi::Value {
      hist_.reset(new QuantHistogram(bool_field(arg(info, 0), "abs", false)));
      return info.Env().Undefined();
    });
  }

 private:
  Napi::Value Add(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      Napi::Float32Array x = f32(arg(info, 0), "batch");
      hist_->add(x.Data(), (int64_t)x.ElementLength());
      return info.Env().Undefined();
    });
  }
  Napi::Value Percentile(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      return estimate_to_js(info.Env(), hist_->percentile(percent_val(arg(info, 0))));
    });
  }
  Napi::Value Count(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)hist_->count()); }
  Napi::Value Nans(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), (double)hist_->nans()); }
  Napi::Value Min(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), hist_->min()); }
  Napi::Value Max(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), hist_->max()); }

  std::unique_ptr<QuantHistogram> hist_;
};

Napi::Value Percentile(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Float32Array x = f32(arg(info, 0), "x");
    const double q = percent_val(arg(info, 1));
    QuantHistogram h(bool_field(arg(info, 2), "abs", false));
    h.add(x.Data(), (int64_t)x.ElementLength());
    return estimate_to_js(info.Env(), h.percentile(q));
  });
}

Napi::Value Grid(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const Napi::Value s = arg(info, 1);
    if (!s.IsBoolean()) expected("a boolean", "signed", s);
    const QuantGrid g = quant_grid((int)int_val(arg(info, 0), "bits", 2, 8), s.As<Napi::Boolean>().Value());
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("qmin", g.qmin);
    o.Set("qmax", g.qmax);
    return o;
  });
}

Napi::Value Variants(const Napi::CallbackInfo& info) {
  const KernelVariant all[] = {KernelVariant::Scalar, KernelVariant::Avx2, KernelVariant::Avx512,
                               KernelVariant::Avx512Logic};
  Napi::Array a = Napi::Array::New(info.Env(), 4);
  for (uint32_t i = 0; i < 4; ++i) {
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("name", variant_name(all[i]));
    o.Set("supported", variant_supported(all[i]));
    o.Set("testOnly", all[i] == KernelVariant::Avx512Logic);
    o.Set("lanes", all[i] == KernelVariant::Scalar ? 1 : all[i] == KernelVariant::Avx2 ? 8 : 16);
    a.Set(i, o);
  }
  return a;
}

}  // namespace

void register_quant_bindings(Napi::Env env, Napi::Object exports) {
  Napi::Object q = Napi::Object::New(env);
  q.Set("fakeQuant", Napi::Function::New(env, FakeQuant, "fakeQuant"));
  q.Set("fakeQuantMask", Napi::Function::New(env, FakeQuantMask, "fakeQuantMask"));
  q.Set("quantize", Napi::Function::New(env, Quantize, "quantize"));
  q.Set("quantizeAsync", Napi::Function::New(env, QuantizeAsync, "quantizeAsync"));
  q.Set("timeFakeQuant", Napi::Function::New(env, TimeFakeQuant, "timeFakeQuant"));
  q.Set("minMax", Napi::Function::New(env, MinMax, "minMax"));
  q.Set("params", Napi::Function::New(env, Params, "params"));
  q.Set("mseSearch", Napi::Function::New(env, MseSearch, "mseSearch"));
  q.Set("mseSearchAsync", Napi::Function::New(env, MseSearchAsync, "mseSearchAsync"));
  q.Set("percentile", Napi::Function::New(env, Percentile, "percentile"));
  q.Set("grid", Napi::Function::New(env, Grid, "grid"));
  q.Set("variants", Napi::Function::New(env, Variants, "variants"));
  q.Set("MseStream", MseStreamWrap::Init(env));
  q.Set("Histogram", HistogramWrap::Init(env));
  q.Set("HistogramMse", HistogramMseWrap::Init(env));
  q.Set("MIN_SCALE", Napi::Number::New(env, kMinScale));
  exports.Set("quant", q);
}

}  // namespace packptq
