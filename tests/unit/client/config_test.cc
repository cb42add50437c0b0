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

TEST(ClientConfigTest, RelayTlsTrustKeys) {
  std::string detail;
  const std::string pin = "sha256:" + std::string(64, 'b');
  auto c = parse_client_config(
      "relay = \"wss://relay.example\"\nrelay_ca = \"/etc/ca.pem\"\nrelay_pin = \"" + pin + "\"\n",
      "c.toml", detail);
  ASSERT_TRUE(c) << detail;
  EXPECT_EQ(c->relay_ca, "/etc/ca.pem");
  EXPECT_EQ(c->relay_pin, pin);
  EXPECT_FALSE(parse_client_config("relay_pin = \"sha256:abc\"", "c.toml", detail));
  EXPECT_NE(detail.find("\"relay_pin\""), std::string::npos) << detail;
  EXPECT_FALSE(parse_client_config("relay_ca = \"\"", "c.toml", detail));
  ClientConfig file;
  file.relay_ca = "/file/ca.pem";
  ClientConfig flags;
  flags.relay_ca = "/flag/ca.pem";
  flags.relay_pin = pin;
  auto merged = merge(file, flags);
  EXPECT_EQ(merged.relay_ca, "/flag/ca.pem");
  EXPECT_EQ(merged.relay_pin, pin);
}

}  // namespace
}  // namespace peertun::client
