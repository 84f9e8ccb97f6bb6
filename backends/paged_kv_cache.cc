#include "backends/paged_kv_cache.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace dsrt::backends {
namespace {

constexpr uint64_t kRootHash = 0;  // the parent key of a sequence's first page

// splitmix64's finalizer: every input bit moves every output bit.
uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t PageHash(uint64_t parent_hash, absl::Span<const int32_t> tokens) {
  uint64_t hash = Mix(parent_hash);
  for (int32_t token : tokens) hash = Mix(hash ^ static_cast<uint32_t>(token));
  return hash;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PagedKvCache>> PagedKvCache::Create(CacheLayout layout, int64_t budget_bytes,
                                                                   int64_t page_tokens, int max_sequences,
                                                                   int64_t max_seq_len) {
  if (page_tokens <= 0) return absl::InvalidArgumentError(absl::StrCat("KV page size ", page_tokens, " is not positive"));
  if (max_sequences <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("max sequences ", max_sequences, " is not positive"));
  }
  const int64_t page_bytes = layout.bytes_per_token() * page_tokens;
  if (page_bytes <= 0) return absl::InvalidArgumentError("the graph caches nothing: no KV pages to allocate");
  const int64_t pages = budget_bytes / page_bytes;
  if (pages <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("KV cache budget of ", budget_bytes, " bytes holds no page of ",
                                                   page_bytes, " bytes (", page_tokens, " tokens)"));
  }
  if (pages > INT32_MAX) return absl::InvalidArgumentError(absl::StrCat("KV cache budget of ", budget_bytes, " bytes is too large"));
  return std::unique_ptr<PagedKvCache>(new PagedKvCache(std::move(layout), pages, page_tokens, max_sequences, max_seq_len));
}

PagedKvCache::PagedKvCache(CacheLayout layout, int64_t pages, int64_t page_tokens, int max_sequences,
                           int64_t max_seq_len)
    : layout_(std::move(layout)),
      page_tokens_(page_tokens),
      max_seq_len_(max_seq_len),
      tables_(max_sequences),
      published_(pages),
      hashed_pages_(max_sequences, 0),
      chain_hash_(max_sequences, kRootHash) {
  for (int64_t elements : layout_.row_elements) {
    row_bytes_.push_back(ir::DTypeBytes(layout_.dtype, elements));
    slot_offset_.push_back(page_bytes_);
    page_bytes_ += row_bytes_.back() * page_tokens_;
  }
  pool_.reset(new uint8_t[pages * page_bytes_]);
  refs_.assign(pages, 0);
  free_.reserve(pages);
  for (int64_t p = pages - 1; p >= 0; --p) free_.push_back(static_cast<int32_t>(p));
}

void* PagedKvCache::Row(int slot, int sequence, int64_t position) {
  const int64_t page = tables_[sequence][position / page_tokens_];
  return pool_.get() + page * page_bytes_ + slot_offset_[slot] + (position % page_tokens_) * row_bytes_[slot];
}

absl::Status PagedKvCache::Check(int sequence, int64_t position) const {
  if (sequence < 0 || sequence >= max_sequences()) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", sequence, " outside [0, ", max_sequences(), ")"));
  }
  if (position < 0 || position >= max_seq_len_) {
    return absl::OutOfRangeError(
        absl::StrCat("position ", position, " is beyond the engine's max sequence length ", max_seq_len_));
  }
  if (position >= Capacity(sequence)) {
    return absl::FailedPreconditionError(absl::StrCat("position ", position, " of sequence slot ", sequence,
                                                      " has no KV page (the sequence holds ", Capacity(sequence),
                                                      " tokens)"));
  }
  return absl::OkStatus();
}

int64_t PagedKvCache::Capacity(int sequence) const {
  return static_cast<int64_t>(tables_[sequence].size()) * page_tokens_;
}

int64_t PagedKvCache::PagesToGrow(int sequence, int64_t tokens) const {
  return std::max<int64_t>(0, PagesFor(tokens) - static_cast<int64_t>(tables_[sequence].size()));
}

absl::Status PagedKvCache::Grow(int sequence, int64_t tokens) {
  if (sequence < 0 || sequence >= max_sequences()) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", sequence, " outside [0, ", max_sequences(), ")"));
  }
  if (tokens > max_seq_len_) {
    return absl::OutOfRangeError(
        absl::StrCat(tokens, " tokens are more than the engine's max sequence length ", max_seq_len_));
  }
  const int64_t needed = PagesToGrow(sequence, tokens);
  if (needed > free_pages()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache: ", needed, " pages needed, ", free_pages(), " free of ", total_pages()));
  }
  for (int64_t i = 0; i < needed; ++i) tables_[sequence].push_back(TakePage());
  return absl::OkStatus();
}

int32_t PagedKvCache::TakePage() {
  int32_t page;
  if (!free_.empty()) {
    page = free_.back();
    free_.pop_back();
  } else {
    page = evictable_.front();
    evictable_.pop_front();
    Unpublish(page);
  }
  refs_[page] = 1;
  return page;
}

void PagedKvCache::Unpublish(int32_t page) {
  auto it = by_hash_.find(published_[page].hash);
  if (it != by_hash_.end() && it->second == page) by_hash_.erase(it);
  published_[page] = Published();
}

void PagedKvCache::Release(int sequence) {
  std::vector<int32_t>& table = tables_[sequence];
  for (auto page = table.rbegin(); page != table.rend(); ++page) ReleasePage(*page);
  table.clear();
  hashed_pages_[sequence] = 0;
  chain_hash_[sequence] = kRootHash;
}

absl::Status PagedKvCache::Adopt(int sequence, absl::Span<const int32_t> pages) {
  if (sequence < 0 || sequence >= max_sequences()) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", sequence, " outside [0, ", max_sequences(), ")"));
  }
  if (!tables_[sequence].empty()) {
    return absl::FailedPreconditionError(absl::StrCat("sequence slot ", sequence, " already holds pages"));
  }
  for (int32_t page : pages) {
    if (page < 0 || page >= total_pages() || (refs_[page] == 0 && !published_[page].published)) {
      return absl::InvalidArgumentError(absl::StrCat("page ", page, " is neither held by anyone nor published"));
    }
  }
  for (int32_t page : pages) RetainPage(page);
  tables_[sequence].assign(pages.begin(), pages.end());
  return absl::OkStatus();
}

absl::Status PagedKvCache::Mirror(int sequence, absl::Span<const int32_t> pages) {
  if (sequence < 0 || sequence >= max_sequences()) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", sequence, " outside [0, ", max_sequences(), ")"));
  }
  for (int32_t page : pages) {
    if (page < 0 || page >= total_pages()) {
      return absl::OutOfRangeError(absl::StrCat("page ", page, " outside a pool of ", total_pages()));
    }
  }
  tables_[sequence].assign(pages.begin(), pages.end());
  return absl::OkStatus();
}

void PagedKvCache::RetainPage(int32_t page) {
  if (refs_[page] == 0 && published_[page].published) evictable_.erase(published_[page].evictable);
  ++refs_[page];
}

void PagedKvCache::ReleasePage(int32_t page) {
  if (--refs_[page] > 0) return;
  if (!published_[page].published) {
    free_.push_back(page);
    return;
  }
  published_[page].evictable = evictable_.insert(evictable_.end(), page);
}

std::vector<int32_t> PagedKvCache::MatchPrefix(absl::Span<const int32_t> tokens, int64_t max_pages) const {
  std::vector<int32_t> pages;
  uint64_t parent = kRootHash;
  const int64_t full = std::min(static_cast<int64_t>(tokens.size()) / page_tokens_, max_pages);
  for (int64_t i = 0; i < full; ++i) {
    const absl::Span<const int32_t> content = tokens.subspan(i * page_tokens_, page_tokens_);
    const uint64_t hash = PageHash(parent, content);
    auto it = by_hash_.find(hash);
    if (it == by_hash_.end()) break;
    const Published& found = published_[it->second];
    if (found.parent_hash != parent || !std::equal(content.begin(), content.end(), found.tokens.begin())) break;
    pages.push_back(it->second);
    parent = hash;
  }
  return pages;
}

void PagedKvCache::Publish(int sequence, absl::Span<const int32_t> computed) {
  const std::vector<int32_t>& table = tables_[sequence];
  const int64_t full = std::min(static_cast<int64_t>(computed.size()) / page_tokens_, static_cast<int64_t>(table.size()));
  for (int64_t i = hashed_pages_[sequence]; i < full; ++i) {
    const absl::Span<const int32_t> content = computed.subspan(i * page_tokens_, page_tokens_);
    const uint64_t parent = chain_hash_[sequence];
    const uint64_t hash = PageHash(parent, content);
    chain_hash_[sequence] = hash;
    hashed_pages_[sequence] = i + 1;
    const int32_t page = table[i];
    if (published_[page].published || by_hash_.count(hash) > 0) continue;  // adopted, or a twin computed it too
    Published& entry = published_[page];
    entry.published = true;
    entry.hash = hash;
    entry.parent_hash = parent;
    entry.tokens.assign(content.begin(), content.end());
    by_hash_[hash] = page;
  }
}

}  // namespace dsrt::backends
