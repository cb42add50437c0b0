#pragma once
// What each peer tells the other inside the PAKE-sealed channel once the handshake
// is done (docs/protocol/signalling.md): its server-reflexive address and host
// candidates. JSON, versioned; unknown fields are ignored so later versions can add
// candidates and certificate fingerprints.

#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"

namespace peertun::client {

inline constexpr std::size_t kMaxPeerInfoBytes = std::size_t{8} * 1024;
inline constexpr std::size_t kMaxHostCandidates = 32;

struct PeerInfo {
  std::optional<base::SocketAddress> reflexive;  // from the relay's STUN; absent if UDP failed
  std::vector<base::SocketAddress> host;         // local interface addresses + our UDP port
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
