#include "relay/relay.h"

#include <fmt/format.h>

#include "base/log.h"
#include "io/tls_stream.h"
#include "io/websocket.h"
#include "relay/control_service.h"
#include "relay/stun_service.h"

namespace peertun::relay {
namespace {

constexpr char kControlPath[] = "/v1/control";
// With port 0 we look for a number free on TCP and UDP (and UDP+1) at once.
constexpr int kPortAttempts = 32;

spdlog::logger& log() { return base::logger("relay"); }

}  // namespace

struct Relay::Parts {
  RelayConfig config;
  RelayStats stats;
  std::uint16_t port = 0;
  std::uint16_t alt_port = 0;
  std::unique_ptr<ControlService> control;
  std::vector<std::unique_ptr<io::WebSocketServer>> servers;
  std::unique_ptr<StunService> stun;
  std::shared_ptr<const io::TlsContext> tls;
};

namespace {

// TLS handshake failures live in the WebSocket servers (io), not in RelayStats.
std::string tls_metrics(const Relay::Parts& parts) {
  if (!parts.tls) {
    return {};
  }
  std::uint64_t failures = 0;
  for (const auto& server : parts.servers) {
    failures += server->tls_handshake_failures();
  }
  return fmt::format(
      "# HELP peertun_relay_tls_handshake_failures_total TLS handshakes that failed or timed "
      "out (plain HTTP, garbage, stalls).\n"
      "# TYPE peertun_relay_tls_handshake_failures_total counter\n"
      "peertun_relay_tls_handshake_failures_total {}\n",
      failures);
}

}  // namespace

Relay::Relay(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Relay::~Relay() { stop(); }

base::Result<std::unique_ptr<Relay>> Relay::start(io::Executor executor, RelayConfig config) {
  std::string problem;
  return start(std::move(executor), std::move(config), problem);
}

base::Result<std::unique_ptr<Relay>> Relay::start(io::Executor executor, RelayConfig config,
                                                  std::string& problem) {
  auto parts = std::make_unique<Parts>();
  parts->config = std::move(config);
  const RelayConfig& cfg = parts->config;
  const bool pick_port = cfg.listen.port() == 0;
  const bool v4_wildcard = cfg.listen.ip().is_v4() && cfg.listen.ip().is_unspecified();

  io::WebSocketOptions ws_options;
  ws_options.idle_timeout = 2 * cfg.ping_interval;
  ws_options.max_message_bytes = 64 * 1024;
  if (!cfg.tls_cert.empty()) {
    auto tls = io::TlsContext::server(cfg.tls_cert, cfg.tls_key, problem);
    if (!tls) {
      return tls.error();
    }
    parts->tls = *tls;
    ws_options.tls = *tls;
  }

  base::ErrorCode last_error;
  for (int attempt = 0; attempt < (pick_port ? kPortAttempts : 1); ++attempt) {
    parts->servers.clear();
    parts->stun.reset();
    parts->control.reset();
    // The control service needs the ports for its Welcome, so bind TCP first with a
    // handler that reaches the service through `parts` once it exists.
    Parts* raw = parts.get();
    auto handler = [raw](std::shared_ptr<io::WebSocket> ws) -> io::Task<void> {
      return raw->control->serve(std::move(ws));
    };
    auto http = [raw](const std::string& target) {
      if (target == "/metrics") {
        return io::HttpResponse{200, "text/plain; version=0.0.4",
                                to_prometheus(raw->stats) + tls_metrics(*raw)};
      }
      if (target == "/healthz") {
        return io::HttpResponse{200, "text/plain", "ok\n"};
      }
      return io::HttpResponse{};
    };
    auto server =
        io::WebSocketServer::start(executor, cfg.listen, kControlPath, ws_options, handler, http);
    if (!server) {
      return server.error();
    }
    const std::uint16_t port = (*server)->local_address().port();
    const std::uint16_t alt_port =
        cfg.alt_port != 0 ? cfg.alt_port : static_cast<std::uint16_t>(port + 1);
    if (alt_port == 0) {  // port 65535 picked by the OS: no room for port+1
      last_error = boost::system::errc::make_error_code(boost::system::errc::address_in_use);
      continue;
    }
    StunServiceConfig stun_config{cfg.listen.ip(), cfg.alt_ip, port, alt_port, v4_wildcard};
    auto stun = StunService::start(executor, stun_config, parts->stats);
    if (!stun) {
      last_error = stun.error();
      if (pick_port) {
        continue;
      }
      return stun.error();
    }
    parts->servers.push_back(std::move(*server));
    parts->stun = std::move(*stun);
    parts->port = port;
    parts->alt_port = alt_port;
    if (v4_wildcard) {
      // Best effort: serve IPv6 clients on the same port when the host has IPv6.
      auto v6 = io::WebSocketServer::start(executor, {base::IpAddress::v6({}), port}, kControlPath,
                                           ws_options, handler, http);
      if (v6) {
        parts->servers.push_back(std::move(*v6));
      }
    }
    ControlServiceConfig control_config{
        cfg.tokens,       port, alt_port, cfg.alt_ip, cfg.session_ttl, cfg.ping_interval,
        cfg.hello_timeout};
    parts->control = std::make_unique<ControlService>(executor, control_config, parts->stats);
    parts->control->start();
    log().info("relay.listening control={} port={} alt_port={} tls={}",
               parts->servers.front()->local_address().to_string(), port, alt_port,
               parts->tls ? "on" : "off");
    return std::unique_ptr<Relay>(new Relay(std::move(parts)));
  }
  return last_error;
}

base::SocketAddress Relay::control_address() const {
  return parts_->servers.front()->local_address();
}
std::uint16_t Relay::port() const { return parts_->port; }
std::uint16_t Relay::alt_port() const { return parts_->alt_port; }
const RelayStats& Relay::stats() const { return parts_->stats; }
bool Relay::tls() const { return parts_->tls != nullptr; }
const std::string& Relay::tls_pin() const {
  static const std::string kNone;
  return parts_->tls ? parts_->tls->pin() : kNone;
}

void Relay::stop() {
  if (!parts_) {
    return;
  }
  for (auto& s : parts_->servers) {
    s->stop();
  }
  if (parts_->stun) {
    parts_->stun->stop();
  }
  if (parts_->control) {
    parts_->control->stop();
  }
}

}  // namespace peertun::relay
