#pragma once
// The relay's control plane: authenticates WebSocket connections with a token, mints
// and joins P2P sessions (SessionRegistry) and forwards the peers' opaque signalling
// between them (docs/protocol/control.md).
//
// Threading: the relay's io_context thread; one coroutine per connection.

#include <memory>
#include <unordered_map>

#include "control/messages.h"
#include "io/asio.h"
#include "io/websocket.h"
#include "relay/config.h"
#include "relay/session_registry.h"
#include "relay/stats.h"

namespace peertun::relay {

struct ControlServiceConfig {
  std::vector<base::Secret> tokens;
  std::uint16_t stun_port = 0;
  std::uint16_t alt_port = 0;
  std::optional<base::IpAddress> alt_ip;
  std::chrono::seconds session_ttl{600};
  std::chrono::seconds ping_interval{15};
  std::chrono::seconds hello_timeout{10};
};

class ControlService {
 public:
  ControlService(io::Executor executor, ControlServiceConfig config, RelayStats& stats);
  ~ControlService();

  // The handler to give io::WebSocketServer.
  io::Task<void> serve(std::shared_ptr<io::WebSocket> connection);

  // Starts the periodic nameplate expiry.
  void start();
  // Closes every connection and stops the expiry timer.
  void stop();

  [[nodiscard]] const SessionRegistry& registry() const { return registry_; }

 private:
  struct Connection;
  io::Task<void> expiry_loop(std::shared_ptr<bool> alive);
  void handle(Connection& conn, std::string_view text);
  void send_error(Connection& conn, control::ErrorCode code, std::string message);
  // Sends the error, then the connection is closed with 1008 (policy violation).
  void refuse(Connection& conn, control::ErrorCode code, std::string message);
  void end_session(Connection& conn, control::PeerLeftReason reason);
  [[nodiscard]] bool token_accepted(const base::Secret& token) const;

  io::Executor executor_;
  ControlServiceConfig config_;
  RelayStats& stats_;
  SessionRegistry registry_;
  std::unordered_map<ConnectionId, Connection*> connections_;
  ConnectionId next_id_ = 1;
  // Cancelled by stop() so shutdown does not wait for the next sweep.
  io::asio::steady_timer expiry_timer_;
  std::shared_ptr<bool> alive_;
};

}  // namespace peertun::relay
