// exports.GradProgram: a Tape (native/train/tape.h) built from a program description.
//   new GradProgram(desc, { dtype: 'float32' | 'float64', trainable: number[], threads?, inputGrads? })
//   GradProgram.create(desc, options) → Promise<GradProgram>   the same, built on a worker thread
//   forward(inputs) → outputs            backward(outputGrads) → { inputs, params }
//   getParam(i) / setParam(i, array)     info(), setThreads(n), setOption(node, key, value),
//   setProfiling(on), profile(), resetProfile()
// Arrays may be Float32Array or Float64Array whatever the dtype (values are converted); results
// come back in the Tape's dtype. The description is parsed here rather than with addon.cpp's
// read_spec because constants may carry float64 data and every field is checked (a wrong type
// becomes a BAD_OPTION error naming the field, never an abort).
#include "napi/train_binding.h"

#include <functional>
#include <memory>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "core/isa.h"
#include "train/tape.h"
#include "napi/js_errors.h"

namespace packptq {
namespace {

using train::Tape;
using train::TapeSpec;
using train::TapeTensor;

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

// "Expected X for NAME but received Y", the message shape of lib/errors.ts.
[[noreturn]] void expected(const std::string& what, const std::string& name, const Napi::Value& got) {
  fail(ErrorCode::BadOption, "Expected " + what + " for " + name + " but received " + describe(got));
}

int64_t read_int(const Napi::Value& v, const std::string& name, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) expected("an integer", name, v);
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi)) || d != static_cast<double>(static_cast<int64_t>(d)))
    expected("an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]", name, v);
  return static_cast<int64_t>(d);
}

Napi::Array read_array(const Napi::Value& v, const std::string& name) {
  if (!v.IsArray()) expected("an array", name, v);
  return v.As<Napi::Array>();
}

std::vector<int> read_ids(const Napi::Value& v, const std::string& name) {
  Napi::Array a = read_array(v, name);
  std::vector<int> ids;
  for (uint32_t i = 0; i < a.Length(); ++i)
    ids.push_back(static_cast<int>(read_int(a.Get(i), name + "[" + std::to_string(i) + "]", -1, INT32_MAX)));
  return ids;
}

bool is_float_array(const Napi::Value& v) {
  if (!v.IsTypedArray()) return false;
  const auto t = v.As<Napi::TypedArray>().TypedArrayType();
  return t == napi_float32_array || t == napi_float64_array;
}

// Copies a Float32Array / Float64Array into T values.
template <typename T>
std::vector<T> read_values(const Napi::Value& v, const std::string& name) {
  if (!is_float_array(v)) expected("a Float32Array or Float64Array", name, v);
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  if (ta.TypedArrayType() == napi_float32_array) {
    Napi::Float32Array f = v.As<Napi::Float32Array>();
    return std::vector<T>(f.Data(), f.Data() + f.ElementLength());
  }
  Napi::Float64Array f = v.As<Napi::Float64Array>();
  return std::vector<T>(f.Data(), f.Data() + f.ElementLength());
}

Attrs read_attrs(const Napi::Value& v, const std::string& where) {
  Attrs at;
  if (v.IsUndefined() || v.IsNull()) return at;
  if (!v.IsObject() || v.IsArray()) expected("an object", where + ".attrs", v);
  Napi::Object o = v.As<Napi::Object>();
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string k = keys.Get(i).ToString().Utf8Value();
    const std::string name = where + ".attrs." + k;
    Napi::Value x = o.Get(k);
    if (x.IsNumber()) {
      at.nums[k] = {x.As<Napi::Number>().DoubleValue()};
    } else if (x.IsString()) {
      at.strs[k] = x.As<Napi::String>().Utf8Value();
    } else if (x.IsArray()) {
      Napi::Array a = x.As<Napi::Array>();
      std::vector<double> d;
      for (uint32_t j = 0; j < a.Length(); ++j) {
        Napi::Value e = a.Get(j);
        if (!e.IsNumber()) expected("a number", name + "[" + std::to_string(j) + "]", e);
        d.push_back(e.As<Napi::Number>().DoubleValue());
      }
      at.nums[k] = d;
    } else if (is_float_array(x)) {
      at.nums[k] = read_values<double>(x, name);
    } else {
      expected("a number, string or number array", name, x);
    }
  }
  return at;
}

TapeSpec read_desc(const Napi::Value& dv) {
  if (!dv.IsObject() || dv.IsArray()) expected("a program description object", "desc", dv);
  Napi::Object d = dv.As<Napi::Object>();
  TapeSpec spec;
  Napi::Value isa = d.Get("isa");
  if (isa.IsString()) {
    const std::string name = isa.As<Napi::String>().Utf8Value();
    if (!parse_isa(name.c_str(), &spec.isa)) expected("\"scalar\", \"avx2\" or \"avx512\"", "desc.isa", isa);
    if (!isa_supported(spec.isa)) fail(ErrorCode::BadOption, "isa " + name + " is not supported by this CPU");
  } else if (isa.IsUndefined()) {
    spec.isa = default_isa();
  } else {
    expected("a string", "desc.isa", isa);
  }
  Napi::Array tensors = read_array(d.Get("tensors"), "desc.tensors");
  for (uint32_t i = 0; i < tensors.Length(); ++i) {
    const std::string name = "desc.tensors[" + std::to_string(i) + "]";
    Napi::Value tv = tensors.Get(i);
    if (!tv.IsObject() || tv.IsArray()) expected("an object", name, tv);
    Napi::Object t = tv.As<Napi::Object>();
    TapeTensor ts;
    Napi::Array shape = read_array(t.Get("shape"), name + ".shape");
    for (uint32_t j = 0; j < shape.Length(); ++j)
      ts.shape.push_back(read_int(shape.Get(j), name + ".shape[" + std::to_string(j) + "]", 0, int64_t(1) << 40));
    Napi::Value data = t.Get("data");
    if (!data.IsUndefined() && !data.IsNull()) {
      ts.data = read_values<double>(data, name + ".data");
      ts.is_const = true;
    }
    spec.tensors.push_back(std::move(ts));
  }
  spec.inputs = read_ids(d.Get("inputs"), "desc.inputs");
  spec.outputs = read_ids(d.Get("outputs"), "desc.outputs");
  Napi::Array ops = read_array(d.Get("ops"), "desc.ops");
  for (uint32_t i = 0; i < ops.Length(); ++i) {
    const std::string name = "desc.ops[" + std::to_string(i) + "]";
    Napi::Value ov = ops.Get(i);
    if (!ov.IsObject() || ov.IsArray()) expected("an object", name, ov);
    Napi::Object o = ov.As<Napi::Object>();
    OpSpec os;
    Napi::Value type = o.Get("type");
    if (!type.IsString()) expected("a string", name + ".type", type);
    os.type = type.As<Napi::String>().Utf8Value();
    Napi::Value nm = o.Get("name");
    os.name = nm.IsString() ? nm.As<Napi::String>().Utf8Value() : name;
    os.inputs = read_ids(o.Get("inputs"), name + ".inputs");
    os.outputs = read_ids(o.Get("outputs"), name + ".outputs");
    os.attrs = read_attrs(o.Get("attrs"), name);
    spec.ops.push_back(std::move(os));
  }
  return spec;
}

Napi::Array shape_js(Napi::Env env, const Shape& s) {
  Napi::Array a = Napi::Array::New(env, s.size());
  for (size_t j = 0; j < s.size(); ++j) a.Set(j, Napi::Number::New(env, static_cast<double>(s[j])));
  return a;
}

template <typename T>
Napi::Value array_js(Napi::Env env, const T* p, size_t n) {
  if (sizeof(T) == 4) {
    Napi::Float32Array f = Napi::Float32Array::New(env, n);
    for (size_t i = 0; i < n; ++i) f[i] = static_cast<float>(p[i]);
    return f;
  }
  Napi::Float64Array f = Napi::Float64Array::New(env, n);
  for (size_t i = 0; i < n; ++i) f[i] = static_cast<double>(p[i]);
  return f;
}

// A list of arrays with exactly `count` entries of the given element counts.
template <typename T>
std::vector<std::vector<T>> read_list(const Napi::Value& v, const std::string& name, size_t count,
                                      const std::function<int64_t(size_t)>& size_of) {
  Napi::Array a = read_array(v, name);
  if (a.Length() != count)
    fail(ErrorCode::ShapeMismatch, name + " must hold " + std::to_string(count) + " arrays, got " + std::to_string(a.Length()));
  std::vector<std::vector<T>> out(count);
  for (uint32_t i = 0; i < count; ++i) {
    const std::string n = name + "[" + std::to_string(i) + "]";
    out[i] = read_values<T>(a.Get(i), n);
    if (static_cast<int64_t>(out[i].size()) != size_of(i))
      fail(ErrorCode::ShapeMismatch, n + " has " + std::to_string(out[i].size()) + " elements but " + std::to_string(size_of(i)) + " are expected");
  }
  return out;
}

// What `new GradProgram(desc, options)` asks for, read from its JS arguments.
struct Request {
  TapeSpec spec;
  bool f64 = false;
};

Request read_request(const Napi::CallbackInfo& info) {
  Request r;
  r.spec = read_desc(info[0]);
  Napi::Value ov = info[1];
  if (!ov.IsObject() || ov.IsArray()) expected("an options object", "options", ov);
  Napi::Object o = ov.As<Napi::Object>();
  Napi::Value dt = o.Get("dtype");
  const std::string dtype = dt.IsString() ? dt.As<Napi::String>().Utf8Value() : "";
  if (dtype != "float32" && dtype != "float64") expected("\"float32\" or \"float64\"", "options.dtype", dt);
  r.f64 = dtype == "float64";
  Napi::Value tr = o.Get("trainable");
  if (!tr.IsUndefined()) r.spec.trainable = read_ids(tr, "options.trainable");
  Napi::Value th = o.Get("threads");
  r.spec.threads = th.IsUndefined() ? 1 : static_cast<int>(read_int(th, "options.threads", 1, 1024));
  Napi::Value ig = o.Get("inputGrads");
  if (!ig.IsUndefined() && !ig.IsBoolean()) expected("a boolean", "options.inputGrads", ig);
  r.spec.input_grads = ig.IsUndefined() || ig.As<Napi::Boolean>().Value();
  return r;
}

// A Tape built off the event loop, on its way to the JS object that will own it.
struct Built {
  std::unique_ptr<Tape<float>> f32;
  std::unique_ptr<Tape<double>> f64;
};

// GradProgram.create(desc, options) → Promise<GradProgram>. The description is read on the calling
// thread (JS memory); the Tape is built on a worker thread: it allocates and zeroes every value and
// gradient of the network at its batch size and sets up each op, 100-200 ms for the rest of a
// network in Pack-PTQ's scoring, which must not hold the event loop (issue 7).
class BuildWorker : public Napi::AsyncWorker {
 public:
  BuildWorker(Napi::Env env, Napi::Function ctor, Request r)
      : Napi::AsyncWorker(env), req_(std::move(r)), deferred_(Napi::Promise::Deferred::New(env)) {
    ctor_ = Napi::Persistent(ctor);
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (req_.f64) built_.f64 = std::make_unique<Tape<double>>(std::move(req_.spec));
      else built_.f32 = std::make_unique<Tape<float>>(std::move(req_.spec));
    } catch (const Error& e) {
      code_ = e.code_name();
      SetError(e.what());
    } catch (const std::bad_alloc&) {
      SetError("out of memory");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  // As addon.cpp's BuildWorker: nothing may escape while the environment shuts down.
  void OnOK() override { settle(deferred_, [&] { deferred_.Resolve(ctor_.New({Napi::External<Built>::New(Env(), &built_)})); }); }
  void OnError(const Napi::Error& e) override { reject_quietly(deferred_, Env(), code_.c_str(), e.Message()); }

 private:
  Request req_;
  Built built_;
  std::string code_ = "NATIVE";
  Napi::FunctionReference ctor_;
  Napi::Promise::Deferred deferred_;
};

class GradProgramWrap : public Napi::ObjectWrap<GradProgramWrap> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "GradProgram",
                       {StaticMethod("create", &GradProgramWrap::Create),
                        InstanceMethod("forward", &GradProgramWrap::Forward),
                        InstanceMethod("backward", &GradProgramWrap::Backward),
                        InstanceMethod("getParam", &GradProgramWrap::GetParam),
                        InstanceMethod("setParam", &GradProgramWrap::SetParam),
                        InstanceMethod("setThreads", &GradProgramWrap::SetThreads),
                        InstanceMethod("setOption", &GradProgramWrap::SetOption),
                        InstanceMethod("setProfiling", &GradProgramWrap::SetProfiling),
                        InstanceMethod("profile", &GradProgramWrap::Profile),
                        InstanceMethod("resetProfile", &GradProgramWrap::ResetProfile),
                        InstanceMethod("info", &GradProgramWrap::Info),
                        InstanceMethod("inputGradAsync", &GradProgramWrap::InputGradAsync)});
  }

  explicit GradProgramWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GradProgramWrap>(info) {
    guarded(info.Env(), [&] {
      if (info.Length() == 1 && info[0].IsExternal()) {  // from BuildWorker: already built
        Built* b = info[0].As<Napi::External<Built>>().Data();
        f32_ = std::move(b->f32);
        f64_ = std::move(b->f64);
        return 0;
      }
      Request r = read_request(info);
      if (r.f64) f64_ = std::make_unique<Tape<double>>(std::move(r.spec));
      else f32_ = std::make_unique<Tape<float>>(std::move(r.spec));
      return 0;
    });
  }

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (!info.This().IsFunction()) fail(ErrorCode::BadOption, "call create on the GradProgram class");
      auto* w = new BuildWorker(info.Env(), info.This().As<Napi::Function>(), read_request(info));
      Napi::Promise p = w->promise();
      w->Queue();
      return p;
    });
  }

  // Calls fn(tape) on whichever Tape this object holds.
  template <typename Fn>
  Napi::Value with(const Napi::CallbackInfo& info, Fn&& fn) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (f32_) return fn(*f32_);
      if (f64_) return fn(*f64_);
      fail(ErrorCode::Native, "GradProgram was not constructed");
    });
  }

  Napi::Value Forward(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      using T = std::remove_reference_t<decltype(*tape.param(0))>;
      auto in = read_list<T>(info[0], "inputs", tape.num_inputs(), [&](size_t i) { return numel(tape.input_shape(i)); });
      std::vector<const T*> ptrs;
      for (auto& v : in) ptrs.push_back(v.data());
      tape.forward(ptrs);
      Napi::Array out = Napi::Array::New(info.Env(), tape.num_outputs());
      for (size_t i = 0; i < tape.num_outputs(); ++i)
        out.Set(i, array_js(info.Env(), tape.output(i), numel(tape.output_shape(i))));
      return out;
    });
  }

  Napi::Value Backward(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      using T = std::remove_reference_t<decltype(*tape.param(0))>;
      auto g = read_list<T>(info[0], "outputGrads", tape.num_outputs(), [&](size_t i) { return numel(tape.output_shape(i)); });
      std::vector<const T*> ptrs;
      for (auto& v : g) ptrs.push_back(v.data());
      tape.backward(ptrs);
      Napi::Env env = info.Env();
      Napi::Object r = Napi::Object::New(env);
      Napi::Array ins = Napi::Array::New(env, tape.num_inputs());
      for (size_t i = 0; i < tape.num_inputs(); ++i) {
        const T* p = tape.input_grad(i);
        ins.Set(i, p ? array_js(env, p, numel(tape.input_shape(i))) : env.Null());
      }
      Napi::Array ps = Napi::Array::New(env, tape.num_params());
      for (size_t i = 0; i < tape.num_params(); ++i) ps.Set(i, array_js(env, tape.param_grad(i), numel(tape.param_shape(i))));
      r.Set("inputs", ins);
      r.Set("params", ps);
      return r;
    });
  }

  // forward(inputs) then backward(outputGrads) on a worker thread, resolving with the gradient of
  // the first input (float32 tapes): Pack-PTQ's scoring runs this per batch and block, and must
  // not hold the event loop while it does.
  class InputGradWorker : public Napi::AsyncWorker {
   public:
    InputGradWorker(Napi::Env env, Napi::Object owner, Tape<float>* tape, std::vector<std::vector<float>> in, std::vector<std::vector<float>> g)
        : Napi::AsyncWorker(env), tape_(tape), in_(std::move(in)), g_(std::move(g)), deferred_(Napi::Promise::Deferred::New(env)) {
      owner_ = Napi::Persistent(owner);
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        std::vector<const float*> ip, gp;
        for (auto& v : in_) ip.push_back(v.data());
        for (auto& v : g_) gp.push_back(v.data());
        tape_->forward(ip);
        tape_->backward(gp);
        const float* p = tape_->input_grad(0);
        if (!p) fail(ErrorCode::BadOption, "inputGradAsync needs a GradProgram built with inputGrads");
        out_.assign(p, p + numel(tape_->input_shape(0)));
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      settle(deferred_, [&] {
        Napi::Float32Array f = Napi::Float32Array::New(Env(), out_.size());
        std::copy(out_.begin(), out_.end(), f.Data());
        deferred_.Resolve(f);
      });
    }
    void OnError(const Napi::Error& e) override { reject_quietly(deferred_, Env(), "NATIVE", e.Message()); }

   private:
    Tape<float>* tape_;
    std::vector<std::vector<float>> in_, g_, unused_;
    std::vector<float> out_;
    Napi::ObjectReference owner_;
    Napi::Promise::Deferred deferred_;
  };

  Napi::Value InputGradAsync(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      if (!f32_) fail(ErrorCode::BadOption, "inputGradAsync runs on float32 GradPrograms");
      Tape<float>& tape = *f32_;
      auto in = read_list<float>(info[0], "inputs", tape.num_inputs(), [&](size_t i) { return numel(tape.input_shape(i)); });
      auto g = read_list<float>(info[1], "outputGrads", tape.num_outputs(), [&](size_t i) { return numel(tape.output_shape(i)); });
      auto* w = new InputGradWorker(info.Env(), info.This().As<Napi::Object>(), f32_.get(), std::move(in), std::move(g));
      Napi::Promise p = w->promise();
      w->Queue();
      return p;
    });
  }

  template <typename TapeT>
  static size_t param_index(TapeT& tape, const Napi::Value& v) {
    if (tape.num_params() == 0) fail(ErrorCode::BadOption, "this GradProgram has no trainable parameters");
    return static_cast<size_t>(read_int(v, "param index", 0, static_cast<int64_t>(tape.num_params()) - 1));
  }

  Napi::Value GetParam(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      const size_t i = param_index(tape, info[0]);
      return array_js(info.Env(), tape.param(i), numel(tape.param_shape(i)));
    });
  }

  Napi::Value SetParam(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      using T = std::remove_reference_t<decltype(*tape.param(0))>;
      const size_t i = param_index(tape, info[0]);
      auto v = read_values<T>(info[1], "param value");
      const int64_t n = numel(tape.param_shape(i));
      if (static_cast<int64_t>(v.size()) != n)
        fail(ErrorCode::ShapeMismatch, "param " + std::to_string(i) + " has " + std::to_string(n) + " elements, got " + std::to_string(v.size()));
      std::copy(v.begin(), v.end(), tape.param(i));
      return info.Env().Undefined();
    });
  }

  Napi::Value SetThreads(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      tape.set_threads(static_cast<int>(read_int(info[0], "threads", 1, 1024)));
      return info.Env().Undefined();
    });
  }

  Napi::Value SetOption(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      if (!info[0].IsString()) expected("a node name string", "node", info[0]);
      if (!info[1].IsString()) expected("an option name string", "key", info[1]);
      if (!info[2].IsNumber()) expected("a number", "value", info[2]);
      return Napi::Number::New(info.Env(), tape.set_option(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                                                           info[2].As<Napi::Number>().DoubleValue()));
    });
  }

  Napi::Value SetProfiling(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      if (!info[0].IsBoolean()) expected("a boolean", "on", info[0]);
      tape.set_profiling(info[0].As<Napi::Boolean>().Value());
      return info.Env().Undefined();
    });
  }

  Napi::Value Profile(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      auto prof = tape.profile();
      Napi::Array a = Napi::Array::New(info.Env(), prof.size());
      for (size_t i = 0; i < prof.size(); ++i) {
        Napi::Object o = Napi::Object::New(info.Env());
        o.Set("type", prof[i].type);
        o.Set("name", prof[i].name);
        o.Set("forward", prof[i].forward);
        o.Set("backward", prof[i].backward);
        a.Set(i, o);
      }
      return a;
    });
  }

  Napi::Value ResetProfile(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      tape.reset_profile();
      return info.Env().Undefined();
    });
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    return with(info, [&](auto& tape) -> Napi::Value {
      Napi::Env env = info.Env();
      Napi::Object o = Napi::Object::New(env);
      o.Set("dtype", f32_ ? "float32" : "float64");
      o.Set("isa", isa_name(tape.isa()));
      o.Set("threads", tape.threads());
      o.Set("ops", static_cast<double>(tape.num_ops()));
      Napi::Array in = Napi::Array::New(env), out = Napi::Array::New(env), ps = Napi::Array::New(env);
      for (size_t i = 0; i < tape.num_inputs(); ++i) in.Set(i, shape_js(env, tape.input_shape(i)));
      for (size_t i = 0; i < tape.num_outputs(); ++i) out.Set(i, shape_js(env, tape.output_shape(i)));
      for (size_t i = 0; i < tape.num_params(); ++i) ps.Set(i, shape_js(env, tape.param_shape(i)));
      o.Set("inputShapes", in);
      o.Set("outputShapes", out);
      o.Set("paramShapes", ps);
      return o;
    });
  }

  std::unique_ptr<Tape<float>> f32_;
  std::unique_ptr<Tape<double>> f64_;
};

Napi::Value GradOps(const Napi::CallbackInfo& info) {
  auto ops = train::registered_grad_ops();
  Napi::Array a = Napi::Array::New(info.Env(), ops.size());
  for (size_t i = 0; i < ops.size(); ++i) a.Set(i, ops[i]);
  return a;
}

}  // namespace

train::TapeSpec parse_tape_desc(const Napi::Value& desc) { return read_desc(desc); }

void register_train_bindings(Napi::Env env, Napi::Object exports) {
  exports.Set("GradProgram", GradProgramWrap::Init(env));
  exports.Set("gradOps", Napi::Function::New(env, GradOps));
}

}  // namespace packptq
