#include "client/peer_info.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace peertun::client {
namespace {

TEST(PeerInfoTest, RoundTrips) {
  PeerInfo info;
  info.reflexive = base::SocketAddress::parse("198.51.100.7:38291");
  info.host = {*base::SocketAddress::parse("192.168.1.2:5000"),
               *base::SocketAddress::parse("[2001:db8::2]:5000")};
  auto back = decode_peer_info(encode_peer_info(info));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, info);
  EXPECT_EQ(best_address(info), info.reflexive);

  info.nat = traversal::quick_mapping_verdict(*base::SocketAddress::parse("198.51.100.7:38291"),
                                              *base::SocketAddress::parse("198.51.100.7:40000"),
                                              std::nullopt);
  ASSERT_EQ(info.nat->mapping, traversal::MappingBehavior::AddressAndPortDependent);
  info.fingerprint = std::string(64, 'a');
  info.share_name = "./my shared f\xc3\xb6lder";
  back = decode_peer_info(encode_peer_info(info));
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, info);
}

TEST(PeerInfoTest, BestAddressFallsBackToHost) {
  PeerInfo info;
  EXPECT_FALSE(best_address(info));
  info.host = {*base::SocketAddress::parse("192.168.1.2:5000")};
  EXPECT_EQ(best_address(info), info.host.front());
}

TEST(PeerInfoTest, RejectsMalformed) {
  for (const char* bad :
       {"", "[]", "{}", "{\"v\":2,\"type\":\"peer_info\"}", "{\"v\":1,\"type\":\"other\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"reflexive\":5}",
        "{\"v\":1,\"type\":\"peer_info\",\"reflexive\":\"1.2.3.4\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"host\":[\"x\"]}",
        "{\"v\":1,\"type\":\"peer_info\",\"host\":\"1.2.3.4:5\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"nat\":7}",
        "{\"v\":1,\"type\":\"peer_info\",\"fingerprint\":\"abc\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"fingerprint\":7}",
        // A share name is printed on the peer's terminal: no escapes, no line breaks.
        "{\"v\":1,\"type\":\"peer_info\",\"share_name\":\"\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"share_name\":\"a\\u001b[2Jb\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"share_name\":\"a\\nb\"}",
        "{\"v\":1,\"type\":\"peer_info\",\"share_name\":3}",
        "{\"v\":1,\"type\":\"peer_info\",\"nat\":{\"public\":\"x\"}}"}) {
    EXPECT_FALSE(decode_peer_info(bad)) << bad;
  }
  std::string many = "{\"v\":1,\"type\":\"peer_info\",\"host\":[";
  for (std::size_t i = 0; i <= kMaxHostCandidates; ++i) {
    many += (i ? ",\"" : "\"") + std::string("1.2.3.4:5\"");
  }
  many += "]}";
  EXPECT_FALSE(decode_peer_info(many));
  EXPECT_FALSE(decode_peer_info(std::string(kMaxPeerInfoBytes + 1, ' ')));
  EXPECT_FALSE(decode_peer_info("{\"v\":1,\"type\":\"peer_info\",\"share_name\":\"" +
                                std::string(kMaxShareNameBytes + 1, 'x') + "\"}"));
}

TEST(PeerInfoTest, IgnoresUnknownFieldsForForwardCompatibility) {
  auto info = decode_peer_info(
      "{\"v\":1,\"type\":\"peer_info\",\"host\":[],\"relay_candidate\":\"ab\",\"future\":{}}");
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->host.empty());
}

RC_GTEST_PROP(PeerInfoProperty, DecodeEncodeIsIdentity,
              (std::array<std::uint8_t, 4> ip, std::uint16_t port, bool has_reflexive,
               std::uint8_t host_count)) {
  PeerInfo info;
  if (has_reflexive) {
    info.reflexive = base::SocketAddress(base::IpAddress::v4(ip), port);
  }
  for (std::size_t i = 0; i < host_count % (kMaxHostCandidates + 1); ++i) {
    info.host.emplace_back(base::IpAddress::v4(ip), static_cast<std::uint16_t>(port + i));
  }
  auto back = decode_peer_info(encode_peer_info(info));
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == info);
}

}  // namespace
}  // namespace peertun::client
