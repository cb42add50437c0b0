#include "client/relay_target.h"

#include <charconv>

#include "base/socket_address.h"

namespace peertun::client {

std::string RelayTarget::display() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<RelayTarget> parse_relay_target(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  if (text.starts_with("ws://")) {
    text.remove_prefix(5);
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
      if (text.substr(slash) != "/v1/control" && text.substr(slash) != "/") {
        return std::nullopt;
      }
      text = text.substr(0, slash);
    }
  } else if (text.find("://") != std::string_view::npos) {
    return std::nullopt;
  }
  if (text.empty()) {
    return std::nullopt;
  }
  // A bare IPv6 literal or a bracketed one without port.
  if (base::IpAddress::parse(text) && text.find(':') != std::string_view::npos) {
    return RelayTarget{std::string(text), kDefaultRelayPort};
  }
  if (text.front() == '[' && text.back() == ']') {
    auto inner = text.substr(1, text.size() - 2);
    if (!base::IpAddress::parse(inner)) {
      return std::nullopt;
    }
    return RelayTarget{std::string(inner), kDefaultRelayPort};
  }
  if (auto hp = base::split_host_port(text)) {
    if (hp->port == 0) {
      return std::nullopt;
    }
    if (hp->host.front() == '[') {
      return std::nullopt;
    }
    return RelayTarget{hp->host, hp->port};
  }
  if (text.find(':') != std::string_view::npos || text.find('[') != std::string_view::npos) {
    return std::nullopt;
  }
  return RelayTarget{std::string(text), kDefaultRelayPort};
}

}  // namespace peertun::client
