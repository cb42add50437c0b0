#include "link_sim.h"

#include <algorithm>

namespace peertun::quic::test {

bool Link::push(std::vector<std::uint8_t> datagram, TimePoint now) {
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  if (config_.loss > 0 && coin(rng_) < config_.loss) {
    ++lost;
    return false;
  }
  TimePoint leaves = now;
  if (config_.rate_bytes_per_second > 0) {
    const TimePoint start = std::max(now, bottleneck_free_);
    // Bytes already waiting = backlog time x rate; drop-tail beyond the queue.
    const auto backlog = std::chrono::duration<double>(start - now).count();
    if (backlog * static_cast<double>(config_.rate_bytes_per_second) >
        static_cast<double>(config_.queue_bytes)) {
      ++lost;
      return false;
    }
    const auto serialise = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(static_cast<double>(datagram.size()) /
                                      static_cast<double>(config_.rate_bytes_per_second)));
    bottleneck_free_ = start + serialise;
    leaves = bottleneck_free_;
  }
  auto at = leaves + config_.delay;
  if (config_.jitter.count() > 0) {
    std::uniform_int_distribution<std::int64_t> j(0, config_.jitter.count() - 1);
    at += std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(j(rng_)));
  }
  queue_.push({at, seq_++, std::move(datagram)});
  return true;
}

std::optional<TimePoint> Link::next_delivery() const {
  if (queue_.empty()) {
    return std::nullopt;
  }
  return queue_.top().at;
}

void Link::pop_due(TimePoint now, std::vector<std::vector<std::uint8_t>>& out) {
  while (!queue_.empty() && queue_.top().at <= now) {
    // priority_queue::top is const; the element is discarded right after.
    out.push_back(std::move(const_cast<InFlight&>(queue_.top()).data));
    queue_.pop();
    ++delivered;
  }
}

Simulator::Simulator(Connection& a, Connection& b, LinkConfig config, std::uint64_t seed)
    : a_to_b(config, seed * 2 + 1), b_to_a(config, seed * 2 + 2), a_(a), b_(b) {
  buffer_.resize(kMaxUdpPayload * kMaxBatchSegments);
}

void Simulator::flush_one(Connection& c, bool from_a) {
  // Bounded: a connection writes at most its congestion window before it must wait.
  for (int i = 0; i < 1000; ++i) {
    auto batch = c.write(buffer_, now);
    if (!batch || batch->bytes == 0) {
      return;
    }
    for (std::size_t off = 0; off < batch->bytes; off += batch->segment_size) {
      const std::size_t len = std::min(batch->segment_size, batch->bytes - off);
      std::span<const std::uint8_t> seg(buffer_.data() + off, len);
      if (on_send) {
        on_send(from_a, seg);
      }
      (from_a ? a_to_b : b_to_a).push({seg.begin(), seg.end()}, now);
    }
    const auto deadline = c.next_deadline();
    if (deadline && *deadline > now) {
      return;  // pacing: the rest waits for the timer
    }
  }
}

void Simulator::flush() {
  flush_one(a_, true);
  flush_one(b_, false);
}

void Simulator::inject(bool to_a, std::span<const std::uint8_t> datagram) {
  auto ec = (to_a ? a_ : b_).receive(datagram, now);
  if (ec) {
    (to_a ? a_error : b_error) = ec;
  }
}

bool Simulator::run_until(const std::function<bool()>& done, std::chrono::nanoseconds fake_limit,
                          std::uint64_t max_steps) {
  const TimePoint end = now + fake_limit;
  for (; steps < max_steps; ++steps) {
    if (on_step) {
      on_step();
    }
    flush();
    if (done()) {
      return true;
    }
    std::optional<TimePoint> next;
    auto consider = [&next](std::optional<TimePoint> t) {
      if (t && (!next || *t < *next)) {
        next = t;
      }
    };
    consider(a_to_b.next_delivery());
    consider(b_to_a.next_delivery());
    consider(a_.next_deadline());
    consider(b_.next_deadline());
    if (!next || *next > end) {
      return done();
    }
    // Deadlines already past are handled at the current time; time never runs backwards.
    now = std::max(now, *next);
    due_.clear();
    a_to_b.pop_due(now, due_);
    for (auto& d : due_) {
      inject(false, d);
    }
    due_.clear();
    b_to_a.pop_due(now, due_);
    for (auto& d : due_) {
      inject(true, d);
    }
    for (auto [c, err] : {std::pair{&a_, &a_error}, std::pair{&b_, &b_error}}) {
      const auto deadline = c->next_deadline();
      if (deadline && *deadline <= now) {
        if (auto ec = c->handle_timeout(now)) {
          *err = ec;
        }
      }
    }
  }
  return done();
}

}  // namespace peertun::quic::test
