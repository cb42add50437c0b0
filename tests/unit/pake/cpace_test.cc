#include "pake/cpace.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <string>

#include "base/random.h"

namespace peertun::pake::cpace {
namespace {

wire::Bytes hex(std::string_view text) { return wire::from_hex(text).value(); }

template <std::size_t N>
std::array<std::uint8_t, N> hex_array(std::string_view text) {
  const wire::Bytes b = hex(text);
  std::array<std::uint8_t, N> out{};
  EXPECT_EQ(b.size(), N);
  std::copy_n(b.begin(), std::min(N, b.size()), out.begin());
  return out;
}

wire::ByteView text(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

class CpaceTest : public ::testing::Test {
 protected:
  void SetUp() override { base::init_crypto(); }
};

// draft-irtf-cfrg-cpace-21, appendix A.1.2 and A.1.4.
TEST_F(CpaceTest, PrependLenAndLvCatVectors) {
  EXPECT_EQ(wire::to_hex(prepend_len({})), "00");
  EXPECT_EQ(wire::to_hex(prepend_len(text("1234"))), "0431323334");
  wire::Bytes b127(127);
  wire::Bytes b128(128);
  for (std::size_t i = 0; i < 128; ++i) {
    if (i < 127) {
      b127[i] = static_cast<std::uint8_t>(i);
    }
    b128[i] = static_cast<std::uint8_t>(i);
  }
  const wire::Bytes p127 = prepend_len(b127);
  ASSERT_EQ(p127.size(), 128u);
  EXPECT_EQ(p127[0], 0x7f);
  EXPECT_TRUE(std::equal(b127.begin(), b127.end(), p127.begin() + 1));
  const wire::Bytes p128 = prepend_len(b128);
  ASSERT_EQ(p128.size(), 130u);
  EXPECT_EQ(p128[0], 0x80);
  EXPECT_EQ(p128[1], 0x01);
  EXPECT_TRUE(std::equal(b128.begin(), b128.end(), p128.begin() + 2));
  EXPECT_EQ(wire::to_hex(lv_cat({text("1234"), text("5"), text(""), text("6789")})),
            "04313233340135000436373839");
}

// draft-irtf-cfrg-cpace-21, appendix B.3 (CPACE-RISTR255-SHA512).
constexpr std::string_view kVecCi = "0b415f696e69746961746f720b425f726573706f6e646572";
constexpr std::string_view kVecSid = "7e4b4791d6a8ef019b936c79fb7f2c57";
constexpr std::string_view kVecYa =
    "da3d23700a9e5699258aef94dc060dfda5ebb61f02a5ea77fad53f4ff0976d08";
constexpr std::string_view kVecYaPub =
    "d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b9157";
constexpr std::string_view kVecYb =
    "d2316b454718c35362d83d69df6320f38578ed5984651435e2949762d900b80d";
constexpr std::string_view kVecYbPub =
    "3ea7e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f7258";
constexpr std::string_view kVecK =
    "80b69a8a76457ab6a4d7f887a4bf6b55a2f80ac19c333f917a05fc9887c8b40f";
constexpr std::string_view kVecTranscript =
    "20d6bac480f2c386c394efc7c47adb9925dcd2630b64f240c50f8d0eec482b915703414461203ea7"
    "e0b19560d7c0b0f5734f63b955286dfa8232b5ebe63324e2d9e7433f725803414462";
constexpr std::string_view kVecIsk =
    "b69effbf61b51d56401c0f65601abe428de8206feaaf0e32198896dcae7b35cd2b38950a39dfd5d4a79164"
    "614c2984f7daa460b588c1e80c3fa2068af7900447";

TEST_F(CpaceTest, GeneratorVector) {
  const wire::Bytes ci = hex(kVecCi);
  const wire::Bytes sid = hex(kVecSid);
  const wire::Bytes gen_str = generator_string(text(kDsi), text("Password"), ci, sid, 128);
  EXPECT_EQ(wire::to_hex(gen_str),
            "11435061636552697374726574746f3235350850617373776f726464"
            "00000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000000000000000000000000000"
            "00000000000000000000000000000000180b415f696e69746961746f"
            "720b425f726573706f6e646572107e4b4791d6a8ef019b936c79fb7f"
            "2c57");
  EXPECT_EQ(gen_str.size(), 170u);  // ZPAD length 100
  EXPECT_EQ(wire::to_hex(calculate_generator(text("Password"), ci, sid)),
            "222b6b195fe84b1652badb6f6a3ae3d24341e7306967f0b8115b40d5698c7e56");
}

TEST_F(CpaceTest, GeneratorStringPadsOnlyShortPasswords) {
  // A PRS longer than a hash block gets no padding (len_zpad = MAX(0, ...)).
  const wire::Bytes long_prs(200, 'x');
  const wire::Bytes s = generator_string(text(kDsi), long_prs, {}, {}, 128);
  // lv(DSI) = 18, lv(PRS) = 2 + 200, lv(zpad = "") = 1, lv(CI) = 1, lv(sid) = 1.
  EXPECT_EQ(s.size(), 18u + 202u + 1u + 1u + 1u);
}

TEST_F(CpaceTest, ProtocolVectorsBothRoles) {
  const wire::Bytes ci = hex(kVecCi);
  const wire::Bytes sid = hex(kVecSid);
  const Inputs in{
      .prs = text("Password"), .ci = ci, .sid = sid, .ad_a = text("ADa"), .ad_b = text("ADb")};
  auto a = Cpace::start_with_scalar_for_testing(Role::A, in, hex_array<32>(kVecYa));
  auto b = Cpace::start_with_scalar_for_testing(Role::B, in, hex_array<32>(kVecYb));
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(wire::to_hex(a->share()), kVecYaPub);
  EXPECT_EQ(wire::to_hex(b->share()), kVecYbPub);

  auto k = scalar_mult_vfy(hex_array<32>(kVecYa), hex(kVecYbPub));
  ASSERT_TRUE(k);
  EXPECT_EQ(wire::to_hex(*k), kVecK);

  auto ra = a->finish(b->share());
  auto rb = b->finish(a->share());
  ASSERT_TRUE(ra);
  ASSERT_TRUE(rb);
  EXPECT_EQ(wire::to_hex(ra->transcript), kVecTranscript);
  EXPECT_EQ(wire::to_hex(rb->transcript), kVecTranscript);
  EXPECT_EQ(wire::to_hex(ra->isk), kVecIsk);
  EXPECT_EQ(wire::to_hex(rb->isk), kVecIsk);
}

// draft-irtf-cfrg-cpace-21, appendix B.3.10 and B.3.11.
TEST_F(CpaceTest, ScalarMultVfyVectors) {
  const auto s = hex_array<32>("7cd0e075fa7955ba52c02759a6c90dbbfc10e6d40aea8d283e407d88cf538a05");
  auto valid =
      scalar_mult_vfy(s, hex("2c3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d654b4a51c"));
  ASSERT_TRUE(valid);
  EXPECT_EQ(wire::to_hex(*valid),
            "7c13645fe790a468f62c39beb7388e541d8405d1ade69d1778c5fe3e7f6b600e");
  EXPECT_EQ(scalar_mult_vfy(s, hex("2b3c6b8c4f3800e7aef6864025b4ed79bd599117e427c41bd47d93d6"
                                   "54b4a51c"))
                .error(),
            make_error_code(Errc::InvalidShare));
  EXPECT_EQ(scalar_mult_vfy(s, wire::Bytes(32, 0)).error(), make_error_code(Errc::InvalidShare));
  EXPECT_EQ(scalar_mult_vfy(s, wire::Bytes(31, 1)).error(), make_error_code(Errc::InvalidShare));
}

JoinCode test_code(std::string secret = "7XKPQ419") {
  return JoinCode{"2A91", base::Secret(std::move(secret))};
}

TEST_F(CpaceTest, SameCodeSameKeys) {
  const wire::Bytes sid = hex(kVecSid);
  auto a = Cpace::start(Role::A, test_code(), sid);
  auto b = Cpace::start(Role::B, test_code(), sid);
  ASSERT_TRUE(a && b);
  auto ra = a->finish(b->share());
  auto rb = b->finish(a->share());
  ASSERT_TRUE(ra && rb);
  EXPECT_EQ(ra->isk, rb->isk);
  const SessionKeys ka = derive_session_keys(ra->isk);
  const SessionKeys kb = derive_session_keys(rb->isk);
  EXPECT_EQ(ka.traffic_ab, kb.traffic_ab);
  EXPECT_EQ(ka.session_secret, kb.session_secret);
  // Every label gives a distinct key.
  EXPECT_NE(ka.traffic_ab, ka.traffic_ba);
  EXPECT_NE(ka.confirm_a, ka.confirm_b);
  EXPECT_NE(ka.session_secret, ka.traffic_ab);
  EXPECT_NE(ka.session_secret, ka.confirm_a);
  // Confirmation tags verify across, and only for the right sender.
  const Tag ta = confirmation_tag(ka, Role::A, ra->transcript);
  EXPECT_TRUE(verify_confirmation(kb, Role::A, rb->transcript, ta));
  EXPECT_EQ(verify_confirmation(kb, Role::B, rb->transcript, ta).error(),
            make_error_code(Errc::WrongCode));
  EXPECT_EQ(verify_confirmation(kb, Role::A, rb->transcript, wire::ByteView(ta).first(31)).error(),
            make_error_code(Errc::Truncated));
}

TEST_F(CpaceTest, DifferentSecretOrSessionGivesDifferentKeys) {
  const wire::Bytes sid = hex(kVecSid);
  wire::Bytes other_sid = sid;
  other_sid[0] ^= 1;
  auto a = Cpace::start(Role::A, test_code(), sid);
  auto b_wrong_code = Cpace::start(Role::B, test_code("7XKPQ41A"), sid);
  auto b_wrong_sid = Cpace::start(Role::B, test_code(), other_sid);
  ASSERT_TRUE(a && b_wrong_code && b_wrong_sid);
  for (auto* b : {&*b_wrong_code, &*b_wrong_sid}) {
    auto ra = a->finish(b->share());
    auto rb = b->finish(a->share());
    ASSERT_TRUE(ra && rb);
    EXPECT_NE(ra->isk, rb->isk);
  }
}

TEST_F(CpaceTest, RejectsBadShares) {
  auto a = Cpace::start(Role::A, test_code(), hex(kVecSid));
  ASSERT_TRUE(a);
  const Point own = a->share();
  EXPECT_EQ(a->finish(own).error(), make_error_code(Errc::InvalidShare));  // reflection
  EXPECT_EQ(a->finish(wire::Bytes(32, 0)).error(), make_error_code(Errc::InvalidShare));
  EXPECT_EQ(a->finish(wire::Bytes(32, 0xff)).error(), make_error_code(Errc::InvalidShare));
  EXPECT_EQ(a->finish(wire::Bytes(33, 1)).error(), make_error_code(Errc::InvalidShare));
  EXPECT_EQ(a->finish({}).error(), make_error_code(Errc::InvalidShare));
}

// Any 32 bytes as a peer share: an error or a key, never a crash, and the same answer
// for the same input.
RC_GTEST_PROP(CpaceProperty, ArbitrarySharesAreHandled, (std::vector<std::uint8_t> share)) {
  base::init_crypto();
  share.resize(32);
  auto a = Cpace::start(Role::A, test_code(), wire::Bytes{1, 2, 3});
  RC_ASSERT(a.has_value());
  auto r1 = a->finish(share);
  auto r2 = a->finish(share);
  RC_ASSERT(r1.has_value() == r2.has_value());
  if (r1) {
    RC_ASSERT(r1->isk == r2->isk);
  }
}

}  // namespace
}  // namespace peertun::pake::cpace
