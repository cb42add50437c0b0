#pragma once
// Where the relay is: "host", "host:port", "[v6]:port" or "ws://host:port[/v1/control]".
// The default port is 4040.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace peertun::client {

inline constexpr std::uint16_t kDefaultRelayPort = 4040;

struct RelayTarget {
  std::string host;  // a name or an IP literal (no brackets)
  std::uint16_t port = kDefaultRelayPort;
  // "host:port" or "[v6]:port", for messages.
  [[nodiscard]] std::string display() const;
};

// nullopt for an empty host, a bad port, a scheme other than ws://, or a path other
// than /v1/control.
[[nodiscard]] std::optional<RelayTarget> parse_relay_target(std::string_view text);

}  // namespace peertun::client
