#ifndef DSRT_BACKENDS_PAGED_KV_CACHE_H_
#define DSRT_BACKENDS_PAGED_KV_CACHE_H_

#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "backends/kv_cache.h"

namespace dsrt::backends {

// A KV cache carved into fixed-size pages from one pool (vLLM's PagedAttention
// layout): a page holds `page_tokens` consecutive tokens of one sequence, every
// cache slot's rows for them, and each sequence has a page table. Sequences take
// pages as they grow and give them back when they end, so memory follows the
// tokens actually held rather than max_seq_len for every sequence.
//
// Pages are reference-counted so that sequences sharing a prompt prefix can share
// its full pages: a page that more than one owner holds is only ever read.
//
// Prefix caching (vLLM's automatic prefix caching): a sequence may publish its full,
// computed pages under the hash chain of their token ids (a page's key is the hash of
// its parent page's key and its own tokens, so a key stands for the whole prefix up to
// the page's end). A published page outlives its owners: when the last one releases
// it, its rows stay, evictable, and a later sequence whose tokens start the same way
// finds it (MatchPrefix) and adopts it instead of recomputing it. Evictable pages count
// as free: Grow takes truly free pages first, then evicts the least recently released.
class PagedKvCache : public KvCache {
 public:
  // A pool of as many pages as `budget_bytes` holds; an error when it holds none.
  static absl::StatusOr<std::unique_ptr<PagedKvCache>> Create(CacheLayout layout, int64_t budget_bytes,
                                                              int64_t page_tokens, int max_sequences,
                                                              int64_t max_seq_len);

  const CacheLayout& layout() const override { return layout_; }
  void* Row(int slot, int sequence, int64_t position) override;
  // An error for a sequence outside [0, max_sequences) or a position without a page.
  absl::Status Check(int sequence, int64_t position) const override;

  int64_t page_tokens() const { return page_tokens_; }
  int64_t page_bytes() const { return page_bytes_; }
  int64_t total_pages() const { return static_cast<int64_t>(refs_.size()); }
  // Pages no owner holds: truly free ones and evictable published ones.
  int64_t free_pages() const { return static_cast<int64_t>(free_.size() + evictable_.size()); }
  int64_t used_pages() const { return total_pages() - free_pages(); }
  // Pages no owner holds whose rows are kept for a sequence with the same prefix.
  int64_t evictable_pages() const { return static_cast<int64_t>(evictable_.size()); }
  int max_sequences() const { return static_cast<int>(tables_.size()); }
  int64_t max_seq_len() const { return max_seq_len_; }

  // Pages a sequence of `tokens` tokens occupies.
  int64_t PagesFor(int64_t tokens) const { return (tokens + page_tokens_ - 1) / page_tokens_; }
  // Tokens the sequence's pages hold now.
  int64_t Capacity(int sequence) const;
  // New pages the sequence needs to hold `tokens` tokens.
  int64_t PagesToGrow(int sequence, int64_t tokens) const;
  // Gives the sequence pages until it holds `tokens` tokens, evicting published pages
  // no one holds when no page is truly free. ResourceExhausted (and nothing taken)
  // when the pool has too few free pages.
  absl::Status Grow(int sequence, int64_t tokens);
  // Returns every page of the sequence to the pool, its last page first (pages another
  // owner still holds stay; published ones become evictable, the tail ones first evicted).
  void Release(int sequence);

  const std::vector<int32_t>& PageTable(int sequence) const { return tables_[sequence]; }
  // Starts an empty sequence on pages another owner holds or that are evictable
  // published pages (a shared prefix, as MatchPrefix found it).
  absl::Status Adopt(int sequence, absl::Span<const int32_t> pages);

  // The published pages that hold the leading full pages of `tokens`, in order, up to
  // the first page not found and at most `max_pages`.
  std::vector<int32_t> MatchPrefix(absl::Span<const int32_t> tokens, int64_t max_pages) const;
  // Publishes the sequence's full pages among those holding `computed`, its leading
  // tokens whose rows are written. Pages already published, by it or (with the same
  // tokens) by another sequence, are skipped; call it as the sequence grows.
  void Publish(int sequence, absl::Span<const int32_t> computed);
  // Sets the sequence's page table to `pages` as another rank's cache laid it out: a
  // rank that runs the steps rank 0 schedules keeps rank 0's page tables (and leaves
  // its own pool's bookkeeping unused).
  absl::Status Mirror(int sequence, absl::Span<const int32_t> pages);
  // One more / one fewer owner of a page; the last release returns it to the pool.
  void RetainPage(int32_t page);
  void ReleasePage(int32_t page);

 private:
  // What a published page holds: its key and, to tell a hash collision from a hit,
  // the parent's key and the page's tokens.
  struct Published {
    bool published = false;
    uint64_t hash = 0;
    uint64_t parent_hash = 0;
    std::vector<int32_t> tokens;
    std::list<int32_t>::iterator evictable;  // valid while no owner holds the page
  };

  PagedKvCache(CacheLayout layout, int64_t pages, int64_t page_tokens, int max_sequences, int64_t max_seq_len);
  // A free page, evicting the least recently released published one when none is truly free.
  int32_t TakePage();
  void Unpublish(int32_t page);

  CacheLayout layout_;
  int64_t page_tokens_;
  int64_t max_seq_len_;
  std::vector<int64_t> row_bytes_;    // per slot
  std::vector<int64_t> slot_offset_;  // per slot: where its rows start inside a page
  int64_t page_bytes_ = 0;
  std::unique_ptr<uint8_t[]> pool_;   // left uninitialized: a page is written before it is read
  std::vector<int32_t> refs_;         // owners per page
  std::vector<int32_t> free_;         // free page ids, taken from the back
  std::vector<std::vector<int32_t>> tables_;  // per sequence: page ids in token order

  std::vector<Published> published_;              // per page
  std::unordered_map<uint64_t, int32_t> by_hash_;  // published page by key
  std::list<int32_t> evictable_;                   // published pages no one holds, least recently released first
  std::vector<int64_t> hashed_pages_;              // per sequence: leading pages Publish has keyed
  std::vector<uint64_t> chain_hash_;               // per sequence: the key of the last of them
};

}  // namespace dsrt::backends

#endif  // DSRT_BACKENDS_PAGED_KV_CACHE_H_
