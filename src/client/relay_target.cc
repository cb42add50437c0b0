#include "client/relay_target.h"

#include <charconv>

#include "base/socket_address.h"

namespace peertun::client {

std::string RelayTarget::display() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RelayTarget::url() const { return (tls ? "wss://" : "ws://") + display(); }

namespace {

// A DNS name (letters, digits, '-', '.', '_') or an IP literal; anything else (spaces,
// '@', '/', ...) is a typo or an attack on whoever resolves it.
bool valid_host(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  if (base::IpAddress::parse(host)) {
    return true;
  }
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::optional<RelayTarget> checked(std::string host, std::uint16_t port, bool tls) {
  if (!valid_host(host)) {
    return std::nullopt;
  }
  RelayTarget t;
  t.host = std::move(host);
  t.port = port;
  t.tls = tls;
  return t;
}

}  // namespace

std::optional<RelayTarget> parse_relay_target(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  bool tls = false;
  const bool ws = text.starts_with("ws://");
  const bool wss = text.starts_with("wss://");
  if (ws || wss) {
    tls = wss;
    text.remove_prefix(wss ? 6 : 5);
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
    return checked(std::string(text), kDefaultRelayPort, tls);
  }
  if (text.front() == '[' && text.back() == ']') {
    auto inner = text.substr(1, text.size() - 2);
    if (!base::IpAddress::parse(inner)) {
      return std::nullopt;
    }
    return checked(std::string(inner), kDefaultRelayPort, tls);
  }
  if (auto hp = base::split_host_port(text)) {
    if (hp->port == 0) {
      return std::nullopt;
    }
    if (hp->host.front() == '[') {
      return std::nullopt;
    }
    return checked(hp->host, hp->port, tls);
  }
  if (text.find(':') != std::string_view::npos || text.find('[') != std::string_view::npos) {
    return std::nullopt;
  }
  return checked(std::string(text), kDefaultRelayPort, tls);
}

}  // namespace peertun::client
