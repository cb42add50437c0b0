#include "stun/message.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <string>

namespace peertun::stun {
namespace {

using base::IpAddress;
using base::SocketAddress;

Bytes hex(std::string_view text) {
  auto b = wire::from_hex(text);
  EXPECT_TRUE(b.has_value()) << text;
  return b.value_or(Bytes{});
}

std::string str(ByteView v) { return std::string(v.begin(), v.end()); }

// RFC 5769 §2.1-§2.3 use this short-term password.
constexpr std::string_view kPassword = "VOkJxbRl1RmTxUk/WvJxBt";
const TransactionId kTxid{0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

// RFC 5769 §2.1 Sample Request.
const Bytes kSampleRequest =
    hex("000100582112a442b7e7a701bc34d686fa87dfae"
        "802200105354554e20746573742063 6c69656e74"
        "002400046e0001ff"
        "80290008932ff9b151263b36"
        "000600096576746a3a6836765920 2020"
        "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
        "80280004e57a3bcf");

// RFC 5769 §2.2 Sample IPv4 Response.
const Bytes kSampleIpv4Response =
    hex("0101003c2112a442b7e7a701bc34d686fa87dfae"
        "8022000b7465737420766563746f7220"
        "002000080001a147e112a643"
        "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
        "80280004c07d4c96");

// RFC 5769 §2.3 Sample IPv6 Response.
const Bytes kSampleIpv6Response =
    hex("010100482112a442b7e7a701bc34d686fa87dfae"
        "8022000b7465737420766563746f7220"
        "002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d9"
        "00080014a382954e4be67bf11784c97c8292c275bfe3ed41"
        "80280004c8fb0b4c");

// RFC 5769 §2.4 Sample Request with Long-Term Authentication.
const Bytes kSampleLongTerm =
    hex("000100602112a44278ad3433c6ad72c029da412e"
        "00060012e3839ee38388e383aae38383e382afe382b90000"
        "0015001c662f2f3439396b39353464364f4c33346f4c394653547679363473 41"
        "0014000b6578616d706c652e6f726700"
        "00080014f67024656dd64a3e02b8e0712e85c9a28ca89666");
const TransactionId kLongTermTxid{0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
                                  0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};
// "マトリックス" (MATRIX in katakana), the §2.4 username.
constexpr std::string_view kLongTermUser =
    "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9";
// §2.4's password is "The<U+00AD>M<U+00AA>tr<U+2168>"; SASLprep turns it into this.
constexpr std::string_view kLongTermPassword = "TheMatrIX";

// --- RFC 5769 vectors ------------------------------------------------------------------

TEST(Rfc5769Test, SampleRequest) {
  ASSERT_EQ(kSampleRequest.size(), 108u);
  EXPECT_TRUE(looks_like_stun(kSampleRequest));
  auto m = parse(kSampleRequest);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->method(), Method::Binding);
  EXPECT_EQ(m->message_class(), MessageClass::Request);
  EXPECT_EQ(m->transaction_id(), kTxid);
  EXPECT_EQ(str(m->find(attr::kSoftware).value()), "STUN test client");
  EXPECT_EQ(decode_u32(m->find(attr::kPriority).value()).value(), 0x6e0001ffu);
  EXPECT_EQ(decode_u64(m->find(attr::kIceControlled).value()).value(), 0x932ff9b151263b36u);
  EXPECT_EQ(str(m->find(attr::kUsername).value()), "evtj:h6vY");
  EXPECT_EQ(m->integrity_offset(), 76u);
  EXPECT_EQ(m->fingerprint_offset(), 100u);
  EXPECT_TRUE(verify_fingerprint(*m));
  EXPECT_TRUE(verify_message_integrity(*m, short_term_key(kPassword)));
  EXPECT_EQ(verify_message_integrity(*m, short_term_key("VOkJxbRl1RmTxUk/WvJxBu")).error(),
            Errc::IntegrityMismatch);
}

TEST(Rfc5769Test, SampleIpv4Response) {
  auto m = parse(kSampleIpv4Response);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->method(), Method::Binding);
  EXPECT_EQ(m->message_class(), MessageClass::SuccessResponse);
  EXPECT_EQ(str(m->find(attr::kSoftware).value()), "test vector");
  auto a = decode_xor_address(m->find(attr::kXorMappedAddress).value(), m->transaction_id());
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, SocketAddress::parse("192.0.2.1:32853").value());
  EXPECT_TRUE(verify_fingerprint(*m));
  EXPECT_TRUE(verify_message_integrity(*m, short_term_key(kPassword)));
}

TEST(Rfc5769Test, SampleIpv6Response) {
  auto m = parse(kSampleIpv6Response);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->message_class(), MessageClass::SuccessResponse);
  auto a = decode_xor_address(m->find(attr::kXorMappedAddress).value(), m->transaction_id());
  ASSERT_TRUE(a);
  EXPECT_EQ(*a, SocketAddress::parse("[2001:db8:1234:5678:11:2233:4455:6677]:32853").value());
  EXPECT_TRUE(verify_fingerprint(*m));
  EXPECT_TRUE(verify_message_integrity(*m, short_term_key(kPassword)));
}

TEST(Rfc5769Test, SampleRequestWithLongTermAuthentication) {
  auto m = parse(kSampleLongTerm);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->transaction_id(), kLongTermTxid);
  EXPECT_EQ(str(m->find(attr::kUsername).value()), kLongTermUser);
  EXPECT_EQ(str(m->find(attr::kNonce).value()), "f//499k954d6OL34oL9FSTvy64sA");
  EXPECT_EQ(str(m->find(attr::kRealm).value()), "example.org");
  EXPECT_FALSE(m->fingerprint_offset());
  EXPECT_EQ(verify_fingerprint(*m).error(), Errc::NoFingerprint);
  const LongTermKey key = long_term_key(kLongTermUser, "example.org", kLongTermPassword);
  EXPECT_TRUE(verify_message_integrity(*m, key));
  EXPECT_FALSE(verify_message_integrity(*m, long_term_key("x", "example.org", "TheMatrIX")));
}

TEST(Rfc5769Test, BuilderReproducesTheLongTermVectorByteForByte) {
  // §2.4 pads with zeros, as our builder does, so the whole message (HMAC included) must
  // come out identical.
  const LongTermKey key = long_term_key(kLongTermUser, "example.org", kLongTermPassword);
  MessageBuilder b(Method::Binding, MessageClass::Request, kLongTermTxid);
  b.add_string(attr::kUsername, kLongTermUser);
  b.add_string(attr::kNonce, "f//499k954d6OL34oL9FSTvy64sA");
  b.add_string(attr::kRealm, "example.org");
  EXPECT_EQ(std::move(b).finish(ByteView(key), false), kSampleLongTerm);
}

TEST(Rfc5769Test, VectorsAreNotTurnedIntoOtherMessages) {
  // Each vector corrupted in its last byte must fail exactly the check covering it.
  for (const Bytes* v : {&kSampleRequest, &kSampleIpv4Response, &kSampleIpv6Response}) {
    Bytes bad = *v;
    bad.back() ^= 0x01;
    auto m = parse(bad);
    ASSERT_TRUE(m);
    EXPECT_EQ(verify_fingerprint(*m).error(), Errc::FingerprintMismatch);
    EXPECT_TRUE(verify_message_integrity(*m, short_term_key(kPassword)));
  }
}

TEST(Crc32Test, CheckValue) {
  // The CRC-32/ISO-HDLC check value.
  const std::string_view s = "123456789";
  EXPECT_EQ(crc32(ByteView(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())),
            0xCBF43926u);
  EXPECT_EQ(crc32({}), 0u);
}

// --- Header and demux ------------------------------------------------------------------

TEST(LooksLikeStunTest, AcceptsVectorsRejectsLookalikes) {
  EXPECT_TRUE(looks_like_stun(kSampleIpv6Response));
  EXPECT_TRUE(looks_like_stun(kSampleLongTerm));
  Bytes quic = kSampleRequest;
  quic[0] = 0x40;  // QUIC short header with the fixed bit
  EXPECT_FALSE(looks_like_stun(quic));
  Bytes cookie = kSampleRequest;
  cookie[5] ^= 0xff;
  EXPECT_FALSE(looks_like_stun(cookie));
  Bytes shorter(kSampleRequest.begin(), kSampleRequest.end() - 4);
  EXPECT_FALSE(looks_like_stun(shorter));
  EXPECT_FALSE(looks_like_stun(ByteView(kSampleRequest).first(19)));
  EXPECT_FALSE(looks_like_stun({}));
}

TEST(MessageTypeTest, EncodesMethodAndClassBits) {
  // RFC 8489 §6: Binding request 0x0001, success 0x0101, error 0x0111; RFC 8656:
  // Allocate request 0x0003, Send indication 0x0016, Data indication 0x0017.
  EXPECT_EQ(encode_message_type(Method::Binding, MessageClass::Request), 0x0001);
  EXPECT_EQ(encode_message_type(Method::Binding, MessageClass::SuccessResponse), 0x0101);
  EXPECT_EQ(encode_message_type(Method::Binding, MessageClass::ErrorResponse), 0x0111);
  EXPECT_EQ(encode_message_type(Method::Binding, MessageClass::Indication), 0x0011);
  EXPECT_EQ(encode_message_type(Method::Allocate, MessageClass::Request), 0x0003);
  EXPECT_EQ(encode_message_type(Method::Send, MessageClass::Indication), 0x0016);
  EXPECT_EQ(encode_message_type(Method::Data, MessageClass::Indication), 0x0017);
  EXPECT_EQ(encode_message_type(Method::ChannelBind, MessageClass::SuccessResponse), 0x0109);
}

// --- Negative parsing ------------------------------------------------------------------

TEST(ParseTest, TruncatedHeader) {
  EXPECT_EQ(parse(ByteView(kSampleRequest).first(19)).error(), Errc::TooShort);
  EXPECT_EQ(parse({}).error(), Errc::TooShort);
}

TEST(ParseTest, TopBitsSet) {
  Bytes b = kSampleRequest;
  b[0] |= 0x80;
  EXPECT_EQ(parse(b).error(), Errc::NotStun);
}

TEST(ParseTest, BadCookie) {
  Bytes b = kSampleRequest;
  b[7] = 0x43;
  EXPECT_EQ(parse(b).error(), Errc::BadMagicCookie);
}

TEST(ParseTest, LengthMismatch) {
  Bytes longer = kSampleRequest;
  longer.insert(longer.end(), {0, 0, 0, 0});
  EXPECT_EQ(parse(longer).error(), Errc::BadLength);
  Bytes not_multiple = kSampleRequest;
  not_multiple[3] = 0x57;
  EXPECT_EQ(parse(not_multiple).error(), Errc::BadLength);
  EXPECT_EQ(parse(ByteView(kSampleRequest).first(104)).error(), Errc::BadLength);
}

TEST(ParseTest, AttributeLengthPastEnd) {
  Bytes b = kSampleRequest;
  b[23] = 0xff;  // SOFTWARE claims 255 bytes
  EXPECT_EQ(parse(b).error(), Errc::TruncatedAttribute);
  // An attribute whose padding would run past the end.
  MessageBuilder mb(Method::Binding, MessageClass::Request, kTxid);
  mb.add_u32(attr::kPriority, 1);
  Bytes c = std::move(mb).finish(std::nullopt, false);
  c[23] = 5;  // 5 bytes of value + 3 of padding > the 4 present
  EXPECT_EQ(parse(c).error(), Errc::TruncatedAttribute);
}

TEST(ParseTest, AttributeAfterFingerprint) {
  MessageBuilder mb(Method::Binding, MessageClass::Request, kTxid);
  Bytes b = std::move(mb).finish(std::nullopt, true);
  b.insert(b.end(), {0x80, 0x22, 0x00, 0x00});  // empty SOFTWARE after FINGERPRINT
  wire::store_u16(&b[2], static_cast<std::uint16_t>(b.size() - kHeaderSize));
  EXPECT_EQ(parse(b).error(), Errc::AttributeAfterFingerprint);
}

TEST(ParseTest, IntegrityAndFingerprintMustHaveTheirSizes) {
  MessageBuilder mb(Method::Binding, MessageClass::Request, kTxid);
  mb.add(attr::kFingerprint, Bytes{1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_EQ(parse(std::move(mb).finish(std::nullopt, false)).error(), Errc::BadAttributeLength);
  MessageBuilder mi(Method::Binding, MessageClass::Request, kTxid);
  mi.add(attr::kMessageIntegrity, Bytes(16, 0));
  EXPECT_EQ(parse(std::move(mi).finish(std::nullopt, false)).error(), Errc::BadAttributeLength);
  MessageBuilder sha(Method::Binding, MessageClass::Request, kTxid);
  sha.add(attr::kMessageIntegritySha256, Bytes(12, 0));
  EXPECT_EQ(parse(std::move(sha).finish(std::nullopt, false)).error(), Errc::BadAttributeLength);
}

TEST(ParseTest, AttributesAfterIntegrityAreIgnoredButRecorded) {
  // RFC 8489 §14.5: only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count after MI.
  MessageBuilder mb(Method::Binding, MessageClass::Request, kTxid);
  mb.add_string(attr::kUsername, "alice");
  Bytes b = std::move(mb).finish(short_term_key("pw"), false);
  const Bytes tail = hex("80220004 6576696c 00240004 00000007");  // SOFTWARE "evil", PRIORITY
  b.insert(b.end(), tail.begin(), tail.end());
  // Append a FINGERPRINT by hand over the extended message.
  wire::store_u16(&b[2], static_cast<std::uint16_t>(b.size() + 8 - kHeaderSize));
  const std::uint32_t crc = crc32(b) ^ kFingerprintXor;
  b.insert(b.end(), {0x80, 0x28, 0x00, 0x04, 0, 0, 0, 0});
  wire::store_u32(&b[b.size() - 4], crc);

  auto m = parse(b);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_FALSE(m->find(attr::kSoftware));
  EXPECT_FALSE(m->find(attr::kPriority));
  EXPECT_EQ(str(m->find(attr::kUsername).value()), "alice");
  EXPECT_TRUE(m->find(attr::kFingerprint));
  EXPECT_EQ(m->ignored_count(), 2u);
  std::vector<std::pair<std::uint16_t, bool>> seen;
  for (const Attribute& a : *m) {
    seen.emplace_back(a.type, a.ignored);
  }
  const std::vector<std::pair<std::uint16_t, bool>> expected{{attr::kUsername, false},
                                                             {attr::kMessageIntegrity, false},
                                                             {attr::kSoftware, true},
                                                             {attr::kPriority, true},
                                                             {attr::kFingerprint, false}};
  EXPECT_EQ(seen, expected);
  // The HMAC covers only what precedes MI, with the length adjusted, so it still holds.
  EXPECT_TRUE(verify_message_integrity(*m, short_term_key("pw")));
  EXPECT_TRUE(verify_fingerprint(*m));
}

TEST(ParseTest, FirstOccurrenceWins) {
  MessageBuilder mb(Method::Binding, MessageClass::Request, kTxid);
  mb.add_string(attr::kSoftware, "first").add_string(attr::kSoftware, "second");
  Bytes b = std::move(mb).finish();
  auto m = parse(b);
  ASSERT_TRUE(m);
  EXPECT_EQ(str(m->find(attr::kSoftware).value()), "first");
}

TEST(ErrcTest, IsARegisteredCategory) {
  const boost::system::error_code ec = Errc::BadMagicCookie;
  EXPECT_STREQ(ec.category().name(), "stun");
  EXPECT_EQ(ec.message(), "bad STUN magic cookie");
  EXPECT_TRUE(ec == Errc::BadMagicCookie);
}

// --- Decoders --------------------------------------------------------------------------

TEST(DecodeTest, ErrorCode) {
  const Bytes value = hex("00000414 556e6b6e6f776e");
  auto e = decode_error_code(value);  // the reason borrows `value`
  ASSERT_TRUE(e);
  EXPECT_EQ(e->code, 420);
  EXPECT_EQ(e->reason, "Unknown");
  EXPECT_EQ(decode_error_code(hex("00000264")).error(), Errc::BadAttributeValue);  // 2xx
  EXPECT_EQ(decode_error_code(hex("00000464")).error(), Errc::BadAttributeValue);  // x100
  EXPECT_EQ(decode_error_code(hex("000004")).error(), Errc::BadAttributeLength);
}

TEST(DecodeTest, ChangeRequestAndResponsePort) {
  EXPECT_EQ(decode_change_request(hex("00000006")).value(), (ChangeRequest{true, true}));
  EXPECT_EQ(decode_change_request(hex("00000004")).value(), (ChangeRequest{true, false}));
  EXPECT_EQ(decode_change_request(hex("00000002")).value(), (ChangeRequest{false, true}));
  EXPECT_EQ(decode_change_request(hex("00000000")).value(), (ChangeRequest{}));
  EXPECT_EQ(decode_change_request(hex("0006")).error(), Errc::BadAttributeLength);
  EXPECT_EQ(decode_response_port(hex("0d960000")).value(), 3478);
  EXPECT_EQ(decode_response_port(hex("0d96")).error(), Errc::BadAttributeLength);
}

TEST(DecodeTest, AddressesRejectBadFamilyAndLength) {
  EXPECT_EQ(decode_address(hex("0003 0d96 01020304")).error(), Errc::UnknownAddressFamily);
  EXPECT_EQ(decode_address(hex("0001 0d96 010203")).error(), Errc::BadAttributeLength);
  EXPECT_EQ(decode_address(hex("0002 0d96 01020304")).error(), Errc::BadAttributeLength);
  EXPECT_EQ(decode_xor_address(hex("00"), kTxid).error(), Errc::BadAttributeLength);
  EXPECT_EQ(decode_address(hex("ff01 0d96 c0000201")).value(),
            SocketAddress::parse("192.0.2.1:3478").value());  // reserved byte ignored
}

TEST(DecodeTest, UnknownAttributesAndIntegers) {
  EXPECT_EQ(decode_unknown_attributes(hex("77770003")).value(),
            (std::vector<std::uint16_t>{0x7777, 0x0003}));
  EXPECT_EQ(decode_unknown_attributes(hex("777700")).error(), Errc::BadAttributeLength);
  EXPECT_EQ(decode_u32(hex("0102")).error(), Errc::BadAttributeLength);
  EXPECT_EQ(decode_u64(hex("01020304")).error(), Errc::BadAttributeLength);
}

TEST(BuilderTest, OversizedValuesAreCutNotOverflowed) {
  MessageBuilder mb(Method::Binding, MessageClass::Request, kTxid);
  mb.add_padding(70000);
  EXPECT_TRUE(mb.overflowed());
  mb.add_u32(attr::kPriority, 1);  // no room left: dropped whole
  Bytes b = std::move(mb).finish(short_term_key("k"), true);
  EXPECT_LE(b.size(), kHeaderSize + kMaxBodySize);
  auto m = parse(b);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_FALSE(m->find(attr::kPriority));
  EXPECT_TRUE(verify_message_integrity(*m, short_term_key("k")));
  EXPECT_TRUE(verify_fingerprint(*m));
}

// --- Properties ------------------------------------------------------------------------

struct GenAttribute {
  std::uint16_t type;
  Bytes value;
};

rc::Gen<std::vector<GenAttribute>> gen_attributes() {
  auto type = rc::gen::suchThat(rc::gen::arbitrary<std::uint16_t>(), [](std::uint16_t t) {
    return t != attr::kMessageIntegrity && t != attr::kMessageIntegritySha256 &&
           t != attr::kFingerprint;
  });
  auto one = rc::gen::build<GenAttribute>(
      rc::gen::set(&GenAttribute::type, type),
      rc::gen::set(&GenAttribute::value, rc::gen::resize(70, rc::gen::arbitrary<Bytes>())));
  return rc::gen::resize(12, rc::gen::container<std::vector<GenAttribute>>(one));
}

std::size_t padded(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

RC_GTEST_PROP(MessageProperty, BuildThenParseGivesBackEveryAttribute, ()) {
  const auto attrs = *gen_attributes();
  const auto txid = *rc::gen::arbitrary<TransactionId>();
  const bool with_key = *rc::gen::arbitrary<bool>();
  const bool with_fp = *rc::gen::arbitrary<bool>();
  const Bytes key = *rc::gen::arbitrary<Bytes>();
  const auto method = static_cast<Method>(*rc::gen::inRange<int>(0, 0x1000));
  const auto cls = static_cast<MessageClass>(*rc::gen::inRange<int>(0, 4));

  MessageBuilder b(method, cls, txid);
  std::size_t expected = kHeaderSize;
  for (const auto& a : attrs) {
    b.add(a.type, a.value);
    expected += 4 + padded(a.value.size());
  }
  expected += (with_key ? 24 : 0) + (with_fp ? 8 : 0);
  RC_ASSERT(!b.overflowed());
  const Bytes out =
      std::move(b).finish(with_key ? std::optional<ByteView>(key) : std::nullopt, with_fp);
  RC_ASSERT(out.size() == expected);
  RC_ASSERT(looks_like_stun(out) == (out[0] <= 3));

  auto m = parse(out);
  RC_ASSERT(m.has_value());
  RC_ASSERT(m->method() == method);
  RC_ASSERT(m->message_class() == cls);
  RC_ASSERT(m->transaction_id() == txid);
  std::size_t i = 0;
  for (const Attribute& a : *m) {
    if (i < attrs.size()) {
      RC_ASSERT(a.type == attrs[i].type);
      RC_ASSERT(Bytes(a.value.begin(), a.value.end()) == attrs[i].value);
      RC_ASSERT(!a.ignored);
    } else if (i == attrs.size() && with_key) {
      RC_ASSERT(a.type == attr::kMessageIntegrity);
    } else {
      RC_ASSERT(a.type == attr::kFingerprint);
    }
    ++i;
  }
  RC_ASSERT(i == attrs.size() + (with_key ? 1 : 0) + (with_fp ? 1 : 0));
  RC_ASSERT(m->ignored_count() == 0u);
  if (with_key) {
    RC_ASSERT(verify_message_integrity(*m, key).has_value());
  }
  if (with_fp) {
    RC_ASSERT(verify_fingerprint(*m).has_value());
  }
}

rc::Gen<SocketAddress> gen_socket_address() {
  return rc::gen::apply(
      [](bool v4, std::array<std::uint8_t, 16> b, std::uint16_t port) {
        return v4 ? SocketAddress(IpAddress::v4({b[0], b[1], b[2], b[3]}), port)
                  : SocketAddress(IpAddress::v6(b), port);
      },
      rc::gen::arbitrary<bool>(), rc::gen::arbitrary<std::array<std::uint8_t, 16>>(),
      rc::gen::arbitrary<std::uint16_t>());
}

RC_GTEST_PROP(MessageProperty, XorAndPlainAddressesRoundTrip, ()) {
  const SocketAddress address = *gen_socket_address();
  const auto txid = *rc::gen::arbitrary<TransactionId>();
  MessageBuilder b(Method::Binding, MessageClass::SuccessResponse, txid);
  b.add_xor_address(attr::kXorMappedAddress, address);
  b.add_address(attr::kMappedAddress, address);
  const Bytes out = std::move(b).finish(std::nullopt, false);
  const std::size_t value_size = address.ip().is_v4() ? 8 : 20;
  RC_ASSERT(out.size() == kHeaderSize + 2 * (4 + value_size));
  auto m = parse(out);
  RC_ASSERT(m.has_value());
  const ByteView x = m->find(attr::kXorMappedAddress).value();
  const ByteView p = m->find(attr::kMappedAddress).value();
  RC_ASSERT(x.size() == value_size);
  RC_ASSERT(decode_xor_address(x, txid).value() == address);
  RC_ASSERT(decode_address(p).value() == address);
  // The XOR really hides the address (RFC 8489 §14.2's reason for existing): the
  // encoded port differs from the plain one unless port ^ 0x2112 == port (never).
  RC_ASSERT(wire::load_u16(&x[2]) != address.port());
}

RC_GTEST_PROP(MessageProperty, AnySingleFlippedByteFailsTheChecks, ()) {
  const auto txid = *rc::gen::arbitrary<TransactionId>();
  const std::string user = *rc::gen::arbitrary<std::string>();
  const Bytes key = *rc::gen::nonEmpty(rc::gen::arbitrary<Bytes>());
  MessageBuilder b(Method::Binding, MessageClass::Request, txid);
  b.add_string(attr::kUsername, user);
  b.add_u32(attr::kPriority, *rc::gen::arbitrary<std::uint32_t>());
  const Bytes good = std::move(b).finish(ByteView(key), true);
  {
    auto m = parse(good);
    RC_ASSERT(m.has_value());
    RC_ASSERT(verify_message_integrity(*m, key).has_value());
    RC_ASSERT(verify_fingerprint(*m).has_value());
  }
  const std::size_t fp_at = good.size() - 8;
  const std::size_t index = *rc::gen::inRange<std::size_t>(0, good.size());
  const auto flip = *rc::gen::inRange<int>(1, 256);
  Bytes bad = good;
  bad[index] = static_cast<std::uint8_t>(bad[index] ^ flip);
  auto m = parse(bad);
  if (!m) {
    return;  // structurally broken: rejected before any check
  }
  if (index < fp_at) {
    // Everything before FINGERPRINT is covered by the HMAC (MI itself included).
    RC_ASSERT(!verify_message_integrity(*m, key));
  }
  RC_ASSERT(!verify_fingerprint(*m));
}

}  // namespace
}  // namespace peertun::stun
