#include "base/socket_address.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace peertun::base {
namespace {

TEST(SocketAddressTest, ParsesAndFormatsIpv4) {
  auto a = SocketAddress::parse("198.51.100.7:38291");
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->ip().is_v4());
  EXPECT_EQ(a->port(), 38291);
  EXPECT_EQ(a->to_string(), "198.51.100.7:38291");
}

TEST(SocketAddressTest, ParsesAndFormatsBracketedIpv6) {
  auto a = SocketAddress::parse("[2001:db8::1]:4040");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->ip().is_v4());
  EXPECT_EQ(a->to_string(), "[2001:db8::1]:4040");
}

TEST(SocketAddressTest, RejectsMalformed) {
  for (const char* bad : {"", "1.2.3.4", "1.2.3.4:", ":80", "1.2.3.4:65536", "1.2.3.4:-1", "::1:80",
                          "[::1]80", "[::1", "300.1.1.1:1", "host:80", "1.2.3.4:8x"}) {
    EXPECT_FALSE(SocketAddress::parse(bad)) << bad;
  }
}

TEST(IpAddressTest, RejectsEmbeddedNul) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(IpAddress::parse("1.2.3.4\0junk"sv));
  EXPECT_FALSE(SocketAddress::parse("1.2.3.4\0:80"sv));
}

TEST(SocketAddressTest, SplitHostPortKeepsNames) {
  auto hp = split_host_port("relay.example:4040");
  ASSERT_TRUE(hp);
  EXPECT_EQ(hp->host, "relay.example");
  EXPECT_EQ(hp->port, 4040);
}

TEST(IpAddressTest, Classifies) {
  EXPECT_TRUE(IpAddress::parse("127.0.0.2")->is_loopback());
  EXPECT_TRUE(IpAddress::parse("::1")->is_loopback());
  EXPECT_TRUE(IpAddress::parse("::ffff:127.0.0.1")->is_loopback());
  EXPECT_TRUE(IpAddress::parse("192.168.1.1")->is_private());
  EXPECT_TRUE(IpAddress::parse("100.64.0.1")->is_private());
  EXPECT_TRUE(IpAddress::parse("fd00::1")->is_private());
  EXPECT_FALSE(IpAddress::parse("203.0.113.5")->is_private());
  EXPECT_TRUE(IpAddress::parse("fe80::1")->is_link_local());
  EXPECT_TRUE(IpAddress::parse("0.0.0.0")->is_unspecified());
  EXPECT_EQ(IpAddress::parse("::ffff:203.0.113.5")->unmapped().to_string(), "203.0.113.5");
}

RC_GTEST_PROP(SocketAddressProperty, FormatThenParseIsIdentity,
              (std::array<std::uint8_t, 16> raw, std::uint16_t port, bool v6)) {
  IpAddress ip = v6 ? IpAddress::v6(raw) : IpAddress::v4({raw[0], raw[1], raw[2], raw[3]});
  SocketAddress a(ip, port);
  auto back = SocketAddress::parse(a.to_string());
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == a);
}

}  // namespace
}  // namespace peertun::base
