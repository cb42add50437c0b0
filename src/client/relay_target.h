#pragma once
// Where the relay is and how to trust it: "host", "host:port", "[v6]:port",
// "ws://host[:port][/v1/control]" or "wss://host[:port][/v1/control]". Without a
// scheme the connection is plain WebSocket (ws). The default port is 4040.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace peertun::client {

inline constexpr std::uint16_t kDefaultRelayPort = 4040;

struct RelayTarget {
  std::string host;  // a name or an IP literal (no brackets)
  std::uint16_t port = kDefaultRelayPort;
  bool tls = false;  // wss://
  // TLS trust (wss only; set from flags/config, not from the address): an extra CA
  // file (PEM) beside the system store, or a key pin "sha256:HEX" replacing CA checks.
  std::string ca_file{};
  std::string pin{};
  // "host:port" or "[v6]:port", for messages.
  [[nodiscard]] std::string display() const;
  // "ws://host:port" or "wss://host:port": parses back to the same target.
  [[nodiscard]] std::string url() const;
};

// nullopt for an empty host, a bad port, a scheme other than ws:// or wss://, or a
// path other than /v1/control.
[[nodiscard]] std::optional<RelayTarget> parse_relay_target(std::string_view text);

}  // namespace peertun::client
