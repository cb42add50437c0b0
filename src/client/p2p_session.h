#pragma once
// One P2P session as far as the rendezvous goes: connect to the relay, learn our
// public address by STUN from the socket that will carry the data, meet the peer by
// nameplate, run the PAKE over the relay, and exchange addresses inside the sealed
// channel. Peer A shares (mints the join code), peer B joins with it.
//
// Threading: runs on the client's io_context thread; stop() must be called there too.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "base/secret.h"
#include "base/socket_address.h"
#include "client/control_client.h"
#include "client/peer_info.h"
#include "client/relay_target.h"
#include "io/udp_socket.h"
#include "pake/join_code.h"

namespace peertun::client {

// How long the PAKE and address exchange may take once both peers are paired.
inline constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
// STUN transaction budget (RFC 8489 §6.2.1 retransmits inside it).
inline constexpr auto kStunTimeout = std::chrono::milliseconds(3000);

struct P2pSettings {
  RelayTarget relay;
  base::Secret token;
  std::chrono::milliseconds stun_timeout = kStunTimeout;
};

// What the user is told; the app prints it (human lines or JSON).
class P2pObserver {
 public:
  virtual ~P2pObserver() = default;
  virtual void relay_connected(const control::Welcome& /*welcome*/) {}
  virtual void join_code(const std::string& /*code*/) {}
  virtual void public_address(const base::SocketAddress& /*address*/) {}
  virtual void stun_failed(const std::string& /*why*/) {}
  virtual void peer_joined() {}
  virtual void peer_address(char /*peer_role*/, const base::SocketAddress& /*address*/) {}
  virtual void peer_left(char /*peer_role*/) {}
};

// Exit codes (also the CLI's): 0 success, 1 a failure at run time, 2 bad usage.
struct Failure {
  int exit_code = 1;
  std::string message;  // one line for the user; never contains a secret
};

class P2pSession {
 public:
  P2pSession(P2pSettings settings, P2pObserver& observer)
      : settings_(std::move(settings)), observer_(observer) {}

  // Peer A. Returns nullopt when the session ended normally (the peer left after the
  // exchange, or stop() was called).
  io::Task<std::optional<Failure>> share();
  // Peer B.
  io::Task<std::optional<Failure>> join(pake::JoinCode code);

  // Ends a running share()/join() promptly (Ctrl-C).
  void stop();

  // After the exchange: what the peer told us.
  [[nodiscard]] const std::optional<PeerInfo>& peer_info() const { return peer_info_; }

 private:
  io::Task<std::optional<Failure>> run(bool is_a, std::optional<pake::JoinCode> code);
  // Opens the data socket and fills ours_ (host candidates, STUN mapping).
  io::Task<std::optional<Failure>> gather();

  P2pSettings settings_;
  P2pObserver& observer_;
  std::unique_ptr<ControlClient> control_;
  std::optional<io::UdpSocket> socket_;
  PeerInfo ours_;
  std::optional<PeerInfo> peer_info_;
  bool stopping_ = false;
  bool timed_out_ = false;
};

}  // namespace peertun::client
