#include "quic/driver/direct_path.h"

#include <cstdlib>

#include "quic/driver/session.h"

namespace peertun::quic {
namespace {

// GRO coalesces up to 64 KiB per read; 16 of them per recvmmsg is 1 MiB of buffer.
constexpr std::size_t kReceiveBatch = 16;
constexpr std::size_t kMaxCoalesced = 65535;

}  // namespace

base::Result<std::shared_ptr<DirectPath>> DirectPath::open(io::Executor executor,
                                                           const base::SocketAddress& local) {
  io::UdpSocket::Options options;
  options.gro = true;
  auto socket = io::UdpSocket::open(std::move(executor), local, options);
  if (!socket) {
    return socket.error();
  }
  return std::make_shared<DirectPath>(std::move(*socket));
}

base::Result<std::size_t> DirectPath::try_send(std::span<const std::uint8_t> batch,
                                               std::size_t segment_size) {
  return socket_.try_send_segments(batch, segment_size, remote_);
}

io::Task<base::ErrorCode> DirectPath::wait_writable() { return socket_.wait_writable(); }

io::Task<base::ErrorCode> DirectPath::run_receive(std::shared_ptr<DirectPath> self,
                                                  std::shared_ptr<Session> session) {
  io::RecvBatch batch(kReceiveBatch, kMaxCoalesced);
  for (;;) {
    auto n = co_await self->socket_.receive(batch);
    if (!n) {
      co_return n.error();
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto& d = batch[i];
      if (d.source != self->remote_) {
        ++self->foreign_datagrams;
        continue;
      }
      session->receive(d.data, d.segment_size);
    }
    session->flush();
  }
}

}  // namespace peertun::quic
