#include "backends/paged_kv_cache.h"

#include <cstring>
#include <set>

#include "gtest/gtest.h"

namespace dsrt::backends {
namespace {

// Two attention slots of different widths, f32: 4 + 2 values = 24 bytes a token.
CacheLayout TwoSlots() {
  CacheLayout layout;
  layout.row_elements = {4, 2};
  layout.dtype = ir::DType::kF32;
  return layout;
}

std::unique_ptr<PagedKvCache> MakeCache(int64_t pages, int64_t page_tokens = 4, int sequences = 3,
                                        int64_t max_seq_len = 64) {
  const int64_t budget = pages * page_tokens * TwoSlots().bytes_per_token();
  auto cache = PagedKvCache::Create(TwoSlots(), budget, page_tokens, sequences, max_seq_len);
  EXPECT_TRUE(cache.ok()) << cache.status();
  return std::move(cache).value();
}

TEST(PagedKvCache, ThePoolHoldsAsManyPagesAsTheBudgetAllows) {
  // 4 tokens × 24 bytes = 96 bytes a page: 1000 bytes hold 10 pages.
  auto cache = PagedKvCache::Create(TwoSlots(), 1000, 4, 2, 64);
  ASSERT_TRUE(cache.ok()) << cache.status();
  EXPECT_EQ((*cache)->page_bytes(), 96);
  EXPECT_EQ((*cache)->total_pages(), 10);
  EXPECT_EQ((*cache)->free_pages(), 10);
}

TEST(PagedKvCache, ABudgetBelowOnePageIsAnError) {
  auto cache = PagedKvCache::Create(TwoSlots(), 95, 4, 2, 64);
  ASSERT_FALSE(cache.ok());
  EXPECT_NE(cache.status().message().find("95 bytes"), std::string::npos) << cache.status();
}

TEST(PagedKvCache, GrowTakesWholePagesAndCheckRefusesPositionsWithout) {
  auto cache = MakeCache(8);
  EXPECT_FALSE(cache->Check(0, 0).ok());
  ASSERT_TRUE(cache->Grow(0, 5).ok());  // 5 tokens: 2 pages of 4
  EXPECT_EQ(cache->PageTable(0).size(), 2u);
  EXPECT_EQ(cache->Capacity(0), 8);
  EXPECT_EQ(cache->used_pages(), 2);
  EXPECT_TRUE(cache->Check(0, 7).ok());
  absl::Status beyond = cache->Check(0, 8);
  EXPECT_EQ(beyond.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(beyond.message().find("position 8 of sequence slot 0 has no KV page"), std::string::npos) << beyond;
  EXPECT_EQ(cache->Check(3, 0).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(cache->Check(0, 64).code(), absl::StatusCode::kOutOfRange);
}

TEST(PagedKvCache, GrowingBeyondTheFreePagesTakesNothing) {
  auto cache = MakeCache(3);
  ASSERT_TRUE(cache->Grow(0, 8).ok());
  absl::Status full = cache->Grow(1, 8);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_TRUE(cache->PageTable(1).empty());
  EXPECT_EQ(cache->free_pages(), 1);
  EXPECT_EQ(cache->Grow(0, 65).code(), absl::StatusCode::kOutOfRange);
}

TEST(PagedKvCache, RowsOfEverySlotSequenceAndPositionAreDistinctAndKeepTheirValues) {
  auto cache = MakeCache(8);
  ASSERT_TRUE(cache->Grow(0, 6).ok());
  ASSERT_TRUE(cache->Grow(1, 3).ok());
  std::set<void*> rows;
  float value = 0;
  for (int sequence : {0, 1}) {
    for (int64_t position = 0; position < (sequence == 0 ? 6 : 3); ++position) {
      for (int slot : {0, 1}) {
        auto* row = static_cast<float*>(cache->Row(slot, sequence, position));
        EXPECT_TRUE(rows.insert(row).second) << "slot " << slot << " seq " << sequence << " pos " << position;
        for (int64_t e = 0; e < TwoSlots().row_elements[slot]; ++e) row[e] = value++;
      }
    }
  }
  value = 0;
  for (int sequence : {0, 1}) {
    for (int64_t position = 0; position < (sequence == 0 ? 6 : 3); ++position) {
      for (int slot : {0, 1}) {
        const auto* row = static_cast<const float*>(cache->Row(slot, sequence, position));
        for (int64_t e = 0; e < TwoSlots().row_elements[slot]; ++e) ASSERT_EQ(row[e], value++);
      }
    }
  }
}

TEST(PagedKvCache, ReleaseReturnsPagesToThePool) {
  auto cache = MakeCache(4);
  ASSERT_TRUE(cache->Grow(0, 16).ok());
  EXPECT_EQ(cache->free_pages(), 0);
  cache->Release(0);
  EXPECT_EQ(cache->free_pages(), 4);
  EXPECT_EQ(cache->Capacity(0), 0);
  EXPECT_TRUE(cache->Grow(1, 16).ok());
}

TEST(PagedKvCache, AdoptedPagesStayUntilTheirLastOwnerReleasesThem) {
  auto cache = MakeCache(6);
  ASSERT_TRUE(cache->Grow(0, 8).ok());
  const std::vector<int32_t> prefix = cache->PageTable(0);
  std::memset(cache->Row(0, 0, 5), 7, 16);

  ASSERT_TRUE(cache->Adopt(1, prefix).ok());
  ASSERT_TRUE(cache->Grow(1, 10).ok());  // one page of its own after the shared two
  EXPECT_EQ(cache->used_pages(), 3);
  EXPECT_EQ(cache->Row(0, 1, 5), cache->Row(0, 0, 5));

  cache->Release(0);
  EXPECT_EQ(cache->used_pages(), 3);  // sequence 1 still reads the prefix
  EXPECT_EQ(static_cast<const uint8_t*>(cache->Row(0, 1, 5))[0], 7);
  cache->Release(1);
  EXPECT_EQ(cache->used_pages(), 0);
}

TEST(PagedKvCache, AdoptRefusesFreePagesAndBusySequences) {
  auto cache = MakeCache(4);
  EXPECT_FALSE(cache->Adopt(0, std::vector<int32_t>{2}).ok());
  ASSERT_TRUE(cache->Grow(0, 4).ok());
  EXPECT_FALSE(cache->Adopt(0, cache->PageTable(0)).ok());
}

TEST(PagedKvCache, APageRetainedOutsideAnySequenceOutlivesIt) {
  auto cache = MakeCache(2);
  ASSERT_TRUE(cache->Grow(0, 4).ok());
  const int32_t page = cache->PageTable(0)[0];
  cache->RetainPage(page);  // as a prefix cache keeps it
  cache->Release(0);
  EXPECT_EQ(cache->free_pages(), 1);
  cache->ReleasePage(page);
  EXPECT_EQ(cache->free_pages(), 2);
}

std::vector<int32_t> Tokens(int count, int32_t first) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < count; ++i) tokens.push_back(first + i);
  return tokens;
}

TEST(PagedKvCache, PublishedPagesOutliveTheirSequenceAndAreFoundByTheirTokens) {
  auto cache = MakeCache(6);
  const std::vector<int32_t> tokens = Tokens(10, 100);
  ASSERT_TRUE(cache->Grow(0, 10).ok());
  const std::vector<int32_t> table = cache->PageTable(0);
  cache->Publish(0, tokens);  // two full pages; the third holds only 2 tokens
  EXPECT_EQ(cache->MatchPrefix(tokens, 10), std::vector<int32_t>(table.begin(), table.begin() + 2));
  cache->Release(0);
  EXPECT_EQ(cache->used_pages(), 0);
  EXPECT_EQ(cache->free_pages(), 6);
  EXPECT_EQ(cache->evictable_pages(), 2);

  EXPECT_EQ(cache->MatchPrefix(tokens, 1), std::vector<int32_t>{table[0]});
  std::vector<int32_t> second_page_differs = tokens;
  second_page_differs[6] = 1;
  EXPECT_EQ(cache->MatchPrefix(second_page_differs, 10), std::vector<int32_t>{table[0]});
  std::vector<int32_t> first_page_differs = tokens;
  first_page_differs[0] = 1;  // the second page's tokens alone do not match: its key chains the first's
  EXPECT_TRUE(cache->MatchPrefix(first_page_differs, 10).empty());

  const std::vector<int32_t> found = cache->MatchPrefix(tokens, 10);
  ASSERT_TRUE(cache->Adopt(1, found).ok());
  EXPECT_EQ(cache->used_pages(), 2);
  EXPECT_EQ(cache->evictable_pages(), 0);
  cache->Release(1);
  EXPECT_EQ(cache->evictable_pages(), 2);
}

TEST(PagedKvCache, GrowEvictsTheTailOfTheLeastRecentlyReleasedPagesOnlyWhenNoneIsFree) {
  auto cache = MakeCache(4);
  const std::vector<int32_t> tokens = Tokens(8, 1);
  ASSERT_TRUE(cache->Grow(0, 8).ok());
  const std::vector<int32_t> table = cache->PageTable(0);
  cache->Publish(0, tokens);
  cache->Release(0);

  ASSERT_TRUE(cache->Grow(1, 8).ok());  // the two truly free pages
  EXPECT_EQ(cache->MatchPrefix(tokens, 2), table);
  ASSERT_TRUE(cache->Grow(1, 12).ok());  // evicts the published tail page, released first
  EXPECT_EQ(cache->MatchPrefix(tokens, 2), std::vector<int32_t>{table[0]});
  ASSERT_TRUE(cache->Grow(1, 16).ok());
  EXPECT_TRUE(cache->MatchPrefix(tokens, 2).empty());
  EXPECT_EQ(cache->free_pages(), 0);
  EXPECT_EQ(cache->Grow(2, 1).code(), absl::StatusCode::kResourceExhausted);
  cache->Release(1);  // never published: truly free again
  EXPECT_EQ(cache->free_pages(), 4);
  EXPECT_EQ(cache->evictable_pages(), 0);
}

TEST(PagedKvCache, TwinSequencesPublishTheirCommonPagesOnce) {
  auto cache = MakeCache(6);
  const std::vector<int32_t> tokens = Tokens(8, 50);
  ASSERT_TRUE(cache->Grow(0, 8).ok());
  ASSERT_TRUE(cache->Grow(1, 8).ok());
  cache->Publish(0, tokens);
  cache->Publish(1, tokens);
  EXPECT_EQ(cache->MatchPrefix(tokens, 2), cache->PageTable(0));
  cache->Release(1);
  cache->Release(0);
  EXPECT_EQ(cache->evictable_pages(), 2);
  EXPECT_EQ(cache->free_pages(), 6);
}

TEST(PagedKvCache, AdoptRefusesAPageThatWasEvicted) {
  auto cache = MakeCache(1);
  ASSERT_TRUE(cache->Grow(0, 4).ok());
  cache->Publish(0, Tokens(4, 9));
  const std::vector<int32_t> found = cache->PageTable(0);
  cache->Release(0);
  ASSERT_TRUE(cache->Grow(1, 4).ok());  // evicts it
  cache->Release(1);
  EXPECT_FALSE(cache->Adopt(2, found).ok());
}

}  // namespace
}  // namespace dsrt::backends
