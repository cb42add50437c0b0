#include "client/config.h"

#include <gtest/gtest.h>

namespace peertun::client {
namespace {

TEST(ClientConfigTest, ParsesKeys) {
  std::string detail;
  auto c =
      parse_client_config("relay = \"relay.example:4040\"\ntoken = \"tok\"\n", "c.toml", detail);
  ASSERT_TRUE(c) << detail;
  EXPECT_EQ(c->relay, "relay.example:4040");
  EXPECT_EQ(c->token->reveal(), "tok");
  EXPECT_FALSE(c->log_level);
}

TEST(ClientConfigTest, RejectsUnknownAndEmptyWithoutLeakingToken) {
  std::string detail;
  EXPECT_FALSE(parse_client_config("tokn = \"secret-tok\"", "c.toml", detail));
  EXPECT_NE(detail.find("unknown key \"tokn\""), std::string::npos);
  EXPECT_EQ(detail.find("secret-tok"), std::string::npos);
  EXPECT_FALSE(parse_client_config("token = \"\"", "c.toml", detail));
  EXPECT_FALSE(parse_client_config("token = 5", "c.toml", detail));
  EXPECT_FALSE(parse_client_config("relay = ", "c.toml", detail));
  EXPECT_NE(detail.find("c.toml:1"), std::string::npos);
}

TEST(ClientConfigTest, LaterSourcesWin) {
  ClientConfig file{"file-relay:1", base::Secret("file-token"), std::nullopt};
  ClientConfig env{std::nullopt, base::Secret("env-token"), std::nullopt};
  ClientConfig flags{"flag-relay:2", std::nullopt, std::nullopt};
  auto merged = merge(merge(file, env), flags);
  EXPECT_EQ(merged.relay, "flag-relay:2");
  EXPECT_EQ(merged.token->reveal(), "env-token");
}

}  // namespace
}  // namespace peertun::client
