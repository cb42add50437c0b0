#include "base/socket_address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace peertun::base {

IpAddress IpAddress::v4(std::array<std::uint8_t, 4> bytes) {
  IpAddress a;
  a.family_ = AddressFamily::V4;
  std::memcpy(a.bytes_.data(), bytes.data(), 4);
  return a;
}

IpAddress IpAddress::v6(std::array<std::uint8_t, 16> bytes) {
  IpAddress a;
  a.family_ = AddressFamily::V6;
  a.bytes_ = bytes;
  return a;
}

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton wants a NUL-terminated string; addresses are short.
  // inet_pton reads a C string: an embedded NUL would hide whatever follows it.
  if (text.empty() || text.size() > 45 || text.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  std::string z(text);
  std::array<std::uint8_t, 16> buf{};
  if (inet_pton(AF_INET, z.c_str(), buf.data()) == 1) {
    return v4({buf[0], buf[1], buf[2], buf[3]});
  }
  if (inet_pton(AF_INET6, z.c_str(), buf.data()) == 1) {
    return v6(buf);
  }
  return std::nullopt;
}

std::span<const std::uint8_t> IpAddress::bytes() const {
  return {bytes_.data(), is_v4() ? std::size_t{4} : std::size_t{16}};
}

bool IpAddress::is_unspecified() const {
  for (auto b : bytes()) {
    if (b != 0) {
      return false;
    }
  }
  return true;
}

bool IpAddress::is_loopback() const {
  if (is_v4()) {
    return bytes_[0] == 127;
  }
  static constexpr std::array<std::uint8_t, 16> kLoop{0, 0, 0, 0, 0, 0, 0, 0,
                                                      0, 0, 0, 0, 0, 0, 0, 1};
  if (bytes_ == kLoop) {
    return true;
  }
  const IpAddress inner = unmapped();
  return inner.is_v4() && inner.is_loopback();
}

bool IpAddress::is_link_local() const {
  if (is_v4()) {
    return bytes_[0] == 169 && bytes_[1] == 254;
  }
  return bytes_[0] == 0xfe && (bytes_[1] & 0xc0) == 0x80;
}

bool IpAddress::is_private() const {
  if (is_v4()) {
    const auto b0 = bytes_[0];
    const auto b1 = bytes_[1];
    return b0 == 10 || (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
           (b0 == 100 && (b1 & 0xc0) == 64);
  }
  const IpAddress inner = unmapped();
  if (inner.is_v4()) {
    return inner.is_private();
  }
  return (bytes_[0] & 0xfe) == 0xfc;
}

IpAddress IpAddress::unmapped() const {
  if (is_v4()) {
    return *this;
  }
  for (int i = 0; i < 10; ++i) {
    if (bytes_[static_cast<std::size_t>(i)] != 0) {
      return *this;
    }
  }
  if (bytes_[10] != 0xff || bytes_[11] != 0xff) {
    return *this;
  }
  return v4({bytes_[12], bytes_[13], bytes_[14], bytes_[15]});
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
  return buf;
}

std::optional<SocketAddress> SocketAddress::parse(std::string_view text) {
  auto hp = split_host_port(text);
  if (!hp) {
    return std::nullopt;
  }
  auto ip = IpAddress::parse(hp->host);
  if (!ip) {
    return std::nullopt;
  }
  return SocketAddress(*ip, hp->port);
}

std::string SocketAddress::to_string() const {
  if (ip_.is_v4()) {
    return ip_.to_string() + ":" + std::to_string(port_);
  }
  return "[" + ip_.to_string() + "]:" + std::to_string(port_);
}

std::optional<HostPort> split_host_port(std::string_view text) {
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return std::nullopt;
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    // An unbracketed IPv6 literal is ambiguous; refuse it.
    if (host.find(':') != std::string_view::npos) {
      return std::nullopt;
    }
  }
  if (host.empty() || port.empty()) {
    return std::nullopt;
  }
  unsigned value = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535) {
    return std::nullopt;
  }
  return HostPort{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace peertun::base
