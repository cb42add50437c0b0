#include "traversal/candidate.h"

#include <algorithm>

namespace peertun::traversal {

std::string_view to_string(CandidateType type) {
  switch (type) {
    case CandidateType::Host:
      return "host";
    case CandidateType::PeerReflexive:
      return "prflx";
    case CandidateType::ServerReflexive:
      return "srflx";
    case CandidateType::Relayed:
      return "relay";
  }
  return "unknown";
}

namespace {

std::uint32_t type_preference(CandidateType type) {
  switch (type) {
    case CandidateType::Host:
      return kHostTypePreference;
    case CandidateType::PeerReflexive:
      return kPeerReflexiveTypePreference;
    case CandidateType::ServerReflexive:
      return kServerReflexiveTypePreference;
    case CandidateType::Relayed:
      return kRelayedTypePreference;
  }
  return kRelayedTypePreference;
}

std::uint32_t local_preference(const base::SocketAddress& address) {
  const auto& ip = address.ip();
  if (ip.is_private() || ip.is_loopback()) {
    return kLanLocalPreference;
  }
  return ip.is_v4() ? kIpv4LocalPreference : kIpv6LocalPreference;
}

}  // namespace

std::uint32_t candidate_priority(CandidateType type, const base::SocketAddress& address) {
  constexpr std::uint32_t kComponent = 1;
  return (type_preference(type) << 24U) + (local_preference(address) << 8U) + (256U - kComponent);
}

Candidate make_candidate(CandidateType type, const base::SocketAddress& address) {
  return Candidate{type, address, candidate_priority(type, address)};
}

std::uint64_t pair_priority(std::uint32_t controlling, std::uint32_t controlled) {
  const std::uint64_t g = controlling;
  const std::uint64_t d = controlled;
  return (std::min(g, d) << 32U) + 2 * std::max(g, d) + (g > d ? 1 : 0);
}

bool is_usable_remote(const base::SocketAddress& address, bool allow_loopback) {
  const auto& ip = address.ip();
  const auto bytes = ip.bytes();
  if (address.port() == 0 || ip.is_unspecified() || ip.is_link_local() ||
      (ip.is_loopback() && !allow_loopback) || ip.unmapped() != ip) {
    return false;
  }
  if (ip.is_v4()) {
    // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved and the limited broadcast.
    return bytes[0] < 224;
  }
  return bytes[0] != 0xff;  // ff00::/8 multicast
}

std::vector<Candidate> host_candidates(const std::vector<base::IpAddress>& addresses,
                                       std::uint16_t port, bool keep_loopback) {
  std::vector<Candidate> out;
  for (const auto& ip : addresses) {
    if (ip.is_unspecified() || ip.is_link_local() || (ip.is_loopback() && !keep_loopback)) {
      continue;
    }
    const base::SocketAddress address(ip, port);
    const bool seen = std::any_of(out.begin(), out.end(),
                                  [&](const Candidate& c) { return c.address == address; });
    if (!seen) {
      out.push_back(make_candidate(CandidateType::Host, address));
    }
  }
  return out;
}

}  // namespace peertun::traversal
