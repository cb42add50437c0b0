#pragma once
// What each peer tells the other inside the PAKE-sealed channel once the handshake
// is done (docs/protocol/signalling.md): its server-reflexive address and host
// candidates and NAT verdict. JSON, versioned; unknown fields are ignored so later versions can add
// candidates and certificate fingerprints.

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "traversal/nat_behavior.h"

namespace peertun::client {

inline constexpr std::size_t kMaxPeerInfoBytes = std::size_t{8} * 1024;
inline constexpr std::size_t kMaxHostCandidates = 32;
inline constexpr std::size_t kFingerprintHexLength = 64;
inline constexpr std::size_t kMaxShareNameBytes = 255;

struct PeerInfo {
  std::optional<base::SocketAddress> reflexive;  // from the relay's STUN; absent if UDP failed
  std::vector<base::SocketAddress> host;         // local interface addresses + our UDP port
  // The early mapping verdict from the relay's STUN, so each side can tell at once when
  // a direct path cannot exist. Absent from older peers.
  std::optional<traversal::NatVerdict> nat;
  // SHA-256 of the sender's ephemeral QUIC certificate (64 lower-case hex digits): the
  // other side's TLS handshake accepts only this certificate (docs/protocol/quic.md).
  std::optional<std::string> fingerprint;
  // Peer A's shared folder as A named it ("./shared"), for B's "Mounted ./shared at ..."
  // line: 1..kMaxShareNameBytes bytes, no control characters. Absent on B, or when A
  // pushes a file instead of sharing.
  std::optional<std::string> share_name;
  friend bool operator==(const PeerInfo&, const PeerInfo&) = default;
};

[[nodiscard]] std::string encode_peer_info(const PeerInfo& info);
// Errors: invalid_argument for anything that is not a well-formed v1 peer_info (too
// large, not JSON, wrong types, bad addresses, too many candidates).
[[nodiscard]] base::Result<PeerInfo> decode_peer_info(std::string_view json);

// The address to show the user and to try first: the reflexive one, else the first
// host candidate.
[[nodiscard]] std::optional<base::SocketAddress> best_address(const PeerInfo& info);

}  // namespace peertun::client
