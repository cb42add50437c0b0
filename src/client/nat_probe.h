#pragma once
// Runs traversal::BehaviorProbe (RFC 5780 behaviour discovery) over real UDP sockets
// against a STUN server with RFC 5780 support: the relay, or any other (coturn).
//
// Two modes:
//   - probe_nat(): the full plan for `peertun debug nat-type`. Opens two fresh sockets of
//     its own (mapping tests on one, filtering tests on the other, because filtering
//     tests are "sensitive to prior state on the NAT", RFC 5780 §4.4) and runs every test
//     concurrently, so the whole run takes about one RTT plus kDependentTestBound.
//   - probe_mapping(): the early, mapping-only verdict a session runs on its data socket
//     (so the mapping it measures is the one peers will use). It reads that socket while
//     it runs, but never swallows what is not its own: every other datagram goes to the
//     caller's `unclaimed` handler, in order.
//
// Threading: the client's io_context thread; the sockets belong to it. Coroutine
// parameters are values and shared_ptrs (STYLE.md), so a caller's frame may end first.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "io/udp_socket.h"
#include "traversal/nat_behavior.h"

namespace peertun::client {

struct NatProbeTarget {
  base::SocketAddress primary;  // the STUN server's main address
  // Its RFC 5780 OTHER-ADDRESS if already known (the relay's Welcome: alt_ip or the relay's
  // IP, alt_port). nullopt = learn it from the first answer.
  std::optional<base::SocketAddress> other;
};

// Receives every datagram probe_mapping() read that was not an answer to the probe. The
// datagram's bytes are valid only during the call.
using UnclaimedDatagram = std::function<void(const io::ReceivedDatagram&)>;

// The full plan within `budget` (traversal::kDefaultProbeBudget is the healthy-network
// figure). Silence from the server is a verdict (UDP blocked), not an error.
// Errors: opening a socket (e.g. address_family_not_supported), operation_aborted.
io::Task<base::Result<traversal::NatVerdict>> probe_nat(
    NatProbeTarget target, std::chrono::milliseconds budget = traversal::kDefaultProbeBudget);

// The quick mapping verdict from the caller's socket (traversal::quick_mapping_verdict's
// inputs, measured). `socket` must be open; nobody else may read it meanwhile — that is
// what `unclaimed` is for. A receive error ends the probe early with what it knows.
io::Task<traversal::NatVerdict> probe_mapping(
    std::shared_ptr<io::UdpSocket> socket, NatProbeTarget target,
    std::chrono::milliseconds budget = traversal::kDefaultProbeBudget,
    UnclaimedDatagram unclaimed = {});

// What a session measures before meeting its peer: probe_mapping() on the data socket
// and, at the same time, probe_nat() on fresh sockets for the filtering half
// (traversal::with_filtering). Both within `budget`; a failed full probe leaves the
// quick verdict as it is.
io::Task<traversal::NatVerdict> probe_session_nat(std::shared_ptr<io::UdpSocket> socket,
                                                  NatProbeTarget target,
                                                  std::chrono::milliseconds budget);

// Whether a TCP connection to `address` opens within `timeout`. The relay serves STUN
// and its control plane on the same port number, so this tells "UDP is blocked" (TCP
// works) from "the relay is down or unreachable" (neither works).
io::Task<bool> tcp_reachable(base::SocketAddress address, std::chrono::milliseconds timeout);

// "IPv6 reachable" in `debug nat-type`: does the STUN server answer a Binding request
// over IPv6 from this host?
enum class Ipv6Reachability : std::uint8_t {
  Yes,        // a Binding answer arrived over IPv6
  No,         // the server has an IPv6 address, but no answer came (or no IPv6 socket)
  NotTested,  // the server has no IPv6 address we could find
};
// "yes", "no", "not tested".
[[nodiscard]] std::string_view to_string(Ipv6Reachability r);

struct Ipv6Check {
  Ipv6Reachability reachable = Ipv6Reachability::NotTested;
  std::optional<base::SocketAddress> server{};  // the server's IPv6 address that was tried
  std::optional<base::SocketAddress> mapped{};  // this host's IPv6 address as the server saw it
  // Why NotTested or No, one sentence for the user; empty for Yes.
  std::string detail{};
};

// The sentence for a server given (or resolving) only as IPv4.
inline constexpr std::string_view kNoIpv6Address = "the relay has no IPv6 address";

// Sends a Binding request to the first IPv6 address among `server` (the relay's
// resolved addresses: all of them, IPv4 and IPv6, so that no second DNS lookup is
// needed) on a fresh IPv6 socket of its own, and waits at most `timeout`. No IPv6
// address among them (an IPv4 literal, a name without AAAA records) is NotTested with
// kNoIpv6Address. Never fails: every outcome is an Ipv6Check.
io::Task<Ipv6Check> check_ipv6(std::vector<base::SocketAddress> server,
                               std::chrono::milliseconds timeout);

}  // namespace peertun::client
