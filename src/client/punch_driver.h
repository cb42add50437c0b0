#pragma once
// Drives a traversal::PunchAgent over the session's UDP socket: reads the socket, feeds
// STUN checks to the agent, sends what it asks for, runs its timers, and reports when
// the attempt ends (a selected path, a failure), when the path moves (Connected again,
// with a new remote: the peer's NAT rebound) and when it is lost.
//
// The driver is the socket's only reader once started; datagrams that are not the
// agent's (the QUIC data plane's, in a later version) go to `unclaimed`.
//
// Threading: the client's io_context thread. Owned by a shared_ptr its own coroutines
// hold, so stop() is enough to end it; the handlers are never called after stop().

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "io/asio.h"
#include "io/udp_socket.h"
#include "traversal/punch_agent.h"

namespace peertun::client {

struct PunchOutcome {
  traversal::AgentState state = traversal::AgentState::Idle;  // Connected, Failed, PathLost
  std::optional<traversal::SelectedPath> path;
  std::string reason;  // the agent's failure_reason() for Failed / PathLost
  // PunchAgent::time_to_first_path(), when a pair was proven both ways.
  std::optional<traversal::Clock::duration> time_to_first_path;
};

class PunchDriver : public std::enable_shared_from_this<PunchDriver> {
 public:
  using OutcomeHandler = std::function<void(const PunchOutcome&)>;
  using Unclaimed = std::function<void(const io::ReceivedDatagram&)>;
  // After each batch of datagrams in which `unclaimed` was called (so QUIC can send its
  // acknowledgements once per batch, not once per datagram).
  using BatchEnd = std::function<void()>;

  // Starts answering the peer's checks at once; sends none of its own before fire().
  static std::shared_ptr<PunchDriver> start(io::Executor executor,
                                            std::shared_ptr<io::UdpSocket> socket,
                                            traversal::AgentConfig config,
                                            OutcomeHandler on_outcome, Unclaimed unclaimed,
                                            BatchEnd batch_end);

  // The relay's "fire".
  void fire();
  // Ends both loops; no handler runs after this.
  void stop();

  // Authenticated traffic of the data plane (QUIC) came from `from`: consent for the
  // selected path (PunchAgent::note_traffic_from).
  void note_traffic_from(const base::SocketAddress& from) {
    agent_.note_traffic_from(from, traversal::Clock::now());
  }

  [[nodiscard]] const traversal::PunchAgent& agent() const { return agent_; }

  PunchDriver(io::Executor executor, std::shared_ptr<io::UdpSocket> socket,
              traversal::AgentConfig config, OutcomeHandler on_outcome, Unclaimed unclaimed,
              BatchEnd batch_end);

 private:
  io::Task<void> receive_loop(std::shared_ptr<PunchDriver> self);
  io::Task<void> timer_loop(std::shared_ptr<PunchDriver> self);
  // Sends everything due, reports a changed state, re-arms the timer.
  void flush();

  std::shared_ptr<io::UdpSocket> socket_;
  traversal::PunchAgent agent_;
  io::asio::steady_timer timer_;
  OutcomeHandler on_outcome_;
  Unclaimed unclaimed_;
  BatchEnd batch_end_;
  traversal::AgentState reported_ = traversal::AgentState::Idle;
  std::optional<base::SocketAddress> reported_remote_;
  bool stopped_ = false;
};

}  // namespace peertun::client
