#include "wire/crockford.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace peertun::wire {
namespace {

TEST(CrockfordTest, EncodesKnownValues) {
  EXPECT_EQ(crockford_encode(0, 4), "0000");
  EXPECT_EQ(crockford_encode(31, 2), "0Z");
  EXPECT_EQ(crockford_encode((1u << 20) - 1, 4), "ZZZZ");
  EXPECT_EQ(crockford_encode(0x2A91, 4).size(), 4u);
}

TEST(CrockfordTest, DecodesConfusablesAndCase) {
  EXPECT_EQ(crockford_decode("o0Oo"), 0u);
  EXPECT_EQ(crockford_decode("IiLl"), crockford_decode("1111"));
  EXPECT_EQ(crockford_decode("zz"), crockford_decode("ZZ"));
}

TEST(CrockfordTest, RejectsInvalid) {
  for (const char* bad : {"", "U", "A-B", "ABC!", "0123456789ABC", " 12"}) {
    EXPECT_FALSE(crockford_decode(bad)) << bad;
  }
}

RC_GTEST_PROP(CrockfordProperty, DecodeEncodeIsIdentity, (std::uint64_t value)) {
  const int chars = *rc::gen::inRange(1, 13);
  const std::uint64_t masked =
      chars == 12 ? value & ((1ull << 60) - 1) : value & ((1ull << (5 * chars)) - 1);
  const auto text = crockford_encode(masked, chars);
  RC_ASSERT(text.size() == static_cast<std::size_t>(chars));
  RC_ASSERT(crockford_decode(text) == masked);
}

}  // namespace
}  // namespace peertun::wire
