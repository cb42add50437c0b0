#include "base/duration.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "base/secret.h"

namespace peertun::base {
namespace {

using namespace std::chrono_literals;

TEST(DurationTest, ParsesUnits) {
  EXPECT_EQ(parse_duration("500ms"), Duration(500ms));
  EXPECT_EQ(parse_duration("3s"), Duration(3s));
  EXPECT_EQ(parse_duration(" 20s "), Duration(20s));
  EXPECT_EQ(parse_duration("10m"), Duration(10min));
  EXPECT_EQ(parse_duration("1h"), Duration(1h));
}

TEST(DurationTest, RejectsBadInput) {
  for (const char* bad : {"", "8", "s", "-1s", "1.5s", "3 s", "3sec", "99999999999999h", "x1s"}) {
    EXPECT_FALSE(parse_duration(bad)) << bad;
  }
}

RC_GTEST_PROP(DurationProperty, FormatThenParseIsIdentity, (std::uint32_t ms)) {
  const Duration d(ms);
  RC_ASSERT(parse_duration(format_duration(d)) == d);
}

TEST(ConstantTimeEqualTest, Compares) {
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_TRUE(constant_time_equal("", ""));
}

}  // namespace
}  // namespace peertun::base
