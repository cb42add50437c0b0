#include "pake/sealed.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "base/random.h"
#include "pake/envelope.h"

namespace peertun::pake {
namespace {

wire::ByteView text(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

struct Pair {
  SealedChannel a;
  SealedChannel b;
};

Pair make_pair() {
  base::init_crypto();
  cpace::Key ab{};
  cpace::Key ba{};
  base::random_bytes(ab);
  base::random_bytes(ba);
  return Pair{SealedChannel(Role::A, ab, ba), SealedChannel(Role::B, ab, ba)};
}

TEST(SealedChannelTest, RoundTripBothDirections) {
  auto [a, b] = make_pair();
  for (int i = 0; i < 3; ++i) {
    const wire::Bytes m = a.seal(text("candidates: 198.51.100.7:38291"));
    EXPECT_EQ(m.size(), 2u + 8u + 30u + 16u);
    auto opened = b.open(m);
    ASSERT_TRUE(opened) << opened.error().message();
    EXPECT_EQ(*opened, wire::Bytes(text("candidates: 198.51.100.7:38291").begin(),
                                   text("candidates: 198.51.100.7:38291").end()));
  }
  const wire::Bytes reply = b.seal({});
  auto opened = a.open(reply);
  ASSERT_TRUE(opened);
  EXPECT_TRUE(opened->empty());
  EXPECT_EQ(a.sent(), 3u);
  EXPECT_EQ(b.received(), 3u);
  EXPECT_EQ(a.received(), 1u);
}

TEST(SealedChannelTest, CiphertextHidesPlaintext) {
  auto [a, b] = make_pair();
  const std::string secret = "fingerprint=SECRETSECRETSECRET";
  const wire::Bytes m = a.seal(text(secret));
  const std::string raw(m.begin(), m.end());
  EXPECT_EQ(raw.find("SECRET"), std::string::npos);
  // The same plaintext twice seals differently (fresh counter, fresh nonce).
  EXPECT_NE(a.seal(text(secret)), m);
}

TEST(SealedChannelTest, DetectsEveryFlippedBit) {
  auto [a, b] = make_pair();
  const wire::Bytes m = a.seal(text("hello"));
  for (std::size_t i = 0; i < m.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      wire::Bytes t = m;
      t[i] = static_cast<std::uint8_t>(t[i] ^ (1u << bit));
      auto r = b.open(t);
      ASSERT_FALSE(r) << "byte " << i << " bit " << bit;
    }
  }
  // Flipped body bits are Tampered specifically, and the original still opens after.
  wire::Bytes t = m;
  t.back() ^= 1;
  EXPECT_EQ(b.open(t).error(), make_error_code(Errc::Tampered));
  EXPECT_TRUE(b.open(m));
}

TEST(SealedChannelTest, DetectsTruncation) {
  auto [a, b] = make_pair();
  const wire::Bytes m = a.seal(text("hello"));
  for (std::size_t n = 0; n < 2 + 8 + 16; ++n) {
    auto r = b.open(wire::ByteView(m).first(n));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(Errc::Truncated)) << n;
  }
  // Cut inside the ciphertext but long enough to parse: authentication fails.
  EXPECT_EQ(b.open(wire::ByteView(m).first(m.size() - 1)).error(), make_error_code(Errc::Tampered));
}

TEST(SealedChannelTest, DetectsReplayReorderAndDeletion) {
  auto [a, b] = make_pair();
  const wire::Bytes m0 = a.seal(text("zero"));
  const wire::Bytes m1 = a.seal(text("one"));
  const wire::Bytes m2 = a.seal(text("two"));
  // Deleting m0 (or reordering m1 first) shows as OutOfOrder.
  EXPECT_EQ(b.open(m1).error(), make_error_code(Errc::OutOfOrder));
  EXPECT_EQ(b.open(m2).error(), make_error_code(Errc::OutOfOrder));
  ASSERT_TRUE(b.open(m0));
  // Replaying m0 afterwards.
  EXPECT_EQ(b.open(m0).error(), make_error_code(Errc::Replayed));
  ASSERT_TRUE(b.open(m1));
  ASSERT_TRUE(b.open(m2));
  EXPECT_EQ(b.open(m1).error(), make_error_code(Errc::Replayed));
  EXPECT_EQ(b.received(), 3u);
}

TEST(SealedChannelTest, CounterIsAuthenticated) {
  auto [a, b] = make_pair();
  ASSERT_TRUE(b.open(a.seal(text("zero"))));
  // The relay rewrites an old message's counter to the expected one: still rejected.
  wire::Bytes m = a.seal(text("one"));
  wire::Bytes forged = m;
  forged[9] = 0;  // counter 1 -> 0 (an already used counter)
  EXPECT_EQ(b.open(forged).error(), make_error_code(Errc::Replayed));
  wire::Bytes old = a.seal(text("two"));  // counter 2
  old[9] = 1;
  EXPECT_EQ(b.open(old).error(), make_error_code(Errc::Tampered));
  EXPECT_TRUE(b.open(m));
}

TEST(SealedChannelTest, DirectionConfusionFails) {
  auto [a, b] = make_pair();
  const wire::Bytes m = a.seal(text("mine"));
  // A cannot open its own message (reflected by the relay): other key, other direction.
  EXPECT_EQ(a.open(m).error(), make_error_code(Errc::Tampered));
  // Nor can a channel built with swapped keys.
  cpace::Key k1{};
  cpace::Key k2{};
  base::random_bytes(k1);
  base::random_bytes(k2);
  SealedChannel a1(Role::A, k1, k2);
  SealedChannel a2(Role::A, k1, k2);
  EXPECT_EQ(a2.open(a1.seal(text("x"))).error(), make_error_code(Errc::Tampered));
  EXPECT_TRUE(b.open(m));
}

TEST(SealedChannelTest, RejectsOtherEnvelopeTypes) {
  auto [a, b] = make_pair();
  std::array<std::uint8_t, 32> body{};
  EXPECT_EQ(b.open(encode_share(body)).error(), make_error_code(Errc::ProtocolError));
  EXPECT_EQ(b.open(encode_confirm(body)).error(), make_error_code(Errc::ProtocolError));
}

RC_GTEST_PROP(SealedChannelProperty, RoundTripAnyMessages,
              (std::vector<std::vector<std::uint8_t>> messages)) {
  auto [a, b] = make_pair();
  for (const auto& m : messages) {
    const wire::Bytes sealed = a.seal(m);
    RC_ASSERT(sealed.size() == 2 + 8 + m.size() + 16);
    auto opened = b.open(sealed);
    RC_ASSERT(opened.has_value());
    RC_ASSERT(*opened == m);
  }
}

}  // namespace
}  // namespace peertun::pake
