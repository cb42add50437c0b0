#include "relay/stun_service.h"

#include "base/log.h"
#include "stun/binding_server.h"

namespace peertun::relay {
namespace {

constexpr char kSoftware[] = "peertun-relay";
spdlog::logger& log() { return base::logger("relay.stun"); }

}  // namespace

struct StunService::Endpoint {
  io::UdpSocket socket;
  bool on_alternate_ip;
  bool on_alternate_port;
  base::AddressFamily family;
};

StunService::StunService(StunServiceConfig config, RelayStats& stats)
    : config_(std::move(config)), stats_(stats), alive_(std::make_shared<bool>(true)) {}

StunService::~StunService() { stop(); }

base::Result<std::unique_ptr<StunService>> StunService::start(io::Executor executor,
                                                              const StunServiceConfig& config,
                                                              RelayStats& stats) {
  std::unique_ptr<StunService> service(new StunService(config, stats));
  struct Want {
    base::IpAddress ip;
    std::uint16_t port;
    bool alt_ip;
    bool alt_port;
    bool required;
  };
  std::vector<Want> wants{{config.primary_ip, config.port, false, false, true},
                          {config.primary_ip, config.alt_port, false, true, true}};
  if (config.alternate_ip) {
    wants.push_back({*config.alternate_ip, config.port, true, false, true});
    wants.push_back({*config.alternate_ip, config.alt_port, true, true, true});
  }
  if (config.add_v6_wildcard) {
    const auto any6 = base::IpAddress::v6({});
    wants.push_back({any6, config.port, false, false, false});
    wants.push_back({any6, config.alt_port, false, true, false});
  }
  for (const auto& want : wants) {
    auto socket = io::UdpSocket::open(executor, {want.ip, want.port});
    if (!socket) {
      if (want.required) {
        return socket.error();
      }
      log().info("stun.v6_unavailable port={} error={}", want.port, socket.error().message());
      continue;
    }
    service->endpoints_.push_back(std::make_unique<Endpoint>(
        Endpoint{std::move(*socket), want.alt_ip, want.alt_port, want.ip.family()}));
  }
  for (std::size_t i = 0; i < service->endpoints_.size(); ++i) {
    io::asio::co_spawn(executor, service->serve(i),
                       [](std::exception_ptr e) { io::log_task_exception(e, "stun.serve"); });
  }
  return service;
}

void StunService::stop() {
  *alive_ = false;
  for (auto& e : endpoints_) {
    e->socket.close();
  }
}

io::Task<void> StunService::serve(std::size_t index) {
  // The service outlives its loops only while alive_; after stop() the sockets are
  // closed and every loop ends on the receive error without touching `this` again.
  auto alive = alive_;
  io::RecvBatch batch(64, 2048);
  stun::BindingServerConfig binding{config_.primary_ip, config_.alternate_ip, config_.port,
                                    config_.alt_port, kSoftware};
  for (;;) {
    auto n = co_await endpoints_[index]->socket.receive(batch);
    if (!*alive) {
      co_return;
    }
    if (!n) {
      if (n.error() == io::asio::error::operation_aborted ||
          n.error() == io::asio::error::bad_descriptor) {
        co_return;
      }
      log().warn("stun.receive_failed error={}", n.error().message());
      continue;
    }
    Endpoint& here = *endpoints_[index];
    for (std::size_t i = 0; i < *n; ++i) {
      const auto& d = batch[i];
      ++stats_.stun_received;
      stun::Arrival arrival{d.source, d.local_ip, here.on_alternate_ip, here.on_alternate_port};
      auto outcome = stun::handle_binding(d.data, arrival, binding);
      switch (outcome.disposition) {
        case stun::Disposition::Malformed:
          ++stats_.stun_malformed;
          continue;
        case stun::Disposition::NotForBinding:
          ++stats_.stun_not_binding;
          continue;
        case stun::Disposition::Ignored:
          ++stats_.stun_ignored;
          continue;
        case stun::Disposition::Reply:
          break;
      }
      if (!outcome.reply) {
        continue;
      }
      const auto& reply = *outcome.reply;
      Endpoint* from = nullptr;
      for (auto& e : endpoints_) {
        if (e->family == here.family && e->on_alternate_ip == reply.from_alternate_ip &&
            e->on_alternate_port == reply.from_alternate_port) {
          from = e.get();
          break;
        }
      }
      if (from == nullptr) {
        ++stats_.stun_send_failed;
        continue;
      }
      // On a wildcard socket, pin the source to the address the request reached, so
      // the reply comes from where RESPONSE-ORIGIN says it does.
      const base::IpAddress* source =
          reply.from_alternate_ip || d.local_ip.is_unspecified() ? nullptr : &d.local_ip;
      auto ec = from->socket.try_send(reply.packet, reply.destination, source);
      if (ec) {
        ++stats_.stun_send_failed;
        log().debug("stun.send_failed dest={} error={}", reply.destination.to_string(),
                    ec.message());
      } else {
        ++stats_.stun_replied;
      }
    }
  }
}

}  // namespace peertun::relay
