#include "quic/core/connection.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>

#include "link_sim.h"
#include "quic/core/connection_id.h"
#include "quic/core/errc.h"
#include "test_data.h"

namespace peertun::quic {
namespace {

using namespace std::chrono_literals;
using test::LinkConfig;
using test::Simulator;

constexpr auto kStart = TimePoint(1s);

std::shared_ptr<const Identity> new_identity() {
  auto id = Identity::generate();
  EXPECT_TRUE(id) << id.error().message();
  return *id;
}

Fingerprint wrong_fingerprint() {
  Fingerprint f;
  f.bytes.fill(0x5a);
  return f;
}

// Peer A (server) and peer B (client), each pinning the other unless told otherwise.
struct Peers {
  explicit Peers(Config config = {}, std::optional<Fingerprint> a_expects = std::nullopt,
                 std::optional<Fingerprint> b_expects = std::nullopt)
      : id_a(new_identity()), id_b(new_identity()) {
    auto sa = Connection::server(id_a, a_expects.value_or(id_b->fingerprint()), config, kStart);
    auto cb = Connection::client(id_b, b_expects.value_or(id_a->fingerprint()), config, kStart);
    EXPECT_TRUE(sa && cb);
    a = std::make_unique<Connection>(std::move(*sa));
    b = std::make_unique<Connection>(std::move(*cb));
  }
  std::shared_ptr<const Identity> id_a;
  std::shared_ptr<const Identity> id_b;
  std::unique_ptr<Connection> a;
  std::unique_ptr<Connection> b;
};

LinkConfig rtt_50ms() {
  LinkConfig l;
  l.delay = 25ms;
  l.rate_bytes_per_second = 50'000'000;  // 400 Mbit/s bottleneck
  l.queue_bytes = 2'000'000;
  return l;
}

bool both_established(const Peers& p) { return p.a->is_established() && p.b->is_established(); }

// Moves `total` bytes of the pattern from `sender` to `receiver` over one stream the
// sender opens, hashing both ends.
struct Transfer {
  Transfer(Connection& s, Connection& r, std::uint64_t bytes)
      : sender(s), receiver(r), total(bytes), source(42), out(256 * 1024), in(256 * 1024) {}

  void step() {
    if (sid < 0 && sender.is_established()) {
      auto id = sender.open_stream();
      if (id) {
        sid = *id;
      }
    }
    while (sid >= 0 && written < total) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), total - written));
      source.fill(written, std::span(out).first(n));
      auto r = sender.write_stream(sid, std::span(out).first(n), written + n == total);
      if (!r || *r == 0) {
        break;
      }
      sent_hash.update(std::span(out).first(*r));
      written += *r;
    }
    if (rsid < 0) {
      if (auto id = receiver.accept_stream()) {
        rsid = *id;
      }
    }
    while (rsid >= 0 && !fin) {
      auto r = receiver.read_stream(rsid, in);
      if (!r) {
        read_error = r.error();
        break;
      }
      received_hash.update(std::span(in).first(r->bytes));
      received += r->bytes;
      fin = r->fin;
      if (r->bytes == 0) {
        break;
      }
    }
  }

  Connection& sender;
  Connection& receiver;
  std::uint64_t total;
  test::PatternSource source;
  std::vector<std::uint8_t> out;
  std::vector<std::uint8_t> in;
  test::Sha256 sent_hash;
  test::Sha256 received_hash;
  StreamId sid = -1;
  StreamId rsid = -1;
  std::uint64_t written = 0;
  std::uint64_t received = 0;
  bool fin = false;
  base::ErrorCode read_error;
};

TEST(ConnectionTest, HandshakeCompletesAt50msRtt) {
  Peers p;
  Simulator sim(*p.a, *p.b, rtt_50ms(), 1);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  EXPECT_NE(p.a->take_events() & kEventHandshakeDone, 0u);
  EXPECT_NE(p.b->take_events() & kEventHandshakeDone, 0u);
  EXPECT_FALSE(p.a->error());
  EXPECT_FALSE(p.b->error());
  // 1 RTT for the client's flight, about 1.5 for the server to see the client Finished.
  EXPECT_LT(sim.now - kStart, 1s);
}

TEST(ConnectionTest, ClientRefusesAServerWhoseCertificateIsNotPinned) {
  Peers p({}, std::nullopt, wrong_fingerprint());
  Simulator sim(*p.a, *p.b, rtt_50ms(), 2);
  ASSERT_TRUE(sim.run_until([&] { return p.a->is_closed() && p.b->is_closed(); }, 30s));
  EXPECT_EQ(p.b->error(), make_error_code(Errc::PeerCertificateMismatch));
  EXPECT_EQ(p.a->error(), make_error_code(Errc::CertificateRejectedByPeer));
  EXPECT_EQ(p.b->error().message(),
            "peer's certificate does not match the fingerprint exchanged with the join code");
  EXPECT_NE(p.a->error().message().find("fingerprint exchanged with the join code"),
            std::string::npos);
}

TEST(ConnectionTest, ServerRefusesAClientWhoseCertificateIsNotPinned) {
  Peers p({}, wrong_fingerprint(), std::nullopt);
  Simulator sim(*p.a, *p.b, rtt_50ms(), 3);
  ASSERT_TRUE(sim.run_until([&] { return p.a->is_closed() && p.b->is_closed(); }, 30s));
  EXPECT_EQ(p.a->error(), make_error_code(Errc::PeerCertificateMismatch));
  EXPECT_EQ(p.b->error(), make_error_code(Errc::CertificateRejectedByPeer));
  EXPECT_FALSE(p.a->is_established());
}

void transfer_64mib(double loss, std::uint64_t seed) {
  Peers p;
  LinkConfig link = rtt_50ms();
  link.loss = loss;
  link.jitter = 1ms;  // reorders back-to-back packets
  Simulator sim(*p.a, *p.b, link, seed);
  constexpr std::uint64_t kBytes = 64ull << 20;
  Transfer t(*p.a, *p.b, kBytes);
  sim.on_step = [&] { t.step(); };
  ASSERT_TRUE(sim.run_until([&] { return t.fin; }, 600s))
      << "received " << t.received << " of " << kBytes << " by fake time "
      << (sim.now - kStart).count() << " ns, a: " << p.a->error().message()
      << ", b: " << p.b->error().message();
  EXPECT_FALSE(t.read_error);
  EXPECT_EQ(t.received, kBytes);
  EXPECT_EQ(t.received_hash.hex(), t.sent_hash.hex());
  if (loss > 0) {
    EXPECT_GT(sim.a_to_b.lost, 0u);
  }
}

TEST(ConnectionTest, SixtyFourMiBArriveIntactWithoutLoss) { transfer_64mib(0.0, 4); }

TEST(ConnectionTest, SixtyFourMiBArriveIntactWithTwoPercentLoss) { transfer_64mib(0.02, 5); }

TEST(ConnectionTest, EveryPacketIsDistinguishableFromStun) {
  Peers p;
  Simulator sim(*p.a, *p.b, rtt_50ms(), 6);
  std::uint64_t packets = 0;
  std::uint64_t greased = 0;
  std::uint64_t stun_like = 0;
  sim.on_send = [&](bool, std::span<const std::uint8_t> d) {
    ++packets;
    if (!d.empty() && d[0] < 4) {
      ++greased;
    }
    if (looks_like_stun(d)) {
      ++stun_like;
    }
  };
  Transfer t(*p.b, *p.a, 8 << 20);
  sim.on_step = [&] { t.step(); };
  ASSERT_TRUE(sim.run_until([&] { return t.fin; }, 120s));
  EXPECT_EQ(stun_like, 0u) << "of " << packets << " packets, " << greased << " start with 0-3";
  for (const auto* c : {p.a.get(), p.b.get()}) {
    const auto ids = c->local_connection_ids();
    EXPECT_GE(ids.size(), 2u);
    for (const auto& id : ids) {
      ASSERT_GE(id.size(), 7u);
      EXPECT_FALSE(std::equal(kStunMagicCookie.begin(), kStunMagicCookie.end(), id.begin() + 3));
    }
  }
}

TEST(ConnectionTest, DatagramsArriveIntactOrNotAtAll) {
  Peers p;
  LinkConfig link = rtt_50ms();
  link.loss = 0.02;
  link.jitter = 2ms;
  Simulator sim(*p.a, *p.b, link, 7);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  const std::size_t max = p.b->max_datagram_payload();
  ASSERT_GE(max, 1000u);
  // Datagram i: 4-byte index, then bytes derived from it; sizes vary up to the maximum.
  auto make = [max](std::uint32_t i) {
    std::vector<std::uint8_t> d(8 + (i * 37) % (max - 8));
    std::memcpy(d.data(), &i, 4);
    const auto len = static_cast<std::uint32_t>(d.size());
    std::memcpy(d.data() + 4, &len, 4);
    for (std::size_t k = 8; k < d.size(); ++k) {
      d[k] = static_cast<std::uint8_t>(i * 131 + k);
    }
    return d;
  };
  constexpr std::uint32_t kCount = 2000;
  std::uint32_t sent = 0;
  std::uint32_t received = 0;
  std::uint32_t corrupted = 0;
  std::vector<std::uint8_t> in(2048);
  sim.on_step = [&] {
    // Like a tunnel that respects backpressure: keep a small backlog queued.
    while (p.b->pending_datagrams() < 32 && sent < kCount) {
      ASSERT_FALSE(p.b->send_datagram(make(sent)));
      ++sent;
    }
    while (auto n = p.a->receive_datagram(in)) {
      ++received;
      std::uint32_t i = 0;
      std::uint32_t len = 0;
      std::memcpy(&i, in.data(), 4);
      std::memcpy(&len, in.data() + 4, 4);
      if (i >= kCount || len != *n || make(i) != std::vector(in.begin(), in.begin() + *n)) {
        ++corrupted;
      }
    }
  };
  ASSERT_TRUE(sim.run_until([&] { return sent == kCount; }, 60s));
  // Then let the queues drain (fake time).
  const auto drained = sim.now + 3s;
  sim.run_until([&] { return sim.now >= drained; }, 4s);
  sim.on_step();
  EXPECT_EQ(corrupted, 0u);
  EXPECT_LE(received, kCount);
  EXPECT_GT(received, kCount * 9 / 10)
      << "dropped by the sender " << p.b->stats().quic_datagrams_dropped << ", by the link "
      << sim.b_to_a.lost;
  // Too big is refused up front, never silently stuck in the queue.
  std::vector<std::uint8_t> huge(p.b->max_datagram_payload() + 1);
  EXPECT_EQ(p.b->send_datagram(huge), make_error_code(Errc::DatagramTooLarge));
}

TEST(ConnectionTest, GarbageAndReplayedDatagramsAreHarmless) {
  Peers p;
  Simulator sim(*p.a, *p.b, rtt_50ms(), 8);
  std::vector<std::vector<std::uint8_t>> from_b;
  std::vector<std::vector<std::uint8_t>> from_a;
  sim.on_send = [&](bool from_server, std::span<const std::uint8_t> d) {
    auto& log = from_server ? from_a : from_b;
    if (log.size() < 400) {
      log.emplace_back(d.begin(), d.end());
    }
  };
  // Garbage before the handshake reaches the waiting server too.
  std::mt19937_64 rng(99);
  auto garbage = [&rng](std::size_t n) {
    std::vector<std::uint8_t> g(n);
    for (auto& x : g) {
      x = static_cast<std::uint8_t>(rng());
    }
    return g;
  };
  for (int i = 0; i < 50; ++i) {
    sim.inject(true, garbage(1 + rng() % 1500));
  }
  Transfer t(*p.a, *p.b, 16 << 20);
  int rounds = 0;
  sim.on_step = [&] {
    t.step();
    if (++rounds % 50 != 0 || !both_established(p)) {
      return;
    }
    // Replays of recorded packets (Initial, Handshake and 1-RTT), bit-flipped copies,
    // random bytes, and random bytes dressed as short headers.
    for (bool to_a : {true, false}) {
      const auto& log = to_a ? from_b : from_a;
      if (!log.empty()) {
        auto replay = log[rng() % log.size()];
        sim.inject(to_a, replay);
        replay[rng() % replay.size()] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        sim.inject(to_a, replay);
      }
      sim.inject(to_a, garbage(rng() % 1500));
      auto fake = garbage(60);
      fake[0] = static_cast<std::uint8_t>(0x40 | (fake[0] & 0x3f));
      sim.inject(to_a, fake);
    }
  };
  ASSERT_TRUE(sim.run_until([&] { return t.fin; }, 300s))
      << "a: " << p.a->error().message() << " b: " << p.b->error().message();
  EXPECT_FALSE(sim.a_error) << sim.a_error.message();
  EXPECT_FALSE(sim.b_error) << sim.b_error.message();
  EXPECT_EQ(t.received_hash.hex(), t.sent_hash.hex());
  EXPECT_TRUE(both_established(p));
  EXPECT_GT(p.a->stats().datagrams_dropped + p.b->stats().datagrams_dropped, 0u);
}

TEST(ConnectionTest, IdleTimeoutFiresWhenThePeerGoesSilent) {
  Config config;
  config.idle_timeout = 3s;
  config.keepalive_interval = 0s;
  Peers p(config);
  Simulator sim(*p.a, *p.b, rtt_50ms(), 9);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  const auto silent_from = sim.now;
  sim.a_to_b.set_loss(1.0);
  sim.b_to_a.set_loss(1.0);
  ASSERT_TRUE(sim.run_until([&] { return p.a->is_closed() && p.b->is_closed(); }, 60s));
  EXPECT_EQ(p.a->error(), make_error_code(Errc::IdleTimeout));
  EXPECT_EQ(p.b->error(), make_error_code(Errc::IdleTimeout));
  EXPECT_GE(sim.now - silent_from, 3s);
}

TEST(ConnectionTest, KeepaliveHoldsAQuietConnectionOpen) {
  Config config;
  config.idle_timeout = 3s;
  config.keepalive_interval = 1s;
  Peers p(config);
  Simulator sim(*p.a, *p.b, rtt_50ms(), 10);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  const auto until = sim.now + 30s;
  sim.run_until([&] { return sim.now >= until || p.a->is_closed() || p.b->is_closed(); }, 31s);
  EXPECT_TRUE(both_established(p));
}

TEST(ConnectionTest, GracefulCloseCarriesCodeAndReasonToThePeer) {
  Peers p;
  Simulator sim(*p.a, *p.b, rtt_50ms(), 11);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  p.a->close(42, "share stopped by user");
  ASSERT_TRUE(sim.run_until([&] { return p.a->is_closed() && p.b->is_closed(); }, 30s));
  EXPECT_EQ(p.a->error(), make_error_code(Errc::ClosedLocally));
  EXPECT_EQ(p.b->error(), make_error_code(Errc::ClosedByPeer));
  ASSERT_TRUE(p.b->close_info());
  EXPECT_TRUE(p.b->close_info()->by_peer);
  EXPECT_TRUE(p.b->close_info()->application);
  EXPECT_EQ(p.b->close_info()->code, 42u);
  EXPECT_EQ(p.b->close_info()->reason, "share stopped by user");
  ASSERT_TRUE(p.a->close_info());
  EXPECT_FALSE(p.a->close_info()->by_peer);
  EXPECT_EQ(p.a->close_info()->code, 42u);
}

TEST(ConnectionTest, StreamResetReachesThePeerWithItsCode) {
  Peers p;
  Simulator sim(*p.a, *p.b, rtt_50ms(), 12);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  auto sid = p.b->open_stream();
  ASSERT_TRUE(sid);
  std::vector<std::uint8_t> data(5000, 1);
  ASSERT_EQ(*p.b->write_stream(*sid, data, false), data.size());
  std::optional<StreamId> accepted;
  ASSERT_TRUE(sim.run_until([&] { return (accepted = p.a->accept_stream()).has_value(); }, 5s));
  ASSERT_FALSE(p.b->reset_stream(*sid, 7));
  std::vector<std::uint8_t> in(10000);
  base::ErrorCode read_error;
  ASSERT_TRUE(sim.run_until(
      [&] {
        auto r = p.a->read_stream(*accepted, in);
        if (!r) {
          read_error = r.error();
        }
        return !r;
      },
      5s));
  EXPECT_EQ(read_error, make_error_code(Errc::StreamReset));
  EXPECT_EQ(p.b->write_stream(*sid, data, false).error(), make_error_code(Errc::UnknownStream));
  EXPECT_TRUE(both_established(p));
}

TEST(ConnectionTest, WritesAreBoundedByTheSendBuffer) {
  Config config;
  config.stream_send_buffer = 100'000;
  Peers p(config);
  Simulator sim(*p.a, *p.b, rtt_50ms(), 13);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  auto sid = p.b->open_stream();
  ASSERT_TRUE(sid);
  std::vector<std::uint8_t> data(250'000, 3);
  EXPECT_EQ(*p.b->write_stream(*sid, data, true), 100'000u);
  EXPECT_EQ(p.b->stream_send_space(*sid), 0u);
  EXPECT_EQ(*p.b->write_stream(*sid, data, true), 0u);
  // Acknowledgements free room; the FIN applies only once everything was taken.
  ASSERT_TRUE(sim.run_until([&] { return p.b->stream_send_space(*sid) > 0; }, 10s));
  EXPECT_GT(*p.b->write_stream(*sid, std::span(data).first(1000), true), 0u);
  EXPECT_EQ(p.b->write_stream(*sid, data, false).error(), make_error_code(Errc::StreamFinished));
}

TEST(ConnectionTest, MisuseIsReportedNotFatal) {
  Peers p;
  EXPECT_EQ(p.b->open_stream().error(), make_error_code(Errc::NotConnected));
  std::vector<std::uint8_t> small(10);
  EXPECT_EQ(p.b->send_datagram(small), make_error_code(Errc::NotConnected));
  Simulator sim(*p.a, *p.b, rtt_50ms(), 14);
  ASSERT_TRUE(sim.run_until([&] { return both_established(p); }, 10s));
  EXPECT_EQ(p.a->write_stream(12345, small, false).error(), make_error_code(Errc::UnknownStream));
  EXPECT_EQ(p.a->read_stream(12345, small).error(), make_error_code(Errc::UnknownStream));
  std::vector<std::uint8_t> tiny(10);
  EXPECT_EQ(p.a->write(tiny, sim.now).error(), make_error_code(Errc::InternalError));
  EXPECT_TRUE(both_established(p));
}

TEST(ConnectionTest, ServerWithoutAClientTimesOut) {
  Config config;
  config.handshake_timeout = 2s;
  auto id = new_identity();
  auto server = Connection::server(id, wrong_fingerprint(), config, kStart);
  ASSERT_TRUE(server);
  auto deadline = server->next_deadline();
  ASSERT_TRUE(deadline);
  EXPECT_EQ(server->handle_timeout(*deadline), make_error_code(Errc::HandshakeTimeout));
  EXPECT_TRUE(server->is_closed());
}

}  // namespace
}  // namespace peertun::quic
