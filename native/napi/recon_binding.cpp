// exports.ReconJob: one unit's reconstruction, run natively on a worker thread.
//   const job = new ReconJob(desc, { trainable: number[], kinds: ('round'|'act')[] });
//   job.run({ inputsQ: F[], inputsFp?: F[], target: F, samples },   F = Float32Array, or Uint16Array
//           holding IEEE half bits (the fp16 cache)
//           { iters, batch, lrRound, lrAct, lambda, betaStart, betaEnd, warmup, dropProb,
//             inputQuantProb, seed, threads, progressSeconds }, onProgress?) → Promise<{
//     params: Float32Array[], curve: [{iter, iters, recLoss, regLoss, beta, seconds}],
//     itersDone, seconds, cancelled }>
//   job.cancel()   // the loop stops at its next iteration; the promise resolves with cancelled
// The event loop stays free during the run: progress arrives through the worker's progress queue
// a few times a second. The data arrays are used in place (not copied: the cache exists once, and
// the event loop is not held up copying it); the worker keeps them alive and callers must not
// change them until the promise settles.
#include "napi/recon_binding.h"

#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>

#include "core/error.h"
#include "napi/train_binding.h"
#include "recon/reconstruct.h"
#include "napi/js_errors.h"

namespace packptq {
namespace {

[[noreturn]] void bad(const std::string& what) { fail(ErrorCode::BadOption, what); }

double num(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) bad(std::string("Expected a number for ") + key);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) bad(std::string("Expected a finite number for ") + key);
  return d;
}

// A cached array: a Float32Array (fp32 cache) or a Uint16Array of IEEE half bits (fp16 cache),
// used in place. `keep` holds a reference so the memory outlives the run.
recon::SampleStore store(const Napi::Value& v, const std::string& name, std::vector<Napi::ObjectReference>* keep) {
  if (!v.IsTypedArray()) bad("Expected a Float32Array or a Uint16Array (fp16 bits) for " + name);
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  recon::SampleStore s;
  if (t.TypedArrayType() == napi_float32_array) {
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    s.f32 = a.Data();
    s.size = static_cast<int64_t>(a.ElementLength());
  } else if (t.TypedArrayType() == napi_uint16_array) {
    Napi::Uint16Array a = v.As<Napi::Uint16Array>();
    s.f16 = a.Data();
    s.size = static_cast<int64_t>(a.ElementLength());
  } else {
    bad("Expected a Float32Array or a Uint16Array (fp16 bits) for " + name);
  }
  keep->push_back(Napi::Persistent(v.As<Napi::Object>()));
  return s;
}

std::vector<recon::SampleStore> store_list(const Napi::Value& v, const std::string& name, std::vector<Napi::ObjectReference>* keep) {
  if (!v.IsArray()) bad("Expected an array of typed arrays for " + name);
  Napi::Array a = v.As<Napi::Array>();
  std::vector<recon::SampleStore> out;
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(store(a.Get(i), name + "[" + std::to_string(i) + "]", keep));
  return out;
}

struct Shared {
  // The tape is built by the first run, on its worker thread: building one allocates and zeroes
  // every value and gradient of the unit at the batch size (hundreds of milliseconds for a pack),
  // which must not hold the event loop (issue 7). Until then the checked spec waits here.
  std::unique_ptr<train::TapeSpec> spec;
  std::unique_ptr<train::Tape<float>> tape;
  std::vector<recon::ParamKind> kinds;
  std::atomic<bool> cancel{false};
  std::mutex running;  // one run at a time per job
};

class ReconWorker : public Napi::AsyncProgressQueueWorker<recon::ReconProgress> {
 public:
  ReconWorker(Napi::Env env, std::shared_ptr<Shared> s, recon::ReconData data, std::vector<Napi::ObjectReference> keep,
              recon::ReconConfig cfg, Napi::Function cb)
      : Napi::AsyncProgressQueueWorker<recon::ReconProgress>(env), s_(std::move(s)), data_(std::move(data)),
        keep_(std::move(keep)), cfg_(cfg),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (!cb.IsEmpty()) cb_ = Napi::Persistent(cb);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute(const ExecutionProgress& progress) override {
    std::lock_guard<std::mutex> lock(s_->running);
    try {
      if (!s_->tape) {
        if (!s_->spec) fail(ErrorCode::Native, "ReconJob: building its tape failed in an earlier run");
        std::unique_ptr<train::TapeSpec> spec = std::move(s_->spec);
        s_->tape = std::make_unique<train::Tape<float>>(std::move(*spec));
      }
      res_ = recon::reconstruct(*s_->tape, s_->kinds, data_, cfg_, s_->cancel,
                                [&](const recon::ReconProgress& p) { progress.Send(&p, 1); });
    } catch (const Error& e) {
      code_ = e.code_name();
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = "NATIVE";
      SetError(e.what());
    }
  }
  void OnProgress(const recon::ReconProgress* p, size_t n) override {
    if (cb_.IsEmpty()) return;
    Napi::Env env = Env();
    // A throwing onProgress is surfaced as an uncaught JS exception, never as a C++ one escaping
    // into the thread-safe function (or, while the environment shuts down, dropped).
    try {
      for (size_t i = 0; i < n; ++i) cb_.Call({progress_js(env, p[i])});
    } catch (const Napi::Error& e) {
      try {
        e.ThrowAsJavaScriptException();
      } catch (const Napi::Error&) {
      }
    }
  }
  void OnOK() override { settle(deferred_, [&] { resolve(); }); }
  void OnError(const Napi::Error& e) override { reject_quietly(deferred_, Env(), code_.c_str(), e.Message()); }

 private:
  void resolve() {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    Napi::Array params = Napi::Array::New(env, res_.params.size());
    for (size_t i = 0; i < res_.params.size(); ++i) {
      Napi::Float32Array f = Napi::Float32Array::New(env, res_.params[i].size());
      std::copy(res_.params[i].begin(), res_.params[i].end(), f.Data());
      params.Set(i, f);
    }
    Napi::Array curve = Napi::Array::New(env, res_.curve.size());
    for (size_t i = 0; i < res_.curve.size(); ++i) curve.Set(i, progress_js(env, res_.curve[i]));
    o.Set("params", params);
    o.Set("curve", curve);
    o.Set("itersDone", res_.iters_done);
    o.Set("seconds", res_.seconds);
    o.Set("cancelled", res_.cancelled);
    deferred_.Resolve(o);
  }
  static Napi::Object progress_js(Napi::Env env, const recon::ReconProgress& p) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("iter", p.iter);
    o.Set("iters", p.iters);
    o.Set("recLoss", p.rec_loss);
    o.Set("regLoss", p.reg_loss);
    o.Set("beta", p.beta);
    o.Set("seconds", p.seconds);
    return o;
  }

  std::shared_ptr<Shared> s_;
  recon::ReconData data_;
  std::vector<Napi::ObjectReference> keep_;  // the JS arrays data_ points into, alive until the worker ends
  recon::ReconConfig cfg_;
  recon::ReconResult res_;
  std::string code_ = "NATIVE";
  Napi::Promise::Deferred deferred_;
  Napi::FunctionReference cb_;
};

class ReconJobWrap : public Napi::ObjectWrap<ReconJobWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "ReconJob",
                       {InstanceMethod("run", &ReconJobWrap::Run), InstanceMethod("cancel", &ReconJobWrap::Cancel)});
  }
  explicit ReconJobWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReconJobWrap>(info) {
    guarded(info.Env(), [&] {
      if (info.Length() < 2 || !info[1].IsObject()) bad("Expected (desc, {trainable, kinds}) for ReconJob");
      train::TapeSpec spec = parse_tape_desc(info[0]);
      Napi::Object o = info[1].As<Napi::Object>();
      Napi::Value tr = o.Get("trainable"), kd = o.Get("kinds");
      if (!tr.IsArray() || !kd.IsArray()) bad("Expected arrays for trainable and kinds");
      Napi::Array t = tr.As<Napi::Array>(), k = kd.As<Napi::Array>();
      if (t.Length() != k.Length()) bad("trainable and kinds differ in length");
      s_ = std::make_shared<Shared>();
      for (uint32_t i = 0; i < t.Length(); ++i) {
        spec.trainable.push_back(t.Get(i).As<Napi::Number>().Int32Value());
        const std::string kind = k.Get(i).As<Napi::String>();
        if (kind != "round" && kind != "act") bad("Expected \"round\" or \"act\" for kinds[" + std::to_string(i) + "]");
        s_->kinds.push_back(kind == "round" ? recon::ParamKind::Rounding : recon::ParamKind::ActStep);
      }
      spec.input_grads = false;
      s_->spec = std::make_unique<train::TapeSpec>(std::move(spec));
      return 0;
    });
  }

 private:
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsObject()) bad("Expected (data, config[, onProgress]) for ReconJob.run");
      Napi::Object d = info[0].As<Napi::Object>(), c = info[1].As<Napi::Object>();
      recon::ReconData data;
      std::vector<Napi::ObjectReference> keep;
      data.inputs_q = store_list(d.Get("inputsQ"), "data.inputsQ", &keep);
      if (!d.Get("inputsFp").IsUndefined() && !d.Get("inputsFp").IsNull()) data.inputs_fp = store_list(d.Get("inputsFp"), "data.inputsFp", &keep);
      data.target = store(d.Get("target"), "data.target", &keep);
      data.samples = static_cast<int64_t>(num(d, "samples", 0));
      recon::ReconConfig cfg;
      cfg.iters = static_cast<int>(num(c, "iters", cfg.iters));
      cfg.batch = static_cast<int>(num(c, "batch", cfg.batch));
      cfg.lr_round = num(c, "lrRound", cfg.lr_round);
      cfg.lr_act = num(c, "lrAct", cfg.lr_act);
      cfg.lambda = num(c, "lambda", cfg.lambda);
      cfg.beta_start = num(c, "betaStart", cfg.beta_start);
      cfg.beta_end = num(c, "betaEnd", cfg.beta_end);
      cfg.warmup = num(c, "warmup", cfg.warmup);
      cfg.drop_prob = num(c, "dropProb", cfg.drop_prob);
      cfg.input_quant_prob = num(c, "inputQuantProb", cfg.input_quant_prob);
      cfg.seed = static_cast<uint64_t>(num(c, "seed", 0));
      cfg.threads = static_cast<int>(num(c, "threads", 1));
      cfg.progress_seconds = num(c, "progressSeconds", cfg.progress_seconds);
      s_->cancel = false;
      Napi::Function cb = info.Length() > 2 && info[2].IsFunction() ? info[2].As<Napi::Function>() : Napi::Function();
      auto* w = new ReconWorker(env, s_, std::move(data), std::move(keep), cfg, cb);
      Napi::Promise p = w->promise();
      w->Queue();
      return p;
    });
  }
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    s_->cancel = true;
    return info.Env().Undefined();
  }

  std::shared_ptr<Shared> s_;
};

}  // namespace

void register_recon_bindings(Napi::Env env, Napi::Object exports) { exports.Set("ReconJob", ReconJobWrap::Init(env)); }

}  // namespace packptq
