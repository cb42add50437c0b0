#pragma once
// ICE-style candidates (RFC 8445 §5.1) and the order in which pairs are tried.
//
// peertun has one UDP socket per session, so a pair is identified by its remote
// candidate alone; the local side only matters for the order. Each peer ranks a pair
// with its own best local candidate of that family, so the two sides' numbers can
// differ; that is harmless because only peer A nominates (RFC 8445 §6.1.2.3's formula,
// without its cross-peer agreement). Sans-I/O, any thread.

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/socket_address.h"

namespace peertun::traversal {

enum class CandidateType : std::uint8_t { Host, PeerReflexive, ServerReflexive, Relayed };

[[nodiscard]] std::string_view to_string(CandidateType type);

struct Candidate {
  CandidateType type = CandidateType::Host;
  base::SocketAddress address;
  std::uint32_t priority = 0;
  friend bool operator==(const Candidate&, const Candidate&) = default;
};

// RFC 8445 §5.1.2.2 recommended type preferences.
inline constexpr std::uint32_t kHostTypePreference = 126;
inline constexpr std::uint32_t kPeerReflexiveTypePreference = 110;
inline constexpr std::uint32_t kServerReflexiveTypePreference = 100;
inline constexpr std::uint32_t kRelayedTypePreference = 0;

// Local preferences (RFC 8445 §5.1.2.1 leaves them to the agent). The order is the
// issue's "prefer LAN, then IPv6, then server-reflexive": a private (LAN) address beats a
// global IPv6 one, which beats a public IPv4 host address; the type preference already
// puts every host candidate above the reflexive ones.
inline constexpr std::uint32_t kLanLocalPreference = 65535;
inline constexpr std::uint32_t kIpv6LocalPreference = 60000;
inline constexpr std::uint32_t kIpv4LocalPreference = 50000;

// RFC 8445 §5.1.2.1: (2^24)*type + (2^8)*local + (256 - component), component 1.
[[nodiscard]] std::uint32_t candidate_priority(CandidateType type,
                                               const base::SocketAddress& address);

[[nodiscard]] Candidate make_candidate(CandidateType type, const base::SocketAddress& address);

// RFC 8445 §6.1.2.3: 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0), G the controlling agent's
// candidate priority, D the controlled agent's. Both sides compute the same value.
[[nodiscard]] std::uint64_t pair_priority(std::uint32_t controlling, std::uint32_t controlled);

// Whether a peer's candidate may be checked at all: never multicast, broadcast,
// unspecified or link-local addresses (a peer that knows the code must not be able to
// aim our checks at them), loopback only when the peers meet on loopback, and a port.
[[nodiscard]] bool is_usable_remote(const base::SocketAddress& address, bool allow_loopback);

// Host candidates from interface addresses: link-local and unspecified addresses are
// dropped (they cannot leave the link with one socket bound to a wildcard), loopback
// only when `keep_loopback` (the relay itself is on loopback: tests and demos).
[[nodiscard]] std::vector<Candidate> host_candidates(const std::vector<base::IpAddress>& addresses,
                                                     std::uint16_t port, bool keep_loopback);

}  // namespace peertun::traversal
