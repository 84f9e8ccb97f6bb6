#include "ir/attrs.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dsrt::ir {
namespace {

template <typename T>
absl::StatusOr<T> Get(const std::map<std::string, AttrValue>& values, const std::string& name,
                      absl::string_view kind) {
  auto it = values.find(name);
  if (it == values.end()) return absl::NotFoundError(absl::StrCat("attribute '", name, "' is missing"));
  if (const T* v = std::get_if<T>(&it->second)) return *v;
  return absl::InvalidArgumentError(absl::StrCat("attribute '", name, "' is not ", kind));
}

std::string DoubleToString(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";  // keep it a double when parsed back
  return s;
}

}  // namespace

absl::StatusOr<int64_t> AttrMap::GetInt(const std::string& name) const {
  return Get<int64_t>(values_, name, "an integer");
}

absl::StatusOr<double> AttrMap::GetDouble(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) {
    if (const int64_t* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
  }
  return Get<double>(values_, name, "a number");
}

absl::StatusOr<std::string> AttrMap::GetString(const std::string& name) const {
  return Get<std::string>(values_, name, "a string");
}

absl::StatusOr<std::vector<int64_t>> AttrMap::GetInts(const std::string& name) const {
  return Get<std::vector<int64_t>>(values_, name, "a list of integers");
}

absl::StatusOr<std::vector<double>> AttrMap::GetDoubles(const std::string& name) const {
  return Get<std::vector<double>>(values_, name, "a list of numbers");
}

int64_t AttrMap::IntOr(const std::string& name, int64_t fallback) const {
  auto v = GetInt(name);
  return v.ok() ? *v : fallback;
}

double AttrMap::DoubleOr(const std::string& name, double fallback) const {
  auto v = GetDouble(name);
  return v.ok() ? *v : fallback;
}

std::string AttrMap::StringOr(const std::string& name, const std::string& fallback) const {
  auto v = GetString(name);
  return v.ok() ? *v : fallback;
}

std::string AttrValueToString(const AttrValue& value) {
  struct Printer {
    std::string operator()(int64_t v) const { return absl::StrCat(v); }
    std::string operator()(double v) const { return DoubleToString(v); }
    std::string operator()(const std::string& v) const {
      std::string out = "\"";
      for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      return out + "\"";
    }
    std::string operator()(const std::vector<int64_t>& v) const { return absl::StrCat("[", absl::StrJoin(v, ","), "]"); }
    std::string operator()(const std::vector<double>& v) const {
      std::vector<std::string> parts;
      for (double d : v) parts.push_back(DoubleToString(d));
      // An empty list prints as [.] so that it parses back as a list of doubles.
      return parts.empty() ? "[.]" : absl::StrCat("[", absl::StrJoin(parts, ","), "]");
    }
  };
  return std::visit(Printer{}, value);
}

}  // namespace dsrt::ir
