// Finds added tokens (special tokens and the like) in text, leftmost-longest,
// as Hugging Face's AddedVocabulary does with its Aho-Corasick automaton.
#ifndef DSRT_RUNTIME_TEXT_ADDED_TOKENS_H_
#define DSRT_RUNTIME_TEXT_ADDED_TOKENS_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"

namespace dsrt::text {

class AddedTokenMatcher {
 public:
  // Adds a token; an empty content is ignored. A repeated content keeps the
  // last id.
  void Add(std::string_view content, int32_t id);
  bool empty() const { return terminal_id_.size() <= 1; }

  // Cuts `text` into plain segments and added tokens, in order. Calls
  // `on_text` for each non-empty plain segment and `on_token` for each match.
  // At every position the longest token wins; earlier positions win first.
  void Split(std::string_view text, absl::FunctionRef<void(std::string_view)> on_text,
             absl::FunctionRef<void(int32_t)> on_token) const;

 private:
  static constexpr int32_t kNone = -1;

  // A byte trie; node 0 is the root.
  int32_t Child(int32_t node, uint8_t byte) const {
    const auto it = children_.find((uint64_t(uint32_t(node)) << 8) | byte);
    return it == children_.end() ? kNone : it->second;
  }
  // The id and length of the longest token starting at text[pos], or
  // {kNone, 0}.
  std::pair<int32_t, size_t> LongestAt(std::string_view text, size_t pos) const;
  size_t NextCandidate(std::string_view text, size_t from) const;

  absl::flat_hash_map<uint64_t, int32_t> children_;
  std::vector<int32_t> terminal_id_ = {kNone};  // per node
  std::array<bool, 256> first_byte_{};
  int distinct_first_bytes_ = 0;
  uint8_t only_first_byte_ = 0;
};

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_ADDED_TOKENS_H_
