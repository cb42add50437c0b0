#pragma once
// DirectPath: a PacketPath over one io::UdpSocket to one fixed remote address, with GSO
// send (sendmmsg when the kernel refuses GSO) and GRO receive. Used by the tests, the
// bench and the first integration; the traversal layer's path (STUN demux, relay
// fallback, rebinding) replaces it later with the same interface.
//
// Threading: one executor; run_receive() is a coroutine on it.

#include <memory>

#include "base/socket_address.h"
#include "io/udp_socket.h"
#include "quic/driver/packet_path.h"

namespace peertun::quic {

class Session;

class DirectPath final : public PacketPath, public std::enable_shared_from_this<DirectPath> {
 public:
  // Binds `local` (port 0: any) with GRO on. Errors: the socket's bind/open errno.
  [[nodiscard]] static base::Result<std::shared_ptr<DirectPath>> open(
      io::Executor executor, const base::SocketAddress& local);

  [[nodiscard]] base::SocketAddress local_address() const { return socket_.local_address(); }
  // The peer; datagrams from any other source are dropped.
  void set_remote(const base::SocketAddress& remote) { remote_ = remote; }
  [[nodiscard]] bool gso_enabled() const { return socket_.gso_enabled(); }

  base::Result<std::size_t> try_send(std::span<const std::uint8_t> batch,
                                     std::size_t segment_size) override;
  io::Task<base::ErrorCode> wait_writable() override;

  // Reads until close()/cancellation, handing every datagram (GRO batch) from the remote
  // to `session`. Returns operation_aborted when stopped, or the socket error.
  static io::Task<base::ErrorCode> run_receive(std::shared_ptr<DirectPath> self,
                                               std::shared_ptr<Session> session);

  std::uint64_t foreign_datagrams = 0;  // dropped: not from the remote

  void close() { socket_.close(); }

  explicit DirectPath(io::UdpSocket socket) : socket_(std::move(socket)) {}

 private:
  io::UdpSocket socket_;
  base::SocketAddress remote_;
};

}  // namespace peertun::quic
