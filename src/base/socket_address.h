#pragma once
// An IPv4 or IPv6 transport address (IP + port) as a plain value, so that the
// sans-I/O modules (stun, traversal, control) need no socket headers. io/ converts
// to and from Asio endpoints.

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace peertun::base {

enum class AddressFamily : std::uint8_t { V4 = 4, V6 = 6 };

class IpAddress {
 public:
  IpAddress() = default;  // 0.0.0.0
  static IpAddress v4(std::array<std::uint8_t, 4> bytes);
  static IpAddress v6(std::array<std::uint8_t, 16> bytes);

  // Accepts dotted-quad IPv4 and RFC 4291 text IPv6 (no brackets, no zone id).
  static std::optional<IpAddress> parse(std::string_view text);

  [[nodiscard]] AddressFamily family() const { return family_; }
  [[nodiscard]] bool is_v4() const { return family_ == AddressFamily::V4; }
  // 4 bytes for IPv4, 16 for IPv6, network order.
  [[nodiscard]] std::span<const std::uint8_t> bytes() const;

  [[nodiscard]] bool is_unspecified() const;
  [[nodiscard]] bool is_loopback() const;
  [[nodiscard]] bool is_link_local() const;
  // RFC 1918, RFC 6598 (100.64/10), RFC 4193 (fc00::/7).
  [[nodiscard]] bool is_private() const;
  // ::ffff:a.b.c.d becomes a.b.c.d; anything else is returned unchanged.
  [[nodiscard]] IpAddress unmapped() const;

  [[nodiscard]] std::string to_string() const;

  friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

 private:
  AddressFamily family_ = AddressFamily::V4;
  std::array<std::uint8_t, 16> bytes_{};
};

class SocketAddress {
 public:
  SocketAddress() = default;
  SocketAddress(IpAddress ip, std::uint16_t port) : ip_(ip), port_(port) {}

  // "1.2.3.4:5", "[::1]:5". No names are resolved here.
  static std::optional<SocketAddress> parse(std::string_view text);

  [[nodiscard]] const IpAddress& ip() const { return ip_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] AddressFamily family() const { return ip_.family(); }

  // "1.2.3.4:5" or "[::1]:5".
  [[nodiscard]] std::string to_string() const;

  friend auto operator<=>(const SocketAddress&, const SocketAddress&) = default;

 private:
  IpAddress ip_;
  std::uint16_t port_ = 0;
};

// Splits "host:port" / "[v6]:port" into host and port without resolving the host.
// Returns nullopt for a missing or out-of-range port.
struct HostPort {
  std::string host;
  std::uint16_t port = 0;
};
std::optional<HostPort> split_host_port(std::string_view text);

}  // namespace peertun::base
