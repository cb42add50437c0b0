#include "quic/driver/session.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <cstdlib>

#include "base/log.h"
#include "quic/core/errc.h"

namespace peertun::quic {
namespace {

// GSO batches (up to 64 KiB each) sent per flush before yielding to the io_context, so
// that ACKs and other sessions get a turn; a posted flush carries on at once.
constexpr int kMaxBatchesPerFlush = 16;

bool would_block(const base::ErrorCode& ec) {
  return ec == boost::system::errc::resource_unavailable_try_again ||
         ec == boost::system::errc::operation_would_block;
}

spdlog::logger& log() { return base::logger("quic"); }

}  // namespace

std::shared_ptr<Session> Session::create(io::Executor executor, Connection connection,
                                         std::shared_ptr<PacketPath> path) {
  return std::make_shared<Session>(std::move(executor), std::move(connection), std::move(path));
}

Session::Session(io::Executor executor, Connection connection, std::shared_ptr<PacketPath> path)
    : executor_(executor),
      connection_(std::move(connection)),
      path_(std::move(path)),
      timer_(executor),
      changed_(executor, io::asio::steady_timer::time_point::max()),
      tx_(kMaxUdpPayload * kMaxBatchSegments) {}

Session::~Session() = default;

void Session::start() { flush(); }

void Session::stop() {
  stopped_ = true;
  timer_.cancel();
  armed_.reset();
  changed_.cancel();
}

void Session::receive(std::span<const std::uint8_t> data, std::size_t segment_size) {
  if (segment_size == 0) {
    segment_size = data.size();
  }
  const TimePoint now = Clock::now();
  ++dstats_.receives;
  for (std::size_t off = 0; off < data.size(); off += segment_size) {
    ++dstats_.datagrams;
    const std::size_t len = std::min(segment_size, data.size() - off);
    if (auto ec = connection_.receive(data.subspan(off, len), now)) {
      log().info("quic.closed role={} error=\"{}\"",
                 connection_.role() == Role::Server ? "server" : "client", ec.message());
    }
  }
}

// Sends until the connection has nothing more to send now: ngtcp2's write yields nothing
// when the congestion window is full, when pacing says "not yet", or when there is no
// data. Only then is the timer armed (next_deadline() includes the pacing time). An
// earlier version also stopped whenever next_deadline() lay in the future, which is
// nearly always true (the loss-detection and idle timers), so it sent one batch per
// wake-up and leaned on the timer or the next ACK to continue.
void Session::flush() {
  if (stopped_) {
    return;
  }
  ++dstats_.flushes;
  for (int batches = 0; !send_blocked_; ++batches) {
    if (batches == kMaxBatchesPerFlush) {
      // Let received ACKs and other sessions in, then carry on.
      ++dstats_.yields;
      post_flush();
      break;
    }
    if (tx_bytes_ == 0) {
      auto batch = connection_.write(tx_, Clock::now());
      if (!batch || batch->bytes == 0) {
        break;
      }
      ++dstats_.batches;
      dstats_.packets += (batch->bytes + batch->segment_size - 1) / batch->segment_size;
      tx_bytes_ = batch->bytes;
      tx_offset_ = 0;
      tx_segment_ = batch->segment_size;
    }
    auto sent =
        path_->try_send(std::span(tx_).subspan(tx_offset_, tx_bytes_ - tx_offset_), tx_segment_);
    if (!sent && would_block(sent.error())) {
      ++dstats_.would_block;
      send_blocked_ = true;
      io::asio::co_spawn(executor_, resume_when_writable(shared_from_this()),
                         [](std::exception_ptr e) { io::log_task_exception(e, "quic.writable"); });
      break;
    }
    if (!sent) {
      // UDP is lossy anyway: QUIC's loss recovery resends what this batch carried.
      ++send_errors_;
      log().debug("quic.send_failed error=\"{}\"", sent.error().message());
      tx_bytes_ = 0;
      continue;
    }
    tx_offset_ += *sent;
    if (tx_offset_ < tx_bytes_) {
      continue;  // partly sent (sendmmsg): the rest goes first next time
    }
    tx_bytes_ = 0;
  }
  drain_events();
  arm_timer();
}

void Session::post_flush() {
  if (flush_posted_) {
    return;
  }
  flush_posted_ = true;
  io::asio::post(executor_, [weak = weak_from_this()] {
    if (auto self = weak.lock()) {
      self->flush_posted_ = false;
      self->flush();
    }
  });
}

io::Task<void> Session::resume_when_writable(std::shared_ptr<Session> self) {
  auto ec = co_await self->path_->wait_writable();
  self->send_blocked_ = false;
  if (ec) {
    // The path is gone; drop the pending batch, the connection will time out or close.
    self->tx_bytes_ = 0;
    ++self->send_errors_;
  }
  self->flush();
}

void Session::drain_events() {
  if (connection_.take_events() != 0) {
    changed_.cancel();
  }
}

void Session::arm_timer() {
  if (stopped_) {
    return;
  }
  const auto deadline = connection_.next_deadline();
  if (!deadline) {
    if (armed_) {
      timer_.cancel();
      armed_.reset();
    }
    return;
  }
  // Only an earlier deadline re-arms: re-arming costs a timerfd_settime (a VM exit
  // here), about a tenth of the receiver's CPU when done after every batch. A later
  // deadline lets the armed timer fire early, which handle_timeout() takes as a no-op
  // before this re-arms for the real one.
  if (armed_ && *armed_ <= *deadline) {
    return;
  }
  armed_ = *deadline;
  timer_.expires_at(*deadline);
  timer_.async_wait([weak = weak_from_this()](const base::ErrorCode& ec) {
    if (ec) {
      return;  // re-armed or stopped
    }
    if (auto self = weak.lock()) {
      self->on_timer();
    }
  });
}

void Session::on_timer() {
  ++dstats_.timer_fires;
  if (armed_) {
    const auto late = Clock::now() - *armed_;
    if (late.count() > 0) {
      dstats_.timer_late_ns += static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(late).count());
    }
  }
  armed_.reset();
  if (auto ec = connection_.handle_timeout(Clock::now())) {
    log().info("quic.closed role={} error=\"{}\"",
               connection_.role() == Role::Server ? "server" : "client", ec.message());
  }
  flush();
}

io::Task<base::ErrorCode> Session::wait_change() {
  co_await changed_.async_wait(io::use_nothrow);  // cancelled = "something changed"
  auto cs = co_await io::asio::this_coro::cancellation_state;
  if (cs.cancelled() != io::asio::cancellation_type::none) {
    co_return make_error_code(boost::system::errc::operation_canceled);
  }
  co_return base::ErrorCode{};
}

base::ErrorCode Session::closed_error() const {
  const auto ec = connection_.error();
  return ec ? ec : make_error_code(Errc::NotConnected);
}

io::Task<base::ErrorCode> Session::handshake() {
  auto self = shared_from_this();
  for (;;) {
    const auto state = connection_.state();
    if (state == State::Established) {
      co_return base::ErrorCode{};
    }
    if (state != State::Handshaking) {
      co_return closed_error();
    }
    if (stopped_) {
      co_return make_error_code(boost::system::errc::operation_canceled);
    }
    if (auto ec = co_await wait_change()) {
      co_return ec;
    }
  }
}

io::Task<base::Result<StreamId>> Session::open_stream() {
  auto self = shared_from_this();
  for (;;) {
    auto id = connection_.open_stream();
    if (id || id.error() != make_error_code(Errc::StreamLimit)) {
      if (!id && connection_.state() != State::Established && connection_.error()) {
        co_return connection_.error();
      }
      co_return id;
    }
    if (stopped_) {
      co_return make_error_code(boost::system::errc::operation_canceled);
    }
    if (auto ec = co_await wait_change()) {
      co_return ec;
    }
  }
}

io::Task<base::Result<StreamId>> Session::accept_stream() {
  auto self = shared_from_this();
  for (;;) {
    if (auto id = connection_.accept_stream()) {
      co_return *id;
    }
    const auto state = connection_.state();
    if (state != State::Established && state != State::Handshaking) {
      co_return closed_error();
    }
    if (stopped_) {
      co_return make_error_code(boost::system::errc::operation_canceled);
    }
    if (auto ec = co_await wait_change()) {
      co_return ec;
    }
  }
}

io::Task<base::Result<std::size_t>> Session::write(StreamId id, std::span<const std::uint8_t> data,
                                                   bool fin) {
  auto self = shared_from_this();
  for (;;) {
    if (connection_.state() != State::Established) {
      co_return closed_error();
    }
    auto n = connection_.write_stream(id, data, fin);
    if (!n) {
      co_return n.error();
    }
    if (*n > 0 || data.empty()) {
      flush();
      co_return *n;
    }
    if (stopped_) {
      co_return make_error_code(boost::system::errc::operation_canceled);
    }
    if (auto ec = co_await wait_change()) {
      co_return ec;
    }
  }
}

io::Task<base::ErrorCode> Session::write_all(StreamId id, std::span<const std::uint8_t> data,
                                             bool fin) {
  auto self = shared_from_this();
  do {
    auto n = co_await write(id, data, fin);
    if (!n) {
      co_return n.error();
    }
    data = data.subspan(*n);
  } while (!data.empty());
  co_return base::ErrorCode{};
}

io::Task<base::Result<StreamRead>> Session::read(StreamId id, std::span<std::uint8_t> out) {
  auto self = shared_from_this();
  for (;;) {
    auto r = connection_.read_stream(id, out);
    if (!r) {
      co_return r.error();
    }
    if (r->bytes > 0 || r->fin) {
      flush();  // the read gave flow-control credit back: let MAX_STREAM_DATA go out
      co_return *r;
    }
    const auto state = connection_.state();
    if (state != State::Established) {
      co_return closed_error();
    }
    if (stopped_) {
      co_return make_error_code(boost::system::errc::operation_canceled);
    }
    if (auto ec = co_await wait_change()) {
      co_return ec;
    }
  }
}

base::ErrorCode Session::send_datagram(std::span<const std::uint8_t> data) {
  auto ec = connection_.send_datagram(data);
  if (!ec) {
    flush();
  }
  return ec;
}

io::Task<base::Result<std::size_t>> Session::receive_datagram(std::span<std::uint8_t> out) {
  auto self = shared_from_this();
  for (;;) {
    if (auto n = connection_.receive_datagram(out)) {
      co_return *n;
    }
    if (connection_.state() != State::Established) {
      co_return closed_error();
    }
    if (stopped_) {
      co_return make_error_code(boost::system::errc::operation_canceled);
    }
    if (auto ec = co_await wait_change()) {
      co_return ec;
    }
  }
}

io::Task<base::ErrorCode> Session::close(std::uint64_t code, std::string reason,
                                         std::chrono::nanoseconds flush_timeout) {
  using namespace io::asio::experimental::awaitable_operators;
  auto self = shared_from_this();
  io::asio::steady_timer limit(executor_, flush_timeout);
  bool timed_out = false;
  while (connection_.state() == State::Established && connection_.has_unacked_stream_data() &&
         !timed_out && !stopped_) {
    auto which = co_await (wait_change() || limit.async_wait(io::use_nothrow));
    timed_out = which.index() == 1;
  }
  connection_.close(code, reason);
  flush();
  co_return closed_error();
}

}  // namespace peertun::quic
