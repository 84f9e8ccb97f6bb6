#include "backends/paged_kv_cache.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace dsrt::backends {

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
    : layout_(std::move(layout)), page_tokens_(page_tokens), max_seq_len_(max_seq_len), tables_(max_sequences) {
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
  for (int64_t i = 0; i < needed; ++i) {
    const int32_t page = free_.back();
    free_.pop_back();
    refs_[page] = 1;
    tables_[sequence].push_back(page);
  }
  return absl::OkStatus();
}

void PagedKvCache::Release(int sequence) {
  for (int32_t page : tables_[sequence]) ReleasePage(page);
  tables_[sequence].clear();
}

absl::Status PagedKvCache::Adopt(int sequence, absl::Span<const int32_t> pages) {
  if (sequence < 0 || sequence >= max_sequences()) {
    return absl::OutOfRangeError(absl::StrCat("sequence slot ", sequence, " outside [0, ", max_sequences(), ")"));
  }
  if (!tables_[sequence].empty()) {
    return absl::FailedPreconditionError(absl::StrCat("sequence slot ", sequence, " already holds pages"));
  }
  for (int32_t page : pages) {
    if (page < 0 || page >= total_pages() || refs_[page] == 0) {
      return absl::InvalidArgumentError(absl::StrCat("page ", page, " is not held by anyone"));
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

void PagedKvCache::RetainPage(int32_t page) { ++refs_[page]; }

void PagedKvCache::ReleasePage(int32_t page) {
  if (--refs_[page] == 0) free_.push_back(page);
}

}  // namespace dsrt::backends
