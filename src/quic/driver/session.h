#pragma once
// quic::Session: runs one quic::Connection on the process's io_context.
//
// It reads the clock, drives the connection's timers (loss recovery, pacing, ACK delay,
// keepalive, idle), sends the connection's GSO batches through a PacketPath, and offers
// coroutine stream and datagram calls with backpressure. Datagrams come in through
// receive() from whoever reads the socket (DirectPath::run_receive, or the path layer).
//
// Every wait ends when the connection closes (bounded by its idle and handshake
// timeouts); callers may also bound one with Asio per-operation cancellation, e.g.
// `co_await (session->read(...) || timer.async_wait(...))`, and then see
// operation_aborted.
//
// Lifetime and threading: create() returns a shared_ptr; every coroutine holds one while
// it runs. All calls on the Session's executor (one strand/thread), never concurrently.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/asio.h"
#include "quic/core/connection.h"
#include "quic/driver/packet_path.h"

namespace peertun::quic {

class Session : public std::enable_shared_from_this<Session> {
 public:
  [[nodiscard]] static std::shared_ptr<Session> create(io::Executor executor, Connection connection,
                                                       std::shared_ptr<PacketPath> path);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session();

  // Starts the timers and sends the client's first flight.
  void start();

  // Feeds one received UDP datagram, or a GRO batch of `segment_size`-byte datagrams
  // (the last may be shorter). Call flush() after a batch of receive() calls.
  void receive(std::span<const std::uint8_t> data, std::size_t segment_size);
  // Sends what the connection has to send now and re-arms its timer.
  void flush();

  // Completes once the handshake is done ({}), or with why it failed
  // (PeerCertificateMismatch, CertificateRejectedByPeer, HandshakeTimeout, ...).
  io::Task<base::ErrorCode> handshake();

  // Errors: NotConnected, StreamLimit (after waiting for the peer's limit), the
  // connection's error once it closed.
  io::Task<base::Result<StreamId>> open_stream();
  io::Task<base::Result<StreamId>> accept_stream();

  // Waits until the stream's send buffer takes at least one byte, returns how many it
  // took (backpressure). With `fin`, the FIN is sent after the last byte if all of `data`
  // was taken. Errors: those of Connection::write_stream, the connection's error.
  io::Task<base::Result<std::size_t>> write(StreamId id, std::span<const std::uint8_t> data,
                                            bool fin);
  // Writes all of `data` (waiting as needed).
  io::Task<base::ErrorCode> write_all(StreamId id, std::span<const std::uint8_t> data, bool fin);
  // Waits for data; {0, true} is end of stream. Errors: StreamReset, UnknownStream, the
  // connection's error.
  io::Task<base::Result<StreamRead>> read(StreamId id, std::span<std::uint8_t> out);

  // RFC 9221; never waits. Errors: see Connection::send_datagram.
  base::ErrorCode send_datagram(std::span<const std::uint8_t> data);
  io::Task<base::Result<std::size_t>> receive_datagram(std::span<std::uint8_t> out);

  // Waits (at most `flush_timeout`) until written stream data is acknowledged, then
  // closes with CONNECTION_CLOSE(code, reason). Returns the connection's final error
  // (ClosedLocally), or ClosedByPeer etc. if it had ended already.
  io::Task<base::ErrorCode> close(std::uint64_t code, std::string reason,
                                  std::chrono::nanoseconds flush_timeout);

  // Stops timers and wakes every waiter; the connection is left as it is.
  void stop();

  [[nodiscard]] const Connection& connection() const { return connection_; }
  [[nodiscard]] std::uint64_t send_errors() const { return send_errors_; }

  // What the driver did (for the bench and for diagnosis; counting is cheap).
  struct DriverStats {
    std::uint64_t flushes = 0;
    std::uint64_t batches = 0;      // GSO batches handed to the path
    std::uint64_t packets = 0;      // QUIC packets in them
    std::uint64_t yields = 0;       // flushes that stopped at kMaxBatchesPerFlush and re-posted
    std::uint64_t would_block = 0;  // the path was full
    std::uint64_t timer_fires = 0;
    std::uint64_t timer_late_ns = 0;  // sum over fires of (fired - deadline)
    std::uint64_t receives = 0;       // receive() calls (datagrams or GRO batches)
    std::uint64_t datagrams = 0;      // UDP datagrams in them
  };
  [[nodiscard]] const DriverStats& driver_stats() const { return dstats_; }

  Session(io::Executor executor, Connection connection, std::shared_ptr<PacketPath> path);

 private:
  void drain_events();
  // Runs flush() again from the io_context soon (at most one pending).
  void post_flush();
  void arm_timer();
  void on_timer();
  // Waits for the next change of connection state (events, close). Returns
  // operation_aborted if the caller's cancellation fired.
  io::Task<base::ErrorCode> wait_change();
  static io::Task<void> resume_when_writable(std::shared_ptr<Session> self);
  [[nodiscard]] base::ErrorCode closed_error() const;

  io::Executor executor_;
  Connection connection_;
  std::shared_ptr<PacketPath> path_;
  io::asio::steady_timer timer_;    // the connection's next deadline
  io::asio::steady_timer changed_;  // never expires; cancel() wakes every waiter
  std::optional<TimePoint> armed_;
  // The batch being sent: [tx_offset_, tx_bytes_) of tx_ is still unsent.
  std::vector<std::uint8_t> tx_;
  std::size_t tx_bytes_ = 0;
  std::size_t tx_offset_ = 0;
  std::size_t tx_segment_ = 0;
  bool send_blocked_ = false;
  bool stopped_ = false;
  bool flush_posted_ = false;
  std::uint64_t send_errors_ = 0;
  DriverStats dstats_;
};

}  // namespace peertun::quic
