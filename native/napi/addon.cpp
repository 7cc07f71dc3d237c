// The only file (with kernels_binding.cpp) that knows about JavaScript. It turns JS program
// descriptions into native Programs, runs them on worker threads, and maps packptq::Error into JS
// errors carrying a `code`, which lib/engine turns into the typed error classes.
#include <napi.h>

#include <memory>

#include "core/error.h"
#include "core/isa.h"
#include "exec/program.h"
#include "napi/kernels_binding.h"
#include "napi/quant_binding.h"
#include "napi/train_binding.h"
#include "napi/recon_binding.h"
#include "napi/js_errors.h"

namespace packptq {
namespace {

[[noreturn]] void bad(const std::string& m) { fail(ErrorCode::Native, "program description: " + m); }

Shape read_shape(const Napi::Value& v) {
  if (!v.IsArray()) bad("shape must be an array");
  Napi::Array a = v.As<Napi::Array>();
  Shape s;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    if (!d.IsNumber()) bad("shape entries must be numbers");
    s.push_back(d.As<Napi::Number>().Int64Value());
  }
  return s;
}

std::vector<int> read_ids(const Napi::Value& v) {
  if (!v.IsArray()) bad("tensor id list must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int> ids;
  for (uint32_t i = 0; i < a.Length(); ++i) ids.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  return ids;
}

Attrs read_attrs(const Napi::Value& v) {
  Attrs at;
  if (v.IsUndefined() || v.IsNull()) return at;
  if (!v.IsObject()) bad("attrs must be an object");
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>();
    Napi::Value x = o.Get(k);
    if (x.IsNumber()) {
      at.nums[k] = {x.As<Napi::Number>().DoubleValue()};
    } else if (x.IsString()) {
      at.strs[k] = x.As<Napi::String>();
    } else if (x.IsArray()) {
      Napi::Array a = x.As<Napi::Array>();
      std::vector<double> d;
      for (uint32_t j = 0; j < a.Length(); ++j) d.push_back(a.Get(j).As<Napi::Number>().DoubleValue());
      at.nums[k] = d;
    } else if (x.IsTypedArray()) {
      Napi::Float64Array a = x.As<Napi::Float64Array>();
      at.nums[k] = std::vector<double>(a.Data(), a.Data() + a.ElementLength());
    } else {
      bad("attribute " + k + " has an unsupported type");
    }
  }
  return at;
}

ProgramSpec read_spec(const Napi::Object& d) {
  ProgramSpec spec;
  Napi::Value isa = d.Get("isa");
  if (isa.IsString()) {
    std::string name = isa.As<Napi::String>();
    if (!parse_isa(name.c_str(), &spec.isa))
      fail(ErrorCode::BadOption, "Expected scalar, avx2 or avx512 for isa but received \"" + name + "\"");
    if (!isa_supported(spec.isa)) fail(ErrorCode::BadOption, "isa " + name + " is not supported by this CPU");
  } else {
    spec.isa = default_isa();
  }
  Napi::Value th = d.Get("threads");
  spec.threads = th.IsNumber() ? th.As<Napi::Number>().Int32Value() : 1;

  Napi::Value tv = d.Get("tensors");
  if (!tv.IsArray()) bad("tensors must be an array");
  Napi::Array tensors = tv.As<Napi::Array>();
  for (uint32_t i = 0; i < tensors.Length(); ++i) {
    Napi::Object t = tensors.Get(i).As<Napi::Object>();
    TensorSpec ts;
    ts.shape = read_shape(t.Get("shape"));
    Napi::Value data = t.Get("data");
    if (data.IsTypedArray()) {
      if (data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) bad("constant data must be a Float32Array");
      Napi::Float32Array f = data.As<Napi::Float32Array>();
      ts.data.assign(f.Data(), f.Data() + f.ElementLength());
      ts.is_const = true;
    }
    spec.tensors.push_back(std::move(ts));
  }
  spec.inputs = read_ids(d.Get("inputs"));
  spec.outputs = read_ids(d.Get("outputs"));
  Napi::Value ov = d.Get("ops");
  if (!ov.IsArray()) bad("ops must be an array");
  Napi::Array ops = ov.As<Napi::Array>();
  for (uint32_t i = 0; i < ops.Length(); ++i) {
    Napi::Object o = ops.Get(i).As<Napi::Object>();
    OpSpec os;
    os.type = o.Get("type").As<Napi::String>();
    Napi::Value nm = o.Get("name");
    os.name = nm.IsString() ? std::string(nm.As<Napi::String>()) : std::string();
    os.inputs = read_ids(o.Get("inputs"));
    os.outputs = read_ids(o.Get("outputs"));
    os.attrs = read_attrs(o.Get("attrs"));
    spec.ops.push_back(std::move(os));
  }
  return spec;
}

Napi::Array shapes_to_js(Napi::Env env, const Program& p, bool inputs) {
  const size_t n = inputs ? p.num_inputs() : p.num_outputs();
  Napi::Array a = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    const Shape& s = inputs ? p.input_shape(i) : p.output_shape(i);
    Napi::Array js = Napi::Array::New(env, s.size());
    for (size_t j = 0; j < s.size(); ++j) js.Set(j, Napi::Number::New(env, static_cast<double>(s[j])));
    a.Set(i, js);
  }
  return a;
}

// Copies JS inputs into owned buffers (a worker thread must not touch JS memory that the caller
// may reuse), checking each has the element count the program was compiled for.
std::vector<std::vector<float>> read_inputs(const Program& p, const Napi::Value& v) {
  if (!v.IsArray()) fail(ErrorCode::BadData, "inputs must be an array of Float32Array");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() != p.num_inputs())
    fail(ErrorCode::ShapeMismatch, "the program takes " + std::to_string(p.num_inputs()) + " inputs but received " + std::to_string(a.Length()));
  std::vector<std::vector<float>> out(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsTypedArray() || x.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      fail(ErrorCode::BadData, "input " + std::to_string(i) + " must be a Float32Array");
    Napi::Float32Array f = x.As<Napi::Float32Array>();
    const int64_t want = numel(p.input_shape(i));
    if (static_cast<int64_t>(f.ElementLength()) != want)
      fail(ErrorCode::ShapeMismatch, "input " + std::to_string(i) + " has " + std::to_string(f.ElementLength()) +
                                         " elements but the program expects " + std::to_string(want) + " for shape " +
                                         shape_str(p.input_shape(i)));
    out[i].assign(f.Data(), f.Data() + f.ElementLength());
  }
  return out;
}

Napi::Array outputs_to_js(Napi::Env env, std::vector<std::vector<float>>& outs) {
  Napi::Array a = Napi::Array::New(env, outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    Napi::Float32Array f = Napi::Float32Array::New(env, outs[i].size());
    std::copy(outs[i].begin(), outs[i].end(), f.Data());
    a.Set(i, f);
  }
  return a;
}

class RunWorker : public Napi::AsyncWorker {
 public:
  RunWorker(Napi::Env env, std::shared_ptr<Program> p, std::vector<std::vector<float>> inputs)
      : Napi::AsyncWorker(env), program_(std::move(p)), inputs_(std::move(inputs)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::vector<const float*> ptrs;
      for (auto& v : inputs_) ptrs.push_back(v.data());
      program_->run(ptrs, &outputs_);
    } catch (const Error& e) {
      code_ = e.code_name();
      SetError(e.what());
    } catch (const std::exception& e) {
      code_ = "NATIVE";
      SetError(e.what());
    }
  }
  // settle / reject_quietly (napi/js_errors.h): nothing may escape while the environment shuts down.
  void OnOK() override { settle(deferred_, [&] { deferred_.Resolve(outputs_to_js(Env(), outputs_)); }); }
  void OnError(const Napi::Error& e) override { reject_quietly(deferred_, Env(), code_.c_str(), e.Message()); }

 private:
  std::shared_ptr<Program> program_;
  std::vector<std::vector<float>> inputs_, outputs_;
  std::string code_ = "NATIVE";
  Napi::Promise::Deferred deferred_;
};

// Program.create(desc) → Promise<Program>. The description is read on the calling thread (it is JS
// memory); building the Program from it — every op's set-up (weight packing), the arena plan, the
// arena's allocation and zeroing — runs on a worker thread: for a whole network that is tens to
// hundreds of milliseconds, which would otherwise hold the event loop (issue 7). The built Program
// reaches the JS constructor wrapped in an External (JS code cannot make one).
class BuildWorker : public Napi::AsyncWorker {
 public:
  BuildWorker(Napi::Env env, Napi::Function ctor, ProgramSpec spec)
      : Napi::AsyncWorker(env), spec_(std::move(spec)), deferred_(Napi::Promise::Deferred::New(env)) {
    ctor_ = Napi::Persistent(ctor);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      program_ = std::make_shared<Program>(std::move(spec_));
    } catch (const Error& e) {
      code_ = e.code_name();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      SetError("out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  // A build can end while its environment shuts down (a Worker terminated mid-build): JS cannot
  // run then, nobody awaits the promise, and an exception escaping here would end the process.
  void OnOK() override {
    settle(deferred_, [&] { deferred_.Resolve(ctor_.New({Napi::External<std::shared_ptr<Program>>::New(Env(), &program_)})); });
  }
  void OnError(const Napi::Error& e) override { reject_quietly(deferred_, Env(), code_.c_str(), e.Message()); }

 private:
  ProgramSpec spec_;
  std::shared_ptr<Program> program_;
  std::string code_ = "NATIVE";
  Napi::FunctionReference ctor_;
  Napi::Promise::Deferred deferred_;
};

class ProgramWrap : public Napi::ObjectWrap<ProgramWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Program",
                       {StaticMethod("create", &ProgramWrap::Create),
                        InstanceMethod("runSync", &ProgramWrap::RunSync), InstanceMethod("run", &ProgramWrap::Run),
                        InstanceMethod("setThreads", &ProgramWrap::SetThreads),
                        InstanceMethod("setShards", &ProgramWrap::SetShards),
                        InstanceMethod("setProfiling", &ProgramWrap::SetProfiling),
                        InstanceMethod("profile", &ProgramWrap::Profile), InstanceMethod("info", &ProgramWrap::Info)});
  }
  explicit ProgramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProgramWrap>(info) {
    Napi::Env env = info.Env();
    guarded(env, [&] {
      if (info.Length() == 1 && info[0].IsExternal()) {  // from BuildWorker: already built
        program_ = *info[0].As<Napi::External<std::shared_ptr<Program>>>().Data();
        return 0;
      }
      if (info.Length() < 1 || !info[0].IsObject()) bad("expected an object");
      program_ = std::make_shared<Program>(read_spec(info[0].As<Napi::Object>()));
      return 0;
    });
  }

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (!info.This().IsFunction()) bad("call create on the Program class");
      if (info.Length() < 1 || !info[0].IsObject()) bad("expected an object");
      auto* w = new BuildWorker(env, info.This().As<Napi::Function>(), read_spec(info[0].As<Napi::Object>()));
      Napi::Promise p = w->promise();
      w->Queue();
      return p;
    });
  }
  Napi::Value RunSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto inputs = read_inputs(*program_, info[0]);
      std::vector<const float*> ptrs;
      for (auto& v : inputs) ptrs.push_back(v.data());
      std::vector<std::vector<float>> outs;
      program_->run(ptrs, &outs);
      return outputs_to_js(env, outs);
    });
  }
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      auto* w = new RunWorker(env, program_, read_inputs(*program_, info[0]));
      Napi::Promise p = w->promise();
      w->Queue();
      return p;
    });
  }
  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    program_->set_threads(info[0].As<Napi::Number>().Int32Value());
    return info.Env().Undefined();
  }
  // setShards([Program, ...]): see Program::set_shards; [] turns sharding off.
  Napi::Value SetShards(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return guarded(env, [&]() -> Napi::Value {
      if (info.Length() < 1 || !info[0].IsArray()) fail(ErrorCode::BadOption, "setShards expects an array of Programs");
      Napi::Array a = info[0].As<Napi::Array>();
      std::vector<std::shared_ptr<Program>> shards;
      for (uint32_t i = 0; i < a.Length(); ++i) {
        Napi::Value v = a.Get(i);
        ProgramWrap* w = nullptr;
        if (v.IsObject()) {
          try {
            w = ProgramWrap::Unwrap(v.As<Napi::Object>());
          } catch (const Napi::Error&) {
            w = nullptr;
          }
        }
        if (!w) fail(ErrorCode::BadOption, "setShards: element " + std::to_string(i) + " is not a Program");
        if (w->program_ == program_) fail(ErrorCode::BadOption, "setShards: a program cannot be its own shard");
        shards.push_back(w->program_);
      }
      program_->set_shards(std::move(shards));
      return env.Undefined();
    });
  }
  Napi::Value SetProfiling(const Napi::CallbackInfo& info) {
    program_->set_profiling(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  }
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto prof = program_->profile();
    Napi::Array a = Napi::Array::New(env, prof.size());
    for (size_t i = 0; i < prof.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("op", prof[i].first);
      o.Set("seconds", prof[i].second);
      a.Set(i, o);
    }
    return a;
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("isa", isa_name(program_->isa()));
    o.Set("threads", program_->threads());
    o.Set("ops", static_cast<double>(program_->num_ops()));
    o.Set("arenaBytes", static_cast<double>(program_->arena_bytes()));
    o.Set("inputShapes", shapes_to_js(env, *program_, true));
    o.Set("outputShapes", shapes_to_js(env, *program_, false));
    return o;
  }

  std::shared_ptr<Program> program_;
};

Napi::Value SimdInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object o = Napi::Object::New(env);
    o.Set("default", isa_name(default_isa()));
    Napi::Object sup = Napi::Object::New(env);
    for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) sup.Set(isa_name(i), isa_supported(i));
    o.Set("supported", sup);
    return o;
  });
}

Napi::Value SupportedOps(const Napi::CallbackInfo& info) {
  auto ops = registered_ops();
  Napi::Array a = Napi::Array::New(info.Env(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) a.Set(i, ops[i]);
  return a;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Program", ProgramWrap::Init(env));
  exports.Set("simdInfo", Napi::Function::New(env, SimdInfo));
  exports.Set("supportedOps", Napi::Function::New(env, SupportedOps));
  register_kernel_bindings(env, exports);
  register_quant_bindings(env, exports);
  register_train_bindings(env, exports);
  register_recon_bindings(env, exports);
  return exports;
}

}  // namespace
}  // namespace packptq

// The module name must not be "packptq": the macro pastes it into identifiers that would then
// collide with the namespace of the same name.
static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return packptq::Init(env, exports); }
NODE_API_MODULE(packptq_addon, InitAddon)
