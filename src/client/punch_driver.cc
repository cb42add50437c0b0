#include "client/punch_driver.h"

#include "base/log.h"
#include "base/random.h"
#include "stun/message.h"

namespace peertun::client {
namespace {

spdlog::logger& log() { return base::logger("client.punch"); }

// Once QUIC runs on the socket, one recvmmsg takes this many of its packets: without GRO
// 64 datagrams (every protocol on the socket fits in 2 KiB); with GRO 16 coalesced buffers
// of up to 64 KiB each (as quic::DirectPath), 1 MiB allocated once per driver.
constexpr std::size_t kReceiveBatch = 64;
constexpr std::size_t kMaxDatagram = 2048;
constexpr std::size_t kGroReceiveBatch = 16;
constexpr std::size_t kMaxCoalesced = 65535;

}  // namespace

std::shared_ptr<PunchDriver> PunchDriver::start(io::Executor executor,
                                                std::shared_ptr<io::UdpSocket> socket,
                                                traversal::AgentConfig config,
                                                OutcomeHandler on_outcome, Unclaimed unclaimed,
                                                BatchEnd batch_end) {
  // From here on this driver is the socket's only reader, and it splits coalesced
  // datagrams; without GRO (old kernels) each datagram simply arrives alone.
  if (!socket->enable_gro()) {
    log().debug("punch.gro_unavailable");
  }
  auto driver = std::make_shared<PunchDriver>(executor, std::move(socket), std::move(config),
                                              std::move(on_outcome), std::move(unclaimed),
                                              std::move(batch_end));
  io::asio::co_spawn(executor, driver->receive_loop(driver),
                     [](std::exception_ptr e) { io::log_task_exception(e, "punch.receive"); });
  io::asio::co_spawn(executor, driver->timer_loop(driver),
                     [](std::exception_ptr e) { io::log_task_exception(e, "punch.timer"); });
  return driver;
}

PunchDriver::PunchDriver(io::Executor executor, std::shared_ptr<io::UdpSocket> socket,
                         traversal::AgentConfig config, OutcomeHandler on_outcome,
                         Unclaimed unclaimed, BatchEnd batch_end)
    : socket_(std::move(socket)),
      agent_(std::move(config), [](std::span<std::uint8_t> out) { base::random_bytes(out); }),
      timer_(executor),
      on_outcome_(std::move(on_outcome)),
      unclaimed_(std::move(unclaimed)),
      batch_end_(std::move(batch_end)) {
  // punch_ready goes out right after this: the relay's fire is due from now on.
  agent_.expect_fire(traversal::Clock::now());
  timer_.expires_at(agent_.next_deadline().value_or(traversal::TimePoint::max()));
}

void PunchDriver::fire() {
  if (stopped_) {
    return;
  }
  agent_.start(traversal::Clock::now());
  log().info("punch.fire remotes={}", agent_.remote_candidates().size());
  flush();
}

void PunchDriver::stop() {
  stopped_ = true;
  on_outcome_ = nullptr;
  unclaimed_ = nullptr;
  batch_end_ = nullptr;
  timer_.cancel();
  socket_->cancel();
}

void PunchDriver::flush() {
  if (stopped_) {
    return;
  }
  const auto now = traversal::Clock::now();
  while (auto t = agent_.poll_transmit(now)) {
    // A full kernel queue drops the check; the agent retries it anyway.
    if (auto ec = socket_->try_send(t->payload, t->destination)) {
      log().trace("punch.send_failed to={} error={}", t->destination.to_string(), ec.message());
    }
  }
  const auto state = agent_.state();
  std::optional<base::SocketAddress> remote;
  if (agent_.selected()) {
    remote = agent_.selected()->remote.address;
  }
  // A path that moved (the peer's NAT rebound) is reported like a new selection.
  const bool moved = state == traversal::AgentState::Connected &&
                     reported_ == traversal::AgentState::Connected && remote != reported_remote_;
  if ((state != reported_ && state != traversal::AgentState::Checking) || moved) {
    reported_ = state;
    reported_remote_ = remote;
    // A copy: the handler may call stop(), which clears the member while it runs.
    if (auto handler = on_outcome_) {
      handler(PunchOutcome{state, agent_.selected(), agent_.failure_reason(),
                           agent_.time_to_first_path()});
    }
    if (stopped_) {
      return;  // the handler stopped us
    }
  }
  // Only when the deadline moved: expires_at() cancels the pending wait, which would
  // otherwise wake timer_loop after every received batch of a bulk transfer.
  const auto deadline = agent_.next_deadline().value_or(traversal::TimePoint::max());
  if (deadline != timer_.expiry()) {
    timer_.expires_at(deadline);
  }
}

// The unnamed parameter keeps the driver alive as long as the loop runs.
io::Task<void> PunchDriver::timer_loop(std::shared_ptr<PunchDriver> /*self*/) {
  while (!stopped_) {
    auto [ec] = co_await timer_.async_wait(io::use_nothrow);
    if (stopped_) {
      break;
    }
    // operation_aborted: flush() moved the deadline; wait for the new one.
    if (!ec) {
      flush();
    }
  }
}

io::Task<void> PunchDriver::receive_loop(std::shared_ptr<PunchDriver> /*self*/) {
  const bool gro = socket_->gro_enabled();
  io::RecvBatch batch(gro ? kGroReceiveBatch : kReceiveBatch, gro ? kMaxCoalesced : kMaxDatagram);
  while (!stopped_) {
    auto count = co_await socket_->receive(batch);
    if (stopped_) {
      break;
    }
    if (!count) {
      log().warn("punch.receive_failed error={}", count.error().message());
      break;
    }
    const auto now = traversal::Clock::now();
    bool handed_on = false;
    for (std::size_t i = 0; i < batch.size() && !stopped_; ++i) {
      const auto& d = batch[i];
      // Candidates are plain addresses; a dual-stack socket reports v4 peers as mapped.
      const base::SocketAddress from(d.source.ip().unmapped(), d.source.port());
      // A coalesced datagram may carry a check among QUIC packets: each STUN segment goes
      // to the agent, each run of the others on as one batch.
      split_segments(d.data, d.segment_size, [&](const SegmentRun& run) {
        if (stopped_) {
          return;
        }
        if (run.stun && agent_.on_datagram(from, run.data, now) ==
                            traversal::PunchAgent::Disposition::Consumed) {
          return;
        }
        if (auto handler = unclaimed_) {  // a copy: survives a stop() from inside it
          io::ReceivedDatagram piece = d;
          piece.data = run.data;
          piece.segment_size = run.segment_size;
          handler(piece);
          handed_on = true;
        }
      });
    }
    if (handed_on && batch_end_ && !stopped_) {
      auto handler = batch_end_;
      handler();
    }
    flush();
  }
}

}  // namespace peertun::client
