#include "quic/core/byte_queue.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <deque>
#include <vector>

namespace peertun::quic {
namespace {

TEST(ByteQueueTest, AppendRespectsTheLimit) {
  ChunkPool pool;
  ByteQueue q(pool);
  std::vector<std::uint8_t> data(100, 7);
  EXPECT_EQ(q.append(data, 60), 60u);
  EXPECT_EQ(q.append(data, 60), 0u);
  q.pop(10);
  EXPECT_EQ(q.append(data, 60), 10u);
  EXPECT_EQ(q.size(), 60u);
}

TEST(ByteQueueTest, GatherSpansChunkBoundariesAndPointersStayPut) {
  ChunkPool pool;
  ByteQueue q(pool);
  std::vector<std::uint8_t> data(3 * ChunkPool::kChunkSize + 123);
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<std::uint8_t>(i * 31);
  }
  ASSERT_EQ(q.append(data, SIZE_MAX), data.size());
  std::array<std::span<const std::uint8_t>, 8> pieces;
  const std::size_t n = q.gather(100, pieces);
  ASSERT_EQ(n, 4u);
  const auto* first = pieces[0].data();
  std::size_t off = 100;
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_TRUE(std::equal(pieces[i].begin(), pieces[i].end(), data.begin() + off));
    off += pieces[i].size();
  }
  EXPECT_EQ(off, data.size());
  q.append(data, SIZE_MAX);              // growing the tail does not move older bytes
  EXPECT_EQ(q.gather(100, pieces), 7u);  // 6 chunks + 246 bytes span 7 chunks
  EXPECT_EQ(pieces[0].data(), first);
}

// The queue behaves like a std::deque of bytes under any sequence of appends and pops.
RC_GTEST_PROP(ByteQueueTest, MatchesAModelDeque, ()) {
  ChunkPool pool;
  ByteQueue q(pool);
  std::deque<std::uint8_t> model;
  const auto ops = *rc::gen::container<std::vector<std::pair<bool, std::size_t>>>(
      rc::gen::pair(rc::gen::arbitrary<bool>(), rc::gen::inRange<std::size_t>(0, 200'000)));
  std::uint8_t next = 0;
  for (auto [is_append, n] : ops) {
    if (is_append) {
      std::vector<std::uint8_t> data(n);
      for (auto& b : data) {
        b = next++;
      }
      const std::size_t taken = q.append(data, 300'000);
      RC_ASSERT(taken == std::min(n, 300'000 - model.size()));
      model.insert(model.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(taken));
      next = static_cast<std::uint8_t>(next - (n - taken));
    } else {
      const std::size_t k = std::min(n, model.size());
      std::vector<std::uint8_t> out(k);
      RC_ASSERT(q.peek(out) == k);
      RC_ASSERT(std::equal(out.begin(), out.end(), model.begin()));
      q.pop(k);
      model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(k));
    }
    RC_ASSERT(q.size() == model.size());
  }
}

}  // namespace
}  // namespace peertun::quic
