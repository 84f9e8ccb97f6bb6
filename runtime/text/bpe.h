// Byte-level BPE model (Hugging Face "BPE" with a ByteLevel pre-tokenizer).
//
// The vocabulary in tokenizer.json is written in the GPT-2 byte alphabet; the
// model converts it once so that it can merge raw bytes directly: a word is
// split into single-byte tokens, then the lowest-ranked adjacent pair is
// merged (leftmost first on ties) until no pair has a merge rule. That is the
// result of Hugging Face's priority-queue merge.
#ifndef DSRT_RUNTIME_TEXT_BPE_H_
#define DSRT_RUNTIME_TEXT_BPE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "nlohmann/json_fwd.hpp"

namespace dsrt::text {

// Token ids above this are rejected when loading, so that a corrupt file
// cannot make the id tables huge.
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

// A bounded, thread-safe map from a word's bytes to its token ids. Like
// Hugging Face's BPE cache it stops accepting entries once full.
class WordCache {
 public:
  explicit WordCache(size_t capacity);

  // Appends the cached ids of `word` to `out`; false if not cached.
  bool Lookup(std::string_view word, std::vector<int32_t>& out) const;
  void Insert(std::string_view word, absl::Span<const int32_t> ids);

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::mutex mutex;
    absl::flat_hash_map<std::string, std::vector<int32_t>> entries;
  };
  static size_t ShardFor(std::string_view word);

  size_t capacity_per_shard_;
  std::array<Shard, kShards> shards_;
};

class BpeModel {
 public:
  // Words at most this long are merged by rescanning an array; longer ones
  // with a priority queue (linear scans would be quadratic).
  static constexpr size_t kShortWordBytes = 48;
  // Words longer than this are not cached (Hugging Face uses 256 chars).
  static constexpr size_t kMaxCachedWordBytes = 256;

  enum class MergeAlgorithm { kAuto, kScan, kHeap };

  // Parses tokenizer.json's "model" (must be a BPE without byte_fallback,
  // continuing_subword_prefix, end_of_word_suffix or dropout).
  static absl::StatusOr<std::unique_ptr<BpeModel>> FromJson(const nlohmann::json& model);

  // Appends the ids of one pre-tokenized word (raw bytes) to `out`.
  void EncodeWord(std::string_view word, std::vector<int32_t>& out) const;

  // EncodeWord without the cache, with a chosen merge algorithm (for tests).
  void EncodeWordUncached(std::string_view word, MergeAlgorithm algorithm,
                          std::vector<int32_t>& out) const;

  // model.vocab as written in tokenizer.json (GPT-2 alphabet) → id.
  const absl::flat_hash_map<std::string, int32_t>& vocab() const { return vocab_; }

  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static constexpr int32_t kNoRank = INT32_MAX;

  BpeModel() : cache_(1 << 16) {}
  absl::Status BuildByteTables();
  absl::Status AddMerge(std::string_view left, std::string_view right, int32_t rank);

  static uint64_t PairKey(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  const Merge* FindMerge(int32_t left, int32_t right) const {
    const auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  }
  // Appends the single-byte tokens of `word`; bytes without a token are
  // dropped (no unk_token), as Hugging Face does.
  void AppendByteTokens(std::string_view word, std::vector<int32_t>& symbols) const;
  // Merge symbols[0, n) in place and return how many remain.
  size_t MergeByScan(int32_t* symbols, size_t n) const;
  size_t MergeByHeap(int32_t* symbols, size_t n) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::array<int32_t, 256> byte_token_{};  // -1: no token for this byte
  absl::flat_hash_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
  absl::flat_hash_map<std::string, int32_t> raw_vocab_;  // only with ignore_merges
  mutable WordCache cache_;
};

}  // namespace dsrt::text

#endif  // DSRT_RUNTIME_TEXT_BPE_H_
