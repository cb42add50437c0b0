#pragma once
// A running peertun-relay: the WebSocket control plane on TCP and STUN on UDP at the
// same port number (plus the RFC 5780 alternate port and address).
//
// Threading: everything runs on the executor given to start().

#include <memory>

#include "base/error.h"
#include "io/asio.h"
#include "relay/config.h"
#include "relay/stats.h"

namespace peertun::relay {

class Relay {
 public:
  // Binds everything. With listen port 0 the OS picks a port free for TCP and UDP at
  // once (and for port+1 as the alternate, unless alt_port is set). With tls_cert and
  // tls_key it loads them and serves the control plane over TLS only. Errors: bind
  // failures; io::TlsErrc::BadCredentials with `problem` naming the file and what is
  // wrong. The config must already have passed validate().
  static base::Result<std::unique_ptr<Relay>> start(io::Executor executor, RelayConfig config,
                                                    std::string& problem);
  static base::Result<std::unique_ptr<Relay>> start(io::Executor executor, RelayConfig config);
  ~Relay();

  [[nodiscard]] base::SocketAddress control_address() const;
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] std::uint16_t alt_port() const;
  [[nodiscard]] const RelayStats& stats() const;
  // Whether the control plane is wss, and then the certificate's key pin
  // ("sha256:HEX") that clients may configure instead of a CA.
  [[nodiscard]] bool tls() const;
  [[nodiscard]] const std::string& tls_pin() const;

  // Stops listening and closes every connection.
  void stop();

  struct Parts;

 private:
  explicit Relay(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace peertun::relay
