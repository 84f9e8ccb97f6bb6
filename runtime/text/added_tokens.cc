#include "runtime/text/added_tokens.h"

#include <cstring>

namespace dsrt::text {

void AddedTokenMatcher::Add(std::string_view content, int32_t id) {
  if (content.empty()) return;
  const auto first = static_cast<uint8_t>(content[0]);
  if (!first_byte_[first]) {
    first_byte_[first] = true;
    ++distinct_first_bytes_;
    only_first_byte_ = first;
  }
  int32_t node = 0;
  for (const char c : content) {
    const auto byte = static_cast<uint8_t>(c);
    int32_t child = Child(node, byte);
    if (child == kNone) {
      child = static_cast<int32_t>(terminal_id_.size());
      terminal_id_.push_back(kNone);
      children_.emplace((uint64_t(uint32_t(node)) << 8) | byte, child);
    }
    node = child;
  }
  terminal_id_[node] = id;
}

std::pair<int32_t, size_t> AddedTokenMatcher::LongestAt(std::string_view text, size_t pos) const {
  std::pair<int32_t, size_t> best = {kNone, 0};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    node = Child(node, static_cast<uint8_t>(text[i]));
    if (node == kNone) break;
    if (terminal_id_[node] != kNone) best = {terminal_id_[node], i + 1 - pos};
  }
  return best;
}

size_t AddedTokenMatcher::NextCandidate(std::string_view text, size_t from) const {
  if (from >= text.size()) return text.size();
  if (distinct_first_bytes_ == 1) {
    const void* hit = std::memchr(text.data() + from, only_first_byte_, text.size() - from);
    return hit == nullptr ? text.size() : static_cast<const char*>(hit) - text.data();
  }
  for (size_t i = from; i < text.size(); ++i) {
    if (first_byte_[static_cast<uint8_t>(text[i])]) return i;
  }
  return text.size();
}

void AddedTokenMatcher::Split(std::string_view text,
                              absl::FunctionRef<void(std::string_view)> on_text,
                              absl::FunctionRef<void(int32_t)> on_token) const {
  if (empty()) {
    if (!text.empty()) on_text(text);
    return;
  }
  size_t segment_start = 0;
  size_t pos = NextCandidate(text, 0);
  while (pos < text.size()) {
    const auto [id, length] = LongestAt(text, pos);
    if (id == kNone) {
      pos = NextCandidate(text, pos + 1);
      continue;
    }
    if (pos > segment_start) on_text(text.substr(segment_start, pos - segment_start));
    on_token(id);
    segment_start = pos + length;
    pos = NextCandidate(text, segment_start);
  }
  if (segment_start < text.size()) on_text(text.substr(segment_start));
}

}  // namespace dsrt::text
