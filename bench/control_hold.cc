// Opens N authenticated control connections to a relay and holds them idle, for
// bench/control_sessions.py (memory per session). With a CA file as 5th argument the
// connections are wss, trusting that CA. Prints "held N" once all are
// welcomed, then waits for SIGTERM/SIGINT. Connections are opened with bounded
// concurrency; any failure is counted and reported, never retried forever.

#include <sys/resource.h>

#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "control/codec.h"
#include "io/tls_stream.h"
#include "io/websocket.h"

namespace {

using namespace peertun;

struct State {
  int target = 0;
  int in_flight = 0;
  int started = 0;
  int welcomed = 0;
  int failed = 0;
  std::vector<std::shared_ptr<io::WebSocket>> held;
};

io::Task<void> open_one(State& st, std::string host, std::uint16_t port, std::string token,
                        std::shared_ptr<const io::TlsContext> tls) {
  io::WebSocketOptions options;
  options.idle_timeout = std::chrono::seconds(120);
  options.tls = std::move(tls);
  auto ws = co_await io::connect_websocket(host, port, "/v1/control", options);
  if (!ws) {
    ++st.failed;
    co_return;
  }
  (*ws)->send(control::encode(
      control::ClientMessage{control::Hello{base::Secret(token), "control_hold/1"}}));
  auto reply = co_await (*ws)->read();
  if (!reply || reply->find("\"welcome\"") == std::string::npos) {
    ++st.failed;
    co_return;
  }
  ++st.welcomed;
  st.held.push_back(*ws);
  // Keep reading so pings are answered; ends when the relay or we close.
  for (;;) {
    auto more = co_await (*ws)->read();
    if (!more) {
      co_return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s HOST PORT TOKEN COUNT [CA_FILE]\n", argv[0]);
    return 2;
  }
  std::shared_ptr<const io::TlsContext> tls;
  if (argc == 6) {
    std::string detail;
    auto context = io::TlsContext::client({argv[5], ""}, detail);
    if (!context) {
      std::fprintf(stderr, "%s\n", detail.c_str());
      return 2;
    }
    tls = *context;
  }
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const std::string host = argv[1];
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  const std::string token = argv[3];
  // The io_context must outlive the sockets held in `st`.
  boost::asio::io_context io(1);
  State st;
  st.target = std::atoi(argv[4]);
  constexpr int kConcurrency = 64;

  std::function<void()> pump = [&] {
    while (st.in_flight < kConcurrency && st.started < st.target) {
      ++st.in_flight;
      ++st.started;
      io::asio::co_spawn(io, open_one(st, host, port, token, tls), [&](std::exception_ptr) {});
    }
  };
  // Completion of the handshake part is observed by polling the counters.
  io::asio::steady_timer tick(io);
  bool reported = false;
  std::function<void(const boost::system::error_code&)> on_tick =
      [&](const boost::system::error_code& ec) {
        if (ec) {
          return;
        }
        st.in_flight = st.started - st.welcomed - st.failed;
        pump();
        if (!reported && st.welcomed + st.failed == st.target) {
          reported = true;
          std::printf("held %d failed %d\n", st.welcomed, st.failed);
          std::fflush(stdout);
        }
        tick.expires_after(std::chrono::milliseconds(20));
        tick.async_wait(on_tick);
      };
  tick.expires_after(std::chrono::milliseconds(1));
  tick.async_wait(on_tick);
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) {
    for (auto& ws : st.held) {
      ws->abort();
    }
    io.stop();
  });
  io.run();
  return 0;
}
