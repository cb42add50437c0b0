#include "traversal/nat_behavior.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <boost/json.hpp>
#include <map>
#include <queue>
#include <random>
#include <set>

#include "stun/binding_server.h"

namespace peertun::traversal {
namespace {

using base::IpAddress;
using base::SocketAddress;
using std::chrono::milliseconds;
using Clock = BehaviorProbe::Clock;
using M = MappingBehavior;
using F = FilteringBehavior;

SocketAddress addr(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                   std::uint16_t port) {
  return {IpAddress::v4({a, b, c, d}), port};
}

// --- A simulated NAT between the probe's two sockets and a real Binding responder -------

enum class NatKind { None, Nat, Blocked };

struct NatModel {
  NatKind kind = NatKind::Nat;
  M mapping = M::EndpointIndependent;
  F filtering = F::EndpointIndependent;  // for kind None: NoNat = open, else a firewall
  bool hairpin = false;
};

// RFC 4787 NAT semantics over plain values: mappings keyed per mapping behaviour,
// filters keyed per filtering behaviour, ports allocated sequentially.
class SimNat {
 public:
  explicit SimNat(NatModel m) : m_(m) {}

  // Outbound: returns the external source address, or nullopt if dropped.
  std::optional<SocketAddress> out(const SocketAddress& inside, const SocketAddress& dst) {
    if (m_.kind == NatKind::Blocked) {
      return std::nullopt;
    }
    SocketAddress ext = inside;
    if (m_.kind == NatKind::Nat) {
      SocketAddress key_dst = dst;
      if (m_.mapping == M::EndpointIndependent) {
        key_dst = {};
      } else if (m_.mapping == M::AddressDependent) {
        key_dst = {dst.ip(), 0};
      }
      auto key = std::make_pair(inside, key_dst);
      auto it = mappings_.find(key);
      if (it == mappings_.end()) {
        it = mappings_.emplace(key, SocketAddress(kPublic, next_port_++)).first;
        inside_of_[it->second] = inside;
      }
      ext = it->second;
    }
    permits_.insert({ext, dst});
    return ext;
  }

  // Inbound to `ext` from `from`: the inside address, or nullopt if filtered.
  std::optional<SocketAddress> in(const SocketAddress& ext, const SocketAddress& from) {
    if (m_.kind == NatKind::Blocked) {
      return std::nullopt;
    }
    SocketAddress inside = ext;
    if (m_.kind == NatKind::Nat) {
      auto it = inside_of_.find(ext);
      if (it == inside_of_.end()) {
        return std::nullopt;
      }
      inside = it->second;
    }
    const F f = m_.filtering;
    bool ok = f == F::NoNat || f == F::EndpointIndependent;
    for (const auto& [e, d] : permits_) {
      if (e != ext) {
        continue;
      }
      if (f == F::AddressDependent && d.ip() == from.ip()) {
        ok = true;
      }
      if (f == F::AddressAndPortDependent && d == from) {
        ok = true;
      }
    }
    if (m_.kind == NatKind::None && f == F::Unknown) {
      ok = true;
    }
    return ok ? std::optional(inside) : std::nullopt;
  }

  [[nodiscard]] bool hairpin() const { return m_.hairpin; }
  static inline const IpAddress kPublic = IpAddress::v4({198, 51, 100, 7});

 private:
  NatModel m_;
  std::map<std::pair<SocketAddress, SocketAddress>, SocketAddress> mappings_;
  std::map<SocketAddress, SocketAddress> inside_of_;
  std::set<std::pair<SocketAddress, SocketAddress>> permits_;
  std::uint16_t next_port_ = 40000;
};

const SocketAddress kMapSock = addr(192, 168, 1, 2, 5000);
const SocketAddress kFilterSock = addr(192, 168, 1, 2, 5001);
const IpAddress kServerIp = IpAddress::v4({203, 0, 113, 1});
const IpAddress kServerAltIp = IpAddress::v4({203, 0, 113, 2});
constexpr std::uint16_t kPort = 3478;
constexpr std::uint16_t kAltPort = 3479;

struct World {
  NatModel nat;
  bool server_alt_ip = true;
  bool server_5780 = true;
  double loss = 0.0;  // per datagram, seeded
  std::uint32_t seed = 1;
  milliseconds one_way{10};
};

struct Delivery {
  Clock::time_point at;
  ProbeSocket socket;
  SocketAddress source;
  stun::Bytes data;
  bool operator>(const Delivery& o) const { return at > o.at; }
};

// Runs a whole probe through the world; returns the verdict and the elapsed time.
std::pair<NatVerdict, Clock::duration> run_probe(const World& w, ProbeMode mode = ProbeMode::Full,
                                                 bool announce_other = false) {
  SimNat nat(w.nat);
  std::mt19937 rng(w.seed);
  std::bernoulli_distribution lose(w.loss);
  stun::BindingServerConfig server{kServerIp,
                                   w.server_alt_ip ? std::optional(kServerAltIp) : std::nullopt,
                                   kPort, w.server_5780 ? kAltPort : std::uint16_t{0}, "sim"};
  ProbeConfig config;
  config.mode = mode;
  config.primary = {kServerIp, kPort};
  config.local = {kMapSock};
  if (announce_other) {
    config.other = SocketAddress(w.server_alt_ip ? kServerAltIp : kServerIp, kAltPort);
  }
  BehaviorProbe probe(config);
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  auto now = t0;
  std::priority_queue<Delivery, std::vector<Delivery>, std::greater<>> inflight;
  probe.start(now);
  for (int step = 0; step < 10000 && !probe.done(); ++step) {
    for (auto& send : probe.poll_send(now)) {
      const auto inside = send.socket == ProbeSocket::Mapping ? kMapSock : kFilterSock;
      if (lose(rng)) {
        continue;
      }
      auto ext = nat.out(inside, send.destination);
      if (!ext) {
        continue;
      }
      if (send.destination.ip() == SimNat::kPublic || send.destination == kMapSock) {
        // Hairpin (or, without NAT, a packet to ourselves).
        std::optional<SocketAddress> to;
        if (w.nat.kind == NatKind::None) {
          to = send.destination == kMapSock ? std::optional(kMapSock) : std::nullopt;
        } else if (nat.hairpin()) {
          to = nat.in(send.destination, *ext);
        }
        if (to) {
          inflight.push({now + w.one_way,
                         *to == kMapSock ? ProbeSocket::Mapping : ProbeSocket::Filtering, *ext,
                         send.packet});
        }
        continue;
      }
      const bool on_alt_ip = send.destination.ip() == kServerAltIp;
      const bool on_alt_port = send.destination.port() == kAltPort;
      if ((on_alt_ip && !w.server_alt_ip) || (on_alt_port && !w.server_5780)) {
        continue;  // nothing listens there
      }
      stun::Arrival arrival{*ext, send.destination.ip(), on_alt_ip, on_alt_port};
      auto outcome = stun::handle_binding(send.packet, arrival, server);
      if (!outcome.reply || lose(rng)) {
        continue;
      }
      const SocketAddress from(outcome.reply->from_alternate_ip ? kServerAltIp : kServerIp,
                               outcome.reply->from_alternate_port ? kAltPort : kPort);
      auto to = nat.in(outcome.reply->destination, from);
      if (!to) {
        continue;
      }
      inflight.push({now + 2 * w.one_way,
                     *to == kMapSock ? ProbeSocket::Mapping : ProbeSocket::Filtering, from,
                     outcome.reply->packet});
    }
    auto next = probe.next_deadline();
    if (!inflight.empty() && (!next || inflight.top().at <= *next)) {
      auto d = inflight.top();
      inflight.pop();
      now = std::max(now, d.at);
      EXPECT_TRUE(probe.on_datagram(d.socket, d.source, d.data, now));
    } else if (next) {
      now = std::max(now, *next);
      probe.on_timer(now);
    }
  }
  EXPECT_TRUE(probe.done());
  return {probe.verdict(), now - t0};
}

// --- The probe against every NAT type -------------------------------------------------

struct Case {
  const char* label;
  NatModel nat;
  bool alt_ip;
  std::string_view name;
  M mapping;
  F filtering;
  Confidence confidence;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.label; }

class ProbeTable : public ::testing::TestWithParam<Case> {};

TEST_P(ProbeTable, GivesTheRfc5780Verdict) {
  const auto& c = GetParam();
  World w{c.nat, c.alt_ip};
  auto [v, elapsed] = run_probe(w);
  EXPECT_EQ(verdict_name(v), c.name) << c.label;
  EXPECT_EQ(v.mapping, c.mapping) << c.label;
  EXPECT_EQ(v.filtering, c.filtering) << c.label;
  EXPECT_EQ(v.confidence, c.confidence) << c.label;
  EXPECT_EQ(v.confidence == Confidence::Full, v.limits.empty()) << c.label;
  // The budget bounds the whole run (simulated time, not a speed assertion).
  EXPECT_LE(elapsed, kDefaultProbeBudget) << c.label;
  // Announcing OTHER-ADDRESS up front (from the relay's Welcome) changes nothing.
  auto [v2, elapsed2] = run_probe(w, ProbeMode::Full, true);
  EXPECT_EQ(v2.mapping, c.mapping) << c.label;
  EXPECT_EQ(v2.filtering, c.filtering) << c.label;
}

const NatModel kOpen{NatKind::None, M::NoNat, F::NoNat, false};
const NatModel kFirewall{NatKind::None, M::NoNat, F::AddressAndPortDependent, false};
const NatModel kFullCone{NatKind::Nat, M::EndpointIndependent, F::EndpointIndependent, true};
const NatModel kRestricted{NatKind::Nat, M::EndpointIndependent, F::AddressDependent, false};
const NatModel kPortRestricted{NatKind::Nat, M::EndpointIndependent, F::AddressAndPortDependent,
                               false};
const NatModel kSymmetricAd{NatKind::Nat, M::AddressDependent, F::AddressAndPortDependent, false};
const NatModel kSymmetric{NatKind::Nat, M::AddressAndPortDependent, F::AddressAndPortDependent,
                          false};
const NatModel kBlocked{NatKind::Blocked, M::Unknown, F::Unknown, false};

INSTANTIATE_TEST_SUITE_P(
    Rfc5780, ProbeTable,
    ::testing::Values(
        Case{"open", kOpen, true, "no NAT", M::NoNat, F::NoNat, Confidence::Full},
        Case{"firewall", kFirewall, true, "no NAT", M::NoNat, F::AddressAndPortDependent,
             Confidence::Full},
        Case{"full cone", kFullCone, true, "full cone", M::EndpointIndependent,
             F::EndpointIndependent, Confidence::Full},
        Case{"restricted", kRestricted, true, "restricted cone", M::EndpointIndependent,
             F::AddressDependent, Confidence::Full},
        Case{"port-restricted", kPortRestricted, true, "port-restricted cone",
             M::EndpointIndependent, F::AddressAndPortDependent, Confidence::Full},
        Case{"address-dependent mapping", kSymmetricAd, true, "symmetric", M::AddressDependent,
             F::AddressAndPortDependent, Confidence::Full},
        Case{"symmetric", kSymmetric, true, "symmetric", M::AddressAndPortDependent,
             F::AddressAndPortDependent, Confidence::Full},
        Case{"blocked", kBlocked, true, "UDP blocked", M::Unknown, F::Unknown, Confidence::Full},
        // Without an alternate IP: port-level tests only, stated as such.
        Case{"open, one IP", kOpen, false, "no NAT", M::NoNat, F::NoNat, Confidence::Partial},
        Case{"full cone, one IP", kFullCone, false, "restricted cone", M::EndpointIndependent,
             F::AddressDependent, Confidence::Partial},
        Case{"restricted, one IP", kRestricted, false, "restricted cone", M::EndpointIndependent,
             F::AddressDependent, Confidence::Partial},
        Case{"port-restricted, one IP", kPortRestricted, false, "port-restricted cone",
             M::EndpointIndependent, F::AddressAndPortDependent, Confidence::Partial},
        // Address-dependent mapping looks endpoint-independent to port-only tests...
        Case{"address-dependent mapping, one IP", kSymmetricAd, false, "port-restricted cone",
             M::EndpointIndependent, F::AddressAndPortDependent, Confidence::Partial},
        // ...but address-and-port-dependent mapping shows itself.
        Case{"symmetric, one IP", kSymmetric, false, "symmetric", M::AddressAndPortDependent,
             F::AddressAndPortDependent, Confidence::Full},
        Case{"blocked, one IP", kBlocked, false, "UDP blocked", M::Unknown, F::Unknown,
             Confidence::Full}));

TEST(BehaviorProbe, WithoutAnAlternateIpSaysSoAndKeepsTheFlagsFalse) {
  auto [v, elapsed] = run_probe(World{kFullCone, false});
  EXPECT_FALSE(v.mapping_ip_tested);
  EXPECT_FALSE(v.filtering_ip_tested);
  ASSERT_FALSE(v.limits.empty());
  bool mentions = false;
  for (const auto& l : v.limits) {
    mentions = mentions || l.find("no alternate IP") != std::string::npos;
  }
  EXPECT_TRUE(mentions);
}

TEST(BehaviorProbe, HairpinIsReportedBehindANat) {
  EXPECT_EQ(run_probe(World{kFullCone}).first.hairpin, Hairpin::Yes);
  EXPECT_EQ(run_probe(World{kRestricted}).first.hairpin, Hairpin::No);
  EXPECT_EQ(run_probe(World{kOpen}).first.hairpin, Hairpin::Unknown);  // no NAT: not run
}

TEST(BehaviorProbe, PublicAddressIsThePrimaryMapping) {
  auto v = run_probe(World{kFullCone}).first;
  ASSERT_TRUE(v.public_address);
  EXPECT_EQ(v.public_address->ip(), SimNat::kPublic);
  EXPECT_EQ(v.behind_nat, true);
  auto open = run_probe(World{kOpen}).first;
  EXPECT_EQ(open.public_address, kMapSock);
  EXPECT_EQ(open.behind_nat, false);
}

TEST(BehaviorProbe, ServerWithoutRfc5780GivesUdpButNoBehaviour) {
  World w{kFullCone};
  w.server_5780 = false;
  auto v = run_probe(w).first;
  EXPECT_EQ(v.udp, UdpStatus::Works);
  EXPECT_EQ(v.mapping, M::Unknown);
  EXPECT_EQ(v.filtering, F::Unknown);
  EXPECT_EQ(verdict_name(v), "unknown");
  EXPECT_EQ(v.confidence, Confidence::None);
  EXPECT_FALSE(v.limits.empty());
}

TEST(BehaviorProbe, QuickModeUsesOnlyTheMappingSocket) {
  for (const auto& [model, expected] :
       std::vector<std::pair<NatModel, M>>{{kFullCone, M::EndpointIndependent},
                                           {kSymmetricAd, M::AddressDependent},
                                           {kSymmetric, M::AddressAndPortDependent},
                                           {kOpen, M::NoNat}}) {
    auto [v, elapsed] = run_probe(World{model}, ProbeMode::QuickMapping, true);
    EXPECT_EQ(v.mapping, expected);
    EXPECT_EQ(v.filtering, F::Unknown);
    EXPECT_NE(v.confidence, Confidence::Full);
  }
}

TEST(BehaviorProbe, IgnoresDatagramsThatAreNotItsOwn) {
  ProbeConfig config;
  config.mode = ProbeMode::QuickMapping;
  config.primary = {kServerIp, kPort};
  BehaviorProbe probe(config);
  const auto now = Clock::now();
  probe.start(now);
  auto sends = probe.poll_send(now);
  ASSERT_EQ(sends.size(), 1u);
  const SocketAddress peer = addr(198, 51, 100, 9, 7000);
  // A peer's STUN check with another transaction id, QUIC-looking bytes, garbage, empty.
  stun::TransactionId other{};
  other[0] = 0x42;
  auto check = stun::make_binding_request(other);
  EXPECT_FALSE(probe.on_datagram(ProbeSocket::Mapping, peer, check, now));
  stun::Bytes quic{0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0};
  EXPECT_FALSE(probe.on_datagram(ProbeSocket::Mapping, peer, quic, now));
  EXPECT_FALSE(probe.on_datagram(ProbeSocket::Mapping, peer, stun::Bytes{}, now));
  // Our own request, looped back, is not an answer either: still waiting.
  EXPECT_FALSE(probe.done());
}

TEST(BehaviorProbe, RetransmitsWithinItsBoundAndThenGivesUp) {
  ProbeConfig config;
  config.mode = ProbeMode::QuickMapping;
  config.primary = {kServerIp, kPort};
  BehaviorProbe probe(config);
  auto now = Clock::time_point{} + std::chrono::hours(1);
  const auto t0 = now;
  probe.start(now);
  int sent = 0;
  for (int i = 0; i < 100 && !probe.done(); ++i) {
    sent += static_cast<int>(probe.poll_send(now).size());
    auto next = probe.next_deadline();
    ASSERT_TRUE(next || probe.done());
    if (next) {
      now = *next;
      probe.on_timer(now);
    }
  }
  EXPECT_TRUE(probe.done());
  EXPECT_EQ(now - t0, kDefaultProbeBudget);
  // 0, 250, 750 ms (RTO doubling): three transmissions inside 1.5 s.
  EXPECT_EQ(sent, 3);
  EXPECT_EQ(probe.verdict().udp, UdpStatus::Blocked);
  EXPECT_EQ(verdict_name(probe.verdict()), "UDP blocked");
}

TEST(BehaviorProbe, SurvivesModerateLossWithoutContradiction) {
  // With loss, a verdict may be weaker, but it never names a behaviour the NAT does not
  // have, except where a lost filtering answer is indistinguishable from filtering (the
  // RFC's own limitation); here we check the mapping, which loss can only make unknown.
  for (std::uint32_t seed = 1; seed <= 50; ++seed) {
    World w{kSymmetric};
    w.loss = 0.2;
    w.seed = seed;
    auto v = run_probe(w).first;
    EXPECT_TRUE(v.mapping == M::AddressAndPortDependent || v.mapping == M::AddressDependent ||
                v.mapping == M::Unknown)
        << "seed " << seed << " got " << to_string(v.mapping);
  }
}

// --- classify() on RFC wording cases --------------------------------------------------

TestResult ans(SocketAddress mapped, SocketAddress source = {}) {
  return {TestOutcome::Answered, mapped, source};
}
TestResult none() { return {TestOutcome::NoAnswer, std::nullopt, std::nullopt}; }

Observations base_obs(bool alt_ip) {
  Observations o;
  o.primary = {kServerIp, kPort};
  o.other = SocketAddress(alt_ip ? kServerAltIp : kServerIp, kAltPort);
  o.local = {kMapSock};
  return o;
}

TEST(Classify, LocalAddressMeansNoNat) {
  // RFC 5780 §4.3: "If this address and port are the same as the local IP address and port
  // of the socket used to send the request, the client knows that it is not NATed".
  auto o = base_obs(true);
  o.map_primary = ans(kMapSock);
  auto v = classify(o);
  EXPECT_EQ(v.mapping, M::NoNat);
  EXPECT_EQ(v.behind_nat, false);
}

TEST(Classify, TestTwoSameAsTestOneIsEndpointIndependent) {
  auto o = base_obs(true);
  const auto x1 = addr(198, 51, 100, 7, 40000);
  o.map_primary = ans(x1);
  o.map_alt_ip = ans(x1);
  auto v = classify(o);
  EXPECT_EQ(v.mapping, M::EndpointIndependent);
  EXPECT_TRUE(v.mapping_ip_tested);
}

TEST(Classify, TestThreeMatchingTestTwoIsAddressDependent) {
  auto o = base_obs(true);
  o.map_primary = ans(addr(198, 51, 100, 7, 40000));
  o.map_alt_ip = ans(addr(198, 51, 100, 7, 40001));
  o.map_alt_both = ans(addr(198, 51, 100, 7, 40001));
  EXPECT_EQ(classify(o).mapping, M::AddressDependent);
  o.map_alt_both = ans(addr(198, 51, 100, 7, 40002));
  EXPECT_EQ(classify(o).mapping, M::AddressAndPortDependent);
}

TEST(Classify, FilteringFromTheChangeRequestAnswers) {
  auto o = base_obs(true);
  o.map_primary = ans(addr(198, 51, 100, 7, 40000));
  o.map_alt_ip = o.map_primary;
  o.filter_primary = ans(addr(198, 51, 100, 7, 40001), {kServerIp, kPort});
  // Test II answered from the other IP: endpoint-independent.
  o.filter_change_both = ans(addr(198, 51, 100, 7, 40001), {kServerAltIp, kAltPort});
  EXPECT_EQ(classify(o).filtering, F::EndpointIndependent);
  // Only test III answered: address-dependent.
  o.filter_change_both = none();
  o.filter_change_port = ans(addr(198, 51, 100, 7, 40001), {kServerIp, kAltPort});
  EXPECT_EQ(classify(o).filtering, F::AddressDependent);
  EXPECT_TRUE(classify(o).filtering_ip_tested);
  // Neither: address-and-port-dependent.
  o.filter_change_port = none();
  EXPECT_EQ(classify(o).filtering, F::AddressAndPortDependent);
  // A change-IP answer that came from the primary IP did not test the IP.
  o.filter_change_both = ans(addr(198, 51, 100, 7, 40001), {kServerIp, kAltPort});
  auto v = classify(o);
  EXPECT_EQ(v.filtering, F::AddressDependent);
  EXPECT_FALSE(v.filtering_ip_tested);
}

TEST(Classify, CutTestsAreInconclusiveNotNegative) {
  auto o = base_obs(true);
  o.map_primary = ans(addr(198, 51, 100, 7, 40000));
  o.map_alt_ip = o.map_primary;
  o.filter_primary = ans(addr(198, 51, 100, 7, 40001), {kServerIp, kPort});
  o.filter_change_both = {TestOutcome::Cut, std::nullopt, std::nullopt};
  o.filter_change_port = {TestOutcome::Cut, std::nullopt, std::nullopt};
  auto v = classify(o);
  EXPECT_EQ(v.filtering, F::Unknown);
  EXPECT_EQ(v.confidence, Confidence::Partial);
  o.map_primary = {TestOutcome::Cut, std::nullopt, std::nullopt};
  o.filter_primary = {TestOutcome::Cut, std::nullopt, std::nullopt};
  EXPECT_EQ(classify(o).udp, UdpStatus::Unknown);
}

TEST(Classify, AnyObservationsGiveAConsistentVerdict) {
  EXPECT_TRUE(rc::check([](std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                           std::uint8_t e, std::uint8_t f, std::uint8_t g, bool alt_ip,
                           bool has_other) {
    auto pick = [](std::uint8_t x) {
      switch (x % 6) {
        case 0:
          return TestResult{};
        case 1:
          return none();
        case 2:
          return TestResult{TestOutcome::Cut, std::nullopt, std::nullopt};
        case 3:
          return TestResult{TestOutcome::Refused, std::nullopt, SocketAddress{kServerIp, kPort}};
        case 4:
          return ans(addr(198, 51, 100, 7, 40000), {kServerAltIp, kAltPort});
        default:
          return ans(addr(198, 51, 100, 7, static_cast<std::uint16_t>(40001 + x)),
                     {kServerIp, kAltPort});
      }
    };
    auto o = base_obs(alt_ip);
    if (!has_other) {
      o.other.reset();
    }
    o.map_primary = pick(a);
    o.map_alt_port = pick(b);
    o.map_alt_ip = pick(c);
    o.map_alt_both = pick(d);
    o.filter_primary = pick(e);
    o.filter_change_both = pick(f);
    o.filter_change_port = pick(g);
    auto v = classify(o);
    RC_ASSERT((v.confidence == Confidence::Full) == v.limits.empty());
    if (v.udp != UdpStatus::Works) {
      RC_ASSERT(v.mapping == M::Unknown);
      RC_ASSERT(v.filtering == F::Unknown);
    }
    // Without an answer from another IP, IP filtering was not tested.
    const auto& both = o.filter_change_both;
    if (!(both.outcome == TestOutcome::Answered && both.source && both.source->ip() != kServerIp) &&
        !(alt_ip && both.outcome == TestOutcome::NoAnswer)) {
      RC_ASSERT(!v.filtering_ip_tested || v.filtering == F::Unknown);
    }
    // The JSON form carries it exactly.
    auto back = nat_verdict_from_json(boost::json::value(to_json(v)));
    RC_ASSERT(back.has_value());
    RC_ASSERT(*back == v);
  }));
}

// --- quick_mapping_verdict ---------------------------------------------------------------

TEST(QuickMappingVerdict, ComparesTheMappings) {
  const auto x = addr(198, 51, 100, 7, 40000);
  const auto y = addr(198, 51, 100, 7, 40001);
  const auto z = addr(198, 51, 100, 7, 40002);
  auto eim = quick_mapping_verdict(x, x, x);
  EXPECT_EQ(eim.mapping, M::EndpointIndependent);
  EXPECT_TRUE(eim.mapping_ip_tested);
  EXPECT_EQ(eim.filtering, F::Unknown);
  EXPECT_EQ(eim.public_address, x);

  auto weak = quick_mapping_verdict(x, x, std::nullopt);
  EXPECT_EQ(weak.mapping, M::EndpointIndependent);
  EXPECT_FALSE(weak.mapping_ip_tested);
  EXPECT_EQ(weak.confidence, Confidence::Partial);

  EXPECT_EQ(quick_mapping_verdict(x, y, std::nullopt).mapping, M::AddressAndPortDependent);
  EXPECT_EQ(quick_mapping_verdict(x, y, z).mapping, M::AddressAndPortDependent);
  EXPECT_EQ(quick_mapping_verdict(x, x, z).mapping, M::AddressDependent);
  EXPECT_EQ(verdict_name(quick_mapping_verdict(x, x, z)), "symmetric");

  const std::vector<SocketAddress> local{x};
  EXPECT_EQ(quick_mapping_verdict(x, x, std::nullopt, local).mapping, M::NoNat);

  auto blocked = quick_mapping_verdict(std::nullopt, std::nullopt, std::nullopt);
  EXPECT_EQ(blocked.udp, UdpStatus::Blocked);
  auto half = quick_mapping_verdict(x, std::nullopt, std::nullopt);
  EXPECT_EQ(half.udp, UdpStatus::Works);
  EXPECT_EQ(half.mapping, M::Unknown);
}

// --- direct_path_outlook -----------------------------------------------------------------

NatVerdict verdict_of(M m, F f, std::uint8_t public_host = 7) {
  NatVerdict v;
  v.udp = UdpStatus::Works;
  v.mapping = m;
  v.filtering = f;
  v.mapping_ip_tested = true;
  v.filtering_ip_tested = true;
  v.behind_nat = m != M::NoNat;
  v.public_address = addr(198, 51, 100, public_host, 40000);
  v.confidence = Confidence::Full;
  return v;
}

NatVerdict blocked_verdict() {
  NatVerdict v;
  v.udp = UdpStatus::Blocked;
  v.confidence = Confidence::Full;
  return v;
}

struct Named {
  const char* name;
  NatVerdict v;
  bool symmetric;
  bool port_filtering;
};

std::vector<Named> lab_types(std::uint8_t host) {
  return {
      {"none", verdict_of(M::NoNat, F::NoNat, host), false, false},
      {"full-cone", verdict_of(M::EndpointIndependent, F::EndpointIndependent, host), false, false},
      {"restricted", verdict_of(M::EndpointIndependent, F::AddressDependent, host), false, false},
      {"port-restricted", verdict_of(M::EndpointIndependent, F::AddressAndPortDependent, host),
       false, true},
      {"symmetric-ad", verdict_of(M::AddressDependent, F::AddressAndPortDependent, host), true,
       true},
      {"symmetric", verdict_of(M::AddressAndPortDependent, F::AddressAndPortDependent, host), true,
       true}};
}

TEST(DirectPathOutlook, MatrixOfDefiniteVerdicts) {
  for (const auto& a : lab_types(7)) {
    for (const auto& b : lab_types(8)) {
      auto o = direct_path_outlook(a.v, b.v);
      const bool impossible =
          (a.symmetric && b.port_filtering) || (b.symmetric && a.port_filtering);
      EXPECT_EQ(o.outlook, impossible ? DirectPathOutlook::Impossible : DirectPathOutlook::Possible)
          << a.name << " x " << b.name << ": " << o.reason;
      EXPECT_FALSE(o.reason.empty());
      // Symmetric in the peers.
      EXPECT_EQ(direct_path_outlook(b.v, a.v).outlook, o.outlook) << a.name << " x " << b.name;
    }
  }
}

TEST(DirectPathOutlook, NamesTheSide) {
  auto sym = verdict_of(M::AddressAndPortDependent, F::AddressAndPortDependent, 8);
  auto pr = verdict_of(M::EndpointIndependent, F::AddressAndPortDependent, 7);
  auto o = direct_path_outlook(pr, sym);
  EXPECT_EQ(o.outlook, DirectPathOutlook::Impossible);
  EXPECT_NE(o.reason.find("symmetric NAT on peer B"), std::string::npos) << o.reason;
  auto both = direct_path_outlook(sym, verdict_of(M::AddressDependent, F::EndpointIndependent, 9));
  EXPECT_EQ(both.outlook, DirectPathOutlook::Impossible);
  EXPECT_EQ(both.reason, "symmetric NAT on both peers");
  auto u = direct_path_outlook(blocked_verdict(), sym, "me", "the peer");
  EXPECT_EQ(u.outlook, DirectPathOutlook::Impossible);
  EXPECT_EQ(u.reason, "UDP blocked on me");
}

TEST(DirectPathOutlook, SymmetricAgainstConeIsPossible) {
  auto sym = verdict_of(M::AddressAndPortDependent, F::AddressAndPortDependent, 8);
  for (auto f : {F::EndpointIndependent, F::AddressDependent}) {
    EXPECT_EQ(direct_path_outlook(verdict_of(M::EndpointIndependent, f, 7), sym).outlook,
              DirectPathOutlook::Possible);
  }
}

TEST(DirectPathOutlook, SamePublicIpIsTheSameNat) {
  auto sym = verdict_of(M::AddressAndPortDependent, F::AddressAndPortDependent, 7);
  auto o = direct_path_outlook(sym, sym);
  EXPECT_EQ(o.outlook, DirectPathOutlook::Possible);
  EXPECT_EQ(o.reason, "same NAT");
}

TEST(DirectPathOutlook, UdpBlockedIsImpossibleWhateverTheOther) {
  for (const auto& b : lab_types(8)) {
    EXPECT_EQ(direct_path_outlook(blocked_verdict(), b.v).outlook, DirectPathOutlook::Impossible);
  }
  EXPECT_EQ(direct_path_outlook(NatVerdict{}, blocked_verdict()).outlook,
            DirectPathOutlook::Impossible);
}

TEST(DirectPathOutlook, MissingDataIsNeverImpossible) {
  auto sym = verdict_of(M::AddressAndPortDependent, F::AddressAndPortDependent, 8);
  auto o = direct_path_outlook(NatVerdict{}, sym);
  EXPECT_EQ(o.outlook, DirectPathOutlook::Unknown);
  EXPECT_NE(o.reason.find("peer A"), std::string::npos) << o.reason;
  // A quick (mapping-only) cone verdict against a symmetric peer: depends on filtering.
  auto quick = quick_mapping_verdict(addr(198, 51, 100, 7, 1), addr(198, 51, 100, 7, 1),
                                     addr(198, 51, 100, 7, 1));
  EXPECT_EQ(direct_path_outlook(quick, sym).outlook, DirectPathOutlook::Unknown);
  // Two quick symmetric verdicts: impossible whatever the filtering.
  auto qsym =
      quick_mapping_verdict(addr(198, 51, 100, 7, 1), addr(198, 51, 100, 7, 2), std::nullopt);
  auto qsym2 =
      quick_mapping_verdict(addr(198, 51, 100, 9, 1), addr(198, 51, 100, 9, 2), std::nullopt);
  EXPECT_EQ(direct_path_outlook(qsym, qsym2).outlook, DirectPathOutlook::Impossible);
  // A mapping that may be address-dependent (no alternate IP) against port-restricted.
  auto weak = verdict_of(M::EndpointIndependent, F::AddressAndPortDependent, 7);
  weak.mapping_ip_tested = false;
  auto pr = verdict_of(M::EndpointIndependent, F::AddressAndPortDependent, 8);
  // (it may be symmetric, and then port-restricted filtering on the other side stops it)
  EXPECT_EQ(direct_path_outlook(weak, pr).outlook, DirectPathOutlook::Unknown);
  EXPECT_EQ(direct_path_outlook(weak, sym).outlook, DirectPathOutlook::Impossible);
  auto weak_open = verdict_of(M::EndpointIndependent, F::AddressDependent, 7);
  weak_open.mapping_ip_tested = false;
  EXPECT_EQ(direct_path_outlook(weak_open, sym).outlook, DirectPathOutlook::Unknown);
}

TEST(DirectPathOutlook, NeverImpossibleUnlessEveryReadingIs) {
  EXPECT_TRUE(rc::check([](std::uint8_t am, std::uint8_t af, std::uint8_t bm, std::uint8_t bf,
                           bool at, bool bt, std::uint8_t au, std::uint8_t bu) {
    auto make = [](std::uint8_t m, std::uint8_t f, bool tested, std::uint8_t u, std::uint8_t host) {
      NatVerdict v;
      v.udp = static_cast<UdpStatus>(u % 3);
      v.mapping = static_cast<M>(m % 5);
      v.filtering = static_cast<F>(f % 5);
      v.mapping_ip_tested = tested;
      v.filtering_ip_tested = tested;
      v.public_address = addr(198, 51, 100, host, 1);
      return v;
    };
    auto a = make(am, af, at, au, 7);
    auto b = make(bm, bf, bt, bu, 8);
    auto ab = direct_path_outlook(a, b);
    RC_ASSERT(ab.outlook == direct_path_outlook(b, a).outlook);
    // Replacing a verdict by total ignorance can only move towards Unknown.
    auto ua = direct_path_outlook(NatVerdict{}, b);
    RC_ASSERT(ua.outlook == ab.outlook || ua.outlook == DirectPathOutlook::Unknown);
    // Total ignorance on one side decides nothing unless the other side alone does.
    auto u = direct_path_outlook(NatVerdict{}, b);
    if (b.udp != UdpStatus::Blocked) {
      RC_ASSERT(u.outlook == DirectPathOutlook::Unknown);
    }
  }));
}

// --- Words and JSON ----------------------------------------------------------------------

TEST(Words, RoundTrip) {
  for (auto m : {M::Unknown, M::NoNat, M::EndpointIndependent, M::AddressDependent,
                 M::AddressAndPortDependent}) {
    EXPECT_EQ(mapping_from_string(to_string(m)), m);
  }
  for (auto f : {F::Unknown, F::NoNat, F::EndpointIndependent, F::AddressDependent,
                 F::AddressAndPortDependent}) {
    EXPECT_EQ(filtering_from_string(to_string(f)), f);
  }
  EXPECT_EQ(mapping_from_string("cone"), std::nullopt);
  EXPECT_EQ(filtering_from_string(""), std::nullopt);
  EXPECT_EQ(udp_status_from_string("blocked"), UdpStatus::Blocked);
  EXPECT_EQ(hairpin_from_string("yes"), Hairpin::Yes);
  EXPECT_EQ(confidence_from_string("partial"), Confidence::Partial);
}

TEST(VerdictJson, RejectsMalformedAndToleratesNewWords) {
  auto parse = [](std::string_view text) {
    return nat_verdict_from_json(boost::json::parse(text));
  };
  EXPECT_FALSE(parse("[]").has_value());
  EXPECT_FALSE(parse(R"({"mapping":3})").has_value());
  EXPECT_FALSE(parse(R"({"public":"not an address"})").has_value());
  EXPECT_FALSE(parse(R"({"behind_nat":"yes"})").has_value());
  EXPECT_FALSE(parse(R"({"limits":"x"})").has_value());
  EXPECT_FALSE(parse(R"({"limits":[1,2,3,4,5,6,7,8,9]})").has_value());
  EXPECT_FALSE(parse(R"({"limits":[")" + std::string(300, 'x') + R"("]})").has_value());
  auto v = parse(R"({"udp":"works","mapping":"quantum","filtering":"address-dependent"})");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->mapping, M::Unknown);
  EXPECT_EQ(v->filtering, F::AddressDependent);
  EXPECT_TRUE(parse("{}").has_value());
}

TEST(WithFiltering, CompletesAQuickVerdictWithTheFullProbesFiltering) {
  const auto mapped = *SocketAddress::parse("198.51.100.7:4000");
  auto quick = quick_mapping_verdict(mapped, mapped, mapped);
  ASSERT_EQ(quick.mapping, M::EndpointIndependent);
  ASSERT_EQ(quick.filtering, F::Unknown);
  NatVerdict full;
  full.udp = UdpStatus::Works;
  full.filtering = F::AddressAndPortDependent;
  full.filtering_ip_tested = true;
  full.hairpin = Hairpin::No;
  const auto merged = with_filtering(quick, full);
  EXPECT_EQ(merged.mapping, M::EndpointIndependent);
  EXPECT_EQ(merged.filtering, F::AddressAndPortDependent);
  EXPECT_EQ(merged.hairpin, Hairpin::No);
  EXPECT_EQ(merged.public_address, quick.public_address);
  EXPECT_EQ(std::count(merged.limits.begin(), merged.limits.end(),
                       "filtering not tested (quick mapping check)"),
            0);
  EXPECT_EQ(verdict_name(merged), "port-restricted cone");
  // A full probe that learnt nothing about filtering changes nothing.
  EXPECT_EQ(with_filtering(quick, NatVerdict{}), quick);
}

}  // namespace
}  // namespace peertun::traversal
