// peertun: the P2P tunnel client. Thin: flags, config, wiring, output.
// docs/cli.md is the reference for every command and flag.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/log.h"
#include "base/random.h"
#include "client/config.h"
#include "client/p2p_session.h"
#include "client/stun_client.h"
#include "io/asio.h"
#include "pake/join_code.h"

namespace {

using namespace peertun;
namespace json = boost::json;

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;
constexpr auto kCloseGrace = std::chrono::milliseconds(500);

// Prints what happens, as the lines of DESIGN.md or (--json) one JSON object a line.
class Printer final : public client::P2pObserver {
 public:
  explicit Printer(bool as_json) : json_(as_json) {}

  void event(std::string_view name, json::object fields, const std::string& human) {
    if (json_) {
      fields["event"] = name;
      std::cout << json::serialize(fields) << std::endl;
    } else {
      std::cout << human << std::endl;
    }
  }

  void join_code(const std::string& code) override {
    event("join_code", {{"code", code}},
          "Join code: " + code + "\n  On the other machine run: peertun p2p-join " + code);
  }
  void public_address(const base::SocketAddress& a) override {
    event("public_address", {{"address", a.to_string()}},
          "\u2713 STUN: my public address is " + a.to_string());
  }
  void stun_failed(const std::string& why) override {
    event("stun_failed", {{"reason", why}}, "\u2717 STUN: " + why);
  }
  void peer_joined() override { event("peer_joined", {}, "  Peer B joined; authenticating..."); }
  void peer_address(char role, const base::SocketAddress& a) override {
    event("peer_address", {{"peer", std::string(1, role)}, {"address", a.to_string()}},
          std::string("\u2713 Peer ") + role + " is at " + a.to_string());
  }
  void peer_left(char role) override {
    event("peer_left", {{"peer", std::string(1, role)}},
          std::string("  Peer ") + role + " left; session over.");
  }

 private:
  bool json_;
};

struct GlobalOptions {
  std::string relay;
  std::string token;
  std::string config_path;
  std::string log_level;
  bool json = false;
};

int usage_error(const std::string& message) {
  std::cerr << "peertun: " << message << "\n";
  return kExitUsage;
}

// Flags win over the environment, which wins over the config file.
std::optional<client::P2pSettings> resolve_settings(const GlobalOptions& g, std::string& problem) {
  client::ClientConfig config;
  std::string path = g.config_path.empty() ? client::default_config_path() : g.config_path;
  if (!path.empty() && std::filesystem::exists(path)) {
    std::ifstream in(path);
    std::stringstream content;
    content << in.rdbuf();
    std::string detail;
    auto parsed = client::parse_client_config(content.str(), path, detail);
    if (!parsed) {
      problem = detail;
      return std::nullopt;
    }
    config = std::move(*parsed);
  } else if (!g.config_path.empty()) {
    problem = "config file " + g.config_path + " does not exist";
    return std::nullopt;
  }
  client::ClientConfig env;
  if (const char* r = std::getenv("PEERTUN_RELAY"); r != nullptr && *r) {
    env.relay = r;
  }
  if (const char* t = std::getenv("PEERTUN_TOKEN"); t != nullptr && *t) {
    env.token = base::Secret(t);
  }
  client::ClientConfig flags;
  if (!g.relay.empty()) {
    flags.relay = g.relay;
  }
  if (!g.token.empty()) {
    flags.token = base::Secret(g.token);
  }
  config = client::merge(client::merge(config, env), flags);

  if (!config.relay) {
    problem = "no relay given: use --relay HOST:PORT, PEERTUN_RELAY or `relay` in " +
              (path.empty() ? std::string("the config file") : path);
    return std::nullopt;
  }
  auto target = client::parse_relay_target(*config.relay);
  if (!target) {
    problem = "cannot read the relay address \"" + *config.relay +
              "\": expected HOST, HOST:PORT, [IPv6]:PORT or ws://HOST:PORT";
    return std::nullopt;
  }
  if (!config.token) {
    problem = "no token given: use --token, PEERTUN_TOKEN or `token` in the config file";
    return std::nullopt;
  }
  return client::P2pSettings{*target, *config.token};
}

// Runs one session to completion, with Ctrl-C/SIGTERM ending it. `io` must outlive
// `session`: the session's sockets belong to it.
int run_session(boost::asio::io_context& io, client::P2pSession& session,
                io::Task<std::optional<client::Failure>> task) {
  std::optional<client::Failure> result;
  bool done = false;
  io::asio::co_spawn(io, std::move(task),
                     [&](std::exception_ptr e, std::optional<client::Failure> r) {
                       done = true;
                       if (e) {
                         io::log_task_exception(e, "p2p.session");
                         result = client::Failure{kExitRuntime, "internal error"};
                       } else {
                         result = std::move(r);
                       }
                     });
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) {
      session.stop();
    }
  });
  while (!done && io.run_one() > 0) {
  }
  signals.cancel();
  // Let close frames go out, but do not wait for timers (Beast's keep-alive timer
  // would hold run() until the idle timeout).
  io.run_for(kCloseGrace);
  if (result) {
    std::cerr << "peertun: " << result->message << "\n";
    return result->exit_code;
  }
  return kExitOk;
}

// Settings, then one session as A or B: `begin` picks which.
template <class Begin>
int run_p2p(const GlobalOptions& g, Begin begin) {
  std::string problem;
  auto settings = resolve_settings(g, problem);
  if (!settings) {
    return usage_error(problem);
  }
  Printer printer(g.json);
  boost::asio::io_context io(1);
  client::P2pSession session(std::move(*settings), printer);
  return run_session(io, session, begin(session));
}

int cmd_p2p(const GlobalOptions& g, const std::string& dir) {
  std::error_code ec;
  const auto status = std::filesystem::status(dir, ec);
  if (ec || !std::filesystem::exists(status)) {
    return usage_error("cannot share " + dir + ": no such directory");
  }
  if (!std::filesystem::is_directory(status)) {
    return usage_error("cannot share " + dir + ": not a directory");
  }
  if (::access(dir.c_str(), R_OK | X_OK) != 0) {
    return usage_error("cannot share " + dir + ": permission denied");
  }
  return run_p2p(g, [](client::P2pSession& session) { return session.share(); });
}

int cmd_p2p_join(const GlobalOptions& g, const std::string& code_text) {
  auto code = pake::parse_join_code(code_text);
  if (!code) {
    return usage_error("that is not a join code (" + code.error().message() +
                       "); it looks like pt-p2p-2A91-7XKP-Q4L9");
  }
  return run_p2p(g,
                 [&code](client::P2pSession& session) { return session.join(std::move(*code)); });
}

// Binding requests to the relay's main and alternate address from one socket: the
// mapping each sees, and whether they agree.
int cmd_debug_stun(const GlobalOptions& g, int timeout_ms) {
  std::string relay_text = g.relay;
  if (relay_text.empty()) {
    if (const char* r = std::getenv("PEERTUN_RELAY"); r != nullptr && *r) {
      relay_text = r;
    }
  }
  if (relay_text.empty()) {
    return usage_error("no relay given: use --relay HOST:PORT");
  }
  auto target = client::parse_relay_target(relay_text);
  if (!target) {
    return usage_error("cannot read the relay address \"" + relay_text + "\"");
  }

  boost::asio::io_context io(1);
  int exit_code = kExitOk;
  Printer printer(g.json);
  auto task = [&]() -> io::Task<void> {
    auto ex = co_await io::asio::this_coro::executor;
    io::asio::ip::udp::resolver resolver(ex);
    auto [rec, results] = co_await resolver.async_resolve(
        target->host, std::to_string(target->port), io::use_nothrow);
    if (rec || results.empty()) {
      std::cerr << "peertun: cannot resolve " << target->host << ": " << rec.message() << "\n";
      exit_code = kExitRuntime;
      co_return;
    }
    const auto server = io::from_asio(results.begin()->endpoint());
    const base::IpAddress any =
        server.ip().is_v4() ? base::IpAddress::v4({0, 0, 0, 0}) : base::IpAddress::v6({});
    auto socket = io::UdpSocket::open(ex, {any, 0});
    if (!socket) {
      std::cerr << "peertun: cannot open a UDP socket: " << socket.error().message() << "\n";
      exit_code = kExitRuntime;
      co_return;
    }
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    // Named, not `{}`: GCC 12 destroys a braced temporary coroutine argument twice.
    stun::BindingRequestOptions options;
    auto main = co_await client::stun_binding(*socket, server, options, timeout);
    if (!main) {
      std::cerr << "peertun: no STUN answer from " << server.to_string() << " within " << timeout_ms
                << "ms: " << main.error().message() << "\n";
      exit_code = kExitRuntime;
      co_return;
    }
    const auto local = socket->local_address();
    json::object out{{"server", server.to_string()},
                     {"local_port", local.port()},
                     {"mapped", main->mapped_address.to_string()}};
    std::string human =
        "main      " + server.to_string() + " -> mapped " + main->mapped_address.to_string();
    if (main->response_origin) {
      out["response_origin"] = main->response_origin->to_string();
    }
    if (main->other_address) {
      out["other_address"] = main->other_address->to_string();
      auto alt = co_await client::stun_binding(*socket, *main->other_address, options, timeout);
      if (alt) {
        out["alt_mapped"] = alt->mapped_address.to_string();
        human += "\nalternate " + main->other_address->to_string() + " -> mapped " +
                 alt->mapped_address.to_string();
        const bool same = alt->mapped_address == main->mapped_address;
        out["mapping_varies"] = !same;
        human += same ? "\nmapping: the same from both relay addresses"
                      : "\nmapping: differs per destination (symmetric NAT: direct paths "
                        "unlikely)";
      } else {
        out["alt_error"] = alt.error().message();
        human += "\nalternate " + main->other_address->to_string() + " -> no answer (" +
                 alt.error().message() + ")";
      }
    } else {
      human += "\nalternate: the server announces no OTHER-ADDRESS (no RFC 5780)";
    }
    human += "\nlocal port " + std::to_string(local.port());
    printer.event("stun", std::move(out), human);
  };
  io::asio::co_spawn(io, task(), [&](std::exception_ptr e) {
    if (e) {
      io::log_task_exception(e, "debug.stun");
      exit_code = kExitRuntime;
    }
  });
  io.run();
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"peertun: peer-to-peer tunnels that keep the relay out of the data path"};
  app.require_subcommand(1);
  GlobalOptions g;
  app.add_option("--relay", g.relay, "relay address HOST[:PORT] (env PEERTUN_RELAY)");
  app.add_option("--token", g.token, "token for the relay (env PEERTUN_TOKEN)");
  app.add_option("--config", g.config_path, "config file (default ~/.config/peertun/config.toml)");
  app.add_option("--log-level", g.log_level, "trace, debug, info, warn (default), error, off");
  app.add_flag("--json", g.json, "print events as JSON lines, for scripts");

  std::string dir;
  auto* p2p = app.add_subcommand("p2p", "share a folder: prints a join code and waits for peer B");
  p2p->add_option("DIR", dir, "the folder to share")->required();

  std::string code;
  auto* join = app.add_subcommand("p2p-join", "join peer A's session with its join code");
  join->add_option("CODE", code, "the join code, e.g. pt-p2p-2A91-7XKP-Q4L9")->required();

  auto* debug = app.add_subcommand("debug", "diagnostics");
  debug->require_subcommand(1);
  int stun_timeout_ms = 3000;
  auto* debug_stun =
      debug->add_subcommand("stun", "the public address the relay's STUN sees, from both ports");
  debug_stun->add_option("--timeout-ms", stun_timeout_ms, "per-request budget")
      ->check(CLI::Range(100, 60000));

  // Flags may come before or after the subcommand.
  app.fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (!g.log_level.empty()) {
    auto level = base::parse_log_level(g.log_level);
    if (!level) {
      return usage_error("unknown log level \"" + g.log_level + "\"");
    }
    base::set_log_level(*level);
  }
  base::init_crypto();
  std::signal(SIGPIPE, SIG_IGN);

  if (p2p->parsed()) {
    return cmd_p2p(g, dir);
  }
  if (join->parsed()) {
    return cmd_p2p_join(g, code);
  }
  if (debug_stun->parsed()) {
    return cmd_debug_stun(g, stun_timeout_ms);
  }
  return kExitUsage;
}
