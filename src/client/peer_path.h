#pragma once
// The path layer under QUIC (DESIGN.md, "path layer"): QUIC sends to one stable virtual
// peer; this sends each batch to the peer's current address on the punched socket. The
// address comes from the traversal agent's selected pair and moves when the agent proves
// a new one (NAT rebinding), so QUIC never sees the change. The relay path of issue 6
// slots in here too.
//
// Threading: the client's io_context thread.

#include <memory>

#include "base/socket_address.h"
#include "io/udp_socket.h"
#include "quic/driver/packet_path.h"

namespace peertun::client {

class PeerPath final : public quic::PacketPath {
 public:
  PeerPath(std::shared_ptr<io::UdpSocket> socket, base::SocketAddress remote)
      : socket_(std::move(socket)), remote_(remote) {}

  void set_remote(const base::SocketAddress& remote) { remote_ = remote; }
  [[nodiscard]] const base::SocketAddress& remote() const { return remote_; }

  base::Result<std::size_t> try_send(std::span<const std::uint8_t> batch,
                                     std::size_t segment_size) override {
    return socket_->try_send_segments(batch, segment_size, remote_);
  }
  io::Task<base::ErrorCode> wait_writable() override { return socket_->wait_writable(); }

 private:
  std::shared_ptr<io::UdpSocket> socket_;
  base::SocketAddress remote_;
};

}  // namespace peertun::client
