#include "io/udp_socket.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <vector>

namespace peertun::io {
namespace {

using base::IpAddress;
using base::SocketAddress;

// Runs `task` to completion on `io`, bounded.
template <class T>
T run(boost::asio::io_context& io, Task<T> task) {
  std::optional<T> result;
  asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    if (!e) {
      result = std::move(value);
    }
  });
  io.run_for(std::chrono::seconds(5));
  io.restart();
  EXPECT_TRUE(result.has_value()) << "timed out";
  return result.value_or(T{});
}

TEST(UdpSocketTest, DualStackSocketTalksToIpv4PeersInPlainIpv4) {
  boost::asio::io_context io;
  UdpSocket::Options options;
  options.dual_stack = true;
  auto dual = UdpSocket::open(io.get_executor(), {IpAddress::v6({}), 0}, options);
  if (!dual) {
    GTEST_SKIP() << "no IPv6 here: " << dual.error().message();
  }
  EXPECT_TRUE(dual->dual_stack());
  auto v4 = UdpSocket::open(io.get_executor(), *SocketAddress::parse("127.0.0.1:0"));
  ASSERT_TRUE(v4);
  const SocketAddress v4_address = v4->local_address();
  const SocketAddress dual_via_v4(*IpAddress::parse("127.0.0.1"), dual->local_address().port());

  // Dual-stack -> IPv4 peer, given as a plain IPv4 address.
  const std::array<std::uint8_t, 3> ping = {1, 2, 3};
  ASSERT_FALSE(dual->try_send(ping, v4_address));
  RecvBatch batch(4, 64);
  auto got = run<base::Result<std::size_t>>(io, v4->receive(batch));
  ASSERT_TRUE(got);
  EXPECT_EQ(batch[0].source, dual_via_v4);

  // IPv4 peer -> dual-stack: the source comes back unmapped.
  ASSERT_FALSE(v4->try_send(ping, dual_via_v4));
  RecvBatch dual_batch(4, 64);
  got = run<base::Result<std::size_t>>(io, dual->receive(dual_batch));
  ASSERT_TRUE(got);
  EXPECT_EQ(dual_batch[0].source, v4_address);
  EXPECT_TRUE(dual_batch[0].source.ip().is_v4());

  // Segmented sends take the same route.
  const std::vector<std::uint8_t> two(20, 7);
  auto sent = dual->try_send_segments(two, 10, v4_address);
  ASSERT_TRUE(sent);
  EXPECT_EQ(*sent, two.size());
}

TEST(UdpSocketTest, Ipv6OnlySocketRefusesIpv4Peers) {
  boost::asio::io_context io;
  auto v6 = UdpSocket::open(io.get_executor(), {IpAddress::v6({}), 0});
  if (!v6) {
    GTEST_SKIP() << "no IPv6 here: " << v6.error().message();
  }
  EXPECT_FALSE(v6->dual_stack());
  const std::array<std::uint8_t, 1> ping = {1};
  EXPECT_EQ(v6->try_send(ping, *SocketAddress::parse("127.0.0.1:9")),
            boost::system::errc::address_family_not_supported);
}

TEST(UdpSocketTest, GroDeliversAGsoBatchCoalescedWithItsSegmentSize) {
  boost::asio::io_context io;
  auto receiver = UdpSocket::open(io.get_executor(), *SocketAddress::parse("127.0.0.1:0"));
  auto sender = UdpSocket::open(io.get_executor(), *SocketAddress::parse("127.0.0.1:0"));
  ASSERT_TRUE(receiver);
  ASSERT_TRUE(sender);
  EXPECT_FALSE(receiver->gro_enabled());
  if (!receiver->enable_gro()) {
    GTEST_SKIP() << "no UDP GRO in this kernel";
  }
  EXPECT_TRUE(receiver->gro_enabled());
  EXPECT_TRUE(receiver->enable_gro());  // idempotent

  // Five 1000-byte datagrams and a short one, sent as one GSO batch.
  std::vector<std::uint8_t> data(5 * 1000 + 300);
  for (std::size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<std::uint8_t>(i / 1000);
  }
  auto sent = sender->try_send_segments(data, 1000, receiver->local_address());
  ASSERT_TRUE(sent);
  ASSERT_EQ(*sent, data.size());

  RecvBatch batch(4, 65535);
  std::vector<std::uint8_t> got;
  std::vector<std::size_t> segment_sizes;
  for (int reads = 0; got.size() < data.size() && reads < 6; ++reads) {
    auto n = run<base::Result<std::size_t>>(io, receiver->receive(batch));
    ASSERT_TRUE(n);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      got.insert(got.end(), batch[i].data.begin(), batch[i].data.end());
      segment_sizes.push_back(batch[i].segment_size);
    }
  }
  EXPECT_EQ(got, data);
  if (sender->gso_enabled()) {
    // Loopback keeps a GSO batch whole for a GRO socket.
    ASSERT_EQ(segment_sizes.size(), 1U);
    EXPECT_EQ(segment_sizes[0], 1000U);
  }

  // A lone datagram reports its own size as the segment size.
  const std::array<std::uint8_t, 3> ping = {1, 2, 3};
  ASSERT_FALSE(sender->try_send(ping, receiver->local_address()));
  auto n = run<base::Result<std::size_t>>(io, receiver->receive(batch));
  ASSERT_TRUE(n);
  EXPECT_EQ(batch[0].data.size(), 3U);
  EXPECT_EQ(batch[0].segment_size, 3U);
}

}  // namespace
}  // namespace peertun::io
