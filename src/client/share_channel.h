#pragma once
// The folder share over QUIC (docs/protocol/share.md, "Transport").
//
// Peer B (the QUIC client, the FUSE side) opens kShareLanes bidirectional streams and
// pipelines request frames on them; peer A answers each request on the stream it came
// on, in whatever order the answers complete. A request goes to the lane with the
// fewest answer bytes outstanding, so a burst of 1 MiB reads does not queue a lookup
// behind it; several lanes also keep one lost packet from stalling every request.
//
// Threading: everything runs on the client's io_context thread (the session's).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "io/asio.h"
#include "quic/driver/session.h"
#include "share/exporter/exporter.h"
#include "share/proto/channel.h"
#include "share/proto/codec.h"

namespace peertun::client {

inline constexpr std::size_t kShareLanes = 4;
// Peer A's bound per stream: requests whose answers are not handed to QUIC yet. Beyond
// it A stops reading that stream until answers drain.
inline constexpr std::size_t kShareLaneInFlight = 16;
// ... and over the whole connection (requests at the exporter plus answers not yet in
// QUIC's buffers): the exporter's own bound of 64 MiB of reads in flight.
inline constexpr std::size_t kShareConnectionInFlight = 64;
// Streams A serves at once (B uses kShareLanes); further ones are never read.
inline constexpr std::size_t kMaxShareStreams = 2 * kShareLanes;
// QUIC's send buffer per stream on a sharing A (quic::Config::stream_send_buffer):
// answers wait there for B's flow control and acknowledgements. With kShareLanes lanes
// it covers the bandwidth-delay product of 1 Gbit/s at 100 ms, and bounds what a peer
// that never reads can park in A's memory to kMaxShareStreams times this.
inline constexpr std::size_t kShareStreamSendBuffer = std::size_t{4} * 1024 * 1024;
// The application error code A closes QUIC with when B breaks the share framing.
inline constexpr std::uint64_t kShareProtocolErrorCode = 0x5301;

enum class ShareErrc {
  ChannelClosed = 1,  // the channel failed or was closed before the answer came
  ProtocolError,      // the peer sent a frame that is not the share protocol
};
const boost::system::error_category& share_transport_category();
inline boost::system::error_code make_error_code(ShareErrc e) {
  return {static_cast<int>(e), share_transport_category()};
}

// Peer B's proto::Channel over a QUIC session.
class QuicShareChannel final : public share::proto::Channel,
                               public std::enable_shared_from_this<QuicShareChannel> {
 public:
  // Starts the lanes (their streams open as soon as QUIC allows). `on_failure` runs once,
  // on the executor, when the channel fails (not after close()).
  [[nodiscard]] static std::shared_ptr<QuicShareChannel> start(
      io::Executor executor, std::shared_ptr<quic::Session> session,
      std::function<void(base::ErrorCode)> on_failure);

  void call(share::proto::RequestBody body, Handler done) override;
  void post(share::proto::RequestBody body) override;

  // Completes every pending and later call with `why` (ChannelClosed by default); no
  // on_failure. Idempotent.
  void close();

  [[nodiscard]] std::uint64_t requests_sent() const { return requests_sent_; }
  [[nodiscard]] std::size_t pending() const { return pending_.size(); }

  QuicShareChannel(io::Executor executor, std::shared_ptr<quic::Session> session,
                   std::function<void(base::ErrorCode)> on_failure);

 private:
  struct Lane {
    std::optional<quic::StreamId> stream;
    std::deque<wire::Bytes> queue;
    std::uint64_t outstanding = 0;  // expected answer bytes of requests sent on this lane
    std::unique_ptr<io::asio::steady_timer> wake;  // cancelled when the queue gets work
  };
  struct Pending {
    Handler done;
    std::size_t lane = 0;
    std::uint64_t weight = 0;
  };

  static io::Task<void> run_lane(std::shared_ptr<QuicShareChannel> self, std::size_t lane);
  static io::Task<void> read_lane(std::shared_ptr<QuicShareChannel> self, std::size_t lane);
  void enqueue(std::size_t lane, wire::Bytes frame);
  [[nodiscard]] std::size_t pick_lane() const;
  void dispatch(share::proto::Response response);
  void fail(base::ErrorCode why, bool notify);

  io::Executor executor_;
  std::shared_ptr<quic::Session> session_;
  std::function<void(base::ErrorCode)> on_failure_;
  std::vector<Lane> lanes_;
  std::unordered_map<share::proto::RequestId, Pending> pending_;
  share::proto::RequestId next_id_ = 1;
  std::uint64_t requests_sent_ = 0;
  std::optional<base::ErrorCode> failed_;
};

// Peer A: answers the requests of every stream peer B opens with `exporter` until the
// connection ends. Returns the connection's end (ClosedByPeer, IdleTimeout, ...) or
// ShareErrc::ProtocolError after closing QUIC with kShareProtocolErrorCode when B broke
// the framing.
io::Task<base::ErrorCode> serve_share(std::shared_ptr<quic::Session> session,
                                      std::shared_ptr<share::Exporter> exporter);

}  // namespace peertun::client

template <>
struct boost::system::is_error_code_enum<peertun::client::ShareErrc> : std::true_type {};
