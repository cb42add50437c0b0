#pragma once
// An in-memory network for two quic::Connections under a fake clock: per-direction
// one-way delay, random loss, reordering (jitter) and a rate-limited bottleneck with a
// drop-tail queue. Seeded, so a failing run repeats (TLS randomness aside). Learned from
// ngtcp2's examples/sim.h; written for our API.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <queue>
#include <random>
#include <vector>

#include "quic/core/connection.h"

namespace peertun::quic::test {

struct LinkConfig {
  std::chrono::nanoseconds delay = std::chrono::milliseconds(25);  // one way
  double loss = 0.0;                                               // 0..1
  std::chrono::nanoseconds jitter{0};       // extra uniform delay in [0, jitter): reorders
  std::uint64_t rate_bytes_per_second = 0;  // 0: unlimited
  std::size_t queue_bytes = 1 << 20;        // bottleneck queue (drop-tail)
};

class Link {
 public:
  Link(LinkConfig config, std::uint64_t seed) : config_(config), rng_(seed) {}
  // Returns false if the datagram was lost or tail-dropped.
  bool push(std::vector<std::uint8_t> datagram, TimePoint now);
  [[nodiscard]] std::optional<TimePoint> next_delivery() const;
  // Moves every datagram due at `now` into `out` (in delivery-time order).
  void pop_due(TimePoint now, std::vector<std::vector<std::uint8_t>>& out);
  void set_loss(double loss) { config_.loss = loss; }
  std::uint64_t delivered = 0;
  std::uint64_t lost = 0;

 private:
  struct InFlight {
    TimePoint at;
    std::uint64_t seq;
    std::vector<std::uint8_t> data;
    bool operator>(const InFlight& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  LinkConfig config_;
  std::mt19937_64 rng_;
  std::priority_queue<InFlight, std::vector<InFlight>, std::greater<>> queue_;
  TimePoint bottleneck_free_{};  // when the bottleneck finishes serialising its backlog
  std::uint64_t seq_ = 0;
};

class Simulator {
 public:
  // `a` is the server (peer A), `b` the client (peer B).
  Simulator(Connection& a, Connection& b, LinkConfig config, std::uint64_t seed);

  TimePoint now{std::chrono::seconds(1)};
  Link a_to_b;
  Link b_to_a;
  // Called for every datagram a connection sends (before the link), e.g. to record.
  std::function<void(bool from_a, std::span<const std::uint8_t>)> on_send;
  // Called after every step: the application's turn (write/read streams).
  std::function<void()> on_step;
  // Errors returned by receive()/handle_timeout(), per side (the last one).
  base::ErrorCode a_error;
  base::ErrorCode b_error;
  std::uint64_t steps = 0;

  // Runs until `done()` or `fake_limit` of simulated time or `max_steps`; returns done().
  bool run_until(const std::function<bool()>& done, std::chrono::nanoseconds fake_limit,
                 std::uint64_t max_steps = 20'000'000);
  // Sends whatever both connections have to send now.
  void flush();
  // Feeds one datagram to a connection as if it arrived now.
  void inject(bool to_a, std::span<const std::uint8_t> datagram);

 private:
  void flush_one(Connection& c, bool from_a);
  Connection& a_;
  Connection& b_;
  std::vector<std::uint8_t> buffer_;
  std::vector<std::vector<std::uint8_t>> due_;
};

}  // namespace peertun::quic::test
