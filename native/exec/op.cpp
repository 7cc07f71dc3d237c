#include "exec/op.h"

#include <algorithm>
#include <sstream>

namespace packptq {

std::string shape_str(const Shape& s) {
  std::ostringstream o;
  o << '[';
  for (size_t i = 0; i < s.size(); ++i) o << (i ? "," : "") << s[i];
  o << ']';
  return o.str();
}

int64_t Attrs::i(const std::string& k, int64_t dflt) const {
  auto it = nums.find(k);
  return it == nums.end() || it->second.empty() ? dflt : static_cast<int64_t>(it->second[0]);
}
int64_t Attrs::i(const std::string& k) const {
  auto it = nums.find(k);
  if (it == nums.end() || it->second.empty()) fail(ErrorCode::Native, "missing attribute " + k);
  return static_cast<int64_t>(it->second[0]);
}
double Attrs::f(const std::string& k, double dflt) const {
  auto it = nums.find(k);
  return it == nums.end() || it->second.empty() ? dflt : it->second[0];
}
std::vector<int64_t> Attrs::ints(const std::string& k) const {
  auto it = nums.find(k);
  if (it == nums.end()) fail(ErrorCode::Native, "missing attribute " + k);
  std::vector<int64_t> v(it->second.size());
  std::transform(it->second.begin(), it->second.end(), v.begin(), [](double d) { return static_cast<int64_t>(d); });
  return v;
}
std::vector<int64_t> Attrs::ints(const std::string& k, const std::vector<int64_t>& dflt) const {
  return nums.count(k) ? ints(k) : dflt;
}
std::string Attrs::s(const std::string& k, const std::string& dflt) const {
  auto it = strs.find(k);
  return it == strs.end() ? dflt : it->second;
}

void OpInit::fail_shape(const std::string& why) const {
  fail(ErrorCode::ShapeMismatch, type + " node \"" + name + "\": " + why);
}
void OpInit::fail_unsupported(const std::string& why) const {
  fail(ErrorCode::UnsupportedOp, type + " node \"" + name + "\": " + why);
}

// A function-local map: registrars in other translation units may run before this file's statics.
static std::map<std::string, OpFactory>& registry() {
  static std::map<std::string, OpFactory> r;
  return r;
}

void register_op(const char* type, OpFactory factory) { registry()[type] = factory; }

OpFactory find_op(const std::string& type) {
  auto it = registry().find(type);
  return it == registry().end() ? nullptr : it->second;
}

std::vector<std::string> registered_ops() {
  std::vector<std::string> v;
  for (auto& kv : registry()) v.push_back(kv.first);
  return v;
}

}  // namespace packptq
