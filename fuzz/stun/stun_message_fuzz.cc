// Feeds arbitrary datagrams to everything in stun/ that reads untrusted bytes: parse,
// attribute iteration and lookup, every typed decoder, both integrity checks, the
// Binding response reader and the Binding responder. Traps when an invariant breaks:
// a valid parse that fails the cheap demux test, or a server reply that is not itself
// valid STUN with a good FINGERPRINT, or a reply amplified beyond its fixed attributes.

#include <cstddef>
#include <cstdint>

#include "stun/binding.h"
#include "stun/binding_server.h"
#include "stun/message.h"

namespace {

using namespace peertun;

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

void decode_everything(const stun::MessageView& m) {
  const stun::TransactionId txid = m.transaction_id();
  for (const stun::Attribute& a : m) {
    check(a.value.data() >= m.raw().data() &&
          a.value.data() + a.value.size() <= m.raw().data() + m.raw().size());
    switch (a.type) {
      case stun::attr::kXorMappedAddress:
      case stun::attr::kXorPeerAddress:
      case stun::attr::kXorRelayedAddress:
        (void)stun::decode_xor_address(a.value, txid);
        break;
      case stun::attr::kMappedAddress:
      case stun::attr::kResponseOrigin:
      case stun::attr::kOtherAddress:
      case stun::attr::kAlternateServer:
        (void)stun::decode_address(a.value);
        break;
      case stun::attr::kErrorCode:
        if (auto e = stun::decode_error_code(a.value)) {
          check(e->code >= 300 && e->code <= 699);
        }
        break;
      case stun::attr::kChangeRequest:
        (void)stun::decode_change_request(a.value);
        break;
      case stun::attr::kResponsePort:
        (void)stun::decode_response_port(a.value);
        break;
      case stun::attr::kUnknownAttributes:
        (void)stun::decode_unknown_attributes(a.value);
        break;
      case stun::attr::kIceControlled:
      case stun::attr::kIceControlling:
        (void)stun::decode_u64(a.value);
        break;
      default:
        (void)stun::decode_u32(a.value);
        break;
    }
  }
  for (std::uint16_t t : {stun::attr::kUsername, stun::attr::kSoftware, stun::attr::kPadding,
                          stun::attr::kFingerprint, stun::attr::kMessageIntegrity}) {
    (void)m.find(t);
  }
  static const std::uint8_t kKey[] = {'p', 'w'};
  (void)stun::verify_message_integrity(m, kKey);
  (void)stun::verify_fingerprint(m);
  (void)stun::parse_binding_response(m);
}

void serve(wire::ByteView in, const stun::Arrival& arrival,
           const stun::BindingServerConfig& config) {
  const stun::Outcome o = stun::handle_binding(in, arrival, config);
  check(o.reply.has_value() == (o.disposition == stun::Disposition::Reply));
  if (!o.reply) {
    return;
  }
  const wire::Bytes& packet = o.reply->packet;
  check(packet.size() <= stun::kMaxReplySize);
  check(packet.size() <= in.size() + 256);
  auto reply = stun::parse(packet);
  check(reply.has_value());
  check(stun::looks_like_stun(packet));
  check(stun::verify_fingerprint(*reply).has_value());
  check(stun::parse_binding_response(*reply).has_value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const wire::ByteView in(data, size);
  const bool looks = stun::looks_like_stun(in);
  if (auto m = stun::parse(in)) {
    check(looks == (data[0] <= 3));
    decode_everything(*m);
  } else {
    // looks_like_stun is a subset of the header checks parse() makes first.
    const auto e = m.error();
    check(!looks || e == stun::Errc::TruncatedAttribute ||
          e == stun::Errc::AttributeAfterFingerprint || e == stun::Errc::BadAttributeLength);
  }

  static const auto v4 = *base::IpAddress::parse("198.51.100.1");
  static const auto v4b = *base::IpAddress::parse("198.51.100.2");
  static const auto v6 = *base::IpAddress::parse("2001:db8::1");
  const stun::BindingServerConfig two_ips{v4, v4b, 4040, 4041, "fuzz"};
  const stun::BindingServerConfig wildcard{base::IpAddress(), std::nullopt, 4040, 4041, ""};
  const stun::BindingServerConfig plain{v4, std::nullopt, 3478, 0, "plain"};
  const stun::Arrival a4{base::SocketAddress(*base::IpAddress::parse("203.0.113.5"), 1234), v4,
                         false, size % 2 == 1};
  const stun::Arrival a6{base::SocketAddress(*base::IpAddress::parse("2001:db8::9"), 1), v6,
                         size % 3 == 0, false};
  serve(in, a4, two_ips);
  serve(in, a6, wildcard);
  serve(in, a4, plain);
  return 0;
}
