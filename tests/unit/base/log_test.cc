#include "base/log.h"

#include <gtest/gtest.h>

#include "base/secret.h"

namespace peertun::base {
namespace {

TEST(SecretTest, FormatsRedacted) {
  Secret s("hunter2");
  EXPECT_EQ(fmt::format("token={}", s), "token=<redacted>");
  EXPECT_EQ(s.reveal(), "hunter2");
}

TEST(LogTest, ParsesLevels) {
  EXPECT_EQ(parse_log_level("debug"), LogLevel::Debug);
  EXPECT_EQ(parse_log_level("off"), LogLevel::Off);
  EXPECT_FALSE(parse_log_level("loud"));
}

TEST(LogTest, SameModuleSameLogger) {
  EXPECT_EQ(&logger("test.module"), &logger("test.module"));
  EXPECT_NE(&logger("test.module"), &logger("test.other"));
}

}  // namespace
}  // namespace peertun::base
