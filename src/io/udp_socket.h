#pragma once
// One UDP socket with batched receive (recvmmsg) and the destination address of
// each datagram (IP_PKTINFO / IPV6_PKTINFO), so a wildcard-bound server knows which
// of its addresses a request reached and can answer from it.
//
// Threading: a UdpSocket belongs to the strand/executor it was opened on; all calls
// come from there.

#include <sys/socket.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "io/asio.h"

namespace peertun::io {

struct ReceivedDatagram {
  base::SocketAddress source;
  // The address the datagram was sent to (one of ours). Unspecified if the kernel
  // did not report it.
  base::IpAddress local_ip;
  // Points into the owning RecvBatch; valid until its next receive.
  std::span<std::uint8_t> data;
  // With Options::gro, the kernel may coalesce several datagrams from one source into
  // `data`: each is `segment_size` bytes except the last, which may be shorter. Without
  // coalescing segment_size == data.size().
  std::size_t segment_size = 0;
};

// Reusable receive buffers for up to `capacity` datagrams of `max_size` bytes. No
// allocation after construction.
class RecvBatch {
 public:
  explicit RecvBatch(std::size_t capacity = 64, std::size_t max_size = 2048);
  RecvBatch(const RecvBatch&) = delete;
  RecvBatch& operator=(const RecvBatch&) = delete;

  [[nodiscard]] std::size_t size() const { return count_; }
  [[nodiscard]] const ReceivedDatagram& operator[](std::size_t i) const { return received_[i]; }
  [[nodiscard]] std::size_t capacity() const { return received_.size(); }

 private:
  friend class UdpSocket;
  std::size_t max_size_;
  std::vector<std::uint8_t> storage_;
  std::vector<mmsghdr> headers_;
  std::vector<iovec> iovecs_;
  std::vector<sockaddr_storage> sources_;
  std::vector<std::array<std::uint8_t, 64>> controls_;
  std::vector<ReceivedDatagram> received_;
  std::size_t count_ = 0;
};

class UdpSocket {
 public:
  struct Options {
    // 4 MiB: the default 208 KiB loses packets at 250 Mbit/s on these machines
    // (notes/reference-baselines.md §3); the kernel caps it at rmem_max.
    int buffer_bytes = 4 * 1024 * 1024;
    // UDP GRO (Linux >= 5.0): receive coalesced datagrams (see
    // ReceivedDatagram::segment_size). Use a RecvBatch with max_size 65535, or coalesced
    // datagrams arrive truncated.
    bool gro = false;
    // For an IPv6 socket: also carry IPv4 (IPV6_V6ONLY off). IPv4 peers are then given
    // and reported as plain IPv4 addresses; the socket maps them (::ffff:a.b.c.d).
    bool dual_stack = false;
  };

  // Opens and binds. IPv6 sockets are v6-only (so that a v4 socket can share the port)
  // unless Options::dual_stack.
  // Errors: the bind/open errno (e.g. address_in_use, address_not_available).
  static base::Result<UdpSocket> open(Executor executor, const base::SocketAddress& local,
                                      Options options);
  static base::Result<UdpSocket> open(Executor executor, const base::SocketAddress& local) {
    return open(std::move(executor), local, Options{});
  }

  UdpSocket(UdpSocket&&) noexcept = default;
  UdpSocket& operator=(UdpSocket&&) noexcept = default;

  [[nodiscard]] base::SocketAddress local_address() const;
  [[nodiscard]] bool is_open() const { return socket_.is_open(); }
  // True when IPv4 and IPv6 peers can both be reached (an IPv6 dual-stack socket).
  [[nodiscard]] bool dual_stack() const { return dual_stack_; }

  // Waits until readable, then takes up to batch.capacity() datagrams with one
  // recvmmsg. Returns the count (>= 1), or operation_aborted after close()/cancel().
  Task<base::Result<std::size_t>> receive(RecvBatch& batch);

  // Sends now or fails with would_block when the kernel queue is full (UDP callers
  // drop and count). `source`, when given, picks which local address the datagram
  // leaves from (only meaningful on a wildcard-bound socket).
  base::ErrorCode try_send(std::span<const std::uint8_t> data, const base::SocketAddress& dest,
                           const base::IpAddress* source = nullptr);

  // Sends `data` as consecutive datagrams of `segment_size` bytes (the last may be
  // shorter) to `dest`: one sendmsg with UDP_SEGMENT (GSO, Linux >= 4.18) when the kernel
  // takes it, else sendmmsg. At most 64 segments and 65507 bytes per call. Returns the
  // bytes sent (whole datagrams; less than data.size() only when the kernel queue filled
  // part-way), or would_block when nothing could be sent, or the errno. GSO switches
  // itself off for good when the kernel or the NIC refuses it (EIO/EINVAL).
  base::Result<std::size_t> try_send_segments(std::span<const std::uint8_t> data,
                                              std::size_t segment_size,
                                              const base::SocketAddress& dest);
  [[nodiscard]] bool gso_enabled() const { return gso_; }

  // Turns UDP GRO (Linux >= 5.0) on for an open socket, like Options::gro: from now on a
  // receive may return coalesced datagrams (ReceivedDatagram::segment_size), so every
  // reader needs a RecvBatch with max_size 65535. Returns whether the kernel took it.
  bool enable_gro();
  // Whether GRO is on (Options::gro or enable_gro() succeeded).
  [[nodiscard]] bool gro_enabled() const { return gro_; }

  // Completes when the socket is writable again (or with operation_aborted on cancel).
  Task<base::ErrorCode> wait_writable();

  // Like try_send, but waits (bounded by the caller's cancellation) for room.
  Task<base::ErrorCode> send(std::span<const std::uint8_t> data, base::SocketAddress dest);

  void cancel();
  void close();

 private:
  UdpSocket(asio::ip::udp::socket socket, bool v6, bool dual_stack, bool gro)
      : socket_(std::move(socket)), v6_(v6), dual_stack_(dual_stack), gro_(gro) {}
  asio::ip::udp::socket socket_;
  // The family, fixed at open: the send paths need it for every datagram, and asking the
  // kernel (getsockname) each time costs a syscall per send.
  bool v6_ = false;
  bool dual_stack_ = false;  // v6_ and IPv4 peers reachable through mapped addresses
  bool gso_ = true;
  bool gro_ = false;
};

}  // namespace peertun::io
