#include "stun/binding.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace peertun::stun {
namespace {

using base::SocketAddress;

const TransactionId kTxid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

SocketAddress addr(std::string_view text) { return SocketAddress::parse(text).value(); }

TEST(MakeBindingRequestTest, PlainRequestIsHeaderPlusFingerprint) {
  const Bytes b = make_binding_request(kTxid);
  ASSERT_EQ(b.size(), kHeaderSize + 8);
  auto m = parse(b);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->method(), Method::Binding);
  EXPECT_EQ(m->message_class(), MessageClass::Request);
  EXPECT_EQ(m->transaction_id(), kTxid);
  EXPECT_TRUE(verify_fingerprint(*m));
  EXPECT_FALSE(m->find(attr::kChangeRequest));
  EXPECT_EQ(make_binding_request(kTxid, {.fingerprint = false}).size(), kHeaderSize);
}

TEST(MakeBindingRequestTest, CarriesEveryOption) {
  const Bytes b = make_binding_request(kTxid, {.change_ip = true,
                                               .change_port = false,
                                               .response_port = 40000,
                                               .padding = 1500,
                                               .software = "peertun test",
                                               .fingerprint = true});
  // header + SOFTWARE(4+12) + CHANGE-REQUEST(8) + RESPONSE-PORT(8) + PADDING(4+1500) + FP(8)
  EXPECT_EQ(b.size(), 20u + 16 + 8 + 8 + 1504 + 8);
  auto m = parse(b);
  ASSERT_TRUE(m);
  EXPECT_EQ(decode_change_request(m->find(attr::kChangeRequest).value()).value(),
            (ChangeRequest{true, false}));
  EXPECT_EQ(decode_response_port(m->find(attr::kResponsePort).value()).value(), 40000);
  EXPECT_EQ(m->find(attr::kPadding).value().size(), 1500u);
  const ByteView sw = m->find(attr::kSoftware).value();
  EXPECT_EQ(std::string(sw.begin(), sw.end()), "peertun test");
  EXPECT_TRUE(verify_fingerprint(*m));
}

TEST(ParseBindingResponseTest, Rfc5769Ipv4Response) {
  const Bytes v = wire::from_hex(
                      "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220"
                      "002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
                      "80280004c07d4c96")
                      .value();
  auto m = parse(v);
  ASSERT_TRUE(m);
  auto r = parse_binding_response(*m);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(r->success);
  EXPECT_EQ(r->mapped_address, addr("192.0.2.1:32853"));
  EXPECT_FALSE(r->response_origin);
  EXPECT_FALSE(r->other_address);
}

TEST(ParseBindingResponseTest, PrefersXorMappedAndReadsRfc5780Attributes) {
  MessageBuilder b(Method::Binding, MessageClass::SuccessResponse, kTxid);
  b.add_address(attr::kMappedAddress, addr("10.0.0.1:1"));  // a NAT rewrote it: ignore
  b.add_xor_address(attr::kXorMappedAddress, addr("203.0.113.5:54321"));
  b.add_address(attr::kResponseOrigin, addr("198.51.100.1:3479"));
  b.add_address(attr::kOtherAddress, addr("198.51.100.2:3479"));
  const Bytes out = std::move(b).finish();
  auto r = parse_binding_response(parse(out).value());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mapped_address, addr("203.0.113.5:54321"));
  EXPECT_EQ(r->response_origin, addr("198.51.100.1:3479"));
  EXPECT_EQ(r->other_address, addr("198.51.100.2:3479"));
}

TEST(ParseBindingResponseTest, FallsBackToMappedAddress) {
  MessageBuilder b(Method::Binding, MessageClass::SuccessResponse, kTxid);
  b.add_address(attr::kMappedAddress, addr("[2001:db8::7]:9"));
  const Bytes out = std::move(b).finish();
  auto r = parse_binding_response(parse(out).value());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mapped_address, addr("[2001:db8::7]:9"));
}

TEST(ParseBindingResponseTest, ErrorResponse) {
  MessageBuilder b(Method::Binding, MessageClass::ErrorResponse, kTxid);
  b.add_error_code(420, "Unknown Attribute");
  const std::uint16_t unknown[] = {0x7777};
  b.add_unknown_attributes(unknown);
  const Bytes out = std::move(b).finish();
  auto r = parse_binding_response(parse(out).value());
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->success);
  EXPECT_EQ(r->error_code, 420);
  EXPECT_EQ(r->error_reason, "Unknown Attribute");
  EXPECT_EQ(r->unknown_attributes, std::vector<std::uint16_t>{0x7777});
}

TEST(ParseBindingResponseTest, RejectsWhatIsNotABindingResponse) {
  const Bytes request = make_binding_request(kTxid);
  EXPECT_EQ(parse_binding_response(parse(request).value()).error(), Errc::UnexpectedMessage);
  const Bytes allocate =
      MessageBuilder(Method::Allocate, MessageClass::SuccessResponse, kTxid).finish();
  EXPECT_EQ(parse_binding_response(parse(allocate).value()).error(), Errc::UnexpectedMessage);
  const Bytes empty =
      MessageBuilder(Method::Binding, MessageClass::SuccessResponse, kTxid).finish();
  EXPECT_EQ(parse_binding_response(parse(empty).value()).error(), Errc::MissingAttribute);
  const Bytes no_code =
      MessageBuilder(Method::Binding, MessageClass::ErrorResponse, kTxid).finish();
  EXPECT_EQ(parse_binding_response(parse(no_code).value()).error(), Errc::MissingAttribute);
  MessageBuilder bad(Method::Binding, MessageClass::SuccessResponse, kTxid);
  bad.add(attr::kXorMappedAddress, Bytes{0, 9, 0, 0, 1, 2, 3, 4});
  const Bytes bad_family = std::move(bad).finish();
  EXPECT_EQ(parse_binding_response(parse(bad_family).value()).error(), Errc::UnknownAddressFamily);
}

RC_GTEST_PROP(BindingProperty, RequestOptionsRoundTrip,
              (bool change_ip, bool change_port, std::uint16_t port, bool with_port)) {
  const auto padding = *rc::gen::inRange<std::size_t>(0, 2000);
  const Bytes b = make_binding_request(
      kTxid, {.change_ip = change_ip,
              .change_port = change_port,
              .response_port = with_port ? std::optional<std::uint16_t>(port) : std::nullopt,
              .padding = padding});
  const std::size_t expected = kHeaderSize + ((change_ip || change_port) ? 8 : 0) +
                               (with_port ? 8 : 0) +
                               (padding > 0 ? 4 + ((padding + 3) & ~std::size_t{3}) : 0) + 8;
  RC_ASSERT(b.size() == expected);
  auto m = parse(b);
  RC_ASSERT(m.has_value());
  if (change_ip || change_port) {
    RC_ASSERT(decode_change_request(m->find(attr::kChangeRequest).value()).value() ==
              (ChangeRequest{change_ip, change_port}));
  }
  RC_ASSERT(m->find(attr::kResponsePort).has_value() == with_port);
  if (with_port) {
    RC_ASSERT(decode_response_port(m->find(attr::kResponsePort).value()).value() == port);
  }
  RC_ASSERT(verify_fingerprint(*m).has_value());
}

}  // namespace
}  // namespace peertun::stun
