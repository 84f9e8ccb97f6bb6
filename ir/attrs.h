#ifndef DSRT_IR_ATTRS_H_
#define DSRT_IR_ATTRS_H_

#include <cstdint>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"

namespace dsrt::ir {

using AttrValue = std::variant<int64_t, double, std::string, std::vector<int64_t>, std::vector<double>>;

// A node's attributes, kept sorted so that printing and serialization are stable.
class AttrMap {
 public:
  AttrMap() = default;
  AttrMap(std::initializer_list<std::pair<const std::string, AttrValue>> init) : values_(init) {}

  void Set(const std::string& name, AttrValue value) { values_[name] = std::move(value); }
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  void Erase(const std::string& name) { values_.erase(name); }

  absl::StatusOr<int64_t> GetInt(const std::string& name) const;
  absl::StatusOr<double> GetDouble(const std::string& name) const;  // accepts an int too
  absl::StatusOr<std::string> GetString(const std::string& name) const;
  absl::StatusOr<std::vector<int64_t>> GetInts(const std::string& name) const;
  absl::StatusOr<std::vector<double>> GetDoubles(const std::string& name) const;

  int64_t IntOr(const std::string& name, int64_t fallback) const;
  double DoubleOr(const std::string& name, double fallback) const;
  std::string StringOr(const std::string& name, const std::string& fallback) const;

  const std::map<std::string, AttrValue>& values() const { return values_; }
  bool operator==(const AttrMap& other) const = default;

 private:
  std::map<std::string, AttrValue> values_;
};

// `1`, `0.5`, `"silu"`, `[1,2]`, `[0.5,0.25]`; doubles always print with a '.' or exponent.
std::string AttrValueToString(const AttrValue& value);

}  // namespace dsrt::ir

#endif  // DSRT_IR_ATTRS_H_
