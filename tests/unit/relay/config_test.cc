#include "relay/config.h"

#include <gtest/gtest.h>

namespace peertun::relay {
namespace {

TEST(RelayConfigTest, ParsesEveryKey) {
  std::string detail;
  auto config = parse_relay_config(R"(
listen = "203.0.113.5:4040"
tokens = ["alpha", "beta"]
alt_port = 5050
alt_ip = "203.0.113.6"
session_ttl = "5m"
ping_interval = "20s"
log_level = "debug"
)",
                                   "relay.toml", detail);
  ASSERT_TRUE(config) << detail;
  EXPECT_EQ(config->listen.to_string(), "203.0.113.5:4040");
  ASSERT_EQ(config->tokens.size(), 2u);
  EXPECT_EQ(config->tokens[1].reveal(), "beta");
  EXPECT_EQ(config->alt_port, 5050);
  EXPECT_EQ(config->alt_ip->to_string(), "203.0.113.6");
  EXPECT_EQ(config->session_ttl, std::chrono::minutes(5));
  EXPECT_EQ(config->ping_interval, std::chrono::seconds(20));
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(validate(*config), "");
  EXPECT_EQ(effective_alt_port(*config), 5050);
}

TEST(RelayConfigTest, RejectsUnknownKeysAndBadValuesNamingTheKey) {
  struct Case {
    const char* toml;
    const char* expect_in_detail;
  };
  for (const auto& c : std::initializer_list<Case>{
           {"listn = \"0.0.0.0:1\"", "unknown key \"listn\""},
           {"listen = \"nowhere\"", "\"listen\""},
           {"tokens = \"secret-token\"", "\"tokens\""},
           {"tokens = [\"\"]", "\"tokens\""},
           {"alt_port = 70000", "\"alt_port\""},
           {"alt_ip = 5", "\"alt_ip\""},
           {"session_ttl = \"10\"", "\"session_ttl\""},
           {"listen = ", "relay.toml:1"},
       }) {
    std::string detail;
    EXPECT_FALSE(parse_relay_config(c.toml, "relay.toml", detail)) << c.toml;
    EXPECT_NE(detail.find(c.expect_in_detail), std::string::npos) << detail;
    EXPECT_EQ(detail.find("secret-token"), std::string::npos) << detail;
  }
}

TEST(RelayConfigTest, TlsCertificateAndKeyComeTogether) {
  std::string detail;
  auto config = parse_relay_config(R"(
tokens = ["t"]
tls_cert = "/etc/peertun/cert.pem"
tls_key = "/etc/peertun/key.pem"
)",
                                   "relay.toml", detail);
  ASSERT_TRUE(config) << detail;
  EXPECT_EQ(config->tls_cert, "/etc/peertun/cert.pem");
  EXPECT_EQ(config->tls_key, "/etc/peertun/key.pem");
  EXPECT_EQ(validate(*config), "");  // files are checked by Relay::start, not here
  config->tls_key.clear();
  EXPECT_NE(validate(*config).find("--tls-cert and --tls-key go together"), std::string::npos);
  config->tls_key = "k";
  config->tls_cert.clear();
  EXPECT_NE(validate(*config).find("go together"), std::string::npos);
  EXPECT_FALSE(parse_relay_config("tls_cert = \"\"", "relay.toml", detail));
  EXPECT_NE(detail.find("\"tls_cert\""), std::string::npos) << detail;
  EXPECT_FALSE(parse_relay_config("tls_key = 3", "relay.toml", detail));
  EXPECT_NE(detail.find("\"tls_key\""), std::string::npos) << detail;
}

TEST(RelayConfigTest, ValidateExplainsCrossFieldProblems) {
  RelayConfig config;
  EXPECT_NE(validate(config).find("no token"), std::string::npos);
  config.tokens.emplace_back("t");
  EXPECT_EQ(validate(config), "");
  config.alt_ip = base::IpAddress::parse("203.0.113.6");
  EXPECT_NE(validate(config).find("--alt-ip needs --listen"), std::string::npos);
  config.listen = *base::SocketAddress::parse("203.0.113.5:4040");
  EXPECT_EQ(validate(config), "");
  config.alt_ip = base::IpAddress::parse("2001:db8::1");
  EXPECT_NE(validate(config).find("family"), std::string::npos);
  config.alt_ip.reset();
  config.alt_port = 4040;
  EXPECT_NE(validate(config).find("--alt-port"), std::string::npos);
  config.alt_port = 0;
  config.tls_cert = "cert.pem";  // without tls_key
  EXPECT_NE(validate(config).find("--tls-key"), std::string::npos);
}

TEST(RelayConfigTest, DefaultAltPortIsListenPlusOne) {
  RelayConfig config;
  EXPECT_EQ(effective_alt_port(config), 4041);
}

}  // namespace
}  // namespace peertun::relay
