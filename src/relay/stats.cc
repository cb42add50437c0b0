#include "relay/stats.h"

#include <fmt/format.h>

namespace peertun::relay {

std::string to_prometheus(const RelayStats& s) {
  std::string out;
  auto counter = [&out](const char* name, const char* help, std::uint64_t v) {
    fmt::format_to(
        std::back_inserter(out),
        "# HELP peertun_relay_{0} {1}\n# TYPE peertun_relay_{0} counter\npeertun_relay_{0} {2}\n",
        name, help, v);
  };
  auto gauge = [&out](const char* name, const char* help, std::uint64_t v) {
    fmt::format_to(
        std::back_inserter(out),
        "# HELP peertun_relay_{0} {1}\n# TYPE peertun_relay_{0} gauge\npeertun_relay_{0} {2}\n",
        name, help, v);
  };
  counter("connections_total", "Control connections accepted.", s.connections_total);
  gauge("connections_active", "Control connections open now.", s.connections_active);
  gauge("authenticated_active", "Authenticated control connections open now.",
        s.authenticated_active);
  counter("auth_failures_total", "Connections refused for a missing or bad token.",
          s.auth_failures);
  counter("hello_timeouts_total", "Connections closed for not authenticating in time.",
          s.hello_timeouts);
  counter("bad_messages_total", "Control messages that did not parse or were out of place.",
          s.bad_messages);
  counter("rate_limited_total", "Connections closed for sending too fast.", s.rate_limited);
  counter("sessions_created_total", "P2P sessions (nameplates) minted.", s.sessions_created);
  counter("sessions_joined_total", "P2P sessions joined by a second peer.", s.sessions_joined);
  counter("sessions_expired_total", "Nameplates that expired unused.", s.sessions_expired);
  counter("join_failures_total", "Join attempts refused.", s.join_failures);
  counter("signals_forwarded_total", "Opaque signalling messages forwarded.", s.signals_forwarded);
  counter("punches_fired_total", "Sessions whose peers were both told to fire.", s.punches_fired);
  fmt::format_to(std::back_inserter(out),
                 "# HELP peertun_relay_path_reports_total How peers' direct-path attempts "
                 "ended.\n# TYPE peertun_relay_path_reports_total counter\n");
  for (const auto& [outcome, v] :
       {std::pair{"direct", s.paths_direct}, std::pair{"failed", s.paths_failed},
        std::pair{"impossible", s.paths_impossible}, std::pair{"unknown", s.paths_unknown}}) {
    fmt::format_to(std::back_inserter(out),
                   "peertun_relay_path_reports_total{{outcome=\"{}\"}} {}\n", outcome, v);
  }
  counter("stun_received_total", "UDP datagrams received on the STUN ports.", s.stun_received);
  counter("stun_replied_total", "STUN Binding responses sent.", s.stun_replied);
  counter("stun_malformed_total", "Datagrams dropped as malformed.", s.stun_malformed);
  counter("stun_not_binding_total", "Valid STUN requests of other methods (not served yet).",
          s.stun_not_binding);
  counter("stun_ignored_total", "STUN indications and responses ignored.", s.stun_ignored);
  counter("stun_send_failed_total", "Responses the kernel refused (buffer full).",
          s.stun_send_failed);
  return out;
}

}  // namespace peertun::relay
