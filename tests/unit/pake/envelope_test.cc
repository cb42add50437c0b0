#include "pake/envelope.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>

namespace peertun::pake {
namespace {

std::array<std::uint8_t, 32> filled(std::uint8_t v) {
  std::array<std::uint8_t, 32> a{};
  a.fill(v);
  return a;
}

TEST(EnvelopeTest, ShareLayout) {
  const wire::Bytes b = encode_share(filled(0xab));
  ASSERT_EQ(b.size(), 34u);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[1], 1);
  EXPECT_EQ(b[2], 0xab);
  auto env = decode_envelope(b);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->type, MessageType::Share);
  EXPECT_EQ(env->counter, 0u);
  EXPECT_TRUE(std::ranges::equal(env->body, filled(0xab)));
}

TEST(EnvelopeTest, SealedLayout) {
  const wire::Bytes ct(16, 0x5a);
  const wire::Bytes b = encode_sealed(0x0102030405060708ull, ct);
  EXPECT_EQ(wire::to_hex(b),
            "0103"
            "0102030405060708"
            "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a");
  auto env = decode_envelope(b);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->type, MessageType::Sealed);
  EXPECT_EQ(env->counter, 0x0102030405060708ull);
  EXPECT_TRUE(std::ranges::equal(env->body, ct));
}

TEST(EnvelopeTest, RejectsMalformed) {
  struct Case {
    const char* hex;
    Errc want;
  };
  const std::string share_body(64, 'a');
  for (const Case& c : {
           Case{"", Errc::Truncated}, Case{"01", Errc::Truncated}, Case{"0201", Errc::BadVersion},
           Case{"0001", Errc::BadVersion}, Case{"0100", Errc::UnknownType},
           Case{"0104", Errc::UnknownType}, Case{"01ff", Errc::UnknownType},
           Case{"0101", Errc::Truncated}, Case{"0102aabb", Errc::Truncated},
           Case{"0103", Errc::Truncated}, Case{"01030000000000000000", Errc::Truncated},
           Case{"0103000000000000000000112233445566778899aabbccddee", Errc::Truncated},  // 15
       }) {
    auto env = decode_envelope(wire::from_hex(c.hex).value());
    ASSERT_FALSE(env) << c.hex;
    EXPECT_EQ(env.error(), make_error_code(c.want)) << c.hex;
  }
  wire::Bytes long_share = encode_share(filled(1));
  long_share.push_back(0);
  EXPECT_EQ(decode_envelope(long_share).error(), make_error_code(Errc::TrailingBytes));
  wire::Bytes short_confirm = encode_confirm(filled(1));
  short_confirm.pop_back();
  EXPECT_EQ(decode_envelope(short_confirm).error(), make_error_code(Errc::Truncated));
}

RC_GTEST_PROP(EnvelopeProperty, FixedBodiesRoundTrip, (bool confirm)) {
  const auto body =
      *rc::gen::container<std::array<std::uint8_t, 32>>(rc::gen::arbitrary<std::uint8_t>());
  const wire::Bytes b = confirm ? encode_confirm(body) : encode_share(body);
  RC_ASSERT(b.size() == kEnvelopeHeaderSize + 32);
  auto env = decode_envelope(b);
  RC_ASSERT(env.has_value());
  RC_ASSERT(env->type == (confirm ? MessageType::Confirm : MessageType::Share));
  RC_ASSERT(std::ranges::equal(env->body, body));
}

RC_GTEST_PROP(EnvelopeProperty, SealedRoundTrip,
              (std::uint64_t counter, std::vector<std::uint8_t> ct)) {
  ct.resize(ct.size() + kAeadTagSize);
  const wire::Bytes b = encode_sealed(counter, ct);
  RC_ASSERT(b.size() == kEnvelopeHeaderSize + kCounterSize + ct.size());
  auto env = decode_envelope(b);
  RC_ASSERT(env.has_value());
  RC_ASSERT(env->type == MessageType::Sealed);
  RC_ASSERT(env->counter == counter);
  RC_ASSERT(std::ranges::equal(env->body, ct));
}

// Whatever the bytes, decoding answers and a decoded envelope re-encodes to the input.
RC_GTEST_PROP(EnvelopeProperty, DecodeNeverCrashesAndIsCanonical, (std::vector<std::uint8_t> in)) {
  auto env = decode_envelope(in);
  if (!env) {
    return;
  }
  wire::Bytes again;
  switch (env->type) {
    case MessageType::Share:
      again = encode_share(std::span<const std::uint8_t, 32>(env->body.data(), 32));
      break;
    case MessageType::Confirm:
      again = encode_confirm(std::span<const std::uint8_t, 32>(env->body.data(), 32));
      break;
    case MessageType::Sealed:
      again = encode_sealed(env->counter, env->body);
      break;
  }
  RC_ASSERT(again == in);
}

}  // namespace
}  // namespace peertun::pake
