#pragma once
// The relay's STUN server (RFC 8489 Binding, RFC 5780 behaviour discovery) on UDP:
// the listen port, the alternate port and, when configured, the alternate IP.
// Each socket runs one receive loop; replies leave from the socket that
// CHANGE-REQUEST asks for. Malformed datagrams are counted and dropped.
//
// Threading: the relay's io_context thread.

#include <memory>
#include <optional>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "io/asio.h"
#include "io/udp_socket.h"
#include "relay/stats.h"

namespace peertun::relay {

struct StunServiceConfig {
  base::IpAddress primary_ip;  // may be the wildcard
  std::optional<base::IpAddress> alternate_ip;
  std::uint16_t port = 0;
  std::uint16_t alt_port = 0;
  // Also serve IPv6 on [::] when primary_ip is the IPv4 wildcard (best effort).
  bool add_v6_wildcard = false;
};

class StunService {
 public:
  // Binds every socket; fails as a whole if a required one cannot be bound.
  static base::Result<std::unique_ptr<StunService>> start(io::Executor executor,
                                                          const StunServiceConfig& config,
                                                          RelayStats& stats);
  ~StunService();
  void stop();

  struct Endpoint;

 private:
  StunService(StunServiceConfig config, RelayStats& stats);
  io::Task<void> serve(std::size_t index);
  StunServiceConfig config_;
  RelayStats& stats_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::shared_ptr<bool> alive_;
};

}  // namespace peertun::relay
