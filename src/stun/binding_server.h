#pragma once
// The relay's STUN Binding responder (RFC 8489 §6.3, RFC 5780 §6 and §7), sans-I/O: one
// datagram and where it arrived in, at most one reply and where to send it from/to out.
// Stateless and reentrant; the relay's UDP strand calls it per packet.
//
// Behaviour discovery (RFC 5780) needs a second port, and for the IP tests a second IP:
//   - CHANGE-REQUEST change-port: the reply leaves from the other port.
//   - CHANGE-REQUEST change-IP: the reply leaves from the other IP when alternate_ip is
//     configured (and of the request's family); otherwise the IP flag is ignored and
//     OTHER-ADDRESS carries the same IP, so a client sees that only the port can change
//     (what coturn does on a host with a single address).
//   - RESPONSE-PORT: the reply goes to that port at the request's source IP (§7.5).
//   - PADDING: the reply carries PADDING of the same length, never more than the request
//     was long, so a spoofed request cannot be amplified beyond the reply's fixed part.
// With alternate_port 0 (or equal to primary_port) discovery is off and the responder is
// a plain RFC 8489 server: CHANGE-REQUEST, RESPONSE-PORT and PADDING are then unknown
// comprehension-required attributes (420), and no OTHER-ADDRESS/RESPONSE-ORIGIN is sent.
//
// No authentication: a public Binding server answers anyone (RFC 8489 §6.3 allows it),
// and USERNAME/MESSAGE-INTEGRITY in a request are accepted and ignored.
//
// Cost: parse() allocates nothing; the one allocation per call is the reply buffer,
// sized exactly up front.

#include <cstdint>
#include <optional>
#include <string>

#include "base/socket_address.h"
#include "stun/message.h"

namespace peertun::stun {

struct BindingServerConfig {
  // The main address. Unspecified (wildcard) = use the address the request arrived on,
  // which then must be in Arrival::local_ip. alternate_ip needs a specified primary_ip.
  base::IpAddress primary_ip{};
  std::optional<base::IpAddress> alternate_ip{};
  std::uint16_t primary_port = 0;
  std::uint16_t alternate_port = 0;  // 0 = no RFC 5780 behaviour discovery
  std::string software{};            // SOFTWARE in every reply; empty = none
};

struct Arrival {
  base::SocketAddress source{};  // the client's (reflexive) address
  base::IpAddress local_ip{};    // where it arrived (IP_PKTINFO); may be unspecified
  bool on_alternate_ip = false;
  bool on_alternate_port = false;
};

struct BindingReply {
  wire::Bytes packet{};
  // Which of the four sockets (primary/alternate IP x primary/alternate port) sends it.
  bool from_alternate_ip = false;
  bool from_alternate_port = false;
  base::SocketAddress destination{};
};

enum class Disposition {
  Reply,          // `reply` is set: a success or error response
  NotForBinding,  // valid STUN of another method (TURN requests and indications): route it
  Ignored,        // a Binding indication (keepalive) or response: drop silently
  Malformed,      // not valid STUN, or a bad FINGERPRINT: drop (and count)
};

struct Outcome {
  Disposition disposition = Disposition::Malformed;
  std::optional<BindingReply> reply{};
};

// Error replies (400 for a malformed CHANGE-REQUEST or RESPONSE-PORT, 420 with
// UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes) go from the socket
// the request arrived on back to its source. Every reply carries FINGERPRINT.
[[nodiscard]] Outcome handle_binding(ByteView datagram, const Arrival& arrival,
                                     const BindingServerConfig& config);

// The UDP payload limit over IPv4 (65535 - 20 IP - 8 UDP); no reply is larger.
inline constexpr std::size_t kMaxReplySize = 65507;

}  // namespace peertun::stun
