#include "traversal/punch_agent.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <memory>
#include <random>

#include "stun/binding.h"
#include "unit/traversal/sim_network.h"

namespace peertun::traversal {
namespace {

using namespace std::chrono_literals;
using sim::addr;

const base::SocketAddress kRelay = addr("203.0.113.10:4040");

wire::Bytes key(std::uint8_t fill) { return wire::Bytes(32, fill); }

PunchAgent::RandomSource seeded(std::uint32_t seed) {
  auto rng = std::make_shared<std::mt19937>(seed);
  return [rng](std::span<std::uint8_t> out) {
    for (auto& b : out) {
      b = static_cast<std::uint8_t>((*rng)());
    }
  };
}

// One peer as the simulator sees it: where it sits and what it tells the other side.
struct PeerSpec {
  base::SocketAddress lan;
  std::optional<sim::NatSpec> nat;  // nullopt: on the internet
  const char* public_ip = nullptr;
  bool shares_nat_with_a = false;  // B only: same LAN, same NAT as A
};

struct Outcome {
  AgentState a;
  AgentState b;
  std::optional<SelectedPath> a_path;
  std::optional<SelectedPath> b_path;
  TimePoint connected_at{};
};

// Two agents over the simulated internet, fired at `fire_a` / `fire_b`.
class Punch {
 public:
  Punch(const PeerSpec& a, const PeerSpec& b, std::uint32_t seed = 1) : net_(seed) {
    int nat_a = -1;
    int nat_b = -1;
    if (a.nat) {
      nat_a = net_.add_nat(*a.nat, a.public_ip);
    }
    if (b.shares_nat_with_a) {
      nat_b = nat_a;
    } else if (b.nat) {
      nat_b = net_.add_nat(*b.nat, b.public_ip);
    }
    net_.add_host(a.lan, nat_a, [this](const auto& from, wire::ByteView d) { on(true, from, d); });
    net_.add_host(b.lan, nat_b, [this](const auto& from, wire::ByteView d) { on(false, from, d); });
    // The relay's STUN gives each side its server-reflexive address.
    const auto srflx_a = net_.reflexive(a.lan, kRelay);
    const auto srflx_b = net_.reflexive(b.lan, kRelay);
    a_cands_ = {make_candidate(CandidateType::Host, a.lan)};
    b_cands_ = {make_candidate(CandidateType::Host, b.lan)};
    if (srflx_a != a.lan) {
      a_cands_.push_back(make_candidate(CandidateType::ServerReflexive, srflx_a));
    }
    if (srflx_b != b.lan) {
      b_cands_.push_back(make_candidate(CandidateType::ServerReflexive, srflx_b));
    }
    a_lan_ = a.lan;
    b_lan_ = b.lan;
    seed_ = seed;
  }

  // Host addresses of B's that lead nowhere (VPN and container interfaces).
  void add_dead_b_hosts(int n) {
    for (int i = 0; i < n; ++i) {
      b_cands_.push_back(make_candidate(
          CandidateType::Host,
          base::SocketAddress(base::IpAddress::v4({10, 99, 0, static_cast<std::uint8_t>(i + 1)}),
                              6000)));
    }
  }

  void make_agents(wire::Bytes a_out = key(1), wire::Bytes b_out = key(2)) {
    AgentConfig ca;
    ca.role = AgentRole::Controlling;
    ca.outgoing_key = a_out;
    ca.incoming_key = key(2);
    ca.local = a_cands_;
    ca.remote = b_cands_;
    AgentConfig cb;
    cb.role = AgentRole::Controlled;
    cb.outgoing_key = b_out;
    cb.incoming_key = key(1);
    cb.local = b_cands_;
    cb.remote = a_cands_;
    a_ = std::make_unique<PunchAgent>(std::move(ca), seeded(seed_ * 2 + 1));
    b_ = std::make_unique<PunchAgent>(std::move(cb), seeded(seed_ * 2 + 2));
  }

  Outcome run(Clock::duration fire_a = 0ms, Clock::duration fire_b = 0ms,
              Clock::duration limit = 20s) {
    if (!a_) {
      make_agents();
    }
    const TimePoint t0 = now_;
    bool fired_a = false;
    bool fired_b = false;
    Outcome out{};
    while (now_ - t0 < limit) {
      if (!fired_a && now_ - t0 >= fire_a) {
        a_->start(now_);
        fired_a = true;
      }
      if (!fired_b && now_ - t0 >= fire_b) {
        b_->start(now_);
        fired_b = true;
      }
      flush();
      const bool a_done = a_->state() != AgentState::Checking && fired_a;
      const bool b_done = b_->state() != AgentState::Checking && fired_b;
      if (a_done && b_done && out.connected_at == TimePoint{} &&
          a_->state() == AgentState::Connected && b_->state() == AgentState::Connected) {
        out.connected_at = now_;
      }
      if (a_done && b_done && stop_when_done_) {
        break;
      }
      TimePoint next = now_ + 1s;
      for (auto* agent : {a_.get(), b_.get()}) {
        if (auto d = agent->next_deadline()) {
          next = std::min(next, std::max(*d, now_ + 1ms));
        }
      }
      if (auto d = net_.next_delivery()) {
        next = std::min(next, *d);
      }
      if (!fired_a) {
        next = std::min(next, t0 + fire_a);
      }
      if (!fired_b) {
        next = std::min(next, t0 + fire_b);
      }
      now_ = std::max(next, now_);
      net_.run_until(now_);
    }
    out.a = a_->state();
    out.b = b_->state();
    out.a_path = a_->selected();
    out.b_path = b_->selected();
    return out;
  }

  void flush() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      while (auto t = a_->poll_transmit(now_)) {
        net_.send(a_lan_, t->destination, std::move(t->payload), now_);
        any = true;
      }
      while (auto t = b_->poll_transmit(now_)) {
        net_.send(b_lan_, t->destination, std::move(t->payload), now_);
        any = true;
      }
      if (!any) {
        return;
      }
    }
  }

  sim::Network& net() { return net_; }
  PunchAgent& a() { return *a_; }
  PunchAgent& b() { return *b_; }
  void keep_running() { stop_when_done_ = false; }

 private:
  void on(bool to_a, const base::SocketAddress& from, wire::ByteView d) {
    auto& agent = to_a ? *a_ : *b_;
    (void)agent.on_datagram(from, d, now_);
  }

  sim::Network net_;
  std::unique_ptr<PunchAgent> a_;
  std::unique_ptr<PunchAgent> b_;
  std::vector<Candidate> a_cands_;
  std::vector<Candidate> b_cands_;
  base::SocketAddress a_lan_;
  base::SocketAddress b_lan_;
  std::uint32_t seed_ = 1;
  TimePoint now_{};
  bool stop_when_done_ = true;
};

PeerSpec behind(sim::NatSpec nat, const char* lan, const char* public_ip) {
  return PeerSpec{addr(lan), nat, public_ip};
}
PeerSpec on_internet(const char* address) { return PeerSpec{addr(address), std::nullopt}; }

TEST(PunchAgent, TwoPublicHostsConnectOnTheirHostAddresses) {
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  const auto out = punch.run();
  ASSERT_EQ(out.a, AgentState::Connected);
  ASSERT_EQ(out.b, AgentState::Connected);
  EXPECT_EQ(out.a_path->remote.address, addr("192.0.2.9:6000"));
  EXPECT_EQ(out.b_path->remote.address, addr("198.51.100.7:5000"));
  // 10 ms each way in the simulator.
  EXPECT_EQ(out.a_path->rtt, 20ms);
  // Fired together: each side's first check is answered one RTT later, and the peer's
  // check arrived half an RTT in, so the punch took exactly one RTT on both sides.
  EXPECT_EQ(punch.a().time_to_first_path(), 20ms);
  EXPECT_EQ(punch.b().time_to_first_path(), 20ms);
}

struct MatrixCase {
  const char* name;
  std::optional<sim::NatSpec> a;
  std::optional<sim::NatSpec> b;
  bool direct_possible;
};

class PunchMatrix : public testing::TestWithParam<MatrixCase> {};

TEST_P(PunchMatrix, ConnectsExactlyWhenTheNatsAllowIt) {
  const auto& c = GetParam();
  const PeerSpec a =
      c.a ? behind(*c.a, "192.168.1.10:5000", "198.51.100.1") : on_internet("198.51.100.20:5000");
  const PeerSpec b =
      c.b ? behind(*c.b, "192.168.2.10:6000", "192.0.2.1") : on_internet("192.0.2.20:6000");
  for (std::uint32_t seed = 1; seed <= 5; ++seed) {
    Punch punch(a, b, seed);
    // The relay's fire reaches the two peers at different moments.
    const auto out = punch.run(0ms, std::chrono::milliseconds(37 * seed));
    if (c.direct_possible) {
      ASSERT_EQ(out.a, AgentState::Connected) << c.name << " seed " << seed;
      ASSERT_EQ(out.b, AgentState::Connected) << c.name << " seed " << seed;
      EXPECT_EQ(out.a_path->remote.address.ip().is_private(), false);
      // Within a few retransmit rounds, far from the 8 s timeout.
      EXPECT_LT(out.connected_at - TimePoint{}, 2s) << c.name;
    } else {
      EXPECT_EQ(out.a, AgentState::Failed) << c.name << " seed " << seed;
      EXPECT_EQ(out.b, AgentState::Failed) << c.name << " seed " << seed;
      EXPECT_NE(punch.a().failure_reason().find("within 8s"), std::string::npos);
    }
  }
}

const sim::NatSpec kFull = sim::full_cone();
const sim::NatSpec kRestricted = sim::restricted_cone();
const sim::NatSpec kPort = sim::port_restricted_cone();
const sim::NatSpec kSym = sim::symmetric();

INSTANTIATE_TEST_SUITE_P(
    NatPairs, PunchMatrix,
    testing::Values(MatrixCase{"none_none", std::nullopt, std::nullopt, true},
                    MatrixCase{"none_symmetric", std::nullopt, kSym, true},
                    MatrixCase{"full_full", kFull, kFull, true},
                    MatrixCase{"full_symmetric", kFull, kSym, true},
                    MatrixCase{"restricted_restricted", kRestricted, kRestricted, true},
                    MatrixCase{"restricted_symmetric", kRestricted, kSym, true},
                    MatrixCase{"symmetric_restricted", kSym, kRestricted, true},
                    MatrixCase{"port_port", kPort, kPort, true},
                    MatrixCase{"port_restricted", kPort, kRestricted, true},
                    MatrixCase{"port_symmetric", kPort, kSym, false},
                    MatrixCase{"symmetric_port", kSym, kPort, false},
                    MatrixCase{"symmetric_symmetric", kSym, kSym, false}),
    [](const testing::TestParamInfo<MatrixCase>& param_info) { return param_info.param.name; });

TEST(PunchAgent, SymmetricSideIsReachedThroughItsPeerReflexiveAddress) {
  Punch punch(behind(kFull, "192.168.1.10:5000", "198.51.100.1"),
              behind(kSym, "192.168.2.10:6000", "192.0.2.1"));
  const auto out = punch.run();
  ASSERT_EQ(out.a, AgentState::Connected);
  EXPECT_EQ(out.a_path->remote.type, CandidateType::PeerReflexive);
  EXPECT_EQ(out.a_path->remote.address.ip(), *base::IpAddress::parse("192.0.2.1"));
}

TEST(PunchAgent, PeersOnOneLanPreferTheLanPair) {
  PeerSpec a = behind(kPort, "192.168.1.10:5000", "198.51.100.1");
  PeerSpec b = behind(kPort, "192.168.1.11:6000", "198.51.100.1");
  b.shares_nat_with_a = true;
  Punch punch(a, b);
  const auto out = punch.run();
  ASSERT_EQ(out.a, AgentState::Connected);
  ASSERT_EQ(out.b, AgentState::Connected);
  EXPECT_EQ(out.a_path->remote.address, addr("192.168.1.11:6000"));
  EXPECT_EQ(out.b_path->remote.address, addr("192.168.1.10:5000"));
}

TEST(PunchAgent, ManyDeadHostAddressesDoNotStarveTheReflexivePair) {
  // 12 unreachable host addresses on B outrank its server-reflexive one; checking by
  // priority alone would retry them forever and never reach the pair that works.
  Punch punch(behind(kPort, "192.168.1.10:5000", "198.51.100.1"),
              behind(kPort, "192.168.2.10:6000", "192.0.2.1"));
  punch.add_dead_b_hosts(12);
  const auto out = punch.run();
  ASSERT_EQ(out.a, AgentState::Connected);
  ASSERT_EQ(out.b, AgentState::Connected);
  EXPECT_EQ(out.a_path->remote.type, CandidateType::ServerReflexive);
}

TEST(PunchAgent, FailedIsFinalEvenIfAnAnswerArrivesLate) {
  AgentConfig config;
  config.outgoing_key = key(1);
  config.incoming_key = key(2);
  config.role = AgentRole::Controlled;
  config.attempt_timeout = 1s;
  config.remote = {make_candidate(CandidateType::Host, addr("192.0.2.9:6000"))};
  PunchAgent b(config, seeded(8));
  b.start(TimePoint{});
  auto check = b.poll_transmit(TimePoint{});
  ASSERT_TRUE(check);
  // The timeout passes with the check unanswered.
  EXPECT_FALSE(b.poll_transmit(TimePoint{} + 2s));
  ASSERT_EQ(b.state(), AgentState::Failed);
  // Now the peer's nomination and the answer to the old check arrive: still failed, and
  // nothing is answered any more (the peer must not keep a path we gave up).
  AgentConfig ca;
  ca.outgoing_key = key(2);
  ca.incoming_key = key(1);
  ca.remote = {make_candidate(CandidateType::Host, addr("198.51.100.7:5000"))};
  PunchAgent a(ca, seeded(9));
  a.start(TimePoint{});
  auto a_check = a.poll_transmit(TimePoint{});
  ASSERT_TRUE(a_check);
  (void)b.on_datagram(addr("198.51.100.7:5000"), a_check->payload, TimePoint{} + 2s);
  EXPECT_FALSE(b.poll_transmit(TimePoint{} + 2s));
  EXPECT_EQ(b.state(), AgentState::Failed);
  EXPECT_FALSE(b.selected());
}

TEST(PunchAgent, ARelayThatNeverFiresEndsTheAttempt) {
  AgentConfig config;
  config.outgoing_key = key(1);
  config.incoming_key = key(2);
  config.fire_timeout = 5s;
  config.remote = {make_candidate(CandidateType::Host, addr("192.0.2.9:6000"))};
  PunchAgent agent(config, seeded(10));
  EXPECT_FALSE(agent.next_deadline());  // nothing to wait for before punch_ready
  agent.expect_fire(TimePoint{});
  ASSERT_EQ(agent.next_deadline(), TimePoint{} + 5s);
  EXPECT_FALSE(agent.poll_transmit(TimePoint{} + 4s));
  EXPECT_EQ(agent.state(), AgentState::Idle);
  EXPECT_FALSE(agent.poll_transmit(TimePoint{} + 5s));
  EXPECT_EQ(agent.state(), AgentState::Failed);
  EXPECT_NE(agent.failure_reason().find("did not start the punch"), std::string::npos);
  agent.start(TimePoint{} + 6s);  // a fire after that changes nothing
  EXPECT_EQ(agent.state(), AgentState::Failed);
}

TEST(PunchAgent, AForgedAnswerDoesNotCancelTheRealOne) {
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  punch.make_agents();
  punch.a().start(TimePoint{});
  auto check = punch.a().poll_transmit(TimePoint{});
  ASSERT_TRUE(check);
  ASSERT_EQ(punch.b().on_datagram(addr("198.51.100.7:5000"), check->payload, TimePoint{}),
            PunchAgent::Disposition::Consumed);
  auto answer = punch.b().poll_transmit(TimePoint{});
  ASSERT_TRUE(answer);
  // An observer saw the transaction id and answers first, from elsewhere.
  auto parsed = stun::parse(check->payload);
  ASSERT_TRUE(parsed);
  stun::MessageBuilder forged(stun::Method::Binding, stun::MessageClass::SuccessResponse,
                              parsed->transaction_id());
  forged.add_xor_address(stun::attr::kXorMappedAddress, addr("203.0.113.66:1"));
  (void)punch.a().on_datagram(addr("203.0.113.66:1"), std::move(forged).finish(key(3)),
                              TimePoint{} + 1ms);
  EXPECT_EQ(punch.a().stats().rejected, 1U);
  // The real answer still counts.
  (void)punch.a().on_datagram(addr("192.0.2.9:6000"), answer->payload, TimePoint{} + 2ms);
  EXPECT_EQ(punch.a().stats().answers_received, 1U);
}

TEST(PunchAgent, ReplayedChecksDoNotKeepAPathAlive) {
  // Consent comes only from answers to our own checks: a recorded check of the peer's,
  // replayed from the selected address, must not hide that the path is dead.
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  punch.keep_running();
  auto out = punch.run(0ms, 0ms, 2s);
  ASSERT_EQ(out.a, AgentState::Connected);
  punch.net().set_cut(true);
  // Replay one of B's checks into A every second, as an on-path attacker could.
  AgentConfig cb;
  cb.role = AgentRole::Controlled;
  cb.outgoing_key = key(2);
  cb.incoming_key = key(1);
  cb.remote = {make_candidate(CandidateType::Host, addr("198.51.100.7:5000"))};
  PunchAgent recorder(cb, seeded(11));
  recorder.start(TimePoint{});
  auto b_check = recorder.poll_transmit(TimePoint{});
  ASSERT_TRUE(b_check);
  for (int i = 0; i < 40; ++i) {
    const TimePoint t = TimePoint{} + 2s + std::chrono::seconds(i);
    (void)punch.a().on_datagram(addr("192.0.2.9:6000"), b_check->payload, t);
    while (punch.a().poll_transmit(t)) {
    }
  }
  EXPECT_EQ(punch.a().state(), AgentState::PathLost);
}

TEST(Candidates, HostileRemoteAddressesAreNotChecked) {
  for (const char* bad : {"224.0.0.251:5353", "255.255.255.255:9", "239.1.2.3:1", "0.0.0.0:80",
                          "127.0.0.1:53", "[::1]:53", "[ff02::1]:5", "[fe80::1]:5", "169.254.1.1:7",
                          "[::ffff:127.0.0.1]:53", "198.51.100.7:0"}) {
    EXPECT_FALSE(is_usable_remote(addr(bad), false)) << bad;
  }
  EXPECT_TRUE(is_usable_remote(addr("127.0.0.1:53"), true));
  for (const char* good :
       {"198.51.100.7:5000", "192.168.1.2:5", "[2001:db8::1]:5", "10.0.0.1:22"}) {
    EXPECT_TRUE(is_usable_remote(addr(good), false)) << good;
  }
}

TEST(Candidates, LanThenIpv6ThenPublicHostThenReflexive) {
  const auto lan = candidate_priority(CandidateType::Host, addr("192.168.1.10:1"));
  const auto v6 = candidate_priority(CandidateType::Host, addr("[2001:db8::1]:1"));
  const auto v4 = candidate_priority(CandidateType::Host, addr("198.51.100.1:1"));
  const auto srflx = candidate_priority(CandidateType::ServerReflexive, addr("198.51.100.1:1"));
  const auto prflx = candidate_priority(CandidateType::PeerReflexive, addr("198.51.100.1:1"));
  EXPECT_GT(lan, v6);
  EXPECT_GT(v6, v4);
  EXPECT_GT(v4, prflx);
  EXPECT_GT(prflx, srflx);
  // RFC 8445 §6.1.2.3: the pair's order follows its lower candidate first.
  EXPECT_GT(pair_priority(lan, lan), pair_priority(lan, srflx));
  EXPECT_GT(pair_priority(v6, v6), pair_priority(v6, srflx));
  // The G>D bit: the same two candidates, roles swapped, differ by exactly one.
  EXPECT_EQ(pair_priority(lan, srflx), pair_priority(srflx, lan) + 1);
}

TEST(PunchAgent, LateFireStillConnects) {
  Punch punch(behind(kPort, "192.168.1.10:5000", "198.51.100.1"),
              behind(kPort, "192.168.2.10:6000", "192.0.2.1"));
  const auto out = punch.run(0ms, 3s);
  EXPECT_EQ(out.a, AgentState::Connected);
  EXPECT_EQ(out.b, AgentState::Connected);
}

TEST(PunchAgent, HeavyLossDelaysButDoesNotPreventTheConnection) {
  Punch punch(behind(kRestricted, "192.168.1.10:5000", "198.51.100.1"),
              behind(kPort, "192.168.2.10:6000", "192.0.2.1"), 7);
  punch.net().set_loss_percent(30);
  punch.net().set_one_way_delay(60ms);
  const auto out = punch.run();
  EXPECT_EQ(out.a, AgentState::Connected);
  EXPECT_EQ(out.b, AgentState::Connected);
}

TEST(PunchAgent, WrongKeysNeverConnectAndAreCountedAsRejected) {
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  // Keys from different join codes: each side signs with a key the other does not expect.
  punch.make_agents(key(7), key(9));
  const auto out = punch.run();
  EXPECT_EQ(out.a, AgentState::Failed);
  EXPECT_EQ(out.b, AgentState::Failed);
  EXPECT_GT(punch.a().stats().rejected, 0U);
  EXPECT_GT(punch.b().stats().rejected, 0U);
  EXPECT_EQ(punch.a().stats().checks_received, 0U);
  EXPECT_EQ(punch.b().stats().checks_received, 0U);
}

TEST(PunchAgent, TheControlledSideNeverSelectsAPathItsOwnChecksDidNotProve) {
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  punch.make_agents(key(1), key(9));  // only B's checks fail at A
  const auto out = punch.run();
  EXPECT_GT(punch.b().stats().checks_received, 0U);  // A's nomination did arrive
  EXPECT_EQ(out.b, AgentState::Failed);
  EXPECT_FALSE(out.b_path);
  EXPECT_EQ(punch.b().stats().answers_received, 0U);
}

TEST(PunchAgent, ACheckReflectedToItsSenderIsRejected) {
  AgentConfig config;
  config.outgoing_key = key(1);
  config.incoming_key = key(2);
  config.remote = {make_candidate(CandidateType::Host, addr("192.0.2.9:6000"))};
  PunchAgent agent(config, seeded(3));
  agent.start(TimePoint{});
  auto check = agent.poll_transmit(TimePoint{});
  ASSERT_TRUE(check);
  // An attacker (or a hairpinning NAT) sends our own check back to us.
  EXPECT_EQ(agent.on_datagram(addr("192.0.2.9:6000"), check->payload, TimePoint{} + 1ms),
            PunchAgent::Disposition::Consumed);
  EXPECT_EQ(agent.stats().rejected, 1U);
  EXPECT_EQ(agent.stats().checks_received, 0U);
  EXPECT_FALSE(agent.poll_transmit(TimePoint{} + 1ms));  // nothing answered
}

TEST(PunchAgent, AnswersFromAnotherAddressDoNotValidateThePair) {
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  punch.make_agents();
  punch.a().start(TimePoint{});
  auto check = punch.a().poll_transmit(TimePoint{});
  ASSERT_TRUE(check);
  // B answers, but the answer arrives from a different address.
  ASSERT_EQ(punch.b().on_datagram(addr("198.51.100.7:5000"), check->payload, TimePoint{}),
            PunchAgent::Disposition::Consumed);
  auto answer = punch.b().poll_transmit(TimePoint{});
  ASSERT_TRUE(answer);
  EXPECT_EQ(punch.a().on_datagram(addr("192.0.2.9:6001"), answer->payload, TimePoint{} + 5ms),
            PunchAgent::Disposition::Consumed);
  EXPECT_EQ(punch.a().stats().rejected, 1U);
  EXPECT_EQ(punch.a().stats().answers_received, 0U);
}

TEST(PunchAgent, ForeignStunAndGarbageAreNotConsumed) {
  AgentConfig config;
  config.outgoing_key = key(1);
  config.incoming_key = key(2);
  PunchAgent agent(config, seeded(4));
  agent.start(TimePoint{});
  // A relay's answer to a transaction this agent never sent.
  stun::TransactionId id{};
  id[0] = 7;
  stun::MessageBuilder foreign(stun::Method::Binding, stun::MessageClass::SuccessResponse, id);
  foreign.add_xor_address(stun::attr::kXorMappedAddress, addr("198.51.100.7:5000"));
  EXPECT_EQ(agent.on_datagram(kRelay, std::move(foreign).finish(), TimePoint{}),
            PunchAgent::Disposition::NotMine);
  const wire::Bytes garbage = {0x40, 1, 2, 3};
  EXPECT_EQ(agent.on_datagram(kRelay, garbage, TimePoint{}), PunchAgent::Disposition::NotMine);
}

RC_GTEST_PROP(PunchAgentProperty, ArbitraryDatagramsNeverBreakTheAgent,
              (std::vector<std::uint8_t> data, bool stun_header)) {
  AgentConfig config;
  config.outgoing_key = key(1);
  config.incoming_key = key(2);
  config.remote = {make_candidate(CandidateType::Host, addr("192.0.2.9:6000"))};
  PunchAgent agent(config, seeded(5));
  agent.start(TimePoint{});
  if (stun_header && data.size() >= 20) {
    // Make it pass the cheap header checks so the parser and verifier see it.
    data[0] = 0x00;
    data[1] = 0x01;
    const auto body = (data.size() - 20) & ~std::size_t{3};
    data.resize(20 + body);
    data[2] = static_cast<std::uint8_t>(body >> 8);
    data[3] = static_cast<std::uint8_t>(body);
    data[4] = 0x21;
    data[5] = 0x12;
    data[6] = 0xA4;
    data[7] = 0x42;
  }
  (void)agent.on_datagram(addr("192.0.2.9:6000"), data, TimePoint{} + 1ms);
  RC_ASSERT(agent.stats().checks_received == 0U);
  RC_ASSERT(agent.state() == AgentState::Checking);
}

TEST(PunchAgent, KeepalivesHoldThePathAndItsLossIsDetected) {
  Punch punch(behind(kPort, "192.168.1.10:5000", "198.51.100.1"),
              behind(kPort, "192.168.2.10:6000", "192.0.2.1"));
  punch.keep_running();
  auto out = punch.run(0ms, 0ms, 60s);
  ASSERT_EQ(out.a, AgentState::Connected);
  ASSERT_EQ(out.b, AgentState::Connected);
  // 60 s connected: keepalives every 10 s from both sides, answered.
  EXPECT_GE(punch.a().stats().checks_sent, 5U);
  EXPECT_GE(punch.b().stats().checks_received, 5U);

  Punch cut(behind(kPort, "192.168.1.10:5000", "198.51.100.1"),
            behind(kPort, "192.168.2.10:6000", "192.0.2.1"));
  cut.keep_running();
  out = cut.run(0ms, 0ms, 5s);
  ASSERT_EQ(out.a, AgentState::Connected);
  cut.net().set_cut(true);
  out = cut.run(0ms, 0ms, 40s);  // agents already started: start() is a no-op
  EXPECT_EQ(out.a, AgentState::PathLost);
  EXPECT_EQ(out.b, AgentState::PathLost);
}

TEST(PunchAgent, APeerWhoseNatRebindsIsFollowedToItsNewAddress) {
  // Connected A <-> B; then B's NAT forgets its mapping and gives B a new public port.
  // B's traffic (QUIC, keepalives) now arrives from the new address; A checks it with the
  // PAKE key and moves the path there when B answers.
  Punch punch(on_internet("198.51.100.7:5000"), behind(kFull, "192.168.2.10:6000", "192.0.2.1"));
  punch.keep_running();
  auto out = punch.run(0ms, 0ms, 2s);
  ASSERT_EQ(out.a, AgentState::Connected);
  const auto old_address = out.a_path->remote.address;
  punch.net().rebind_all();
  out = punch.run(0ms, 0ms, 20s);  // B's keepalives come from the new mapping
  EXPECT_EQ(out.a, AgentState::Connected);
  ASSERT_TRUE(out.a_path);
  EXPECT_NE(out.a_path->remote.address, old_address);
  EXPECT_EQ(out.a_path->remote.address.ip(), old_address.ip());
  EXPECT_EQ(punch.a().migrations(), 1U);
}

TEST(PunchAgent, SpoofedSourcesCannotLockOutARealMove) {
  Punch punch(on_internet("198.51.100.7:5000"), behind(kFull, "192.168.2.10:6000", "192.0.2.1"));
  punch.keep_running();
  auto out = punch.run(0ms, 0ms, 2s);
  ASSERT_EQ(out.a, AgentState::Connected);
  // Far more spoofed sources than there are pair slots.
  for (int i = 0; i < 100; ++i) {
    const TimePoint t = TimePoint{} + 2s;  // the clock of the run above
    punch.a().note_traffic_from(
        base::SocketAddress(base::IpAddress::v4({203, 0, 113, static_cast<std::uint8_t>(i)}), 7000),
        t);
    while (punch.a().poll_transmit(t)) {
    }
  }
  punch.net().rebind_all();
  out = punch.run(0ms, 0ms, 20s);
  EXPECT_EQ(out.a, AgentState::Connected);
  EXPECT_EQ(punch.a().migrations(), 1U);
  EXPECT_EQ(out.a_path->remote.address.ip(), *base::IpAddress::parse("192.0.2.1"));
}

TEST(PunchAgent, TrafficFromAStrangerDoesNotMoveThePath) {
  Punch punch(on_internet("198.51.100.7:5000"), on_internet("192.0.2.9:6000"));
  punch.keep_running();
  auto out = punch.run(0ms, 0ms, 2s);
  ASSERT_EQ(out.a, AgentState::Connected);
  // Spoofed QUIC-looking traffic from elsewhere triggers one check there, which nobody
  // with the key answers: the path stays.
  const TimePoint t = TimePoint{} + 3s;
  punch.a().note_traffic_from(addr("203.0.113.66:4444"), t);
  auto probe = punch.a().poll_transmit(t);
  ASSERT_TRUE(probe);
  EXPECT_EQ(probe->destination, addr("203.0.113.66:4444"));
  punch.a().note_traffic_from(addr("203.0.113.66:4444"), t + 1ms);  // rate-limited
  EXPECT_FALSE(punch.a().poll_transmit(t + 1ms));
  EXPECT_EQ(punch.a().selected()->remote.address, addr("192.0.2.9:6000"));
  EXPECT_EQ(punch.a().migrations(), 0U);
}

TEST(PunchAgent, HostCandidatesSkipLinkLocalAndUnspecified) {
  const auto cands = host_candidates(
      {*base::IpAddress::parse("192.168.1.10"), *base::IpAddress::parse("fe80::1"),
       *base::IpAddress::parse("0.0.0.0"), *base::IpAddress::parse("127.0.0.1"),
       *base::IpAddress::parse("2001:db8::5"), *base::IpAddress::parse("192.168.1.10")},
      4000, false);
  ASSERT_EQ(cands.size(), 2U);
  EXPECT_EQ(cands[0].address, addr("192.168.1.10:4000"));
  EXPECT_EQ(cands[1].address, addr("[2001:db8::5]:4000"));
  EXPECT_EQ(host_candidates({*base::IpAddress::parse("127.0.0.1")}, 1, true).size(), 1U);
}

}  // namespace
}  // namespace peertun::traversal
