// peertun: the P2P tunnel client. Thin: flags, config, wiring, output.
// docs/cli.md is the reference for every command and flag.

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/duration.h"
#include "base/log.h"
#include "base/random.h"
#include "client/config.h"
#include "client/nat_probe.h"
#include "client/p2p_session.h"
#include "client/stun_client.h"
#include "io/asio.h"
#include "io/tls_stream.h"
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
  // `file_push`: --send/--receive, where the QUIC line is the news; when sharing a
  // folder the user sees DESIGN.md's four lines and the QUIC line only in --json.
  explicit Printer(bool as_json, bool file_push = false) : json_(as_json), file_push_(file_push) {}

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
  void nat_verdict(const traversal::NatVerdict& v) override {
    if (json_) {
      event("nat", {{"verdict", traversal::to_json(v)}, {"name", traversal::verdict_name(v)}}, "");
    }
  }
  void punch_succeeded(const traversal::SelectedPath& path,
                       std::optional<std::chrono::milliseconds> fire_to_path) override {
    const auto rtt = std::chrono::duration_cast<std::chrono::milliseconds>(path.rtt).count();
    json::object fields{{"result", "succeeded"},
                        {"rtt_ms", rtt},
                        {"remote", path.remote.address.to_string()},
                        {"candidate", traversal::to_string(path.remote.type)}};
    if (fire_to_path) {
      fields["fire_to_path_ms"] = fire_to_path->count();
    }
    event("punch", std::move(fields),
          "\u2713 UDP hole-punch: succeeded (RTT " + std::to_string(rtt) + "ms)");
  }
  void punch_failed(const std::string& reason, bool known_impossible) override {
    event("punch", {{"result", known_impossible ? "impossible" : "failed"}, {"reason", reason}},
          "\u2717 UDP hole-punch: failed (" + reason + ")");
  }
  void quic_connected(char role) override {
    if (!json_ && !file_push_) {
      return;
    }
    event("quic", {{"state", "connected"}, {"peer", std::string(1, role)}},
          std::string("\u2713 QUIC: connected to peer ") + role +
              " (its certificate matches the join code)");
  }
  void sharing(const std::string& dir, char role) override {
    event("sharing", {{"dir", dir}, {"peer", std::string(1, role)}, {"writable", false}},
          "\u2713 Sharing " + dir + " with peer " + std::string(1, role) +
              " (read-only)\n  Press Ctrl-C to stop sharing.");
  }
  void mounted(const std::string& share_name, const std::string& mountpoint) override {
    event("mounted", {{"share", share_name}, {"mountpoint", mountpoint}},
          "\u2713 Mounted " + share_name + " at " + mountpoint +
              "\n  Press Ctrl-C to unmount and stop.");
  }
  void unmounted(const std::string& mountpoint, const std::string& why) override {
    event("unmounted", {{"mountpoint", mountpoint}, {"reason", why}},
          "  Unmounted " + mountpoint + " (" + why + ")");
  }
  void file_sent(const client::TransferResult& r) override {
    transfer_event("sent", r, "\u2713 Sent " + r.name);
  }
  void file_received(const client::TransferResult& r, const std::string& dir) override {
    transfer_event("received", r, "\u2713 Received " + r.name + " into " + dir);
  }
  void path_moved(const base::SocketAddress& remote) override {
    event("path_moved", {{"remote", remote.to_string()}},
          "  Peer moved to " + remote.to_string() + "; following it");
  }
  void path_lost(const std::string& reason) override {
    event("path_lost", {{"reason", reason}}, "\u2717 Direct path lost: " + reason);
  }
  void peer_left(char role) override {
    event("peer_left", {{"peer", std::string(1, role)}},
          std::string("  Peer ") + role + " left; session over.");
  }

 private:
  void transfer_event(const char* direction, const client::TransferResult& r,
                      const std::string& what) {
    const double seconds = std::chrono::duration<double>(r.elapsed).count();
    const double mb_per_s = seconds > 0 ? static_cast<double>(r.bytes) / 1e6 / seconds : 0;
    char rate[64];
    std::snprintf(rate, sizeof rate, "%.2fs, %.1f MB/s", seconds, mb_per_s);
    event("transfer",
          {{"direction", direction},
           {"name", r.name},
           {"bytes", r.bytes},
           {"sha256", r.sha256_hex()},
           {"seconds", seconds},
           {"mb_per_s", mb_per_s}},
          what + " (" + std::to_string(r.bytes) + " bytes, sha256 " + r.sha256_hex() + ") in " +
              rate);
  }

  bool json_;
  bool file_push_;
};

struct GlobalOptions {
  std::string relay;
  std::string token;
  std::string config_path;
  std::string log_level;
  std::string relay_ca;         // --relay-ca FILE (wss)
  std::string relay_pin;        // --relay-pin sha256:HEX (wss)
  std::string attempt_timeout;  // --p2p-attempt-timeout, e.g. "8s"
  std::string send_file;        // --send FILE
  std::string receive_dir;      // --receive DIR
  std::string congestion;       // --quic-cc bbr|bbr2|cubic|reno
  std::string share_dir;        // p2p DIR
  std::string mount_dir;        // p2p-join --mount DIR
  bool join = false;            // p2p-join (peer B)
  bool json = false;
};

int usage_error(const std::string& message) {
  std::cerr << "peertun: " << message << "\n";
  return kExitUsage;
}

// The config file at `path`, if it exists (an empty config otherwise). nullopt with
// `problem` set when it does not parse.
std::optional<client::ClientConfig> read_config_file(const std::string& path,
                                                     std::string& problem) {
  if (path.empty() || !std::filesystem::exists(path)) {
    return client::ClientConfig{};
  }
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  auto parsed = client::parse_client_config(content.str(), path, problem);
  if (!parsed) {
    return std::nullopt;
  }
  return std::move(*parsed);
}

// Flags win over the environment, which wins over the config file.
std::optional<client::P2pSettings> resolve_settings(const GlobalOptions& g, std::string& problem) {
  std::string path = g.config_path.empty() ? client::default_config_path() : g.config_path;
  if (!g.config_path.empty() && !std::filesystem::exists(path)) {
    problem = "config file " + g.config_path + " does not exist";
    return std::nullopt;
  }
  auto from_file = read_config_file(path, problem);
  if (!from_file) {
    return std::nullopt;
  }
  client::ClientConfig config = std::move(*from_file);
  client::ClientConfig env;
  if (const char* r = std::getenv("PEERTUN_RELAY"); r != nullptr && *r) {
    env.relay = r;
  }
  if (const char* t = std::getenv("PEERTUN_TOKEN"); t != nullptr && *t) {
    env.token = base::Secret(t);
  }
  if (const char* ca = std::getenv("PEERTUN_RELAY_CA"); ca != nullptr && *ca) {
    env.relay_ca = ca;
  }
  if (const char* pin = std::getenv("PEERTUN_RELAY_PIN"); pin != nullptr && *pin) {
    env.relay_pin = pin;
  }
  client::ClientConfig flags;
  if (!g.relay.empty()) {
    flags.relay = g.relay;
  }
  if (!g.token.empty()) {
    flags.token = base::Secret(g.token);
  }
  if (!g.relay_ca.empty()) {
    flags.relay_ca = g.relay_ca;
  }
  if (!g.relay_pin.empty()) {
    flags.relay_pin = g.relay_pin;
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
              "\": expected HOST, HOST:PORT, [IPv6]:PORT, ws://HOST:PORT or wss://HOST:PORT";
    return std::nullopt;
  }
  if ((config.relay_ca || config.relay_pin) && !target->tls) {
    problem =
        "--relay-ca and --relay-pin (relay_ca, relay_pin) apply to wss:// relays only; use "
        "--relay wss://" +
        target->display();
    return std::nullopt;
  }
  if (config.relay_ca && config.relay_pin) {
    problem =
        "--relay-ca and --relay-pin (relay_ca, relay_pin) exclude each other: a pin accepts "
        "only the relay's own key and consults no CA; give one";
    return std::nullopt;
  }
  if (config.relay_pin && !io::is_valid_pin(*config.relay_pin)) {
    problem = "the relay pin must look like sha256:<64 hex digits> (the relay prints it at start)";
    return std::nullopt;
  }
  if (config.relay_ca && !io::is_usable_ca_file(*config.relay_ca, problem)) {
    return std::nullopt;  // unreadable, empty or not PEM: `problem` names the file
  }
  target->ca_file = config.relay_ca.value_or("");
  target->pin = config.relay_pin.value_or("");
  if (!config.token) {
    problem = "no token given: use --token, PEERTUN_TOKEN or `token` in the config file";
    return std::nullopt;
  }
  client::P2pSettings settings;
  settings.relay = *target;
  settings.token = *config.token;
  if (!g.attempt_timeout.empty()) {
    auto timeout = base::parse_duration(g.attempt_timeout);
    if (!timeout || timeout->count() == 0) {
      problem = "--p2p-attempt-timeout \"" + g.attempt_timeout +
                "\" is not a duration; use e.g. 500ms, 3s or 20s";
      return std::nullopt;
    }
    settings.attempt_timeout = *timeout;
  }
  if (!g.send_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(g.send_file, ec) ||
        ::access(g.send_file.c_str(), R_OK) != 0) {
      problem = "cannot send " + g.send_file + ": not a readable file";
      return std::nullopt;
    }
    settings.send_file = g.send_file;
  }
  if (!g.congestion.empty()) {
    auto cc = quic::parse_congestion_control(g.congestion);
    if (!cc) {
      problem = "--quic-cc \"" + g.congestion + "\" is not one of bbr, bbr2, cubic, reno";
      return std::nullopt;
    }
    settings.congestion_control = *cc;
  }
  if (!g.receive_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(g.receive_dir, ec) ||
        ::access(g.receive_dir.c_str(), W_OK | X_OK) != 0) {
      problem = "cannot receive into " + g.receive_dir + ": not a writable directory";
      return std::nullopt;
    }
    settings.receive_dir = g.receive_dir;
  }
  if (!g.mount_dir.empty() && !g.receive_dir.empty()) {
    problem = "--mount and --receive exclude each other: mount the peer's folder or receive a file";
    return std::nullopt;
  }
  if (!g.join && !g.share_dir.empty() && !settings.send_file) {
    settings.share_dir = g.share_dir;
  }
  if (g.join && !settings.receive_dir) {
    settings.mount = true;
    if (!g.mount_dir.empty()) {
      settings.mount_dir = g.mount_dir;
    }
  }
  return settings;
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
  Printer printer(g.json, !g.send_file.empty() || !g.receive_dir.empty());
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
  GlobalOptions with_dir = g;
  with_dir.share_dir = dir;
  return run_p2p(with_dir, [](client::P2pSession& session) { return session.share(); });
}

int cmd_p2p_join(const GlobalOptions& g, const std::string& code_text) {
  auto code = pake::parse_join_code(code_text);
  if (!code) {
    return usage_error("that is not a join code (" + code.error().message() +
                       "); it looks like pt-p2p-2A91-7XKP-Q4L9");
  }
  GlobalOptions as_b = g;
  as_b.join = true;
  return run_p2p(as_b,
                 [&code](client::P2pSession& session) { return session.join(std::move(*code)); });
}

// The debug commands' relay address; empty (after saying why on stderr) when the name
// does not resolve.
io::Task<io::asio::ip::udp::resolver::results_type> resolve_relay(client::RelayTarget target) {
  io::asio::ip::udp::resolver resolver(co_await io::asio::this_coro::executor);
  auto [ec, results] =
      co_await resolver.async_resolve(target.host, std::to_string(target.port), io::use_nothrow);
  if (ec || results.empty()) {
    std::cerr << "peertun: cannot resolve " << target.host << ": " << ec.message() << "\n";
    co_return io::asio::ip::udp::resolver::results_type{};
  }
  co_return results;
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
    auto results = co_await resolve_relay(*target);
    if (results.empty()) {
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

// RFC 5780 behaviour discovery against the relay's STUN: mapping, filtering, hairpin,
// the verdict, and what could not be tested. A verdict (even "UDP blocked") exits 0; a
// relay that answers neither UDP nor TCP exits 1.
int cmd_debug_nat_type(const GlobalOptions& g, int timeout_ms) {
  // Flag, then environment, then config file: the relay is all this command needs.
  std::string relay_text = g.relay;
  if (relay_text.empty()) {
    if (const char* r = std::getenv("PEERTUN_RELAY"); r != nullptr && *r) {
      relay_text = r;
    }
  }
  const std::string path = g.config_path.empty() ? client::default_config_path() : g.config_path;
  if (relay_text.empty()) {
    std::string problem;
    auto from_file = read_config_file(path, problem);
    if (!from_file) {
      return usage_error(problem);
    }
    relay_text = from_file->relay.value_or("");
  }
  if (relay_text.empty()) {
    return usage_error("no relay given: use --relay HOST:PORT, PEERTUN_RELAY or `relay` in " +
                       (path.empty() ? std::string("the config file") : path));
  }
  auto target = client::parse_relay_target(relay_text);
  if (!target) {
    return usage_error("cannot read the relay address \"" + relay_text + "\"");
  }

  boost::asio::io_context io(1);
  int exit_code = kExitOk;
  Printer printer(g.json);
  const auto budget = std::chrono::milliseconds(timeout_ms);
  auto task = [&]() -> io::Task<void> {
    auto ex = co_await io::asio::this_coro::executor;
    auto results = co_await resolve_relay(*target);
    if (results.empty()) {
      exit_code = kExitRuntime;
      co_return;
    }
    const auto server = io::from_asio(results.begin()->endpoint());
    // "IPv6 reachable" runs beside the probe, within the same budget.
    using namespace boost::asio::experimental::awaitable_operators;
    const client::NatProbeTarget probe_target{server, std::nullopt};
    std::vector<base::SocketAddress> addresses;
    for (const auto& entry : results) {
      addresses.push_back(io::from_asio(entry.endpoint()));
    }
    auto [verdict, ipv6] =
        co_await (client::probe_nat(probe_target, budget) && client::check_ipv6(addresses, budget));
    if (!verdict) {
      std::cerr << "peertun: cannot probe: " << verdict.error().message() << "\n";
      exit_code = kExitRuntime;
      co_return;
    }
    const auto& v = *verdict;
    if (v.udp != traversal::UdpStatus::Works && !co_await client::tcp_reachable(server, budget)) {
      std::cerr << "peertun: relay " << server.to_string() << " is unreachable: no answer over "
                << "UDP or TCP within " << timeout_ms << "ms\n";
      exit_code = kExitRuntime;
      co_return;
    }
    const std::string name(traversal::verdict_name(v));
    json::object out = traversal::to_json(v);
    out["server"] = server.to_string();
    out["verdict"] = name;
    out["ipv6_reachable"] = client::to_string(ipv6.reachable);
    if (ipv6.server) {
      out["ipv6_server"] = ipv6.server->to_string();
    }
    if (ipv6.mapped) {
      out["ipv6_public"] = ipv6.mapped->to_string();
    }
    if (!ipv6.detail.empty()) {
      out["ipv6_detail"] = ipv6.detail;
    }
    // The one-line outlook: which peer NATs a direct path can work with.
    struct Peer {
      const char* name;
      traversal::MappingBehavior m;
      traversal::FilteringBehavior f;
    };
    using MB = traversal::MappingBehavior;
    using FB = traversal::FilteringBehavior;
    const Peer peers[] = {
        {"no NAT", MB::NoNat, FB::NoNat},
        {"full cone", MB::EndpointIndependent, FB::EndpointIndependent},
        {"restricted cone", MB::EndpointIndependent, FB::AddressDependent},
        {"port-restricted cone", MB::EndpointIndependent, FB::AddressAndPortDependent},
        {"symmetric", MB::AddressAndPortDependent, FB::AddressAndPortDependent}};
    json::array possible, impossible, unknown;
    std::string with, without, unsure;
    auto add = [](std::string& list, const char* item) {
      list += (list.empty() ? "" : ", ") + std::string(item);
    };
    for (const auto& p : peers) {
      traversal::NatVerdict other;
      other.udp = traversal::UdpStatus::Works;
      other.mapping = p.m;
      other.filtering = p.f;
      other.mapping_ip_tested = other.filtering_ip_tested = true;
      switch (traversal::direct_path_outlook(v, other, "this host", "the peer").outlook) {
        case traversal::DirectPathOutlook::Possible:
          possible.emplace_back(p.name);
          add(with, p.name);
          break;
        case traversal::DirectPathOutlook::Impossible:
          impossible.emplace_back(p.name);
          add(without, p.name);
          break;
        case traversal::DirectPathOutlook::Unknown:
          unknown.emplace_back(p.name);
          add(unsure, p.name);
          break;
      }
    }
    out["direct_possible_with"] = std::move(possible);
    out["direct_impossible_with"] = std::move(impossible);
    out["direct_unknown_with"] = std::move(unknown);

    std::string human = "NAT type: " + name;
    if (v.confidence != traversal::Confidence::Full) {
      human += " (" + std::string(traversal::to_string(v.confidence)) +
               " confidence: see \"not tested\")";
    }
    human += "\n  server:     " + server.to_string();
    human += "\n  UDP:        " + std::string(traversal::to_string(v.udp));
    if (v.public_address) {
      human += "\n  public:     " + v.public_address->to_string();
      if (v.behind_nat) {
        human += *v.behind_nat ? " (behind NAT)" : " (this host's own address)";
      }
    }
    human += "\n  mapping:    " + std::string(traversal::to_string(v.mapping));
    human += "\n  filtering:  " + std::string(traversal::to_string(v.filtering));
    human += "\n  hairpin:    " + std::string(traversal::to_string(v.hairpin));
    human += "\n  IPv6 reachable: " + std::string(client::to_string(ipv6.reachable));
    if (ipv6.reachable == client::Ipv6Reachability::NotTested) {
      human += ": " + ipv6.detail;
    } else if (ipv6.mapped) {
      human += " (public " + ipv6.mapped->to_string() + ")";
    } else if (!ipv6.detail.empty()) {
      human += " (" + ipv6.detail + ")";
    }
    if (v.udp == traversal::UdpStatus::Blocked) {
      human += "\n  hole-punching: impossible (UDP blocked); the relay will carry the tunnel";
    } else {
      human += "\n  hole-punching: direct with " + (with.empty() ? std::string("none") : with);
      if (!without.empty()) {
        human += "; not with " + without;
      }
      if (!unsure.empty()) {
        human += "; unsure with " + unsure;
      }
    }
    for (const auto& limit : v.limits) {
      human += "\n  not tested: " + limit;
    }
    printer.event("nat_type", std::move(out), human);
  };
  io::asio::co_spawn(io, task(), [&](std::exception_ptr e) {
    if (e) {
      io::log_task_exception(e, "debug.nat_type");
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
  app.add_option("--relay", g.relay,
                 "relay address HOST[:PORT], ws://HOST[:PORT] or wss://HOST[:PORT] (env "
                 "PEERTUN_RELAY)");
  app.add_option("--relay-ca", g.relay_ca,
                 "wss: also trust this CA certificate file, PEM (env PEERTUN_RELAY_CA)")
      ->type_name("FILE");
  app.add_option("--relay-pin", g.relay_pin,
                 "wss: accept only the relay key with this pin, sha256:HEX (env PEERTUN_RELAY_PIN)")
      ->type_name("PIN");
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
  join->add_option("--mount", g.mount_dir,
                   "mount peer A's folder here (default /tmp/p2p-CODE; created if missing)")
      ->type_name("DIR");
  for (auto* sub : {p2p, join}) {
    sub->add_option("--p2p-attempt-timeout", g.attempt_timeout,
                    "give up on a direct path this long after both peers fire (default 8s)");
    sub->add_option("--send", g.send_file,
                    "push FILE to the peer over QUIC once the direct path is up");
    sub->add_option("--receive", g.receive_dir,
                    "store the file the peer pushes in DIR, then end the session");
    sub->add_option("--quic-cc", g.congestion,
                    "congestion control when sending: bbr (default), bbr2, cubic, reno");
  }

  auto* debug = app.add_subcommand("debug", "diagnostics");
  debug->require_subcommand(1);
  int stun_timeout_ms = 3000;
  auto* debug_stun =
      debug->add_subcommand("stun", "the public address the relay's STUN sees, from both ports");
  debug_stun->add_option("--timeout-ms", stun_timeout_ms, "per-request budget")
      ->check(CLI::Range(100, 60000));
  int nat_timeout_ms = 1500;
  auto* debug_nat_type = debug->add_subcommand(
      "nat-type", "RFC 5780 NAT behaviour (mapping, filtering) and hole-punching prospects");
  debug_nat_type->add_option("--timeout-ms", nat_timeout_ms, "budget for the whole probe")
      ->check(CLI::Range(200, 60000));

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
  // A sharing peer A holds a descriptor for every file B keeps open (the exporter's
  // max_handles) besides its own work.
  io::raise_open_file_limit();

  if (p2p->parsed()) {
    return cmd_p2p(g, dir);
  }
  if (join->parsed()) {
    return cmd_p2p_join(g, code);
  }
  if (debug_stun->parsed()) {
    return cmd_debug_stun(g, stun_timeout_ms);
  }
  if (debug_nat_type->parsed()) {
    return cmd_debug_nat_type(g, nat_timeout_ms);
  }
  return kExitUsage;
}
