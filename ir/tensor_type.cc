#include "ir/tensor_type.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "ir/status_macros.h"

namespace dsrt::ir {

int64_t TensorType::StaticElements() const {
  int64_t n = 1;
  for (const Dim& d : dims) {
    if (!d.is_symbolic()) n *= d.size;
  }
  return n;
}

bool TensorType::IsFullyStatic() const {
  for (const Dim& d : dims) {
    if (d.is_symbolic()) return false;
  }
  return true;
}

std::string TensorType::ToString() const {
  std::vector<std::string> parts;
  for (const Dim& d : dims) parts.push_back(d.is_symbolic() ? d.symbol : absl::StrCat(d.size));
  return absl::StrCat(DTypeName(dtype), "[", absl::StrJoin(parts, ","), "]");
}

TensorType MakeType(DType dtype, std::vector<Dim> dims) { return TensorType{dtype, std::move(dims)}; }

TensorType StaticType(DType dtype, const std::vector<int64_t>& dims) {
  TensorType type{dtype, {}};
  for (int64_t d : dims) type.dims.push_back(Dim::Static(d));
  return type;
}

absl::StatusOr<TensorType> ParseTensorType(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  const size_t open = text.find('[');
  if (open == absl::string_view::npos || text.back() != ']') {
    return absl::InvalidArgumentError(absl::StrCat("malformed tensor type '", text, "'"));
  }
  TensorType type;
  DSRT_ASSIGN_OR_RETURN(type.dtype, ParseDType(text.substr(0, open)));
  absl::string_view inner = text.substr(open + 1, text.size() - open - 2);
  if (absl::StripAsciiWhitespace(inner).empty()) return type;
  for (absl::string_view part : absl::StrSplit(inner, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t size;
    if (absl::SimpleAtoi(part, &size)) {
      if (size < 0 || size > (int64_t{1} << 31)) {
        return absl::InvalidArgumentError(absl::StrCat("dim ", size, " out of range in '", text, "'"));
      }
      type.dims.push_back(Dim::Static(size));
    } else if (!part.empty() && absl::ascii_isalpha(part[0])) {
      type.dims.push_back(Dim::Symbolic(std::string(part)));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("malformed dim '", part, "' in '", text, "'"));
    }
  }
  return type;
}

absl::StatusOr<std::vector<int64_t>> ResolveDims(const TensorType& type, const SymbolBindings& bindings) {
  std::vector<int64_t> dims;
  dims.reserve(type.dims.size());
  for (const Dim& d : type.dims) {
    if (!d.is_symbolic()) {
      dims.push_back(d.size);
      continue;
    }
    auto it = bindings.find(d.symbol);
    if (it == bindings.end()) {
      return absl::InvalidArgumentError(absl::StrCat("symbol '", d.symbol, "' has no value in this step"));
    }
    dims.push_back(it->second);
  }
  return dims;
}

int64_t NumElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

}  // namespace dsrt::ir
