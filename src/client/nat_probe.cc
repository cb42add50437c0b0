#include "client/nat_probe.h"

#include <boost/asio/experimental/awaitable_operators.hpp>

#include "base/log.h"
#include "client/stun_client.h"
#include "io/interfaces.h"

namespace peertun::client {
namespace {

using traversal::BehaviorProbe;
using traversal::ProbeSocket;
using Clock = BehaviorProbe::Clock;

spdlog::logger& log() { return base::logger("client.nat"); }

// What one run needs, shared by value with the coroutine that drives it.
struct Run {
  explicit Run(traversal::ProbeConfig config) : probe(std::move(config)) {}
  BehaviorProbe probe;
  std::shared_ptr<io::UdpSocket> mapping;
  std::shared_ptr<io::UdpSocket> filtering;  // null in quick mode
  UnclaimedDatagram unclaimed;
};

// The socket's own addresses: every interface address of its family with its port.
// A wildcard-bound socket may send from any of them, so "no NAT" means "mapped to one".
std::vector<base::SocketAddress> own_addresses(const io::UdpSocket& socket,
                                               const base::SocketAddress& server) {
  const auto local = socket.local_address();
  std::vector<base::SocketAddress> out;
  if (!local.ip().is_unspecified()) {
    out.push_back(local);
  }
  for (const auto& ip : io::interface_addresses(server.ip().is_loopback())) {
    if (ip.family() == server.family() && ip != local.ip()) {
      out.emplace_back(ip, local.port());
    }
  }
  return out;
}

traversal::ProbeConfig probe_config(traversal::ProbeMode mode, const NatProbeTarget& target,
                                    const io::UdpSocket& mapping_socket,
                                    std::chrono::milliseconds budget) {
  traversal::ProbeConfig config;
  config.mode = mode;
  config.primary = target.primary;
  config.other = target.other;
  config.local = own_addresses(mapping_socket, target.primary);
  config.budget = budget;
  // A short budget (--timeout-ms) shortens the dependent tests too, keeping room for
  // test I's round trip.
  config.test_bound = std::min(traversal::kDependentTestBound, budget / 2);
  return config;
}

void deliver(Run& run, ProbeSocket which, const io::RecvBatch& batch) {
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto& d = batch[i];
    if (run.probe.on_datagram(which, d.source, d.data, Clock::now())) {
      continue;
    }
    // Not ours: the data socket's owner gets it (a peer's check, an early QUIC packet).
    if (run.unclaimed) {
      run.unclaimed(d);
    }
  }
}

// Drives the plan to its verdict: send what is due, wait for a datagram or the next
// deadline, repeat. Bounded by the plan's budget (next_deadline() never passes it).
io::Task<void> drive(std::shared_ptr<Run> run) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto executor = co_await io::asio::this_coro::executor;
  io::asio::steady_timer timer(executor);
  io::RecvBatch mapping_batch(16, 2048);
  io::RecvBatch filtering_batch(16, 2048);
  run->probe.start(Clock::now());
  while (!run->probe.done()) {
    for (const auto& send : run->probe.poll_send(Clock::now())) {
      auto& socket = send.socket == ProbeSocket::Mapping ? *run->mapping : *run->filtering;
      // A failed send is a lost request: the test's bound decides, as for loss.
      if (auto ec = socket.try_send(send.packet, send.destination); ec) {
        log().debug("nat.send_failed test={} dest={} error={}", traversal::to_string(send.test),
                    send.destination.to_string(), ec.message());
      }
    }
    const auto deadline = run->probe.next_deadline();
    if (!deadline) {
      break;
    }
    timer.expires_at(*deadline);
    base::ErrorCode receive_error;
    if (run->filtering) {
      auto got =
          co_await (run->mapping->receive(mapping_batch) ||
                    run->filtering->receive(filtering_batch) || timer.async_wait(io::use_nothrow));
      if (got.index() == 0) {
        auto& n = std::get<0>(got);
        if (n) {
          deliver(*run, ProbeSocket::Mapping, mapping_batch);
        } else {
          receive_error = n.error();
        }
      } else if (got.index() == 1) {
        auto& n = std::get<1>(got);
        if (n) {
          deliver(*run, ProbeSocket::Filtering, filtering_batch);
        } else {
          receive_error = n.error();
        }
      }
    } else {
      auto got =
          co_await (run->mapping->receive(mapping_batch) || timer.async_wait(io::use_nothrow));
      if (got.index() == 0) {
        auto& n = std::get<0>(got);
        if (n) {
          deliver(*run, ProbeSocket::Mapping, mapping_batch);
        } else {
          receive_error = n.error();
        }
      }
    }
    if (receive_error) {
      // The socket was closed or cancelled by its owner (or failed): stop with what we
      // know; the verdict marks unfinished tests inconclusive.
      log().debug("nat.receive_failed error={}", receive_error.message());
      break;
    }
    run->probe.on_timer(Clock::now());
  }
}

}  // namespace

io::Task<base::Result<traversal::NatVerdict>> probe_nat(NatProbeTarget target,
                                                        std::chrono::milliseconds budget) {
  auto executor = co_await io::asio::this_coro::executor;
  const base::IpAddress any =
      target.primary.ip().is_v4() ? base::IpAddress::v4({0, 0, 0, 0}) : base::IpAddress::v6({});
  auto mapping = io::UdpSocket::open(executor, {any, 0});
  if (!mapping) {
    co_return mapping.error();
  }
  auto filtering = io::UdpSocket::open(executor, {any, 0});
  if (!filtering) {
    co_return filtering.error();
  }
  auto run =
      std::make_shared<Run>(probe_config(traversal::ProbeMode::Full, target, *mapping, budget));
  run->mapping = std::make_shared<io::UdpSocket>(std::move(*mapping));
  run->filtering = std::make_shared<io::UdpSocket>(std::move(*filtering));
  co_await drive(run);
  auto verdict = run->probe.verdict();
  log().info("nat.verdict name=\"{}\" mapping={} filtering={} confidence={}",
             traversal::verdict_name(verdict), traversal::to_string(verdict.mapping),
             traversal::to_string(verdict.filtering), traversal::to_string(verdict.confidence));
  run->mapping->close();
  run->filtering->close();
  co_return verdict;
}

io::Task<traversal::NatVerdict> probe_mapping(std::shared_ptr<io::UdpSocket> socket,
                                              NatProbeTarget target,
                                              std::chrono::milliseconds budget,
                                              UnclaimedDatagram unclaimed) {
  auto run = std::make_shared<Run>(
      probe_config(traversal::ProbeMode::QuickMapping, target, *socket, budget));
  run->mapping = std::move(socket);
  run->unclaimed = std::move(unclaimed);
  co_await drive(run);
  co_return run->probe.verdict();
}

io::Task<traversal::NatVerdict> probe_session_nat(std::shared_ptr<io::UdpSocket> socket,
                                                  NatProbeTarget target,
                                                  std::chrono::milliseconds budget) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto [quick, full] =
      co_await (probe_mapping(std::move(socket), target, budget) && probe_nat(target, budget));
  if (!full) {
    log().debug("nat.filtering_probe_failed error={}", full.error().message());
    co_return quick;
  }
  co_return traversal::with_filtering(std::move(quick), *full);
}

io::Task<bool> tcp_reachable(base::SocketAddress address, std::chrono::milliseconds timeout) {
  using namespace boost::asio::experimental::awaitable_operators;
  auto executor = co_await io::asio::this_coro::executor;
  io::asio::ip::tcp::socket socket(executor);
  io::asio::steady_timer timer(executor);
  timer.expires_after(timeout);
  auto got = co_await (socket.async_connect(io::to_tcp(address), io::use_nothrow) ||
                       timer.async_wait(io::use_nothrow));
  if (got.index() != 0) {
    co_return false;
  }
  const auto [ec] = std::get<0>(got);
  base::ErrorCode ignored;
  socket.close(ignored);
  co_return !ec;
}

std::string_view to_string(Ipv6Reachability r) {
  switch (r) {
    case Ipv6Reachability::Yes:
      return "yes";
    case Ipv6Reachability::No:
      return "no";
    case Ipv6Reachability::NotTested:
      break;
  }
  return "not tested";
}

io::Task<Ipv6Check> check_ipv6(std::vector<base::SocketAddress> server_addresses,
                               std::chrono::milliseconds timeout) {
  auto executor = co_await io::asio::this_coro::executor;
  Ipv6Check out;
  std::optional<base::SocketAddress> server;
  for (const auto& address : server_addresses) {
    if (!address.ip().is_v4() && !io::to_asio(address.ip()).to_v6().is_v4_mapped()) {
      server = address;
      break;
    }
  }
  if (!server) {
    out.detail = kNoIpv6Address;
    co_return out;
  }
  out.server = server;
  auto socket = io::UdpSocket::open(executor, {base::IpAddress::v6({}), 0});
  if (!socket) {
    out.reachable = Ipv6Reachability::No;
    out.detail = "cannot open an IPv6 socket on this host: " + socket.error().message();
    co_return out;
  }
  stun::BindingRequestOptions options;
  auto answer = co_await stun_binding(*socket, *server, options, timeout);
  socket->close();
  if (answer) {
    out.reachable = Ipv6Reachability::Yes;
    out.mapped = answer->mapped_address;
  } else if (answer.error() == StunErrc::ErrorResponse) {
    // A refusal still crossed IPv6 both ways.
    out.reachable = Ipv6Reachability::Yes;
  } else if (answer.error() == StunErrc::Timeout) {
    out.reachable = Ipv6Reachability::No;
    out.detail = "no STUN answer from " + server->to_string() + " within " +
                 std::to_string(timeout.count()) + "ms";
  } else {
    out.reachable = Ipv6Reachability::No;
    out.detail = "sending to " + server->to_string() + " failed: " + answer.error().message();
  }
  log().debug("nat.ipv6 reachable={} server={} detail=\"{}\"", to_string(out.reachable),
              server->to_string(), out.detail);
  co_return out;
}

}  // namespace peertun::client
