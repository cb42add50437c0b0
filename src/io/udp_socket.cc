#include "io/udp_socket.h"

#include <netinet/in.h>
#include <netinet/udp.h>

#include <boost/asio/socket_base.hpp>
#include <cerrno>
#include <cstring>

namespace peertun::io {
namespace {

base::SocketAddress from_sockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    const auto& sin = reinterpret_cast<const sockaddr_in&>(ss);
    std::array<std::uint8_t, 4> b;
    std::memcpy(b.data(), &sin.sin_addr, 4);
    return {base::IpAddress::v4(b), ntohs(sin.sin_port)};
  }
  if (ss.ss_family == AF_INET6) {
    const auto& sin6 = reinterpret_cast<const sockaddr_in6&>(ss);
    std::array<std::uint8_t, 16> b;
    std::memcpy(b.data(), &sin6.sin6_addr, 16);
    return {base::IpAddress::v6(b).unmapped(), ntohs(sin6.sin6_port)};
  }
  return {};
}

socklen_t to_sockaddr(const base::SocketAddress& a, sockaddr_storage& ss, bool v6_socket) {
  std::memset(&ss, 0, sizeof ss);
  if (!v6_socket) {
    auto& sin = reinterpret_cast<sockaddr_in&>(ss);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(a.port());
    std::memcpy(&sin.sin_addr, a.ip().bytes().data(), 4);
    return sizeof(sockaddr_in);
  }
  auto& sin6 = reinterpret_cast<sockaddr_in6&>(ss);
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(a.port());
  if (a.ip().is_v4()) {
    // RFC 4291 §2.5.5.2: ::ffff:a.b.c.d reaches an IPv4 peer from a dual-stack socket.
    auto* bytes = reinterpret_cast<std::uint8_t*>(&sin6.sin6_addr);
    bytes[10] = 0xff;
    bytes[11] = 0xff;
    std::memcpy(bytes + 12, a.ip().bytes().data(), 4);
  } else {
    std::memcpy(&sin6.sin6_addr, a.ip().bytes().data(), 16);
  }
  return sizeof(sockaddr_in6);
}

base::ErrorCode errno_code(int e) { return {e, boost::system::system_category()}; }

}  // namespace

RecvBatch::RecvBatch(std::size_t capacity, std::size_t max_size)
    : max_size_(max_size),
      storage_(capacity * max_size),
      headers_(capacity),
      iovecs_(capacity),
      sources_(capacity),
      controls_(capacity),
      received_(capacity) {
  for (std::size_t i = 0; i < capacity; ++i) {
    iovecs_[i] = {storage_.data() + i * max_size, max_size};
  }
}

base::Result<UdpSocket> UdpSocket::open(Executor executor, const base::SocketAddress& local,
                                        Options options) {
  asio::ip::udp::socket socket(executor);
  const auto endpoint = to_udp(local);
  base::ErrorCode ec;
  socket.open(endpoint.protocol(), ec);
  if (ec) {
    return ec;
  }
  const int fd = socket.native_handle();
  const int one = 1;
  if (local.ip().is_v4()) {
    ::setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
  } else {
    const int v6only = options.dual_stack ? 0 : 1;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) != 0) {
      return errno_code(errno);
    }
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  }
  // Best effort: without GRO every datagram simply arrives alone.
  const bool gro = options.gro && ::setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  // Best effort: the kernel silently caps at rmem_max/wmem_max.
  socket.set_option(asio::socket_base::receive_buffer_size(options.buffer_bytes), ec);
  socket.set_option(asio::socket_base::send_buffer_size(options.buffer_bytes), ec);
  socket.bind(endpoint, ec);
  if (ec) {
    return ec;
  }
  socket.non_blocking(true, ec);
  if (ec) {
    return ec;
  }
  const bool v6 = endpoint.protocol() == asio::ip::udp::v6();
  return UdpSocket(std::move(socket), v6, v6 && options.dual_stack, gro);
}

bool UdpSocket::enable_gro() {
  const int one = 1;
  if (!gro_ && ::setsockopt(socket_.native_handle(), SOL_UDP, UDP_GRO, &one, sizeof one) == 0) {
    gro_ = true;
  }
  return gro_;
}

base::SocketAddress UdpSocket::local_address() const {
  base::ErrorCode ec;
  auto ep = socket_.local_endpoint(ec);
  if (ec) {
    return {};
  }
  return from_asio(ep);
}

Task<base::Result<std::size_t>> UdpSocket::receive(RecvBatch& batch) {
  batch.count_ = 0;
  for (;;) {
    const auto capacity = batch.capacity();
    for (std::size_t i = 0; i < capacity; ++i) {
      auto& h = batch.headers_[i].msg_hdr;
      h.msg_name = &batch.sources_[i];
      h.msg_namelen = sizeof(sockaddr_storage);
      h.msg_iov = &batch.iovecs_[i];
      h.msg_iovlen = 1;
      h.msg_control = batch.controls_[i].data();
      h.msg_controllen = batch.controls_[i].size();
      h.msg_flags = 0;
      batch.headers_[i].msg_len = 0;
    }
    const int n = ::recvmmsg(socket_.native_handle(), batch.headers_.data(),
                             static_cast<unsigned>(capacity), MSG_DONTWAIT, nullptr);
    if (n > 0) {
      for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
        auto& out = batch.received_[i];
        const auto& h = batch.headers_[i].msg_hdr;
        out.source = from_sockaddr(batch.sources_[i]);
        out.local_ip = {};
        out.segment_size = 0;
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr;
             c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
          if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            in_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            std::array<std::uint8_t, 4> b;
            std::memcpy(b.data(), &info.ipi_addr, 4);
            out.local_ip = base::IpAddress::v4(b);
          } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            in6_pktinfo info;
            std::memcpy(&info, CMSG_DATA(c), sizeof info);
            std::array<std::uint8_t, 16> b;
            std::memcpy(b.data(), &info.ipi6_addr, 16);
            out.local_ip = base::IpAddress::v6(b).unmapped();
          } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int segment = 0;
            std::memcpy(&segment, CMSG_DATA(c), sizeof segment);
            out.segment_size = segment > 0 ? static_cast<std::size_t>(segment) : 0;
          }
        }
        // A datagram longer than max_size arrives truncated (MSG_TRUNC); every
        // protocol we speak fits in 2 KiB, so a truncated one is malformed anyway
        // and the length we report makes its parser reject it.
        out.data = {batch.storage_.data() + i * batch.max_size_,
                    std::min<std::size_t>(batch.headers_[i].msg_len, batch.max_size_)};
        if (out.segment_size == 0 || out.segment_size > out.data.size()) {
          out.segment_size = out.data.size();
        }
      }
      batch.count_ = static_cast<std::size_t>(n);
      co_return batch.count_;
    }
    const int err = errno;
    if (n < 0 && err != EAGAIN && err != EWOULDBLOCK && err != EINTR) {
      // ICMP errors (ECONNREFUSED etc.) surface on the next recv for an unconnected
      // socket on some kernels; they say nothing about this socket, so keep going.
      if (err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH) {
        continue;
      }
      co_return errno_code(err);
    }
    auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_nothrow);
    if (ec) {
      co_return ec;
    }
  }
}

base::ErrorCode UdpSocket::try_send(std::span<const std::uint8_t> data,
                                    const base::SocketAddress& dest,
                                    const base::IpAddress* source) {
  const bool v6_socket = v6_;
  sockaddr_storage ss;
  base::SocketAddress target = dest;
  if (v6_socket && dest.ip().is_v4() && !dual_stack_) {
    // A v6-only socket cannot reach IPv4 peers.
    return errno_code(EAFNOSUPPORT);
  }
  const socklen_t len = to_sockaddr(target, ss, v6_socket);
  iovec iov{const_cast<std::uint8_t*>(data.data()), data.size()};
  msghdr msg{};
  msg.msg_name = &ss;
  msg.msg_namelen = len;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) std::array<std::uint8_t, CMSG_SPACE(sizeof(in6_pktinfo))> control{};
  if (source != nullptr && !source->is_unspecified()) {
    msg.msg_control = control.data();
    cmsghdr* c;
    if (!v6_socket) {
      msg.msg_controllen = CMSG_SPACE(sizeof(in_pktinfo));
      c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
      in_pktinfo info{};
      std::memcpy(&info.ipi_spec_dst, source->bytes().data(), 4);
      std::memcpy(CMSG_DATA(c), &info, sizeof info);
    } else {
      msg.msg_controllen = CMSG_SPACE(sizeof(in6_pktinfo));
      c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
      in6_pktinfo info{};
      std::memcpy(&info.ipi6_addr, source->bytes().data(), 16);
      std::memcpy(CMSG_DATA(c), &info, sizeof info);
    }
  }
  for (;;) {
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n >= 0) {
      return {};
    }
    if (errno == EINTR) {
      continue;
    }
    return errno_code(errno);
  }
}

base::Result<std::size_t> UdpSocket::try_send_segments(std::span<const std::uint8_t> data,
                                                       std::size_t segment_size,
                                                       const base::SocketAddress& dest) {
  // Linux caps GSO at UDP_MAX_SEGMENTS (64) segments and one UDP datagram's size.
  constexpr std::size_t kMaxSegments = 64;
  constexpr std::size_t kMaxUdpBytes = 65507;
  if (segment_size == 0 || data.empty() || data.size() > kMaxUdpBytes ||
      (data.size() + segment_size - 1) / segment_size > kMaxSegments) {
    return errno_code(EINVAL);
  }
  if (data.size() <= segment_size) {
    auto ec = try_send(data, dest);
    if (ec) {
      return ec;
    }
    return data.size();
  }
  const bool v6_socket = v6_;
  if (v6_socket && dest.ip().is_v4() && !dual_stack_) {
    return errno_code(EAFNOSUPPORT);
  }
  sockaddr_storage ss;
  const socklen_t len = to_sockaddr(dest, ss, v6_socket);
  if (gso_) {
    iovec iov{const_cast<std::uint8_t*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_name = &ss;
    msg.msg_namelen = len;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) std::array<std::uint8_t, CMSG_SPACE(sizeof(std::uint16_t))> control{};
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
    const auto gso_size = static_cast<std::uint16_t>(segment_size);
    std::memcpy(CMSG_DATA(c), &gso_size, sizeof gso_size);
    for (;;) {
      const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0) {
        return data.size();
      }
      if (errno == EINTR) {
        continue;
      }
      // EIO: the device cannot checksum-offload; EINVAL/ENOPROTOOPT: no GSO here. Fall
      // back to sendmmsg from now on (upstream ngtcp2 does the same).
      if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT) {
        gso_ = false;
        break;
      }
      return errno_code(errno);
    }
  }
  std::array<mmsghdr, kMaxSegments> msgs{};
  std::array<iovec, kMaxSegments> iovs{};
  std::size_t count = 0;
  for (std::size_t off = 0; off < data.size(); off += segment_size, ++count) {
    iovs[count] = {const_cast<std::uint8_t*>(data.data()) + off,
                   std::min(segment_size, data.size() - off)};
    auto& h = msgs[count].msg_hdr;
    h.msg_name = &ss;
    h.msg_namelen = len;
    h.msg_iov = &iovs[count];
    h.msg_iovlen = 1;
  }
  for (;;) {
    const int n = ::sendmmsg(socket_.native_handle(), msgs.data(), static_cast<unsigned>(count),
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      return std::min(data.size(), static_cast<std::size_t>(n) * segment_size);
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    return errno_code(n < 0 ? errno : EAGAIN);
  }
}

Task<base::ErrorCode> UdpSocket::wait_writable() {
  auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_write, use_nothrow);
  co_return ec;
}

Task<base::ErrorCode> UdpSocket::send(std::span<const std::uint8_t> data,
                                      base::SocketAddress dest) {
  for (;;) {
    auto ec = try_send(data, dest);
    if (ec != boost::system::errc::resource_unavailable_try_again &&
        ec != boost::system::errc::operation_would_block) {
      co_return ec;
    }
    auto [wait_ec] = co_await socket_.async_wait(asio::socket_base::wait_write, use_nothrow);
    if (wait_ec) {
      co_return wait_ec;
    }
  }
}

void UdpSocket::cancel() {
  base::ErrorCode ec;
  socket_.cancel(ec);
}

void UdpSocket::close() {
  base::ErrorCode ec;
  socket_.close(ec);
}

}  // namespace peertun::io
