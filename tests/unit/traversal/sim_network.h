#pragma once
// An in-memory UDP internet for the traversal cores: hosts on LANs behind NATs with
// RFC 4787 mapping and filtering behaviours, per-packet delay and seeded loss, and a
// fake clock. Deterministic: the same seed gives the same run.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "base/socket_address.h"
#include "traversal/punch_agent.h"
#include "wire/bytes.h"

namespace peertun::traversal::sim {

enum class Mapping : std::uint8_t {
  EndpointIndependent,
  AddressDependent,
  AddressAndPortDependent
};
enum class Filtering : std::uint8_t {
  EndpointIndependent,
  AddressDependent,
  AddressAndPortDependent
};

struct NatSpec {
  Mapping mapping = Mapping::EndpointIndependent;
  Filtering filtering = Filtering::AddressAndPortDependent;
  bool udp_blocked = false;
  bool hairpin = false;
};

// The cone types of RFC 3489, which the lab also names.
inline NatSpec full_cone() {
  return {Mapping::EndpointIndependent, Filtering::EndpointIndependent};
}
inline NatSpec restricted_cone() {
  return {Mapping::EndpointIndependent, Filtering::AddressDependent};
}
inline NatSpec port_restricted_cone() {
  return {Mapping::EndpointIndependent, Filtering::AddressAndPortDependent};
}
inline NatSpec symmetric() {
  return {Mapping::AddressAndPortDependent, Filtering::AddressAndPortDependent};
}

inline base::SocketAddress addr(const char* text) { return *base::SocketAddress::parse(text); }

class Network {
 public:
  using Deliver = std::function<void(const base::SocketAddress& from, wire::ByteView data)>;

  explicit Network(std::uint32_t seed) : rng_(seed) {}

  // A NAT with public address `public_ip`; returns its id.
  int add_nat(NatSpec spec, const char* public_ip) {
    nats_.push_back(Nat{spec, *base::IpAddress::parse(public_ip), {}, {}, 20000});
    return static_cast<int>(nats_.size()) - 1;
  }
  // A host at `address`, behind `nat` (-1 = on the internet). Packets to it call deliver.
  void add_host(base::SocketAddress address, int nat, Deliver deliver) {
    hosts_.push_back(Host{address, nat, std::move(deliver)});
  }

  void set_one_way_delay(std::chrono::milliseconds d) { delay_ = d; }
  void set_loss_percent(int percent) { loss_percent_ = percent; }
  void set_cut(bool cut) { cut_ = cut; }
  // Every NAT forgets its mappings (a reboot, a conntrack flush): the next packet out
  // gets a new external port.
  void rebind_all() {
    for (auto& nat : nats_) {
      nat.mappings.clear();
      nat.by_port.clear();
      nat.next_port = static_cast<std::uint16_t>(nat.next_port + 1000);
    }
  }
  // Datagrams handed to a host so far.
  std::uint64_t delivered() const { return delivered_; }

  // The NAT's mapping for `from` towards `to`, creating it as a send would: what a STUN
  // server at `to` reports as the server-reflexive address.
  base::SocketAddress reflexive(const base::SocketAddress& from, const base::SocketAddress& to) {
    const auto* host = find_host(from);
    if (host == nullptr || host->nat < 0) {
      return from;
    }
    return outbound(nats_[static_cast<std::size_t>(host->nat)], from, to);
  }

  void send(const base::SocketAddress& from, const base::SocketAddress& to, wire::Bytes data,
            TimePoint now) {
    if (cut_) {
      return;
    }
    if (loss_percent_ > 0 && std::uniform_int_distribution<int>(0, 99)(rng_) < loss_percent_) {
      return;
    }
    const auto* sender = find_host(from);
    if (sender == nullptr) {
      return;
    }
    base::SocketAddress source = from;
    base::SocketAddress destination = to;
    const auto* lan_peer = find_host(to);
    const bool same_lan = lan_peer != nullptr && lan_peer->nat == sender->nat;
    if (sender->nat >= 0 && !same_lan) {
      auto& nat = nats_[static_cast<std::size_t>(sender->nat)];
      if (nat.spec.udp_blocked) {
        return;
      }
      if (to.ip() == nat.public_ip) {
        if (!nat.spec.hairpin) {
          return;
        }
      }
      source = outbound(nat, from, to);
    }
    queue_.emplace(now + delay_, Packet{source, destination, std::move(data), seq_++});
  }

  // Delivers every packet due by `now`.
  void run_until(TimePoint now) {
    while (!queue_.empty() && queue_.begin()->first <= now) {
      auto node = queue_.extract(queue_.begin());
      deliver(node.mapped());
    }
  }

  [[nodiscard]] std::optional<TimePoint> next_delivery() const {
    if (queue_.empty()) {
      return std::nullopt;
    }
    return queue_.begin()->first;
  }

 private:
  struct MappingEntry {
    base::SocketAddress internal;
    std::uint16_t external_port = 0;
    std::set<base::SocketAddress> contacted;
  };
  struct Nat {
    NatSpec spec;
    base::IpAddress public_ip;
    std::vector<MappingEntry> mappings;
    std::map<std::uint16_t, std::size_t> by_port;
    std::uint16_t next_port;
  };
  struct Host {
    base::SocketAddress address;
    int nat;
    Deliver deliver;
  };
  struct Packet {
    base::SocketAddress from;
    base::SocketAddress to;
    wire::Bytes data;
    std::uint64_t seq;
  };

  const Host* find_host(const base::SocketAddress& a) const {
    for (const auto& h : hosts_) {
      if (h.address == a) {
        return &h;
      }
    }
    return nullptr;
  }

  static bool same_key(Mapping m, const MappingEntry& e, const base::SocketAddress& internal,
                       const base::SocketAddress& to) {
    if (e.internal != internal) {
      return false;
    }
    switch (m) {
      case Mapping::EndpointIndependent:
        return true;
      case Mapping::AddressDependent:
        return std::any_of(e.contacted.begin(), e.contacted.end(),
                           [&](const auto& c) { return c.ip() == to.ip(); });
      case Mapping::AddressAndPortDependent:
        return e.contacted.count(to) > 0;
    }
    return false;
  }

  base::SocketAddress outbound(Nat& nat, const base::SocketAddress& internal,
                               const base::SocketAddress& to) {
    for (auto& e : nat.mappings) {
      if (same_key(nat.spec.mapping, e, internal, to)) {
        e.contacted.insert(to);
        return {nat.public_ip, e.external_port};
      }
    }
    // Symmetric NATs pick unpredictable ports; cone NATs here allocate sequentially.
    std::uint16_t port = nat.next_port;
    if (nat.spec.mapping != Mapping::EndpointIndependent) {
      port = static_cast<std::uint16_t>(30000 + std::uniform_int_distribution<int>(0, 20000)(rng_));
    } else {
      ++nat.next_port;
    }
    while (nat.by_port.count(port) > 0) {
      ++port;
    }
    nat.mappings.push_back(MappingEntry{internal, port, {to}});
    nat.by_port[port] = nat.mappings.size() - 1;
    return {nat.public_ip, port};
  }

  void deliver(const Packet& p) {
    // To a NAT's public address: inbound filtering and translation.
    for (auto& nat : nats_) {
      if (p.to.ip() != nat.public_ip) {
        continue;
      }
      auto it = nat.by_port.find(p.to.port());
      if (it == nat.by_port.end()) {
        return;
      }
      const auto& e = nat.mappings[it->second];
      bool allowed = false;
      switch (nat.spec.filtering) {
        case Filtering::EndpointIndependent:
          allowed = true;
          break;
        case Filtering::AddressDependent:
          allowed = std::any_of(e.contacted.begin(), e.contacted.end(),
                                [&](const auto& c) { return c.ip() == p.from.ip(); });
          break;
        case Filtering::AddressAndPortDependent:
          allowed = e.contacted.count(p.from) > 0;
          break;
      }
      if (!allowed || nat.spec.udp_blocked) {
        return;
      }
      deliver_to(e.internal, p.from, p.data);
      return;
    }
    deliver_to(p.to, p.from, p.data);
  }

  void deliver_to(const base::SocketAddress& to, const base::SocketAddress& from,
                  const wire::Bytes& data) {
    if (const auto* h = find_host(to)) {
      ++delivered_;
      h->deliver(from, data);
    }
  }

  std::mt19937 rng_;
  std::vector<Nat> nats_;
  std::vector<Host> hosts_;
  std::multimap<TimePoint, Packet> queue_;
  std::uint64_t seq_ = 0;
  std::chrono::milliseconds delay_{10};
  int loss_percent_ = 0;
  bool cut_ = false;
  std::uint64_t delivered_ = 0;
};

}  // namespace peertun::traversal::sim
