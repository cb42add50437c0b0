#include "quic/core/connection_id.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <array>
#include <vector>

namespace peertun::quic {
namespace {

bool has_cookie_at_3(std::span<const std::uint8_t> cid) {
  return cid.size() >= 7 &&
         std::equal(kStunMagicCookie.begin(), kStunMagicCookie.end(), cid.begin() + 3);
}

TEST(ConnectionIdTest, ScrubsTheCookieOutOfBytesThreeToSix) {
  std::array<std::uint8_t, 8> cid = {0xaa, 0xbb, 0xcc, 0x21, 0x12, 0xa4, 0x42, 0xdd};
  make_stun_safe(cid);
  EXPECT_FALSE(has_cookie_at_3(cid));
  // A short-header packet carrying it as DCID is not STUN-like, even with a greased
  // first byte of 0.
  std::vector<std::uint8_t> packet = {0x00};
  packet.insert(packet.end(), cid.begin(), cid.end());
  packet.resize(40, 0x55);
  EXPECT_FALSE(looks_like_stun(packet));
}

TEST(ConnectionIdTest, LooksLikeStunNeedsLowFirstByteAndCookie) {
  std::vector<std::uint8_t> stun = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
  stun.resize(20, 0);
  EXPECT_TRUE(looks_like_stun(stun));
  stun[0] = 0x04;
  EXPECT_FALSE(looks_like_stun(stun));
  stun[0] = 0x01;
  stun[7] = 0x43;
  EXPECT_FALSE(looks_like_stun(stun));
  EXPECT_FALSE(looks_like_stun(std::vector<std::uint8_t>{0x00, 0x01, 0x00}));
}

RC_GTEST_PROP(ConnectionIdTest, SafeIdsNeverCarryTheCookieAndOthersAreUntouched,
              (std::array<std::uint8_t, 8> raw, bool force_cookie)) {
  if (force_cookie) {
    std::copy(kStunMagicCookie.begin(), kStunMagicCookie.end(), raw.begin() + 3);
  }
  auto cid = raw;
  make_stun_safe(cid);
  RC_ASSERT(!has_cookie_at_3(cid));
  if (!has_cookie_at_3(raw)) {
    RC_ASSERT(cid == raw);
  }
}

TEST(ConnectionIdTest, GeneratedIdsOverManyDrawsAreSafeAndDistinct) {
  std::vector<std::array<std::uint8_t, kConnectionIdLength>> ids(100'000);
  for (auto& id : ids) {
    generate_connection_id(id);
    ASSERT_FALSE(has_cookie_at_3(id));
  }
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(std::adjacent_find(ids.begin(), ids.end()), ids.end());
}

}  // namespace
}  // namespace peertun::quic
