#include "traversal/punch_agent.h"

#include <algorithm>
#include <array>

namespace peertun::traversal {

std::string_view to_string(AgentState state) {
  switch (state) {
    case AgentState::Idle:
      return "idle";
    case AgentState::Checking:
      return "checking";
    case AgentState::Connected:
      return "connected";
    case AgentState::Failed:
      return "failed";
    case AgentState::PathLost:
      return "path_lost";
  }
  return "unknown";
}

namespace {

std::string seconds_text(Clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  return std::to_string(ms) + "ms";
}

}  // namespace

PunchAgent::PunchAgent(AgentConfig config, RandomSource random)
    : config_(std::move(config)), random_(std::move(random)) {
  std::array<std::uint8_t, 8> tb{};
  random_(tb);
  for (auto b : tb) {
    tie_breaker_ = (tie_breaker_ << 8U) | b;
  }
  // RFC 8445 §7.1.1: PRIORITY is what our peer-reflexive candidate would get. We cannot
  // know its address, so it takes the public-IPv4 local preference.
  peer_reflexive_priority_ =
      (kPeerReflexiveTypePreference << 24U) + (kIpv4LocalPreference << 8U) + 255U;
  auto remote = std::move(config_.remote);
  config_.remote.clear();
  for (const auto& c : remote) {
    if (pairs_.size() >= kMaxRemoteCandidates) {
      break;
    }
    if (!find_pair(c.address) && c.address.port() != 0 && !c.address.ip().is_unspecified()) {
      add_pair(c);
    }
  }
}

std::size_t PunchAgent::add_pair(const Candidate& remote) {
  pairs_.push_back(new_pair(remote));
  return pairs_.size() - 1;
}

PunchAgent::Pair PunchAgent::new_pair(const Candidate& remote) const {
  // Our best local candidate of the same family stands for "the local side": one socket
  // serves every pair, so only the priority depends on it.
  std::uint32_t local = peer_reflexive_priority_;
  for (const auto& c : config_.local) {
    if (c.address.family() == remote.address.family()) {
      local = std::max(local, c.priority);
    }
  }
  const bool controlling = config_.role == AgentRole::Controlling;
  Pair pair;
  pair.remote = remote;
  pair.priority =
      controlling ? pair_priority(local, remote.priority) : pair_priority(remote.priority, local);
  return pair;
}

std::optional<std::size_t> PunchAgent::find_pair(const base::SocketAddress& address) const {
  for (std::size_t i = 0; i < pairs_.size(); ++i) {
    if (pairs_[i].remote.address == address) {
      return i;
    }
  }
  return std::nullopt;
}

std::vector<Candidate> PunchAgent::remote_candidates() const {
  std::vector<Candidate> out;
  out.reserve(pairs_.size());
  for (const auto& p : pairs_) {
    out.push_back(p.remote);
  }
  return out;
}

void PunchAgent::expect_fire(TimePoint now) {
  if (state_ == AgentState::Idle && !fire_deadline_) {
    fire_deadline_ = now + config_.fire_timeout;
  }
}

void PunchAgent::start(TimePoint now) {
  if (state_ != AgentState::Idle) {
    return;
  }
  state_ = AgentState::Checking;
  started_ = now;
  next_pacing_slot_ = now;
  for (auto& p : pairs_) {
    p.next_check = now;
  }
}

PunchAgent::Disposition PunchAgent::on_datagram(const base::SocketAddress& from,
                                                wire::ByteView datagram, TimePoint now) {
  auto message = stun::parse(datagram);
  if (!message || message->method() != stun::Method::Binding) {
    return Disposition::NotMine;
  }
  switch (message->message_class()) {
    case stun::MessageClass::Request:
      on_request(from, *message, now);
      return Disposition::Consumed;
    case stun::MessageClass::SuccessResponse:
    case stun::MessageClass::ErrorResponse: {
      const auto id = message->transaction_id();
      const auto it = std::find_if(outstanding_.begin(), outstanding_.end(),
                                   [&](const Outstanding& o) { return o.id == id; });
      if (it == outstanding_.end()) {
        return Disposition::NotMine;
      }
      // Only a valid answer closes the transaction: a forged one (someone who saw the
      // transaction id) must not cancel the real answer still on its way.
      if (on_answer(from, *message, *it, now)) {
        outstanding_.erase(it);
      }
      return Disposition::Consumed;
    }
    case stun::MessageClass::Indication:
      break;
  }
  return Disposition::NotMine;
}

void PunchAgent::on_request(const base::SocketAddress& from, const stun::MessageView& message,
                            TimePoint now) {
  if (state_ == AgentState::Failed) {
    return;  // final: a peer that still thinks it has a path must find out it has none
  }
  if (message.fingerprint_offset() && !stun::verify_fingerprint(message)) {
    ++stats_.rejected;
    return;
  }
  if (!stun::verify_message_integrity(message, config_.incoming_key)) {
    ++stats_.rejected;
    return;
  }
  ++stats_.checks_received;

  // RFC 8445 §7.3.1.1 answer first: the peer is waiting on it, whatever we do next.
  stun::MessageBuilder answer(stun::Method::Binding, stun::MessageClass::SuccessResponse,
                              message.transaction_id());
  answer.add_xor_address(stun::attr::kXorMappedAddress, from);
  answers_.push_back(Transmit{from, std::move(answer).finish(config_.incoming_key)});

  std::optional<std::uint32_t> claimed_priority;
  if (auto p = message.find(stun::attr::kPriority)) {
    if (auto v = stun::decode_u32(*p)) {
      claimed_priority = *v;
    }
  }
  if (state_ == AgentState::Connected || state_ == AgentState::PathLost) {
    // After selection a check from elsewhere means the peer's address changed.
    if (!selected_ || selected_->remote.address != from) {
      probe(from, claimed_priority, now);
    }
    return;
  }
  auto index = find_pair(from);
  if (!index) {
    // RFC 8445 §7.3.1.3: a peer-reflexive candidate, prioritised by the peer's PRIORITY.
    if (peer_reflexive_count_ >= kMaxPeerReflexive || pairs_.size() >= kMaxRemoteCandidates) {
      return;
    }
    const std::uint32_t priority =
        claimed_priority.value_or(candidate_priority(CandidateType::PeerReflexive, from));
    ++peer_reflexive_count_;
    index = add_pair(Candidate{CandidateType::PeerReflexive, from, priority});
    pairs_[*index].next_check = now;
  }
  // Consent (RFC 7675 §5.1) comes only from answers to our own fresh checks: a check of
  // the peer's proves nothing about our direction and can be a replay.
  auto& pair = pairs_[*index];
  pair.inbound = true;
  note_both_ways(pair, now);
  const bool use_candidate = message.find(stun::attr::kUseCandidate).has_value();
  if (config_.role == AgentRole::Controlled && use_candidate && !selected_pair_) {
    pair.nominated = true;
    if (pair.state == PairState::Succeeded && state_ == AgentState::Checking) {
      select(*index, now);
      return;
    }
  }
  // RFC 8445 §7.3.1.4 triggered check: the path just proved open inbound, so check it
  // outbound at once instead of waiting for its turn.
  if (pair.state != PairState::Succeeded && state_ == AgentState::Checking) {
    pair.next_check = now;
    pair.triggered = true;
  }
}

bool PunchAgent::on_answer(const base::SocketAddress& from, const stun::MessageView& message,
                           const Outstanding& tx, TimePoint now) {
  if (tx.pair >= pairs_.size()) {
    return true;
  }
  auto& pair = pairs_[tx.pair];
  // RFC 8445 §7.2.5.2.1: an answer from another address than the check went to fails
  // the check (a NAT rewrote it: not a usable symmetric path).
  if (from != pair.remote.address ||
      (message.fingerprint_offset() && !stun::verify_fingerprint(message)) ||
      !stun::verify_message_integrity(message, config_.outgoing_key)) {
    ++stats_.rejected;
    return false;
  }
  ++stats_.answers_received;
  if (message.message_class() != stun::MessageClass::SuccessResponse ||
      state_ == AgentState::Failed) {
    return true;  // an error only comes from a broken peer; after failing, nothing counts
  }
  if (auto mapped = message.find(stun::attr::kXorMappedAddress)) {
    if (auto address = stun::decode_xor_address(*mapped, message.transaction_id())) {
      seen_by_peer_ = *address;
    }
  }
  pair.rtt = now - tx.sent;
  if (pair.state != PairState::Succeeded) {
    pair.state = PairState::Succeeded;
    if (!first_valid_at_) {
      first_valid_at_ = now;
    }
  }
  note_both_ways(pair, now);
  if (selected_pair_ == tx.pair) {
    last_consent_ = now;
    selected_->rtt = *pair.rtt;
    selected_->seen_by_peer = seen_by_peer_;
    if (state_ == AgentState::PathLost) {
      state_ = AgentState::Connected;  // it answers again
    }
    return true;
  }
  if (selected_pair_ && (state_ == AgentState::Connected || state_ == AgentState::PathLost)) {
    // The peer answered, with our key, from a new address. Move there when it is at least
    // as good as the current path (a rebound NAT's fresh mapping is peer-reflexive, which
    // ranks with or above the server-reflexive pair it replaces), or when the current
    // path has gone quiet. Not when a worse path merely answers too (a hairpin route
    // next to the LAN pair). QUIC above does not notice the move.
    const bool as_good = pair.priority >= pairs_[*selected_pair_].priority;
    const bool current_quiet = now - last_consent_ >= kQuietPath;
    if (as_good || current_quiet || state_ == AgentState::PathLost) {
      ++migrations_;
      select(tx.pair, now);
    }
    return true;
  }
  if (selected_pair_ || state_ != AgentState::Checking) {
    return true;
  }
  if (config_.role == AgentRole::Controlling && tx.use_candidate && nominating_ == tx.pair) {
    select(tx.pair, now);
  } else if (config_.role == AgentRole::Controlled && pair.nominated) {
    select(tx.pair, now);
  }
  return true;
}

void PunchAgent::note_both_ways(const Pair& pair, TimePoint now) {
  if (!first_both_ways_at_ && pair.inbound && pair.state == PairState::Succeeded &&
      state_ != AgentState::Idle) {
    first_both_ways_at_ = now;
  }
}

std::optional<Clock::duration> PunchAgent::time_to_first_path() const {
  if (!first_both_ways_at_) {
    return std::nullopt;
  }
  return *first_both_ways_at_ - started_;
}

void PunchAgent::select(std::size_t pair, TimePoint now) {
  selected_pair_ = pair;
  const auto& p = pairs_[pair];
  selected_ = SelectedPath{p.remote, p.rtt.value_or(Clock::duration{}), seen_by_peer_};
  state_ = AgentState::Connected;
  last_consent_ = now;
  next_keepalive_ = now + config_.keepalive_interval;
}

std::optional<std::size_t> PunchAgent::best_valid_pair() const {
  std::optional<std::size_t> best;
  for (std::size_t i = 0; i < pairs_.size(); ++i) {
    if (pairs_[i].state == PairState::Succeeded &&
        (!best || pairs_[i].priority > pairs_[*best].priority)) {
      best = i;
    }
  }
  return best;
}

std::optional<std::size_t> PunchAgent::next_pair_due(TimePoint now) const {
  // Triggered checks first (RFC 8445 §6.1.4.1); then the most overdue pair, priority
  // breaking ties. Picking by priority alone would starve the reflexive pairs behind a
  // peer with many host addresses: every host pair is due again before they get a turn.
  std::optional<std::size_t> due;
  auto better = [&](const Pair& p, const Pair& d) {
    if (p.triggered != d.triggered) {
      return p.triggered;
    }
    if (p.next_check != d.next_check) {
      return p.next_check < d.next_check;
    }
    return p.priority > d.priority;
  };
  for (std::size_t i = 0; i < pairs_.size(); ++i) {
    const auto& p = pairs_[i];
    if (p.state == PairState::Succeeded || p.next_check > now) {
      continue;
    }
    if (!due || better(p, pairs_[*due])) {
      due = i;
    }
  }
  return due;
}

Clock::duration PunchAgent::retransmit_interval(const Pair& pair) const {
  // 25, 50, 100, 200, 200... ms; but RFC 8445 §14.3: every unanswered pair gets its turn
  // before any is retried.
  const Clock::duration backoff =
      pair.checks >= 4 ? Clock::duration(kCheckRetransmitInterval)
                       : Clock::duration(kFirstCheckRetransmit * (1L << (pair.checks - 1)));
  std::size_t waiting = 0;
  for (const auto& p : pairs_) {
    waiting += p.state == PairState::Succeeded ? 0 : 1;
  }
  return std::max<Clock::duration>(backoff, kCheckPacing * static_cast<long>(waiting));
}

void PunchAgent::advance(TimePoint now) {
  if (state_ == AgentState::Idle && fire_deadline_ && now >= *fire_deadline_) {
    state_ = AgentState::Failed;
    failure_reason_ = "the relay did not start the punch within " +
                      seconds_text(config_.fire_timeout) + " of both peers being ready";
    answers_.clear();
    outstanding_.clear();
    return;
  }
  if (state_ == AgentState::Checking && !selected_pair_ &&
      now - started_ >= config_.attempt_timeout) {
    state_ = AgentState::Failed;
    failure_reason_ = "no answer from any of the peer's " + std::to_string(pairs_.size()) +
                      " address" + (pairs_.size() == 1 ? "" : "es") + " within " +
                      seconds_text(config_.attempt_timeout);
    answers_.clear();
    outstanding_.clear();
    return;
  }
  if (state_ == AgentState::Connected && now - last_consent_ >= kConsentTimeout) {
    state_ = AgentState::PathLost;
    failure_reason_ = "the direct path stopped answering for " + seconds_text(kConsentTimeout);
    return;
  }
  if (state_ == AgentState::Checking && config_.role == AgentRole::Controlling && !nominating_ &&
      first_valid_at_) {
    const auto best = best_valid_pair();
    std::uint64_t top = 0;
    for (const auto& p : pairs_) {
      top = std::max(top, p.priority);
    }
    if (best && (pairs_[*best].priority == top || now - *first_valid_at_ >= kNominationDelay)) {
      nominating_ = best;
      next_nomination_check_ = now;
    }
  }
}

Transmit PunchAgent::make_check(std::size_t pair, bool use_candidate, TimePoint now) {
  stun::TransactionId id{};
  random_(id);
  stun::MessageBuilder check(stun::Method::Binding, stun::MessageClass::Request, id);
  check.add_u32(stun::attr::kPriority, peer_reflexive_priority_);
  check.add_u64(config_.role == AgentRole::Controlling ? stun::attr::kIceControlling
                                                       : stun::attr::kIceControlled,
                tie_breaker_);
  if (use_candidate) {
    check.add(stun::attr::kUseCandidate, {});
  }
  if (outstanding_.size() >= kMaxOutstandingChecks) {
    outstanding_.pop_front();
  }
  outstanding_.push_back(Outstanding{id, pair, now, use_candidate});
  ++stats_.checks_sent;
  return Transmit{pairs_[pair].remote.address, std::move(check).finish(config_.outgoing_key)};
}

std::optional<Transmit> PunchAgent::poll_transmit(TimePoint now) {
  advance(now);
  if (!answers_.empty()) {
    Transmit t = std::move(answers_.front());
    answers_.pop_front();
    return t;
  }
  if (state_ == AgentState::Connected || state_ == AgentState::PathLost) {
    for (std::size_t i = 0; i < pairs_.size(); ++i) {
      if (pairs_[i].probe_due) {
        pairs_[i].probe_due = false;
        pairs_[i].last_probe = now;
        return make_check(i, false, now);
      }
    }
    if (state_ == AgentState::Connected && now >= next_keepalive_ && selected_pair_) {
      next_keepalive_ = now + config_.keepalive_interval;
      return make_check(*selected_pair_, false, now);
    }
    return std::nullopt;
  }
  if (state_ != AgentState::Checking || now < next_pacing_slot_) {
    return std::nullopt;
  }
  if (nominating_ && now >= next_nomination_check_) {
    next_nomination_check_ = now + kCheckRetransmitInterval;
    next_pacing_slot_ = now + kCheckPacing;
    return make_check(*nominating_, true, now);
  }
  const auto due = next_pair_due(now);
  if (!due) {
    return std::nullopt;
  }
  auto& pair = pairs_[*due];
  pair.state = PairState::InProgress;
  pair.triggered = false;
  ++pair.checks;
  pair.next_check = now + retransmit_interval(pair);
  next_pacing_slot_ = now + kCheckPacing;
  return make_check(*due, false, now);
}

std::optional<TimePoint> PunchAgent::next_deadline() const {
  if (!answers_.empty()) {
    return TimePoint::min();
  }
  switch (state_) {
    case AgentState::Idle:
      return fire_deadline_;
    case AgentState::Failed:
      return std::nullopt;
    case AgentState::PathLost:
    case AgentState::Connected:
      for (const auto& p : pairs_) {
        if (p.probe_due) {
          return TimePoint::min();
        }
      }
      if (state_ == AgentState::PathLost) {
        return std::nullopt;
      }
      return std::min(next_keepalive_, last_consent_ + kConsentTimeout);
    case AgentState::Checking:
      break;
  }
  TimePoint deadline = started_ + config_.attempt_timeout;
  std::optional<TimePoint> work;
  if (nominating_) {
    work = next_nomination_check_;
  } else if (config_.role == AgentRole::Controlling && first_valid_at_) {
    work = *first_valid_at_ + kNominationDelay;
  }
  for (const auto& p : pairs_) {
    if (p.state != PairState::Succeeded && (!work || p.next_check < *work)) {
      work = p.next_check;
    }
  }
  if (work) {
    deadline = std::min(deadline, std::max(*work, next_pacing_slot_));
  }
  return deadline;
}

void PunchAgent::note_traffic_from(const base::SocketAddress& from, TimePoint now) {
  if (!selected_ || (state_ != AgentState::Connected && state_ != AgentState::PathLost)) {
    return;
  }
  if (selected_->remote.address == from) {
    if (state_ == AgentState::Connected) {
      last_consent_ = now;
    }
    return;
  }
  probe(from, std::nullopt, now);
}

void PunchAgent::probe(const base::SocketAddress& from, std::optional<std::uint32_t> priority,
                       TimePoint now) {
  auto index = find_pair(from);
  if (!index) {
    const Candidate candidate{
        CandidateType::PeerReflexive, from,
        priority.value_or(candidate_priority(CandidateType::PeerReflexive, from))};
    if (pairs_.size() < kMaxRemoteCandidates) {
      index = add_pair(candidate);
    } else {
      // Full (someone sprays spoofed sources): reuse the stalest never-proven
      // peer-reflexive slot, so strangers cannot lock a real move out. A late answer to
      // the evicted address then comes from the wrong place and is rejected.
      std::optional<std::size_t> victim;
      for (std::size_t i = 0; i < pairs_.size(); ++i) {
        const auto& p = pairs_[i];
        if (i == selected_pair_ || p.state == PairState::Succeeded ||
            p.remote.type != CandidateType::PeerReflexive) {
          continue;
        }
        if (!victim || p.last_probe < pairs_[*victim].last_probe) {
          victim = i;
        }
      }
      if (!victim) {
        return;
      }
      pairs_[*victim] = new_pair(candidate);
      index = victim;
    }
  }
  auto& pair = pairs_[*index];
  if (!pair.last_probe || now - *pair.last_probe >= kMigrationProbeInterval) {
    pair.probe_due = true;
  }
}

}  // namespace peertun::traversal
