// peertun-relay: the self-hostable rendezvous, STUN and (later) TURN server.
// Flags override relay.toml; see docs/relay.md.

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/duration.h"
#include "base/log.h"
#include "base/random.h"
#include "io/asio.h"
#include "relay/relay.h"

namespace {

using namespace peertun;

constexpr int kExitUsage = 2;
constexpr int kExitRuntime = 1;

int fail(int code, const std::string& message) {
  std::cerr << "peertun-relay: " << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"peertun-relay: rendezvous and STUN server for peertun P2P tunnels"};
  std::string config_path;
  std::string listen;
  std::vector<std::string> tokens;
  int alt_port = -1;
  std::string alt_ip;
  std::string tls_cert;
  std::string tls_key;
  std::string session_ttl;
  std::string log_level;
  app.add_option("--config", config_path, "relay.toml to read (flags override it)")
      ->check(CLI::ExistingFile);
  app.add_option("--listen", listen, "HOST:PORT for the control plane (TCP) and STUN (UDP)")
      ->type_name("HOST:PORT");
  app.add_option("--token", tokens, "a token clients must present (repeatable)");
  app.add_option("--alt-port", alt_port, "RFC 5780 alternate port (default: listen port + 1)")
      ->check(CLI::Range(1, 65535));
  app.add_option("--alt-ip", alt_ip, "RFC 5780 alternate address (a second IP of this host)");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain: serve the control plane as wss")
      ->type_name("FILE");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert")->type_name("FILE");
  app.add_option("--session-ttl", session_ttl, "how long an unused join code lives (e.g. 10m)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  relay::RelayConfig config;
  if (!config_path.empty()) {
    std::ifstream in(config_path);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) {
      return fail(kExitUsage, "cannot read " + config_path);
    }
    std::string detail;
    auto parsed = relay::parse_relay_config(content.str(), config_path, detail);
    if (!parsed) {
      return fail(kExitUsage, detail);
    }
    config = std::move(*parsed);
  }
  if (!listen.empty()) {
    auto addr = base::SocketAddress::parse(listen);
    if (!addr) {
      return fail(kExitUsage, "--listen expects IP:PORT such as 0.0.0.0:4040 or [::]:4040");
    }
    config.listen = *addr;
  }
  for (auto& t : tokens) {
    if (t.empty()) {
      return fail(kExitUsage, "--token must not be empty");
    }
    config.tokens.emplace_back(std::move(t));
  }
  if (alt_port > 0) {
    config.alt_port = static_cast<std::uint16_t>(alt_port);
  }
  if (!alt_ip.empty()) {
    auto ip = base::IpAddress::parse(alt_ip);
    if (!ip) {
      return fail(kExitUsage, "--alt-ip expects an IP address");
    }
    config.alt_ip = *ip;
  }
  if (!tls_cert.empty()) {
    config.tls_cert = tls_cert;
  }
  if (!tls_key.empty()) {
    config.tls_key = tls_key;
  }
  if (!session_ttl.empty()) {
    auto d = base::parse_duration(session_ttl);
    if (!d || *d < std::chrono::seconds(1)) {
      return fail(kExitUsage, "--session-ttl expects a duration such as 10m or 90s");
    }
    config.session_ttl = std::chrono::duration_cast<std::chrono::seconds>(*d);
  }
  if (!log_level.empty()) {
    config.log_level = log_level;
  }
  auto level = base::parse_log_level(config.log_level);
  if (!level) {
    return fail(kExitUsage, "unknown log level \"" + config.log_level + "\"");
  }
  base::set_log_level(*level);
  if (auto problem = relay::validate(config); !problem.empty()) {
    return fail(kExitUsage, problem);
  }

  base::init_crypto();
  io::raise_open_file_limit();  // tens of thousands of idle sessions
  std::signal(SIGPIPE, SIG_IGN);

  boost::asio::io_context io(1);
  std::string problem;
  auto started = relay::Relay::start(io.get_executor(), config, problem);
  if (!started && !problem.empty()) {
    return fail(kExitUsage, problem);  // an unusable --tls-cert/--tls-key
  }
  if (!started) {
    return fail(kExitRuntime,
                "cannot listen on " + config.listen.to_string() + ": " + started.error().message());
  }
  auto& relay_server = *started;
  const auto ctrl = relay_server->control_address();
  std::string alt = std::to_string(relay_server->alt_port());
  if (config.alt_ip) {
    alt += ", alternate address " + config.alt_ip->to_string();
  }
  std::printf(
      "peertun-relay listening: control %s://%s/v1/control, STUN udp port %u (alternate port "
      "%s)\n",
      relay_server->tls() ? "wss" : "ws", ctrl.to_string().c_str(), relay_server->port(),
      alt.c_str());
  if (relay_server->tls() && !relay_server->tls_pin().empty()) {
    // For self-signed certificates: clients can pin this instead of trusting a CA.
    std::printf("  TLS key pin (client relay_pin / --relay-pin): %s\n",
                relay_server->tls_pin().c_str());
  }
  std::fflush(stdout);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) {
      return;
    }
    relay_server->stop();
    io.stop();
  });
  io.run();
  std::printf("peertun-relay stopped\n");
  return 0;
}
