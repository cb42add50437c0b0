// Load tool for bench/quic_loopback.py (not a test: speed is never asserted).
//
// One side of a QUIC bulk transfer over 127.0.0.1 with quic::Session and DirectPath:
//   quic_loopback server --cc bbr --bytes N
//   quic_loopback client --cc bbr
// Each prints "ready PORT FINGERPRINT" and then reads the other side's "PORT FINGERPRINT"
// from stdin. The server (peer A) sends N bytes over one stream; the client reads to the
// FIN, closes, and both print one JSON line with their figures and CPU seconds.

#include <sys/resource.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "quic/core/errc.h"
#include "quic/driver/direct_path.h"
#include "quic/driver/session.h"

namespace {

using namespace peertun;
using namespace std::chrono_literals;

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// /proc/thread-self/schedstat: nanoseconds on the CPU, nanoseconds runnable but waiting
// for it, and time slices.
std::array<unsigned long long, 3> schedstat() {
  std::array<unsigned long long, 3> v{};
  if (FILE* f = std::fopen("/proc/thread-self/schedstat", "r")) {
    if (std::fscanf(f, "%llu %llu %llu", &v[0], &v[1], &v[2]) != 3) {
      v = {};
    }
    std::fclose(f);
  }
  return v;
}

struct Result {
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::string error;
  bool done = false;
};

void logged(std::exception_ptr e) { io::log_task_exception(e, "bench"); }
void logged_ec(std::exception_ptr e, base::ErrorCode) { io::log_task_exception(e, "bench.rx"); }

io::Task<void> serve(std::shared_ptr<quic::Session> s, std::uint64_t total,
                     std::shared_ptr<Result> out) {
  if (auto ec = co_await s->handshake()) {
    out->error = ec.message();
    out->done = true;
    co_return;
  }
  auto id = co_await s->open_stream();
  if (!id) {
    out->error = id.error().message();
    out->done = true;
    co_return;
  }
  std::vector<std::uint8_t> buf(1 << 20);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    buf[i] = static_cast<std::uint8_t>(i * 7);
  }
  const auto start = std::chrono::steady_clock::now();
  while (out->bytes < total) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), total - out->bytes));
    if (auto ec = co_await s->write_all(*id, std::span(buf).first(n), out->bytes + n == total)) {
      out->error = ec.message();
      break;
    }
    out->bytes += n;
  }
  // Stay until the client has everything and closes (bounded by the idle timeout).
  std::vector<std::uint8_t> sink(16);
  (void)co_await s->read(*id, sink);
  out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out->done = true;
}

io::Task<void> fetch(std::shared_ptr<quic::Session> s, std::shared_ptr<Result> out) {
  if (auto ec = co_await s->handshake()) {
    out->error = ec.message();
    out->done = true;
    co_return;
  }
  auto id = co_await s->accept_stream();
  if (!id) {
    out->error = id.error().message();
    out->done = true;
    co_return;
  }
  std::vector<std::uint8_t> buf(1 << 20);
  const auto start = std::chrono::steady_clock::now();
  for (;;) {
    auto r = co_await s->read(*id, buf);
    if (!r) {
      out->error = r.error().message();
      break;
    }
    out->bytes += r->bytes;
    if (r->fin) {
      break;
    }
  }
  out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  (void)co_await s->close(0, "done", 1s);
  out->done = true;
}

int usage() {
  std::fprintf(stderr,
               "usage: quic_loopback server|client [--cc bbr|bbr2|cubic|reno] [--bytes N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return usage();
  }
  const std::string role = argv[1];
  if (role != "server" && role != "client") {
    return usage();
  }
  quic::Config config;
  std::uint64_t bytes = 1ull << 30;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--cc") {
      auto cc = quic::parse_congestion_control(value);
      if (!cc) {
        return usage();
      }
      config.congestion_control = *cc;
    } else if (flag == "--bytes") {
      bytes = std::stoull(value);
    } else {
      return usage();
    }
  }
  boost::asio::io_context ctx;
  auto identity = quic::Identity::generate();
  auto path =
      quic::DirectPath::open(ctx.get_executor(), *base::SocketAddress::parse("127.0.0.1:0"));
  if (!identity || !path) {
    std::fprintf(stderr, "setup failed\n");
    return 1;
  }
  std::printf("ready %u %s\n", (*path)->local_address().port(),
              (*identity)->fingerprint().to_hex().c_str());
  std::fflush(stdout);
  unsigned peer_port = 0;
  std::string peer_fp_hex;
  if (!(std::cin >> peer_port >> peer_fp_hex)) {
    std::fprintf(stderr, "expected the peer's \"PORT FINGERPRINT\" on stdin\n");
    return 2;
  }
  auto peer_fp = quic::Fingerprint::parse(peer_fp_hex);
  if (!peer_fp || peer_port == 0 || peer_port > 65535) {
    std::fprintf(stderr, "bad peer port or fingerprint\n");
    return 2;
  }
  (*path)->set_remote(*base::SocketAddress::parse("127.0.0.1:" + std::to_string(peer_port)));
  const auto now = quic::Clock::now();
  auto conn = role == "server" ? quic::Connection::server(*identity, *peer_fp, config, now)
                               : quic::Connection::client(*identity, *peer_fp, config, now);
  if (!conn) {
    std::fprintf(stderr, "connection: %s\n", conn.error().message().c_str());
    return 1;
  }
  auto session = quic::Session::create(ctx.get_executor(), std::move(*conn), *path);
  auto result = std::make_shared<Result>();
  boost::asio::co_spawn(ctx, quic::DirectPath::run_receive(*path, session), logged_ec);
  session->start();
  if (role == "server") {
    boost::asio::co_spawn(ctx, serve(session, bytes, result), logged);
  } else {
    boost::asio::co_spawn(ctx, fetch(session, result), logged);
  }
  const double cpu0 = cpu_seconds();
  const auto sched0 = schedstat();
  const auto limit = std::chrono::steady_clock::now() + 300s;
  while (!result->done && std::chrono::steady_clock::now() < limit) {
    ctx.run_for(100ms);
  }
  session->stop();
  (*path)->close();
  ctx.run_for(200ms);
  const auto sched1 = schedstat();
  const auto stats = session->connection().stats();
  const auto& d = session->driver_stats();
  // runq_wait_s: time this process was runnable but another task had the CPU. On a busy
  // machine it, not the driver, is where the wall-clock time goes.
  std::printf(
      "{\"role\": \"%s\", \"cc\": \"%s\", \"bytes\": %llu, \"seconds\": %.3f, \"MBps\": %.1f, "
      "\"cpu_s\": %.3f, \"run_s\": %.3f, \"runq_wait_s\": %.3f, \"gso\": %s, "
      "\"packets_sent\": %llu, \"send_errors\": %llu, \"flushes\": %llu, \"batches\": %llu, "
      "\"yields\": %llu, \"would_block\": %llu, \"timer_fires\": %llu, "
      "\"timer_late_us_avg\": %.1f, \"rx_datagrams\": %llu, \"error\": \"%s\"}\n",
      role.c_str(), std::string(quic::to_string(config.congestion_control)).c_str(),
      static_cast<unsigned long long>(result->bytes), result->seconds,
      result->seconds > 0 ? static_cast<double>(result->bytes) / 1e6 / result->seconds : 0.0,
      cpu_seconds() - cpu0, static_cast<double>(sched1[0] - sched0[0]) / 1e9,
      static_cast<double>(sched1[1] - sched0[1]) / 1e9, (*path)->gso_enabled() ? "true" : "false",
      static_cast<unsigned long long>(stats.packets_sent),
      static_cast<unsigned long long>(session->send_errors()),
      static_cast<unsigned long long>(d.flushes), static_cast<unsigned long long>(d.batches),
      static_cast<unsigned long long>(d.yields), static_cast<unsigned long long>(d.would_block),
      static_cast<unsigned long long>(d.timer_fires),
      d.timer_fires > 0
          ? static_cast<double>(d.timer_late_ns) / 1e3 / static_cast<double>(d.timer_fires)
          : 0.0,
      static_cast<unsigned long long>(d.datagrams), result->error.c_str());
  return result->done && result->error.empty() ? 0 : 1;
}
