#include "client/relay_target.h"

#include <gtest/gtest.h>

namespace peertun::client {
namespace {

TEST(RelayTargetTest, AcceptsTheDocumentedForms) {
  struct Case {
    const char* text;
    const char* host;
    std::uint16_t port;
  };
  for (const auto& c : std::initializer_list<Case>{
           {"relay.example", "relay.example", 4040},
           {"relay.example:5000", "relay.example", 5000},
           {"127.0.0.1:4040", "127.0.0.1", 4040},
           {"[2001:db8::1]:4041", "2001:db8::1", 4041},
           {"2001:db8::1", "2001:db8::1", 4040},
           {"[::1]", "::1", 4040},
           {"ws://relay.example:4040/v1/control", "relay.example", 4040},
           {"ws://127.0.0.1:9", "127.0.0.1", 9},
           {"  relay.example  ", "relay.example", 4040},
       }) {
    auto t = parse_relay_target(c.text);
    ASSERT_TRUE(t) << c.text;
    EXPECT_EQ(t->host, c.host) << c.text;
    EXPECT_EQ(t->port, c.port) << c.text;
  }
}

TEST(RelayTargetTest, SchemeChoosesTls) {
  struct Case {
    const char* text;
    const char* host;
    std::uint16_t port;
    bool tls;
  };
  for (const auto& c : std::initializer_list<Case>{
           {"wss://relay.example", "relay.example", 4040, true},
           {"wss://relay.example:443/v1/control", "relay.example", 443, true},
           {"wss://[2001:db8::1]:4041/", "2001:db8::1", 4041, true},
           {"wss://127.0.0.1:9", "127.0.0.1", 9, true},
           {"ws://relay.example", "relay.example", 4040, false},
           {"relay.example:5000", "relay.example", 5000, false},  // bare = ws
       }) {
    auto t = parse_relay_target(c.text);
    ASSERT_TRUE(t) << c.text;
    EXPECT_EQ(t->host, c.host) << c.text;
    EXPECT_EQ(t->port, c.port) << c.text;
    EXPECT_EQ(t->tls, c.tls) << c.text;
    // url() parses back to the same target, scheme included.
    auto again = parse_relay_target(t->url());
    ASSERT_TRUE(again) << t->url();
    EXPECT_EQ(again->host, t->host);
    EXPECT_EQ(again->port, t->port);
    EXPECT_EQ(again->tls, t->tls);
    EXPECT_TRUE(t->ca_file.empty());
    EXPECT_TRUE(t->pin.empty());
  }
  EXPECT_EQ(parse_relay_target("wss://relay.example:8443")->url(), "wss://relay.example:8443");
}

TEST(RelayTargetTest, RejectsMalformed) {
  for (const char* bad : {"",
                          "host:",
                          "host:0",
                          "host:70000",
                          "https://relay.example",
                          "ws://relay.example/other",
                          "[::1",
                          "host:port",
                          "a:b:c",
                          "ws:// R",
                          "re lay:4040",
                          "user@relay:4040",
                          "relay/x",
                          "wss://",
                          "wss://relay.example/other",
                          "wss://relay.example:0",
                          "WSS://relay.example",
                          "wss:/relay.example",
                          "ws s://relay.example",
                          "wss://user@relay.example"}) {
    EXPECT_FALSE(parse_relay_target(bad)) << bad;
  }
}

TEST(RelayTargetTest, DisplayBracketsIpv6) {
  EXPECT_EQ((RelayTarget{"2001:db8::1", 4040}).display(), "[2001:db8::1]:4040");
  EXPECT_EQ((RelayTarget{"relay.example", 4040}).display(), "relay.example:4040");
}

}  // namespace
}  // namespace peertun::client
