#pragma once
// peertun-relay's settings, from relay.toml (docs/relay.md) with flags applied on top
// by app/peertun-relay.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/secret.h"
#include "base/socket_address.h"

namespace peertun::relay {

struct RelayConfig {
  // TCP control plane and UDP STUN share this port number.
  base::SocketAddress listen{base::IpAddress::v4({0, 0, 0, 0}), 4040};
  std::vector<base::Secret> tokens;
  // RFC 5780 alternate port; 0 means listen port + 1.
  std::uint16_t alt_port = 0;
  // RFC 5780 alternate address; needs a specific (non-wildcard) listen address.
  std::optional<base::IpAddress> alt_ip;
  // PEM certificate chain and key; both set = the control plane, /metrics and /healthz
  // are served over TLS only (wss/https). Read at start-up (Relay::start).
  std::string tls_cert;
  std::string tls_key;
  std::chrono::seconds session_ttl{600};
  // The relay pings idle control connections this often and drops those silent for
  // two intervals.
  std::chrono::seconds ping_interval{15};
  // A connection must authenticate within this long.
  std::chrono::seconds hello_timeout{10};
  std::string log_level = "info";
};

// Parses relay.toml content. Unknown keys are errors (a typo must not silently fall
// back to a default). `origin` names the file in messages. On failure `detail` says
// which key was wrong and why; it never quotes a token.
[[nodiscard]] base::Result<RelayConfig> parse_relay_config(std::string_view toml,
                                                           std::string_view origin,
                                                           std::string& detail);

// Checks cross-field rules (alt ip vs wildcard listen, at least one token, port ranges,
// TLS certificate and key together). Files are not opened here: Relay::start does.
// Returns an empty string when valid, else the problem in one sentence.
[[nodiscard]] std::string validate(const RelayConfig& config);

// The effective alternate port.
[[nodiscard]] std::uint16_t effective_alt_port(const RelayConfig& config);

}  // namespace peertun::relay
