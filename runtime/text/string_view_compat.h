// This Abseil build (Debian, ABSL_OPTION_USE_STD_STRING_VIEW 0) has its own
// absl::string_view that std::string_view does not convert to; StrCat and
// heterogeneous lookups in flat_hash_map<std::string, ...> need this bridge.
#ifndef DSRT_RUNTIME_TEXT_STRING_VIEW_COMPAT_H_
#define DSRT_RUNTIME_TEXT_STRING_VIEW_COMPAT_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace dsrt::text {

inline absl::string_view AsAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_STRING_VIEW_COMPAT_H_
