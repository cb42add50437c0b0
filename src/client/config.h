#pragma once
// The client's settings: ~/.config/peertun/config.toml, then the environment
// (PEERTUN_RELAY, PEERTUN_TOKEN, PEERTUN_RELAY_CA, PEERTUN_RELAY_PIN), then flags;
// later sources win.

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "base/secret.h"

namespace peertun::client {

struct ClientConfig {
  std::optional<std::string> relay;
  std::optional<base::Secret> token;
  std::optional<std::string> log_level;
  // wss only: a CA file (PEM) trusted beside the system store, and a key pin
  // ("sha256:HEX") that replaces CA checks.
  std::optional<std::string> relay_ca{};
  std::optional<std::string> relay_pin{};
};

// Parses config.toml content. Unknown keys are errors; a malformed relay_pin is one.
// On failure `detail` names the file, line or key; it never quotes the token.
[[nodiscard]] base::Result<ClientConfig> parse_client_config(std::string_view toml,
                                                             std::string_view origin,
                                                             std::string& detail);

// `over`'s values replace `base`'s where present.
[[nodiscard]] ClientConfig merge(ClientConfig base, const ClientConfig& over);

// $XDG_CONFIG_HOME/peertun/config.toml or ~/.config/peertun/config.toml; empty if
// neither variable is set.
[[nodiscard]] std::string default_config_path();

}  // namespace peertun::client
