#pragma once
// Drives a traversal::PunchAgent over the session's UDP socket: reads the socket, feeds
// STUN checks to the agent, sends what it asks for, runs its timers, and reports when
// the attempt ends (a selected path, a failure), when the path moves (Connected again,
// with a new remote: the peer's NAT rebound) and when it is lost.
//
// The driver is the socket's only reader once started; datagrams that are not the
// agent's (the QUIC data plane's) go to `unclaimed`. It turns UDP GRO on for the socket
// (io::UdpSocket::enable_gro): a bulk transfer then arrives as coalesced batches of up to
// 64 KiB per receive, and split_segments() takes STUN checks out of them.
//
// Threading: the client's io_context thread. Owned by a shared_ptr its own coroutines
// hold, so stop() is enough to end it; the handlers are never called after stop().

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "io/asio.h"
#include "io/udp_socket.h"
#include "stun/message.h"
#include "traversal/punch_agent.h"

namespace peertun::client {

// A piece of one received datagram, as split_segments() hands it on.
struct SegmentRun {
  // Points into the datagram.
  std::span<std::uint8_t> data;
  // Every segment of the run has this size except the datagram's last, which may be
  // shorter; a run of one segment has its size. Session::receive takes (data,
  // segment_size) as one GRO batch.
  std::size_t segment_size = 0;
  // One segment that passes stun::looks_like_stun (a connectivity check, or garbage that
  // looks like one); otherwise one or more consecutive segments that do not (QUIC).
  bool stun = false;
};

// The demultiplexer of the shared socket (docs/protocol/quic.md, "Connection IDs"). With
// GRO the kernel coalesces datagrams of one source into one buffer of `segment_size`-byte
// segments (the last may be shorter), and a connectivity check from the peer can sit
// among its QUIC packets. Calls `on_run(const SegmentRun&)` in order for every STUN
// segment alone and for every maximal run of consecutive other segments, so QUIC still
// gets its packets as batches. `segment_size` 0 or larger than the datagram means one
// segment. An empty datagram yields nothing. Pure: never allocates, never reads outside
// `data`, and every byte of `data` lands in exactly one run.
template <class OnRun>
void split_segments(std::span<std::uint8_t> data, std::size_t segment_size, OnRun&& on_run) {
  if (segment_size == 0 || segment_size > data.size()) {
    segment_size = data.size();
  }
  std::size_t run_start = 0;
  for (std::size_t off = 0; off < data.size(); off += segment_size) {
    const auto segment = data.subspan(off, std::min(segment_size, data.size() - off));
    if (!stun::looks_like_stun(segment)) {
      continue;
    }
    if (off > run_start) {
      on_run(SegmentRun{data.subspan(run_start, off - run_start), segment_size, false});
    }
    on_run(SegmentRun{segment, segment.size(), true});
    run_start = off + segment.size();
  }
  if (run_start < data.size()) {
    const auto rest = data.subspan(run_start);
    on_run(SegmentRun{rest, std::min(segment_size, rest.size()), false});
  }
}

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
  // A datagram, or a run of GRO segments (data and segment_size as split_segments gives
  // them), that is not the agent's. The data lives until the handler returns.
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
