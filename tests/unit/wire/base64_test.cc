#include "wire/base64.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>

namespace peertun::wire {
namespace {

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

// RFC 4648 §10 test vectors.
struct Vector {
  const char* plain;
  const char* encoded;
};
constexpr Vector kRfc4648Vectors[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(Base64Test, EncodesRfc4648Vectors) {
  for (const auto& v : kRfc4648Vectors) {
    EXPECT_EQ(base64_encode(bytes_of(v.plain)), v.encoded) << v.plain;
  }
}

TEST(Base64Test, DecodesRfc4648Vectors) {
  for (const auto& v : kRfc4648Vectors) {
    EXPECT_EQ(base64_decode(v.encoded), bytes_of(v.plain)) << v.encoded;
  }
}

TEST(Base64Test, UsesTheStandardAlphabetNotUrlSafe) {
  const Bytes data{0xfb, 0xff, 0xbf};
  EXPECT_EQ(base64_encode(data), "+/+/");
  EXPECT_EQ(base64_decode("+/+/"), data);
  EXPECT_FALSE(base64_decode("-_-_"));
}

TEST(Base64Test, RejectsBadCharacters) {
  for (const char* bad : {"Zm9v!A==", "Zm 9", "Zm9\n", "Zm9\x80", "Zm9-", "Zm_v", "Zg\t="}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
  EXPECT_FALSE(base64_decode(std::string_view("Zm\0v", 4)));
}

TEST(Base64Test, RejectsBadLengthAndPadding) {
  for (const char* bad : {"Z", "Zg", "Zg=", "Zm9", "Zm9vY", "Zg===", "====", "Z===", "=Zg=",
                          "Zg==Zm8=", "Zm=v", "Z=9v", "Zg=A", "Zm9vYg"}) {
    EXPECT_FALSE(base64_decode(bad)) << bad;
  }
}

TEST(Base64Test, RejectsNonCanonicalTrailingBits) {
  // RFC 4648 §3.5: "Zh==" and "Zm9=" decode to the same bytes as "Zg==" and "Zm8=" in
  // lenient decoders; the unused bits must be zero.
  EXPECT_FALSE(base64_decode("Zh=="));
  EXPECT_FALSE(base64_decode("Z/=="));
  EXPECT_FALSE(base64_decode("Zm9="));
  EXPECT_FALSE(base64_decode("Zm+="));
  EXPECT_TRUE(base64_decode("Zg=="));
  EXPECT_TRUE(base64_decode("Zm8="));
}

TEST(Base64Test, EnforcesTheDecodedSizeLimit) {
  EXPECT_EQ(base64_decode("Zm9vYmFy", 6), bytes_of("foobar"));
  EXPECT_FALSE(base64_decode("Zm9vYmFy", 5));
  EXPECT_EQ(base64_decode("Zm9vYg==", 4), bytes_of("foob"));
  EXPECT_FALSE(base64_decode("Zm9vYg==", 3));
  EXPECT_EQ(base64_decode("", 0), Bytes{});
}

TEST(Base64Test, EncodedSizeIsFourPerStartedTriple) {
  EXPECT_EQ(base64_encoded_size(0), 0u);
  EXPECT_EQ(base64_encoded_size(1), 4u);
  EXPECT_EQ(base64_encoded_size(3), 4u);
  EXPECT_EQ(base64_encoded_size(4), 8u);
  EXPECT_EQ(base64_encoded_size(16384), 21848u);
}

RC_GTEST_PROP(Base64Property, DecodeEncodeIsIdentity, (const Bytes& data)) {
  const auto text = base64_encode(data);
  RC_ASSERT(text.size() == base64_encoded_size(data.size()));
  RC_ASSERT(base64_decode(text) == data);
  RC_ASSERT(base64_decode(text, data.size()) == data);
}

// Strictness means the encoding is a bijection: whatever decodes re-encodes to itself.
RC_GTEST_PROP(Base64Property, AcceptedTextIsCanonical, (const std::string& text)) {
  const auto decoded = base64_decode(text);
  if (decoded) {
    RC_ASSERT(base64_encode(*decoded) == text);
  }
}

RC_GTEST_PROP(Base64Property, AcceptedMutationsAreCanonical, (const Bytes& data)) {
  auto text = base64_encode(data);
  RC_PRE(!text.empty());
  const auto pos = *rc::gen::inRange<std::size_t>(0, text.size());
  text[pos] = *rc::gen::arbitrary<char>();
  const auto decoded = base64_decode(text);
  if (decoded) {
    RC_ASSERT(base64_encode(*decoded) == text);
  }
}

}  // namespace
}  // namespace peertun::wire
