#include "relay/session_registry.h"

#include <array>

#include "base/random.h"
#include "wire/bytes.h"
#include "wire/crockford.h"

namespace peertun::relay {
namespace {

const char* registry_message(int ev) noexcept {
  switch (static_cast<RegistryErrc>(ev)) {
    case RegistryErrc::AlreadyInSession:
      return "this connection is already in a session";
    case RegistryErrc::UnknownNameplate:
      return "no session with this nameplate";
    case RegistryErrc::NameplateExpired:
      return "this join code has expired";
    case RegistryErrc::NameplateUsed:
      return "this join code was already used";
    case RegistryErrc::OwnSession:
      return "cannot join your own session";
    case RegistryErrc::Exhausted:
      return "no free nameplate; try again later";
    case RegistryErrc::NotInSession:
      return "not in a paired session";
  }
  return "unknown registry error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.relay.registry", registry_message);

}  // namespace

const boost::system::error_category& registry_category() { return kCategory; }

SessionRegistry::SessionRegistry(Clock::duration ttl, RandomFn random)
    : ttl_(ttl), random_(std::move(random)) {}

base::Result<SessionRegistry::Created> SessionRegistry::create(ConnectionId owner,
                                                               Clock::time_point now) {
  if (nameplate_of_.contains(owner)) {
    return RegistryErrc::AlreadyInSession;
  }
  prune_tombstones(now);
  for (int attempt = 0; attempt < kMintAttempts; ++attempt) {
    std::string nameplate = wire::crockford_encode(random_() % kNameplateSpace, 4);
    if (by_nameplate_.contains(nameplate) || tombstones_.contains(nameplate)) {
      continue;
    }
    std::array<std::uint8_t, 16> id{};
    base::random_bytes(id);
    Session s{wire::to_hex(id), owner, std::nullopt, now};
    Created created{nameplate, s.session_id};
    nameplate_of_[owner] = nameplate;
    by_nameplate_.emplace(std::move(nameplate), std::move(s));
    return created;
  }
  return RegistryErrc::Exhausted;
}

base::Result<SessionRegistry::Joined> SessionRegistry::join(const std::string& nameplate,
                                                            ConnectionId joiner,
                                                            Clock::time_point now) {
  if (nameplate_of_.contains(joiner)) {
    const auto& own = nameplate_of_.at(joiner);
    return own == nameplate ? RegistryErrc::OwnSession : RegistryErrc::AlreadyInSession;
  }
  auto it = by_nameplate_.find(nameplate);
  if (it == by_nameplate_.end()) {
    auto tomb = tombstones_.find(nameplate);
    if (tomb != tombstones_.end() && tomb->second.until > now) {
      return tomb->second.kind == TombstoneKind::Expired ? RegistryErrc::NameplateExpired
                                                         : RegistryErrc::NameplateUsed;
    }
    return RegistryErrc::UnknownNameplate;
  }
  Session& s = it->second;
  if (s.joiner) {
    return RegistryErrc::NameplateUsed;
  }
  if (now - s.created >= ttl_) {
    return RegistryErrc::NameplateExpired;
  }
  s.joiner = joiner;
  nameplate_of_[joiner] = nameplate;
  return Joined{s.session_id, s.owner};
}

std::optional<ConnectionId> SessionRegistry::peer_of(ConnectionId id) const {
  auto n = nameplate_of_.find(id);
  if (n == nameplate_of_.end()) {
    return std::nullopt;
  }
  const Session& s = by_nameplate_.at(n->second);
  if (!s.joiner) {
    return std::nullopt;
  }
  return s.owner == id ? s.joiner : std::optional<ConnectionId>(s.owner);
}

base::Result<std::optional<ConnectionId>> SessionRegistry::punch_ready(ConnectionId id) {
  auto n = nameplate_of_.find(id);
  if (n == nameplate_of_.end()) {
    return make_error_code(RegistryErrc::NotInSession);
  }
  Session& s = by_nameplate_.at(n->second);
  if (!s.joiner) {
    return make_error_code(RegistryErrc::NotInSession);
  }
  (s.owner == id ? s.owner_ready : s.joiner_ready) = true;
  if (s.fired || !s.owner_ready || !s.joiner_ready) {
    return std::optional<ConnectionId>();
  }
  s.fired = true;
  return std::optional<ConnectionId>(s.owner == id ? *s.joiner : s.owner);
}

std::optional<ConnectionId> SessionRegistry::end_session_of(ConnectionId id,
                                                            Clock::time_point now) {
  auto n = nameplate_of_.find(id);
  if (n == nameplate_of_.end()) {
    return std::nullopt;
  }
  const std::string nameplate = n->second;
  Session s = std::move(by_nameplate_.at(nameplate));
  by_nameplate_.erase(nameplate);
  nameplate_of_.erase(s.owner);
  std::optional<ConnectionId> other;
  if (s.joiner) {
    nameplate_of_.erase(*s.joiner);
    other = s.owner == id ? *s.joiner : s.owner;
  }
  bury(nameplate, TombstoneKind::Used, now);
  return other;
}

std::vector<ConnectionId> SessionRegistry::expire(Clock::time_point now) {
  std::vector<ConnectionId> owners;
  std::vector<std::string> dead;
  for (const auto& [nameplate, s] : by_nameplate_) {
    if (!s.joiner && now - s.created >= ttl_) {
      dead.push_back(nameplate);
    }
  }
  for (const auto& nameplate : dead) {
    const ConnectionId owner = by_nameplate_.at(nameplate).owner;
    owners.push_back(owner);
    nameplate_of_.erase(owner);
    by_nameplate_.erase(nameplate);
    bury(nameplate, TombstoneKind::Expired, now);
  }
  prune_tombstones(now);
  return owners;
}

std::size_t SessionRegistry::joined_sessions() const {
  std::size_t n = 0;
  for (const auto& [nameplate, s] : by_nameplate_) {
    n += s.joiner ? 1 : 0;
  }
  return n;
}

void SessionRegistry::bury(const std::string& nameplate, TombstoneKind kind,
                           Clock::time_point now) {
  tombstones_[nameplate] = Tombstone{kind, now + kTombstoneLifetime};
  tombstone_order_.push_back(nameplate);
  while (tombstone_order_.size() > kMaxTombstones) {
    tombstones_.erase(tombstone_order_.front());
    tombstone_order_.pop_front();
  }
}

void SessionRegistry::prune_tombstones(Clock::time_point now) {
  // The deque may name a nameplate that was buried again later; only drop the map
  // entry when it has really run out.
  while (!tombstone_order_.empty()) {
    auto it = tombstones_.find(tombstone_order_.front());
    if (it != tombstones_.end() && it->second.until > now) {
      break;
    }
    if (it != tombstones_.end()) {
      tombstones_.erase(it);
    }
    tombstone_order_.pop_front();
  }
}

}  // namespace peertun::relay
