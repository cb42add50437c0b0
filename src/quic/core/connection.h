#pragma once
// quic::Connection: one QUIC connection (RFC 9000) to one peer, sans-I/O.
//
// Bytes and timestamps in, datagrams and the next deadline out: the connection owns no
// socket and reads no clock. It talks to ONE fixed virtual peer; whoever owns the socket
// (the path layer, or quic::DirectPath in tests) decides where datagrams really go, so a
// path change (relay <-> direct, NAT rebinding) never disturbs QUIC (DESIGN.md, "path
// layer"). Peer A is the server, peer B the client; ALPN "peertun/1"; each side pins the
// other's certificate by SHA-256 fingerprint (docs/protocol/quic.md).
//
// Driving it (quic::Session does this on an io_context; the unit tests on a fake clock):
//   - every received UDP datagram -> receive(datagram, now)
//   - then, and after every API call, write(buffer, now) until it returns 0 bytes; each
//     result is one GSO batch: `bytes` bytes of packets of `segment_size` bytes each (the
//     last may be shorter), ready for one sendmsg with UDP_SEGMENT;
//   - at next_deadline(): handle_timeout(now), then write() again.
//   - take_events() says what changed (handshake, readable/writable streams, datagrams,
//     closed).
//
// Errors: functions return quic::Errc values; receive()/handle_timeout() return an error
// only when that call ended the connection (error() keeps it). Garbage, replayed and
// undecryptable datagrams are dropped and counted, never fatal.
//
// Threading: not thread-safe; one owner (one strand). Movable; the state lives on the heap
// because ngtcp2 and GnuTLS keep pointers to it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "quic/core/identity.h"

namespace peertun::quic {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using StreamId = std::int64_t;

enum class Role { Server, Client };

// Our own names: ngtcp2 1.x renames and removes its constants (notes/ngtcp2-0.12.1.md §3).
enum class CongestionControl { Bbr, Bbr2, Cubic, Reno };

[[nodiscard]] std::string_view to_string(CongestionControl cc);
[[nodiscard]] std::optional<CongestionControl> parse_congestion_control(std::string_view text);

// The largest UDP payload a connection ever writes (ngtcp2's default; PMTUD probes up to
// it). A write() buffer must hold at least this many bytes.
inline constexpr std::size_t kMaxUdpPayload = 1452;
// Linux UDP GSO sends at most 64 segments per call (UDP_MAX_SEGMENTS), and at most one
// UDP datagram's worth of payload (65507 bytes over IPv4), so a batch of full-size packets
// holds at most 45.
inline constexpr std::size_t kMaxBatchSegments = 64;
inline constexpr std::size_t kMaxBatchBytes = 65507;

struct Config {
  // Loss-based Reno/Cubic collapse on lossy paths (~1 MB/s at 1% loss, 20 ms RTT); BBR
  // keeps going. Only the sender's choice matters.
  CongestionControl congestion_control = CongestionControl::Bbr;
  // RFC 9000 section 10.1; the smaller of both sides' values applies.
  std::chrono::nanoseconds idle_timeout = std::chrono::seconds(30);
  // PING after this much quiet, so NAT bindings and the idle timer stay fresh. Zero: off.
  std::chrono::nanoseconds keepalive_interval = std::chrono::seconds(10);
  std::chrono::nanoseconds handshake_timeout = std::chrono::seconds(10);
  // Flow control. 1 Gbit/s x 100 ms RTT is 12.5 MB in flight, so the auto-tuned windows
  // may grow to 16 MiB per stream and 24 MiB per connection; they start smaller so idle
  // streams reserve little.
  std::uint64_t initial_stream_window = 1024 * 1024;
  std::uint64_t max_stream_window = 16 * 1024 * 1024;
  std::uint64_t initial_connection_window = 2 * 1024 * 1024;
  std::uint64_t max_connection_window = 24 * 1024 * 1024;
  // Bytes a stream buffers before write_stream() accepts less (backpressure). Unacked
  // data stays here, so it must cover the bandwidth-delay product too.
  std::size_t stream_send_buffer = 16 * 1024 * 1024;
  // Bidirectional streams the peer may have open at once.
  std::uint64_t max_incoming_streams = 128;
  // RFC 9221 max_datagram_frame_size; 0 disables datagrams.
  std::uint64_t max_datagram_frame_size = 65535;
  // Datagrams queued each way before the oldest received / newest sent is dropped.
  std::size_t datagram_queue = 256;
  // Largest UDP payload we send (<= kMaxUdpPayload); lower it for relayed paths whose
  // framing needs room.
  std::size_t max_udp_payload = kMaxUdpPayload;
};

enum class State { Handshaking, Established, Closing, Draining, Closed };

// How the connection ended: who closed it, with which code and reason. Application
// closes carry the code given to close(); transport closes carry a QUIC error code
// (RFC 9000 section 20.1).
struct CloseInfo {
  bool by_peer = false;
  bool application = false;
  std::uint64_t code = 0;
  std::string reason;
};

struct TxBatch {
  std::size_t bytes = 0;         // 0: nothing to send now
  std::size_t segment_size = 0;  // every packet but the last has exactly this size
};

struct StreamRead {
  std::size_t bytes = 0;
  bool fin = false;  // the peer finished the stream and every byte has been read
};

// What changed since the last take_events() (bits).
enum Event : std::uint32_t {
  kEventHandshakeDone = 1u << 0,
  kEventStreamOpened = 1u << 1,    // accept_stream() has something
  kEventStreamReadable = 1u << 2,  // data, FIN or reset arrived on some stream
  kEventStreamWritable = 1u << 3,  // send buffer space freed, or flow control opened
  kEventDatagram = 1u << 4,        // receive_datagram() has something
  kEventClosed = 1u << 5,          // state() left Established/Handshaking
};

struct Stats {
  std::uint64_t datagrams_received = 0;
  std::uint64_t datagrams_dropped = 0;  // undecodable, unauthenticated or duplicate
  std::uint64_t packets_sent = 0;
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t quic_datagrams_dropped = 0;  // RFC 9221 datagrams dropped (queues full, too big)
  std::chrono::nanoseconds smoothed_rtt{0};
  std::uint64_t cwnd = 0;
  std::uint64_t bytes_in_flight = 0;
};

class Connection {
 public:
  // Peer B. The first write() yields the Initial. Errors: Errc::InternalError.
  [[nodiscard]] static base::Result<Connection> client(std::shared_ptr<const Identity> identity,
                                                       Fingerprint peer, Config config,
                                                       TimePoint now);
  // Peer A. Waits for the client's Initial (handshake_timeout from `now`).
  [[nodiscard]] static base::Result<Connection> server(std::shared_ptr<const Identity> identity,
                                                       Fingerprint peer, Config config,
                                                       TimePoint now);

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  // One received UDP datagram (may hold several coalesced QUIC packets). Returns an error
  // only if the connection ended because of it: PeerCertificateMismatch,
  // CertificateRejectedByPeer, HandshakeFailed, ClosedByPeer, PeerProtocolError,
  // InternalError.
  [[nodiscard]] base::ErrorCode receive(std::span<const std::uint8_t> datagram, TimePoint now);

  // Writes the next GSO batch into `buffer` (>= kMaxUdpPayload bytes): at most
  // kMaxBatchSegments packets, kMaxBatchBytes bytes and the congestion controller's send
  // quantum. Yields 0 bytes when nothing may be sent now (congestion window full, pacing,
  // nothing to send): then wait for next_deadline() or the next receive()/API call.
  // Errors: InternalError (the connection is then closing and the next write yields its
  // CONNECTION_CLOSE).
  [[nodiscard]] base::Result<TxBatch> write(std::span<std::uint8_t> buffer, TimePoint now);

  // When handle_timeout() is due; nullopt when nothing is scheduled (closed).
  [[nodiscard]] std::optional<TimePoint> next_deadline() const;
  // Errors (ending the connection): IdleTimeout, HandshakeTimeout, InternalError.
  [[nodiscard]] base::ErrorCode handle_timeout(TimePoint now);

  // Graceful close: the next write() yields CONNECTION_CLOSE with this application code
  // and reason (RFC 9000 section 19.19; the reason is cut to 1000 bytes). Unsent stream
  // data is abandoned: Session::close flushes first.
  void close(std::uint64_t application_code, std::string_view reason);

  [[nodiscard]] Role role() const;
  [[nodiscard]] State state() const;
  [[nodiscard]] bool is_established() const { return state() == State::Established; }
  [[nodiscard]] bool is_closed() const { return state() == State::Closed; }
  // Why the connection ended (empty while it lives): ClosedLocally, ClosedByPeer,
  // IdleTimeout, HandshakeTimeout, PeerCertificateMismatch, CertificateRejectedByPeer, ...
  [[nodiscard]] base::ErrorCode error() const;
  // Set once the connection is closing/closed with a known code and reason.
  [[nodiscard]] const std::optional<CloseInfo>& close_info() const;

  [[nodiscard]] std::uint32_t take_events();

  // Streams (bidirectional, RFC 9000 section 2). Errors: NotConnected, StreamLimit.
  [[nodiscard]] base::Result<StreamId> open_stream();
  // A stream the peer opened, oldest first.
  [[nodiscard]] std::optional<StreamId> accept_stream();
  // Buffers as much of `data` as the stream's send buffer takes and returns that count
  // (0 when full: wait for kEventStreamWritable). `fin` applies only if all of `data` was
  // taken. Errors: NotConnected, UnknownStream, StreamFinished, StreamReset.
  [[nodiscard]] base::Result<std::size_t> write_stream(StreamId id,
                                                       std::span<const std::uint8_t> data,
                                                       bool fin);
  // Bytes write_stream() would take now.
  [[nodiscard]] std::size_t stream_send_space(StreamId id) const;
  // True once everything written (and the FIN, if sent) has been acknowledged.
  [[nodiscard]] bool stream_send_done(StreamId id) const;
  // Reads in order; {0, false} means nothing yet. Giving the bytes back to the
  // application extends the peer's flow-control credit. Errors: UnknownStream,
  // StreamReset (the peer reset it; stream_reset_code() says why).
  [[nodiscard]] base::Result<StreamRead> read_stream(StreamId id, std::span<std::uint8_t> out);
  [[nodiscard]] std::optional<std::uint64_t> stream_reset_code(StreamId id) const;
  // Abandons both directions with an application error code (RESET_STREAM +
  // STOP_SENDING). Errors: UnknownStream.
  [[nodiscard]] base::ErrorCode reset_stream(StreamId id, std::uint64_t application_code);
  // Streams with unsent or unacknowledged data.
  [[nodiscard]] bool has_unacked_stream_data() const;

  // RFC 9221 datagrams: unreliable, unordered, never retransmitted, never split.
  // Errors: NotConnected, DatagramsDisabled, DatagramTooLarge.
  [[nodiscard]] base::ErrorCode send_datagram(std::span<const std::uint8_t> data);
  // Datagrams queued by send_datagram() and not yet written into a packet.
  [[nodiscard]] std::size_t pending_datagrams() const;
  // Largest payload send_datagram() accepts on the current path (0 when datagrams are off).
  [[nodiscard]] std::size_t max_datagram_payload() const;
  // Copies the oldest received datagram into `out` and returns its size (a datagram
  // bigger than `out` is cut to fit).
  [[nodiscard]] std::optional<std::size_t> receive_datagram(std::span<std::uint8_t> out);

  [[nodiscard]] Stats stats() const;
  // The connection IDs this side has issued (for tests of the STUN-cookie rule).
  [[nodiscard]] std::vector<std::vector<std::uint8_t>> local_connection_ids() const;

  struct Impl;

 private:
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace peertun::quic
