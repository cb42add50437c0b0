#include "quic/core/identity.h"

#include <gtest/gtest.h>

#include "quic/core/errc.h"

namespace peertun::quic {
namespace {

TEST(IdentityTest, EachSessionGetsItsOwnCertificateAndFingerprint) {
  auto a = Identity::generate();
  auto b = Identity::generate();
  ASSERT_TRUE(a) << a.error().message();
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_FALSE((*a)->certificate_der().empty());
  EXPECT_NE((*a)->fingerprint(), (*b)->fingerprint());
  EXPECT_EQ(Fingerprint::of_der((*a)->certificate_der()), (*a)->fingerprint());
}

TEST(IdentityTest, FingerprintHexRoundTrips) {
  auto id = Identity::generate();
  ASSERT_TRUE(id);
  const auto hex = (*id)->fingerprint().to_hex();
  EXPECT_EQ(hex.size(), 64u);
  auto parsed = Fingerprint::parse(hex);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, (*id)->fingerprint());
  std::string upper = hex;
  for (auto& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  EXPECT_EQ(*Fingerprint::parse(upper), (*id)->fingerprint());
}

TEST(IdentityTest, BadFingerprintTextIsAClearError) {
  for (std::string_view bad :
       {std::string_view(""), std::string_view("abc"), std::string_view("zz")}) {
    auto r = Fingerprint::parse(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error(), make_error_code(Errc::BadFingerprint));
  }
  std::string almost(64, 'a');
  almost[10] = 'g';
  EXPECT_FALSE(Fingerprint::parse(almost));
}

}  // namespace
}  // namespace peertun::quic
