// The Asio driver over real UDP sockets on 127.0.0.1 (ports from the OS): handshake,
// pinning, a 1 GiB stream checked by SHA-256, datagrams and graceful close.

#include "quic/driver/session.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "quic/core/errc.h"
#include "quic/driver/direct_path.h"
#include "support/quic_loopback.h"
#include "test_data.h"

namespace peertun::quic {
namespace {

using namespace std::chrono_literals;

// co_spawn completion: an escaped exception is a bug; it is logged and counted.
void logged(std::exception_ptr e) { io::log_task_exception(e, "quic.test"); }

using Loopback = ::peertun::test::QuicLoopback;

struct Outcome {
  base::ErrorCode error;
  std::uint64_t bytes = 0;
  std::string sha256;
  bool done = false;
};

io::Task<void> send_pattern(std::shared_ptr<Session> s, std::uint64_t total,
                            std::shared_ptr<Outcome> out) {
  if ((out->error = co_await s->handshake())) {
    out->done = true;
    co_return;
  }
  auto id = co_await s->open_stream();
  if (!id) {
    out->error = id.error();
    out->done = true;
    co_return;
  }
  test::PatternSource source(7);
  test::Sha256 hash;
  std::vector<std::uint8_t> buf(256 * 1024);
  while (out->bytes < total) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - out->bytes));
    source.fill(out->bytes, std::span(buf).first(n));
    if ((out->error =
             co_await s->write_all(*id, std::span(buf).first(n), out->bytes + n == total))) {
      break;
    }
    hash.update(std::span(buf).first(n));
    out->bytes += n;
  }
  out->sha256 = hash.hex();
  out->done = true;
}

io::Task<void> receive_all(std::shared_ptr<Session> s, std::shared_ptr<Outcome> out) {
  if ((out->error = co_await s->handshake())) {
    out->done = true;
    co_return;
  }
  auto id = co_await s->accept_stream();
  if (!id) {
    out->error = id.error();
    out->done = true;
    co_return;
  }
  test::Sha256 hash;
  std::vector<std::uint8_t> buf(256 * 1024);
  for (;;) {
    auto r = co_await s->read(*id, buf);
    if (!r) {
      out->error = r.error();
      break;
    }
    hash.update(std::span(buf).first(r->bytes));
    out->bytes += r->bytes;
    if (r->fin) {
      break;
    }
  }
  out->sha256 = hash.hex();
  out->done = true;
}

TEST(SessionTest, OneGibOverLoopbackArrivesIntact) {
  Loopback net;
  ASSERT_TRUE(net.ok());
  constexpr std::uint64_t kBytes = 1ull << 30;
  auto sent = std::make_shared<Outcome>();
  auto received = std::make_shared<Outcome>();
  io::asio::co_spawn(net.ctx, send_pattern(net.a.session, kBytes, sent), logged);
  io::asio::co_spawn(net.ctx, receive_all(net.b.session, received), logged);
  const auto start = std::chrono::steady_clock::now();
  net.run(received->done, 600s);
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start);
  ASSERT_TRUE(received->done) << "received " << received->bytes << " bytes";
  EXPECT_FALSE(received->error) << received->error.message();
  EXPECT_FALSE(sent->error) << sent->error.message();
  EXPECT_EQ(received->bytes, kBytes);
  EXPECT_EQ(received->sha256, sent->sha256);
  // Informational only (speed is never asserted): both ends share one thread here.
  std::printf("1 GiB in %.2f s (%.0f MB/s), gso=%d, send errors a=%llu\n", seconds.count(),
              static_cast<double>(kBytes) / 1e6 / seconds.count(), net.a.path->gso_enabled(),
              static_cast<unsigned long long>(net.a.session->send_errors()));
}

io::Task<void> handshake_only(std::shared_ptr<Session> s, std::shared_ptr<Outcome> out) {
  out->error = co_await s->handshake();
  out->done = true;
}

TEST(SessionTest, PinMismatchFailsBothHandshakesWithAClearError) {
  Fingerprint wrong;
  wrong.bytes.fill(1);
  Loopback net({}, wrong);
  ASSERT_TRUE(net.ok());
  auto a = std::make_shared<Outcome>();
  auto b = std::make_shared<Outcome>();
  io::asio::co_spawn(net.ctx, handshake_only(net.a.session, a), logged);
  io::asio::co_spawn(net.ctx, handshake_only(net.b.session, b), logged);
  bool both = false;
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!(a->done && b->done) && std::chrono::steady_clock::now() < end) {
    net.ctx.run_for(50ms);
  }
  both = a->done && b->done;
  net.run(both, 1s);
  ASSERT_TRUE(both);
  EXPECT_EQ(b->error, make_error_code(Errc::PeerCertificateMismatch));
  EXPECT_EQ(a->error, make_error_code(Errc::CertificateRejectedByPeer));
}

io::Task<void> datagram_echo_check(std::shared_ptr<Session> client, std::shared_ptr<Session> server,
                                   std::shared_ptr<Outcome> out) {
  if ((out->error = co_await client->handshake()) || (out->error = co_await server->handshake())) {
    out->done = true;
    co_return;
  }
  std::vector<std::uint8_t> msg(client->connection().max_datagram_payload());
  for (std::size_t i = 0; i < msg.size(); ++i) {
    msg[i] = static_cast<std::uint8_t>(i);
  }
  if ((out->error = client->send_datagram(msg))) {
    out->done = true;
    co_return;
  }
  std::vector<std::uint8_t> in(2048);
  auto n = co_await server->receive_datagram(in);
  if (!n) {
    out->error = n.error();
  } else {
    out->bytes = *n;
    out->sha256 = std::equal(msg.begin(), msg.end(), in.begin()) ? "same" : "different";
  }
  // Graceful close from the client; the server's next read sees code and reason.
  out->error = co_await client->close(9, "done", 5s);
  out->done = true;
}

TEST(SessionTest, DatagramsAndGracefulClose) {
  Loopback net;
  ASSERT_TRUE(net.ok());
  auto out = std::make_shared<Outcome>();
  io::asio::co_spawn(net.ctx, datagram_echo_check(net.b.session, net.a.session, out), logged);
  const auto end = std::chrono::steady_clock::now() + 30s;
  while (!(out->done && net.a.session->connection().state() != State::Established) &&
         std::chrono::steady_clock::now() < end) {
    net.ctx.run_for(50ms);
  }
  const bool done = out->done;
  net.run(done, 1s);
  ASSERT_TRUE(out->done);
  EXPECT_EQ(out->error, make_error_code(Errc::ClosedLocally));
  EXPECT_GT(out->bytes, 1000u);
  EXPECT_EQ(out->sha256, "same");
  const auto& server = net.a.session->connection();
  EXPECT_EQ(server.error(), make_error_code(Errc::ClosedByPeer));
  ASSERT_TRUE(server.close_info());
  EXPECT_EQ(server.close_info()->code, 9u);
  EXPECT_EQ(server.close_info()->reason, "done");
}

}  // namespace
}  // namespace peertun::quic
