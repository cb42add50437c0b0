#pragma once
// Which control connections are paired in which P2P session, keyed by nameplate.
// Sans-I/O: the caller passes the time; nothing here touches a socket.
//
// Lifecycle (docs/protocol/control.md): A creates a session and gets a random
// nameplate; B joins it once; either side leaving, or an abort, ends it. A nameplate
// unused for `ttl` expires. Ended nameplates are remembered for a while as
// tombstones, so a late joiner hears "expired"/"already used" rather than "unknown",
// and a stale code can never reach a newer session that happens to reuse the same
// four symbols.
//
// Threading: owned by the relay's control strand.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/error.h"

namespace peertun::relay {

using ConnectionId = std::uint64_t;
using Clock = std::chrono::steady_clock;

enum class RegistryErrc {
  AlreadyInSession = 1,  // this connection already owns or joined a session
  UnknownNameplate,
  NameplateExpired,
  NameplateUsed,  // joined already, or burned by a failed join
  OwnSession,     // A tried to join its own nameplate
  Exhausted,      // no free nameplate found (the space is nearly full)
  NotInSession,   // the connection has no paired session
};
const boost::system::error_category& registry_category();
inline boost::system::error_code make_error_code(RegistryErrc e) {
  return {static_cast<int>(e), registry_category()};
}

class SessionRegistry {
 public:
  // The nameplate generator returns a uniformly random value below 2^20; injectable
  // so tests can force collisions.
  using RandomFn = std::function<std::uint32_t()>;

  // Nameplates: 4 Crockford base32 symbols = 20 bits.
  static constexpr std::uint32_t kNameplateSpace = 1u << 20;
  // Tries before giving up on finding a free nameplate; with a million values and
  // sessions in the thousands, one try almost always suffices.
  static constexpr int kMintAttempts = 64;
  // How long an ended nameplate is kept out of circulation.
  static constexpr auto kTombstoneLifetime = std::chrono::hours(1);
  static constexpr std::size_t kMaxTombstones = 65536;

  SessionRegistry(Clock::duration ttl, RandomFn random);

  struct Created {
    std::string nameplate;
    std::string session_id;  // 32 hex chars, random
  };
  // Errors: AlreadyInSession, Exhausted.
  [[nodiscard]] base::Result<Created> create(ConnectionId owner, Clock::time_point now);

  struct Joined {
    std::string session_id;
    ConnectionId owner;
  };
  // `nameplate` must already be canonical (upper case). Errors: AlreadyInSession,
  // UnknownNameplate, NameplateExpired, NameplateUsed, OwnSession.
  [[nodiscard]] base::Result<Joined> join(const std::string& nameplate, ConnectionId joiner,
                                          Clock::time_point now);

  // The other connection of this connection's joined session.
  [[nodiscard]] std::optional<ConnectionId> peer_of(ConnectionId id) const;

  // Records that `id` holds its peer's candidates and answers checks. Returns the other
  // connection when both are now ready: the moment to send both "fire". That happens
  // once per session; a repeated call returns nullopt. Errors: NotInSession.
  [[nodiscard]] base::Result<std::optional<ConnectionId>> punch_ready(ConnectionId id);

  // Ends whatever session `id` belongs to and burns its nameplate; returns the
  // other connection, if one was paired, so the caller can tell it.
  std::optional<ConnectionId> end_session_of(ConnectionId id, Clock::time_point now);

  // Expires unjoined sessions older than ttl; returns their owners.
  std::vector<ConnectionId> expire(Clock::time_point now);

  [[nodiscard]] std::size_t live_sessions() const { return by_nameplate_.size(); }
  [[nodiscard]] std::size_t joined_sessions() const;

 private:
  struct Session {
    std::string session_id;
    ConnectionId owner;
    std::optional<ConnectionId> joiner;
    Clock::time_point created;
    bool owner_ready = false;
    bool joiner_ready = false;
    bool fired = false;
  };
  enum class TombstoneKind { Expired, Used };
  struct Tombstone {
    TombstoneKind kind;
    Clock::time_point until;
  };

  void bury(const std::string& nameplate, TombstoneKind kind, Clock::time_point now);
  void prune_tombstones(Clock::time_point now);

  Clock::duration ttl_;
  RandomFn random_;
  std::unordered_map<std::string, Session> by_nameplate_;
  std::unordered_map<ConnectionId, std::string> nameplate_of_;
  std::unordered_map<std::string, Tombstone> tombstones_;
  std::deque<std::string> tombstone_order_;  // oldest first, for the size bound
};

}  // namespace peertun::relay

template <>
struct boost::system::is_error_code_enum<peertun::relay::RegistryErrc> : std::true_type {};
