// Non-throwing accessors for nlohmann::json objects (json::value() throws on
// a type mismatch, and no exception may leave this library).
#ifndef DSRT_RUNTIME_TEXT_JSON_UTIL_H_
#define DSRT_RUNTIME_TEXT_JSON_UTIL_H_

#include <string>

#include "nlohmann/json.hpp"

namespace dsrt::text {

// object[key] when it is a boolean, else `fallback`.
inline bool JsonBool(const nlohmann::json& object, const char* key, bool fallback) {
  if (!object.is_object()) return fallback;
  const auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

// object[key] when it is a string, else "".
inline std::string JsonString(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// object[key], or null when `object` is not an object or has no such key.
inline const nlohmann::json& JsonField(const nlohmann::json& object, const char* key) {
  static const nlohmann::json kNull;
  if (!object.is_object()) return kNull;
  const auto it = object.find(key);
  return it == object.end() ? kNull : *it;
}

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_JSON_UTIL_H_
