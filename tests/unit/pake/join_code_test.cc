#include "pake/join_code.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <set>
#include <string>

#include "base/random.h"
#include "wire/crockford.h"

namespace peertun::pake {
namespace {

JoinCode code(std::string nameplate, std::string secret) {
  return JoinCode{std::move(nameplate), base::Secret(std::move(secret))};
}

TEST(JoinCodeTest, FormatsTheDocumentedShape) {
  EXPECT_EQ(format_join_code(code("2A91", "7XKPQ4L9")), "pt-p2p-2A91-7XKP-Q4L9");
}

TEST(JoinCodeTest, ParsesCanonicalCode) {
  auto parsed = parse_join_code("pt-p2p-2A91-7XKP-Q4L9");
  ASSERT_TRUE(parsed) << parsed.error().message();
  EXPECT_EQ(parsed->nameplate, "2A91");
  // L is a confusable for 1: the canonical secret spells it as 1.
  EXPECT_EQ(parsed->secret.reveal(), "7XKPQ419");
}

TEST(JoinCodeTest, ToleratesWhatPeopleType) {
  const JoinCode want = code("2A91", "7XKPQ419");
  for (const char* text : {
           "PT-P2P-2a91-7xkp-q4l9", "pt-p2p-2A91-7XKP-Q4L9", "2A91 7XKP Q4L9", "2A91-7XKP-Q4L9",
           "2a917xkpq4l9", "   pt-p2p-2A91-7XKP-Q4L9 \n", "\tpt-p2p-2A91-7XKP-Q419\r\n",
           "pt-p2p 2A91 7XKP Q4L9", "ptp2p2A917XKPQ4L9",
           "pt-p2p-2A9I-7XKP-Q4l9",  // I and l read as 1
       }) {
    auto parsed = parse_join_code(text);
    ASSERT_TRUE(parsed) << text << ": " << parsed.error().message();
    EXPECT_EQ(*parsed, want) << text;
  }
}

TEST(JoinCodeTest, ConfusablesDecodeToDigits) {
  auto parsed = parse_join_code("pt-p2p-OOOO-IIII-LLLL");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->nameplate, "0000");
  EXPECT_EQ(parsed->secret.reveal(), "11111111");
  auto lower = parse_join_code("pt-p2p-oooo-iiii-llll");
  ASSERT_TRUE(lower);
  EXPECT_EQ(*lower, *parsed);
}

TEST(JoinCodeTest, RejectsWithActionableErrors) {
  struct Case {
    const char* text;
    Errc want;
  };
  for (const Case& c : {
           Case{"", Errc::Empty},
           Case{"   \t\n", Errc::Empty},
           Case{"---", Errc::Empty},
           Case{"pt-p2p-2A91-7XKP-Q4U9", Errc::BadSymbol},  // U is not Crockford
           Case{"pt-p2p-2A91-7XKP-Q4L!", Errc::BadSymbol},
           Case{"pt_p2p_2A91_7XKP_Q4L9", Errc::BadSymbol},
           Case{"pt-p2p-2A91-7XKP-Q4L9\x01", Errc::BadSymbol},
           Case{"https://x/2A91", Errc::BadSymbol},
           Case{"pt-tcp-2A91-7XKP-Q4L9", Errc::BadPrefix},
           Case{"xx-p2p-2A91-7XKP-Q4L9", Errc::BadPrefix},
           Case{"pt-p2p-2A91-7XKP-Q4L", Errc::BadLength},
           Case{"pt-p2p-2A91-7XKP-Q4L99", Errc::BadLength},
           Case{"pt-p2p-", Errc::BadLength},
           Case{"2A91-7XKP", Errc::BadLength},
           Case{"2A91-7XKP-Q4L9-ZZZZ", Errc::BadLength},
       }) {
    auto parsed = parse_join_code(c.text);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_EQ(parsed.error(), make_error_code(c.want)) << c.text;
    EXPECT_EQ(parsed.error().category().name(), std::string("pake"));
  }
}

TEST(JoinCodeTest, ErrorMessagesNeverEchoTheSecret) {
  for (const char* text :
       {"pt-p2p-2A91-7XKP-QQQU", "pt-p2p-2A91-7XKP-QQQ", "zz-p2p-2A91-7XKP-QQQQ"}) {
    auto parsed = parse_join_code(text);
    ASSERT_FALSE(parsed);
    const std::string msg = parsed.error().message();
    EXPECT_EQ(msg.find("QQQ"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("7XKP"), std::string::npos) << msg;
    EXPECT_FALSE(msg.empty());
  }
}

TEST(JoinCodeTest, NormalizesNameplates) {
  EXPECT_EQ(normalize_nameplate("2a91").value(), "2A91");
  EXPECT_EQ(normalize_nameplate(" 2AO1 ").value(), "2A01");
  EXPECT_EQ(normalize_nameplate("il00").value(), "1100");
  EXPECT_EQ(normalize_nameplate("").error(), make_error_code(Errc::Empty));
  EXPECT_EQ(normalize_nameplate("2A9").error(), make_error_code(Errc::BadLength));
  EXPECT_EQ(normalize_nameplate("2A911").error(), make_error_code(Errc::BadLength));
  EXPECT_EQ(normalize_nameplate("2A-1").error(), make_error_code(Errc::BadSymbol));
  EXPECT_EQ(normalize_nameplate("2AU1").error(), make_error_code(Errc::BadSymbol));
}

TEST(JoinCodeTest, GeneratesFreshCanonicalSecrets) {
  base::init_crypto();
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    auto c = generate_join_code("2a9l");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->nameplate, "2A91");
    ASSERT_EQ(c->secret.reveal().size(), 8u);
    EXPECT_EQ(wire::crockford_encode(*wire::crockford_decode(c->secret.reveal()), 8),
              c->secret.reveal());
    seen.insert(c->secret.reveal());
  }
  // 64 draws from 2^40: a repeat means the secret is not random.
  EXPECT_EQ(seen.size(), 64u);
  EXPECT_EQ(generate_join_code("toolong").error(), make_error_code(Errc::BadLength));
}

RC_GTEST_PROP(JoinCodeProperty, ParseFormatIsIdentity, ()) {
  const auto np = *rc::gen::inRange<std::uint64_t>(0, 1u << 20);
  const auto secret = *rc::gen::inRange<std::uint64_t>(0, 1ull << 40);
  const JoinCode c = code(wire::crockford_encode(np, 4), wire::crockford_encode(secret, 8));
  const std::string text = format_join_code(c);
  RC_ASSERT(text.size() == 21u);  // "pt-p2p-" + 4 + "-" + 4 + "-" + 4
  auto parsed = parse_join_code(text);
  RC_ASSERT(parsed.has_value());
  RC_ASSERT(*parsed == c);
  RC_ASSERT(format_join_code(*parsed) == text);
}

RC_GTEST_PROP(JoinCodeProperty, GeneratedCodesRoundTrip, ()) {
  base::init_crypto();
  const auto np = *rc::gen::inRange<std::uint64_t>(0, 1u << 20);
  auto c = generate_join_code(wire::crockford_encode(np, 4));
  RC_ASSERT(c.has_value());
  auto parsed = parse_join_code(format_join_code(*c));
  RC_ASSERT(parsed.has_value());
  RC_ASSERT(*parsed == *c);
}

}  // namespace
}  // namespace peertun::pake
