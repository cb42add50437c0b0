#include "relay/config.h"

#include <toml++/toml.h>

#include <boost/system/errc.hpp>

#include "base/duration.h"

namespace peertun::relay {
namespace {

base::ErrorCode invalid() {
  return boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
}

bool set_duration(const toml::node& node, std::chrono::seconds& out, std::string& problem) {
  auto text = node.value<std::string>();
  if (!text) {
    problem = "expected a duration string such as \"10m\" or \"15s\"";
    return false;
  }
  auto d = base::parse_duration(*text);
  if (!d || *d < std::chrono::seconds(1)) {
    problem = "expected a duration of at least 1s such as \"10m\" or \"15s\"";
    return false;
  }
  out = std::chrono::duration_cast<std::chrono::seconds>(*d);
  return true;
}

}  // namespace

base::Result<RelayConfig> parse_relay_config(std::string_view toml_text, std::string_view origin,
                                             std::string& detail) {
  // Debian's toml++ reports syntax errors by exception; config parsing is one of the
  // places STYLE.md allows them, and they stop here.
  toml::table table;
  try {
    table = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& err) {
    detail = std::string(origin) + ":" + std::to_string(err.source().begin.line) + ": " +
             std::string(err.description());
    return invalid();
  }
  RelayConfig config;
  for (const auto& [key_node, node] : table) {
    const std::string key(key_node.str());
    std::string problem;
    bool ok = true;
    if (key == "listen") {
      auto text = node.value<std::string>();
      auto addr = text ? base::SocketAddress::parse(*text) : std::nullopt;
      ok = addr.has_value();
      if (ok) {
        config.listen = *addr;
      }
      problem = "expected \"IP:PORT\" such as \"0.0.0.0:4040\" or \"[::]:4040\"";
    } else if (key == "tokens") {
      const toml::array* arr = node.as_array();
      ok = arr != nullptr;
      if (ok) {
        for (const auto& item : *arr) {
          auto token = item.value<std::string>();
          if (!token || token->empty()) {
            ok = false;
            break;
          }
          config.tokens.emplace_back(*token);
        }
      }
      problem = "expected an array of non-empty strings";
    } else if (key == "alt_port") {
      auto port = node.value<std::int64_t>();
      ok = port && *port >= 1 && *port <= 65535;
      if (ok) {
        config.alt_port = static_cast<std::uint16_t>(*port);
      }
      problem = "expected a port number 1..65535";
    } else if (key == "alt_ip") {
      auto text = node.value<std::string>();
      auto ip = text ? base::IpAddress::parse(*text) : std::nullopt;
      ok = ip.has_value();
      if (ok) {
        config.alt_ip = *ip;
      }
      problem = "expected an IP address";
    } else if (key == "tls_cert" || key == "tls_key") {
      auto text = node.value<std::string>();
      ok = text && !text->empty();
      if (ok) {
        (key == "tls_cert" ? config.tls_cert : config.tls_key) = *text;
      }
      problem = "expected a file path";
    } else if (key == "session_ttl") {
      ok = set_duration(node, config.session_ttl, problem);
    } else if (key == "ping_interval") {
      ok = set_duration(node, config.ping_interval, problem);
    } else if (key == "log_level") {
      auto text = node.value<std::string>();
      ok = text.has_value();
      if (ok) {
        config.log_level = *text;
      }
      problem = "expected one of trace, debug, info, warn, error, off";
    } else {
      detail = std::string(origin) + ": unknown key \"" + key + "\"";
      return invalid();
    }
    if (!ok) {
      detail = std::string(origin) + ": key \"" + key + "\": " + problem;
      return invalid();
    }
  }
  return config;
}

std::string validate(const RelayConfig& config) {
  if (config.tokens.empty()) {
    return "no token configured: give at least one with --token or `tokens = [...]`";
  }
  if (config.alt_ip && config.listen.ip().is_unspecified()) {
    return "--alt-ip needs --listen with a specific address (the RFC 5780 primary address)";
  }
  if (config.alt_ip && config.alt_ip->family() != config.listen.family()) {
    return "--alt-ip must be the same address family as --listen";
  }
  if (config.alt_port == 0 && config.listen.port() == 65535) {
    return "listen port 65535 leaves no room for the default alternate port; set --alt-port";
  }
  if (config.alt_port != 0 && config.alt_port == config.listen.port()) {
    return "--alt-port must differ from the listen port";
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return "--tls-cert and --tls-key go together (tls_cert and tls_key in relay.toml): give both "
           "for wss, or neither";
  }
  return {};
}

std::uint16_t effective_alt_port(const RelayConfig& config) {
  if (config.alt_port != 0) {
    return config.alt_port;
  }
  return static_cast<std::uint16_t>(config.listen.port() + 1);
}

}  // namespace peertun::relay
