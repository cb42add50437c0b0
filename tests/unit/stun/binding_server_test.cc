#include "stun/binding_server.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "stun/binding.h"

namespace peertun::stun {
namespace {

using base::IpAddress;
using base::SocketAddress;

const TransactionId kTxid{9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0xaa, 0xbb};

IpAddress ip(std::string_view text) { return IpAddress::parse(text).value(); }
SocketAddress addr(std::string_view text) { return SocketAddress::parse(text).value(); }

BindingServerConfig two_ip_config() {
  return {.primary_ip = ip("198.51.100.1"),
          .alternate_ip = ip("198.51.100.2"),
          .primary_port = 4040,
          .alternate_port = 4041,
          .software = "peertun-relay"};
}

BindingServerConfig one_ip_config() {
  auto c = two_ip_config();
  c.alternate_ip.reset();
  return c;
}

Arrival on_primary() {
  return {.source = addr("203.0.113.5:54321"), .local_ip = ip("198.51.100.1")};
}

// Runs the request through the server and parses the reply, checking what every reply
// must satisfy: valid STUN, same transaction, FINGERPRINT good.
struct Answer {
  Outcome outcome;
  BindingResponse response;
  std::optional<std::size_t> padding;  // PADDING length, if present
  std::string software;
};

Answer ask(const Bytes& request, const Arrival& arrival, const BindingServerConfig& config) {
  Answer a;
  a.outcome = handle_binding(request, arrival, config);
  EXPECT_EQ(a.outcome.disposition, Disposition::Reply);
  if (!a.outcome.reply) {
    ADD_FAILURE() << "no reply";
    return a;
  }
  auto m = parse(a.outcome.reply->packet);
  EXPECT_TRUE(m) << m.error().message();
  if (!m) {
    return a;
  }
  EXPECT_EQ(m->transaction_id(), kTxid);
  EXPECT_TRUE(verify_fingerprint(*m));
  auto r = parse_binding_response(*m);
  EXPECT_TRUE(r) << r.error().message();
  if (r) {
    a.response = *r;
  }
  if (auto sw = m->find(attr::kSoftware)) {
    a.software.assign(sw->begin(), sw->end());
  }
  if (auto p = m->find(attr::kPadding)) {
    a.padding = p->size();
  }
  return a;
}

TEST(BindingServerTest, PlainRequest) {
  const Answer a = ask(make_binding_request(kTxid), on_primary(), two_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  const BindingReply& reply = *a.outcome.reply;
  EXPECT_FALSE(reply.from_alternate_ip);
  EXPECT_FALSE(reply.from_alternate_port);
  EXPECT_EQ(reply.destination, addr("203.0.113.5:54321"));
  EXPECT_TRUE(a.response.success);
  EXPECT_EQ(a.response.mapped_address, addr("203.0.113.5:54321"));
  EXPECT_EQ(a.response.response_origin, addr("198.51.100.1:4040"));
  EXPECT_EQ(a.response.other_address, addr("198.51.100.2:4041"));
  EXPECT_EQ(a.software, "peertun-relay");
  // MAPPED-ADDRESS is there too, equal to the XOR one.
  auto m = parse(reply.packet).value();
  EXPECT_EQ(decode_address(m.find(attr::kMappedAddress).value()).value(),
            addr("203.0.113.5:54321"));
  // 20 + XOR(12) + MAPPED(12) + ORIGIN(12) + OTHER(12) + SOFTWARE(4+16) + FP(8): exact.
  EXPECT_EQ(reply.packet.size(), 20u + 12 * 4 + 20 + 8);
  EXPECT_EQ(reply.packet.capacity(), reply.packet.size());
}

TEST(BindingServerTest, ChangePort) {
  const Answer a =
      ask(make_binding_request(kTxid, {.change_port = true}), on_primary(), two_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  EXPECT_FALSE(a.outcome.reply->from_alternate_ip);
  EXPECT_TRUE(a.outcome.reply->from_alternate_port);
  EXPECT_EQ(a.response.response_origin, addr("198.51.100.1:4041"));
  EXPECT_EQ(a.response.other_address, addr("198.51.100.2:4041"));
}

TEST(BindingServerTest, ChangeIpWithAlternateIp) {
  const Answer a = ask(make_binding_request(kTxid, {.change_ip = true, .change_port = true}),
                       on_primary(), two_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  EXPECT_TRUE(a.outcome.reply->from_alternate_ip);
  EXPECT_TRUE(a.outcome.reply->from_alternate_port);
  EXPECT_EQ(a.response.response_origin, addr("198.51.100.2:4041"));
}

TEST(BindingServerTest, ChangeIpWithoutAlternateIpOnlyIgnoresTheIpFlag) {
  const Answer a = ask(make_binding_request(kTxid, {.change_ip = true, .change_port = true}),
                       on_primary(), one_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  EXPECT_FALSE(a.outcome.reply->from_alternate_ip);
  EXPECT_TRUE(a.outcome.reply->from_alternate_port);
  EXPECT_EQ(a.response.response_origin, addr("198.51.100.1:4041"));
  // OTHER-ADDRESS tells the client only the port differs.
  EXPECT_EQ(a.response.other_address, addr("198.51.100.1:4041"));
}

TEST(BindingServerTest, ArrivalOnAlternateSocketsChangesBackToPrimary) {
  Arrival arrival = on_primary();
  arrival.local_ip = ip("198.51.100.2");
  arrival.on_alternate_ip = true;
  arrival.on_alternate_port = true;
  const Answer plain = ask(make_binding_request(kTxid), arrival, two_ip_config());
  ASSERT_TRUE(plain.outcome.reply);
  EXPECT_TRUE(plain.outcome.reply->from_alternate_ip);
  EXPECT_TRUE(plain.outcome.reply->from_alternate_port);
  EXPECT_EQ(plain.response.response_origin, addr("198.51.100.2:4041"));
  EXPECT_EQ(plain.response.other_address, addr("198.51.100.1:4040"));
  const Answer changed = ask(make_binding_request(kTxid, {.change_ip = true, .change_port = true}),
                             arrival, two_ip_config());
  ASSERT_TRUE(changed.outcome.reply);
  EXPECT_FALSE(changed.outcome.reply->from_alternate_ip);
  EXPECT_FALSE(changed.outcome.reply->from_alternate_port);
  EXPECT_EQ(changed.response.response_origin, addr("198.51.100.1:4040"));
}

TEST(BindingServerTest, ResponsePort) {
  // turnutils_stunclient's RFC 5780 probe: RESPONSE-PORT together with CHANGE-REQUEST.
  const Answer a = ask(make_binding_request(kTxid, {.change_port = true, .response_port = 50000}),
                       on_primary(), two_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  EXPECT_EQ(a.outcome.reply->destination, addr("203.0.113.5:50000"));
  EXPECT_TRUE(a.outcome.reply->from_alternate_port);
  // The mapped address is still where the request came from.
  EXPECT_EQ(a.response.mapped_address, addr("203.0.113.5:54321"));
}

TEST(BindingServerTest, PaddingIsMirrored) {
  // turnutils_natdiscovery's fragmentation probe: CHANGE-REQUEST + 1500 bytes of PADDING.
  const Bytes request = make_binding_request(kTxid, {.change_port = true, .padding = 1500});
  const Answer a = ask(request, on_primary(), two_ip_config());
  ASSERT_TRUE(a.padding);
  EXPECT_EQ(*a.padding, 1500u);
  // The reply exceeds the request only by its fixed attributes.
  EXPECT_LE(a.outcome.reply->packet.size(), request.size() + 20 + 12 * 4 + 20);
  const Answer none = ask(make_binding_request(kTxid), on_primary(), two_ip_config());
  EXPECT_FALSE(none.padding);
}

TEST(BindingServerTest, HugePaddingStaysInOneDatagram) {
  MessageBuilder b(Method::Binding, MessageClass::Request, kTxid, 70000);
  b.add_padding(65480);
  const Bytes request = std::move(b).finish(std::nullopt, false);
  const Answer a = ask(request, on_primary(), two_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  EXPECT_LE(a.outcome.reply->packet.size(), kMaxReplySize);
  ASSERT_TRUE(a.padding);
  EXPECT_LT(*a.padding, 65480u);
}

TEST(BindingServerTest, UnknownComprehensionRequiredAttributeGets420) {
  MessageBuilder b(Method::Binding, MessageClass::Request, kTxid);
  b.add_u32(0x7777, 1);
  b.add_u32(0x7777, 2);  // listed once
  b.add_u32(0xC001, 3);  // comprehension-optional: fine
  b.add_string(attr::kUsername, "known");
  const Answer a = ask(std::move(b).finish(), on_primary(), two_ip_config());
  ASSERT_TRUE(a.outcome.reply);
  EXPECT_FALSE(a.response.success);
  EXPECT_EQ(a.response.error_code, status::kUnknownAttribute);
  EXPECT_EQ(a.response.unknown_attributes, std::vector<std::uint16_t>{0x7777});
  EXPECT_EQ(a.outcome.reply->destination, addr("203.0.113.5:54321"));

  MessageBuilder ok(Method::Binding, MessageClass::Request, kTxid);
  ok.add_u32(0xC001, 3);
  EXPECT_TRUE(ask(std::move(ok).finish(), on_primary(), two_ip_config()).response.success);
}

TEST(BindingServerTest, MalformedChangeRequestOrResponsePortGets400) {
  MessageBuilder b(Method::Binding, MessageClass::Request, kTxid);
  b.add(attr::kChangeRequest, Bytes{0, 6});
  const Answer a = ask(std::move(b).finish(), on_primary(), two_ip_config());
  EXPECT_EQ(a.response.error_code, status::kBadRequest);
  const Answer zero =
      ask(make_binding_request(kTxid, {.response_port = 0}), on_primary(), two_ip_config());
  EXPECT_EQ(zero.response.error_code, status::kBadRequest);
}

TEST(BindingServerTest, WithoutAlternatePortItIsAPlainServer) {
  auto config = one_ip_config();
  config.alternate_port = 0;
  const Answer plain = ask(make_binding_request(kTxid), on_primary(), config);
  EXPECT_TRUE(plain.response.success);
  EXPECT_FALSE(plain.response.other_address);
  EXPECT_FALSE(plain.response.response_origin);
  const Answer change =
      ask(make_binding_request(kTxid, {.change_port = true}), on_primary(), config);
  EXPECT_EQ(change.response.error_code, status::kUnknownAttribute);
  EXPECT_EQ(change.response.unknown_attributes, std::vector<std::uint16_t>{attr::kChangeRequest});
}

TEST(BindingServerTest, WildcardPrimaryUsesTheArrivalAddress) {
  auto config = one_ip_config();
  config.primary_ip = IpAddress();
  const Answer a = ask(make_binding_request(kTxid), on_primary(), config);
  EXPECT_EQ(a.response.response_origin, addr("198.51.100.1:4040"));
  EXPECT_EQ(a.response.other_address, addr("198.51.100.1:4041"));
}

TEST(BindingServerTest, Ipv6ClientAndMappedSources) {
  // An IPv6 request cannot switch to an IPv4 alternate: the IP flag is ignored.
  Arrival v6{.source = addr("[2001:db8::5]:1000"), .local_ip = ip("2001:db8::1")};
  auto config = two_ip_config();
  config.primary_ip = IpAddress();
  const Answer a = ask(make_binding_request(kTxid, {.change_ip = true}), v6, config);
  EXPECT_FALSE(a.outcome.reply->from_alternate_ip);
  EXPECT_EQ(a.response.mapped_address, addr("[2001:db8::5]:1000"));
  EXPECT_EQ(a.response.response_origin, addr("[2001:db8::1]:4040"));
  // A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; the client sees IPv4.
  Arrival mapped{.source = addr("[::ffff:203.0.113.9]:7"), .local_ip = ip("::ffff:198.51.100.1")};
  const Answer m = ask(make_binding_request(kTxid), mapped, two_ip_config());
  EXPECT_EQ(m.response.mapped_address, addr("203.0.113.9:7"));
  EXPECT_EQ(m.outcome.reply->destination, addr("[::ffff:203.0.113.9]:7"));
}

TEST(BindingServerTest, NonBindingMethodIsRoutedElsewhere) {
  const Bytes allocate = MessageBuilder(Method::Allocate, MessageClass::Request, kTxid).finish();
  EXPECT_EQ(handle_binding(allocate, on_primary(), two_ip_config()).disposition,
            Disposition::NotForBinding);
  const Bytes send = MessageBuilder(Method::Send, MessageClass::Indication, kTxid).finish();
  EXPECT_EQ(handle_binding(send, on_primary(), two_ip_config()).disposition,
            Disposition::NotForBinding);
}

TEST(BindingServerTest, IndicationsAndResponsesAreIgnored) {
  const Bytes keepalive = MessageBuilder(Method::Binding, MessageClass::Indication, kTxid).finish();
  EXPECT_EQ(handle_binding(keepalive, on_primary(), two_ip_config()).disposition,
            Disposition::Ignored);
  const Bytes response =
      MessageBuilder(Method::Binding, MessageClass::SuccessResponse, kTxid).finish();
  const Outcome o = handle_binding(response, on_primary(), two_ip_config());
  EXPECT_EQ(o.disposition, Disposition::Ignored);
  EXPECT_FALSE(o.reply);
}

TEST(BindingServerTest, GarbageAndBadFingerprintAreMalformed) {
  const Bytes garbage{0x17, 0x03, 0x03, 0x00, 0x10, 1, 2, 3};
  EXPECT_EQ(handle_binding(garbage, on_primary(), two_ip_config()).disposition,
            Disposition::Malformed);
  Bytes bad = make_binding_request(kTxid);
  bad.back() ^= 1;
  const Outcome o = handle_binding(bad, on_primary(), two_ip_config());
  EXPECT_EQ(o.disposition, Disposition::Malformed);
  EXPECT_FALSE(o.reply);
}

RC_GTEST_PROP(BindingServerProperty, EveryReplyIsValidAndMapsTheSource,
              (bool change_ip, bool change_port, bool alt_ip, bool alt_port, bool two_ips,
               std::uint16_t source_port)) {
  const auto padding = *rc::gen::inRange<std::size_t>(0, 3000);
  const auto response_port = *rc::gen::inRange<int>(0, 3);  // 0: none
  const Bytes request = make_binding_request(
      kTxid, {.change_ip = change_ip,
              .change_port = change_port,
              .response_port = response_port ? std::optional<std::uint16_t>(40000) : std::nullopt,
              .padding = padding});
  const auto config = two_ips ? two_ip_config() : one_ip_config();
  Arrival arrival{.source = SocketAddress(ip("203.0.113.5"), source_port),
                  .local_ip = alt_ip && two_ips ? ip("198.51.100.2") : ip("198.51.100.1"),
                  .on_alternate_ip = alt_ip && two_ips,
                  .on_alternate_port = alt_port};
  const Outcome o = handle_binding(request, arrival, config);
  RC_ASSERT(o.disposition == Disposition::Reply);
  RC_ASSERT(o.reply.has_value());
  RC_ASSERT(o.reply->packet.size() <= request.size() + 200);
  auto m = parse(o.reply->packet);
  RC_ASSERT(m.has_value());
  RC_ASSERT(verify_fingerprint(*m).has_value());
  auto r = parse_binding_response(*m);
  RC_ASSERT(r.has_value());
  RC_ASSERT(r->success);
  RC_ASSERT(r->mapped_address == arrival.source);
  RC_ASSERT(o.reply->from_alternate_port == (alt_port != change_port));
  RC_ASSERT(o.reply->from_alternate_ip == (arrival.on_alternate_ip != (change_ip && two_ips)));
  RC_ASSERT(r->response_origin->port() == (o.reply->from_alternate_port ? 4041 : 4040));
  RC_ASSERT(r->response_origin->ip() ==
            (o.reply->from_alternate_ip ? ip("198.51.100.2") : ip("198.51.100.1")));
  RC_ASSERT(o.reply->destination.port() == (response_port ? 40000 : source_port));
}

}  // namespace
}  // namespace peertun::stun
