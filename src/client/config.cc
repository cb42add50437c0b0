#include "client/config.h"

#include <toml++/toml.h>

#include <boost/system/errc.hpp>
#include <cstdlib>

#include "io/tls_stream.h"

namespace peertun::client {

base::Result<ClientConfig> parse_client_config(std::string_view toml_text, std::string_view origin,
                                               std::string& detail) {
  const auto invalid = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  toml::table table;
  // Debian's toml++ reports syntax errors by exception; they stop here.
  try {
    table = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& err) {
    detail = std::string(origin) + ":" + std::to_string(err.source().begin.line) + ": " +
             std::string(err.description());
    return invalid;
  }
  ClientConfig config;
  for (const auto& [key_node, node] : table) {
    const std::string key(key_node.str());
    auto text = node.value<std::string>();
    if (key != "relay" && key != "token" && key != "log_level" && key != "relay_ca" &&
        key != "relay_pin") {
      detail = std::string(origin) + ": unknown key \"" + key + "\"";
      return invalid;
    }
    if (!text || text->empty()) {
      detail = std::string(origin) + ": key \"" + key + "\": expected a non-empty string";
      return invalid;
    }
    if (key == "relay") {
      config.relay = *text;
    }
    if (key == "token") {
      config.token = base::Secret(*text);
    }
    if (key == "log_level") {
      config.log_level = *text;
    }
    if (key == "relay_ca") {
      config.relay_ca = *text;
    }
    if (key == "relay_pin") {
      if (!io::is_valid_pin(*text)) {
        detail = std::string(origin) +
                 ": key \"relay_pin\": expected \"sha256:\" and 64 hex digits (the relay "
                 "prints its pin at start)";
        return invalid;
      }
      config.relay_pin = *text;
    }
  }
  return config;
}

ClientConfig merge(ClientConfig base, const ClientConfig& over) {
  if (over.relay) {
    base.relay = over.relay;
  }
  if (over.token) {
    base.token = over.token;
  }
  if (over.log_level) {
    base.log_level = over.log_level;
  }
  if (over.relay_ca) {
    base.relay_ca = over.relay_ca;
  }
  if (over.relay_pin) {
    base.relay_pin = over.relay_pin;
  }
  return base;
}

std::string default_config_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/peertun/config.toml";
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return std::string(home) + "/.config/peertun/config.toml";
  }
  return {};
}

}  // namespace peertun::client
