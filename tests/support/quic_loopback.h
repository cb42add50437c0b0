#pragma once
// Two quic::Sessions over real UDP sockets on 127.0.0.1 (ports from the OS), pinned to
// each other: peer A is the server, peer B the client. For tests above the QUIC layer
// that need a real connection without the traversal layer.

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <optional>

#include "quic/driver/direct_path.h"
#include "quic/driver/session.h"

namespace peertun::test {

struct QuicEndpoint {
  std::shared_ptr<quic::DirectPath> path;
  std::shared_ptr<quic::Session> session;
};

struct QuicLoopback {
  explicit QuicLoopback(quic::Config config = {},
                        std::optional<quic::Fingerprint> b_expects = std::nullopt) {
    auto id_a = quic::Identity::generate();
    auto id_b = quic::Identity::generate();
    const auto local = *base::SocketAddress::parse("127.0.0.1:0");
    auto pa = quic::DirectPath::open(ctx.get_executor(), local);
    auto pb = quic::DirectPath::open(ctx.get_executor(), local);
    if (!id_a || !id_b || !pa || !pb) {
      return;  // ok() is false; the test asserts it
    }
    (*pa)->set_remote((*pb)->local_address());
    (*pb)->set_remote((*pa)->local_address());
    const auto now = quic::Clock::now();
    auto ca = quic::Connection::server(*id_a, (*id_b)->fingerprint(), config, now);
    auto cb =
        quic::Connection::client(*id_b, b_expects.value_or((*id_a)->fingerprint()), config, now);
    if (!ca || !cb) {
      return;
    }
    a = {*pa, quic::Session::create(ctx.get_executor(), std::move(*ca), *pa)};
    b = {*pb, quic::Session::create(ctx.get_executor(), std::move(*cb), *pb)};
    for (auto* e : {&a, &b}) {
      io::asio::co_spawn(ctx, quic::DirectPath::run_receive(e->path, e->session),
                         [](std::exception_ptr ex, base::ErrorCode) {
                           io::log_task_exception(ex, "test.quic_rx");
                         });
      e->session->start();
    }
  }

  [[nodiscard]] bool ok() const { return a.session && b.session; }

  // Runs until `done` or the (generous) time limit; then stops everything.
  void run(const bool& done, std::chrono::seconds limit) {
    run_until(done, limit);
    stop();
  }
  // Runs until `done` or the limit, leaving the sessions up.
  void run_until(const bool& done, std::chrono::steady_clock::duration limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < end && !ctx.stopped()) {
      ctx.run_for(std::chrono::milliseconds(50));
    }
  }
  void stop() {
    for (auto* e : {&a, &b}) {
      if (e->session) {
        e->session->stop();
        e->path->close();
      }
    }
    ctx.run_for(std::chrono::seconds(1));
  }

  io::asio::io_context ctx;
  QuicEndpoint a;  // server, peer A
  QuicEndpoint b;  // client, peer B
};

}  // namespace peertun::test
