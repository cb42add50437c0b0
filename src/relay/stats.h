#pragma once
// Counters the relay keeps for /metrics, tests and benches. Single-threaded: only
// the relay's io_context thread touches them.

#include <cstdint>
#include <string>

namespace peertun::relay {

struct RelayStats {
  // control plane
  std::uint64_t connections_total = 0;
  std::uint64_t connections_active = 0;
  std::uint64_t authenticated_active = 0;
  std::uint64_t auth_failures = 0;
  std::uint64_t hello_timeouts = 0;
  std::uint64_t bad_messages = 0;
  std::uint64_t rate_limited = 0;
  std::uint64_t sessions_created = 0;
  std::uint64_t sessions_joined = 0;
  std::uint64_t sessions_expired = 0;
  std::uint64_t join_failures = 0;
  std::uint64_t signals_forwarded = 0;
  std::uint64_t punches_fired = 0;
  // path_report outcomes, by control::PathOutcome
  std::uint64_t paths_direct = 0;
  std::uint64_t paths_failed = 0;
  std::uint64_t paths_impossible = 0;
  std::uint64_t paths_unknown = 0;
  // STUN (UDP)
  std::uint64_t stun_received = 0;
  std::uint64_t stun_replied = 0;
  std::uint64_t stun_malformed = 0;
  std::uint64_t stun_not_binding = 0;
  std::uint64_t stun_ignored = 0;
  std::uint64_t stun_send_failed = 0;
};

// Prometheus text exposition format (version 0.0.4).
std::string to_prometheus(const RelayStats& stats);

}  // namespace peertun::relay
