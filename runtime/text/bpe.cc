#include "runtime/text/bpe.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <queue>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/text/byte_level.h"
#include "runtime/text/json_util.h"
#include "runtime/text/string_view_compat.h"
#include "runtime/text/utf8.h"

namespace dsrt::text {
namespace {

using nlohmann::json;

absl::Status ModelError(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("tokenizer.json: model", AsAbsl(what)));
}

// True when the optional string/number option is absent or null.
bool IsUnset(const json& model, const char* key) {
  const auto it = model.find(key);
  return it == model.end() || it->is_null();
}

}  // namespace

WordCache::WordCache(size_t capacity) : capacity_per_shard_(capacity / kShards) {}

size_t WordCache::ShardFor(std::string_view word) {
  // Cheap and good enough to spread words over the shards.
  const auto first = static_cast<unsigned char>(word.front());
  const auto last = static_cast<unsigned char>(word.back());
  return (word.size() * 31 + first * 7 + last) % kShards;
}

bool WordCache::Lookup(std::string_view word, std::vector<int32_t>& out) const {
  const Shard& shard = shards_[ShardFor(word)];
  std::lock_guard<std::mutex> lock(shard.mutex);
  const auto it = shard.entries.find(AsAbsl(word));
  if (it == shard.entries.end()) return false;
  out.insert(out.end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::Insert(std::string_view word, absl::Span<const int32_t> ids) {
  Shard& shard = shards_[ShardFor(word)];
  std::lock_guard<std::mutex> lock(shard.mutex);
  if (shard.entries.size() >= capacity_per_shard_) return;
  shard.entries.try_emplace(std::string(word), ids.begin(), ids.end());
}

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::FromJson(const json& model) {
  if (!model.is_object()) return ModelError(" is missing or not an object");
  const auto type = model.find("type");
  if (type != model.end() && *type != "BPE") {
    return absl::UnimplementedError(absl::StrCat("tokenizer.json: model type ", type->dump(),
                                                 " is not supported (only BPE)"));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix", "unk_token"}) {
    if (!IsUnset(model, key)) {
      return absl::UnimplementedError(
          absl::StrCat("tokenizer.json: model.", key, " is set; only byte-level BPE without it is "
                       "supported"));
    }
  }
  if (!IsUnset(model, "dropout") &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    return absl::UnimplementedError("tokenizer.json: model.dropout is set; BPE dropout is not "
                                    "supported");
  }
  if (JsonBool(model, "byte_fallback", false)) {
    return absl::UnimplementedError("tokenizer.json: model.byte_fallback is true; not supported");
  }

  std::unique_ptr<BpeModel> bpe(new BpeModel());
  const auto ignore_merges = model.find("ignore_merges");
  bpe->ignore_merges_ = ignore_merges != model.end() && ignore_merges->is_boolean() &&
                        ignore_merges->get<bool>();

  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) return ModelError(".vocab is not an object");
  bpe->vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
      return ModelError(absl::StrCat(".vocab[\"", token, "\"] has id ", id.dump(),
                                     ", not an integer in [0, ", kMaxTokenId, "]"));
    }
    bpe->vocab_.insert_or_assign(token, static_cast<int32_t>(id.get<int64_t>()));
  }
  absl::Status status = bpe->BuildByteTables();
  if (!status.ok()) return status;

  const auto merges = model.find("merges");
  if (merges == model.end() || !merges->is_array()) return ModelError(".merges is not an array");
  bpe->merges_.reserve(merges->size());
  for (size_t rank = 0; rank < merges->size(); ++rank) {
    const json& merge = (*merges)[rank];
    std::string_view left, right;
    if (merge.is_string()) {
      // Legacy form "left right"; tokens never hold a literal space.
      const std::string& text = merge.get_ref<const std::string&>();
      const size_t space = text.find(' ');
      if (space == std::string::npos || text.find(' ', space + 1) != std::string::npos) {
        return ModelError(absl::StrCat(".merges[", rank, "] \"", text,
                                       "\" is not two tokens separated by one space"));
      }
      left = std::string_view(text).substr(0, space);
      right = std::string_view(text).substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      left = merge[0].get_ref<const std::string&>();
      right = merge[1].get_ref<const std::string&>();
    } else {
      return ModelError(absl::StrCat(".merges[", rank, "] is neither \"a b\" nor [\"a\", \"b\"]"));
    }
    status = bpe->AddMerge(left, right, static_cast<int32_t>(rank));
    if (!status.ok()) return status;
  }
  return bpe;
}

absl::Status BpeModel::BuildByteTables() {
  byte_token_.fill(-1);
  for (int byte = 0; byte < 256; ++byte) {
    std::string token;
    AppendCodePoint(kByteLevelAlphabet.CharForByte(static_cast<uint8_t>(byte)), token);
    const auto it = vocab_.find(token);
    if (it != vocab_.end()) byte_token_[byte] = it->second;
  }
  if (!ignore_merges_) return absl::OkStatus();
  for (const auto& [token, id] : vocab_) {
    std::optional<std::string> bytes = kByteLevelAlphabet.ToBytes(token);
    if (bytes.has_value()) raw_vocab_.insert_or_assign(*std::move(bytes), id);
  }
  return absl::OkStatus();
}

absl::Status BpeModel::AddMerge(std::string_view left, std::string_view right, int32_t rank) {
  const auto left_it = vocab_.find(AsAbsl(left));
  const auto right_it = vocab_.find(AsAbsl(right));
  const std::string merged = absl::StrCat(AsAbsl(left), AsAbsl(right));
  const auto merged_it = vocab_.find(merged);
  for (const auto& [it, token] : {std::pair{left_it, std::string_view(left)},
                                  std::pair{right_it, std::string_view(right)},
                                  std::pair{merged_it, std::string_view(merged)}}) {
    if (it == vocab_.end()) {
      return ModelError(absl::StrCat(".merges[", rank, "] (\"", AsAbsl(left), "\" \"",
                                     AsAbsl(right), "\"): token \"", AsAbsl(token),
                                     "\" is not in the vocab"));
    }
  }
  // A repeated pair keeps its last rank, as in Hugging Face.
  merges_.insert_or_assign(PairKey(left_it->second, right_it->second),
                           Merge{rank, merged_it->second});
  return absl::OkStatus();
}

void BpeModel::EncodeWord(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() == 1) {
    const int32_t id = byte_token_[static_cast<uint8_t>(word[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  if (ignore_merges_) {
    const auto it = raw_vocab_.find(AsAbsl(word));
    if (it != raw_vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable && cache_.Lookup(word, out)) return;
  const size_t start = out.size();
  EncodeWordUncached(word, MergeAlgorithm::kAuto, out);
  if (cacheable) cache_.Insert(word, absl::MakeConstSpan(out).subspan(start));
}

void BpeModel::EncodeWordUncached(std::string_view word, MergeAlgorithm algorithm,
                                  std::vector<int32_t>& out) const {
  // Merging happens in place at the tail of `out`.
  const size_t start = out.size();
  AppendByteTokens(word, out);
  const size_t count = out.size() - start;
  const bool use_scan = algorithm == MergeAlgorithm::kScan ||
                        (algorithm == MergeAlgorithm::kAuto && count <= kShortWordBytes);
  const size_t kept = use_scan ? MergeByScan(out.data() + start, count)
                               : MergeByHeap(out.data() + start, count);
  out.resize(start + kept);
}

void BpeModel::AppendByteTokens(std::string_view word, std::vector<int32_t>& symbols) const {
  for (const char c : word) {
    const int32_t id = byte_token_[static_cast<uint8_t>(c)];
    if (id >= 0) symbols.push_back(id);
  }
}

size_t BpeModel::MergeByScan(int32_t* symbols, size_t n) const {
  if (n < 2) return n;
  // pairs[i] describes (symbols[i], symbols[i + 1]).
  absl::InlinedVector<Merge, kShortWordBytes> pair_storage(n - 1);
  Merge* pairs = pair_storage.data();
  auto describe = [&](size_t i) {
    const Merge* merge = FindMerge(symbols[i], symbols[i + 1]);
    pairs[i] = merge != nullptr ? *merge : Merge{kNoRank, -1};
  };
  for (size_t i = 0; i + 1 < n; ++i) describe(i);
  while (n > 1) {
    size_t best = 0;
    int32_t best_rank = kNoRank;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (pairs[i].rank < best_rank) {
        best_rank = pairs[i].rank;
        best = i;
      }
    }
    if (best_rank == kNoRank) break;
    symbols[best] = pairs[best].merged_id;
    // Drop symbol best + 1 and the pair that started at it; pairs[best] is
    // described afresh below.
    std::memmove(symbols + best + 1, symbols + best + 2, (n - best - 2) * sizeof(int32_t));
    if (best + 2 < n) {
      std::memmove(pairs + best + 1, pairs + best + 2, (n - best - 3) * sizeof(Merge));
    }
    --n;
    if (best > 0) describe(best - 1);
    if (best + 1 < n) describe(best);
  }
  return n;
}

size_t BpeModel::MergeByHeap(int32_t* symbols, size_t n) const {
  if (n < 2) return n;
  struct Candidate {
    int32_t rank;
    int32_t pos;
    int32_t merged_id;
    // std::priority_queue pops the largest; we want the lowest rank, then
    // the leftmost position.
    bool operator<(const Candidate& other) const {
      return rank != other.rank ? rank > other.rank : pos > other.pos;
    }
  };
  std::vector<int32_t> prev(n), next(n);
  std::vector<bool> alive(n, true);
  std::priority_queue<Candidate> queue;
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int32_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int32_t>(i + 1) : -1;
  }
  auto push_pair = [&](int32_t left) {
    const int32_t right = next[left];
    if (right < 0) return;
    const Merge* merge = FindMerge(symbols[left], symbols[right]);
    if (merge != nullptr) queue.push({merge->rank, left, merge->merged_id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push_pair(static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    if (!alive[top.pos] || next[top.pos] < 0) continue;
    const int32_t right = next[top.pos];
    // Skip entries made stale by an earlier merge.
    const Merge* current = FindMerge(symbols[top.pos], symbols[right]);
    if (current == nullptr || current->merged_id != top.merged_id) continue;
    symbols[top.pos] = top.merged_id;
    alive[right] = false;
    next[top.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = top.pos;
    if (prev[top.pos] >= 0) push_pair(prev[top.pos]);
    push_pair(top.pos);
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (alive[i]) symbols[kept++] = symbols[i];
  }
  return kept;
}

}  // namespace dsrt::text
