#pragma once
// The hole-punching core: ICE-style connectivity checks (RFC 8445 §7) between two
// peertun peers, sans-I/O. Bytes and timestamps in; datagrams to send and the next
// deadline out. The client's adapter owns the socket and the clock.
//
// How a punch goes (docs/protocol/traversal.md):
// - Before the relay's "fire", the agent only answers checks (a faster peer may fire
//   first); start() begins sending.
// - Checks are STUN Binding requests with MESSAGE-INTEGRITY and FINGERPRINT. Each
//   direction has its own key, derived by the caller from the PAKE session secret, so a
//   check reflected back at its sender fails integrity instead of "succeeding".
// - Every remote candidate is checked, paced (one check per kCheckPacing) and retried
//   (every kCheckRetransmitInterval) until a pair answers or the attempt times out.
// - A check from an address we did not know is a peer-reflexive candidate (RFC 8445
//   §7.3.1.3): it gets a pair and a triggered check. This is how a peer behind a
//   symmetric NAT gets through to a cone NAT.
// - Peer A (controlling) nominates the best valid pair with USE-CANDIDATE (RFC 8445
//   §8.1.1); it is connected when that check is answered, peer B when a nominated pair
//   has also answered its own check. Both directions are then proven.
// - Once connected, keepalive checks run on the selected pair (RFC 7675 consent
//   freshness); no authenticated answer for kConsentTimeout means the path is lost.
//
// Not thread-safe; the owner drives it from one strand.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/socket_address.h"
#include "stun/message.h"
#include "traversal/candidate.h"
#include "wire/bytes.h"

namespace peertun::traversal {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Peer A controls (nominates); peer B is controlled. Fixed by the session, so the role
// conflicts of RFC 8445 §7.3.1.1 cannot happen.
enum class AgentRole : std::uint8_t { Controlling, Controlled };

// RFC 8445 §14.2 lets Ta go down to 5 ms; 20 ms keeps a burst of checks to a few dozen
// packets per second, which no NAT rate-limits.
inline constexpr auto kCheckPacing = std::chrono::milliseconds(20);
// A pair is re-checked until it answers: simultaneous open needs the first packet of
// each side to have left before the other side's arrives, so keep trying. The first
// retries come quickly (a restricted NAT drops the peer's first check when it crosses
// ours, and the second one then gets through), then every kCheckRetransmitInterval.
inline constexpr auto kFirstCheckRetransmit = std::chrono::milliseconds(25);
inline constexpr auto kCheckRetransmitInterval = std::chrono::milliseconds(200);
// --p2p-attempt-timeout's default.
inline constexpr auto kDefaultAttemptTimeout = std::chrono::seconds(8);
// After the first pair answers, peer A waits this long for a better pair (LAN, IPv6)
// before nominating, unless the best possible pair answers first.
inline constexpr auto kNominationDelay = std::chrono::milliseconds(150);
// Keepalive on the selected path. Common NATs drop idle UDP mappings after 30 s (some
// after 20 s); 5 s stays well inside, and RFC 7675 §5.1 checks consent about as often,
// so a lost keepalive or two never costs the path.
inline constexpr auto kKeepaliveInterval = std::chrono::seconds(5);
// RFC 7675 §5.1: consent expires 30 s after the last authenticated answer.
inline constexpr auto kConsentTimeout = std::chrono::seconds(30);
// Once connected, traffic from a new address of the peer's (its NAT rebound) gets an
// authenticated check at most this often per address; an answer moves the path there.
inline constexpr auto kMigrationProbeInterval = std::chrono::milliseconds(250);
// A selected path with no authenticated answer or data-plane traffic for this long may
// be replaced by a worse one that answers (well under the 5 s keepalive cycle, since a
// busy tunnel refreshes it with every packet).
inline constexpr auto kQuietPath = std::chrono::seconds(2);
// Both peers said they were ready; the relay fires at once. Waiting longer than this
// means it never will (a broken or hostile relay): fail instead of hanging.
inline constexpr auto kDefaultFireTimeout = std::chrono::seconds(20);
// Bounds on what a peer can make us hold.
inline constexpr std::size_t kMaxRemoteCandidates = 48;
inline constexpr std::size_t kMaxPeerReflexive = 8;
inline constexpr std::size_t kMaxOutstandingChecks = 64;

struct AgentConfig {
  AgentRole role = AgentRole::Controlling;
  wire::Bytes outgoing_key;  // keys our checks and the peer's answers to them
  wire::Bytes incoming_key;  // keys the peer's checks and our answers
  std::vector<Candidate> local;
  std::vector<Candidate> remote;  // beyond kMaxRemoteCandidates are ignored
  Clock::duration attempt_timeout = kDefaultAttemptTimeout;
  Clock::duration keepalive_interval = kKeepaliveInterval;
  // From expect_fire() to giving up on a relay that never sends "fire".
  Clock::duration fire_timeout = kDefaultFireTimeout;
};

struct Transmit {
  base::SocketAddress destination;
  wire::Bytes payload;
};

enum class AgentState : std::uint8_t {
  Idle,       // before start(): answers checks, sends none of its own
  Checking,   // punching
  Connected,  // a pair is selected; keepalives run
  Failed,     // attempt (or fire) timeout with no selected pair; final: answers nothing
  PathLost,   // was connected; consent expired
};

[[nodiscard]] std::string_view to_string(AgentState state);

struct SelectedPath {
  Candidate remote;
  Clock::duration rtt{};
  // Our address as the peer saw it (XOR-MAPPED-ADDRESS of its answers), if known.
  std::optional<base::SocketAddress> seen_by_peer;
};

struct AgentStats {
  std::uint64_t checks_sent = 0;
  std::uint64_t checks_received = 0;
  std::uint64_t answers_received = 0;
  // Checks or answers that failed integrity or came from the wrong address.
  std::uint64_t rejected = 0;
};

class PunchAgent {
 public:
  // Fills transaction ids and tie-breakers; the adapter passes base::random_bytes,
  // tests a seeded generator.
  using RandomSource = std::function<void(std::span<std::uint8_t>)>;

  PunchAgent(AgentConfig config, RandomSource random);

  // We told the relay we are ready: from now on the fire must come within
  // config.fire_timeout, or the attempt fails ("the relay never started the punch").
  void expect_fire(TimePoint now);

  // The relay's "fire": start checking. Later calls do nothing, and so does a fire
  // after the attempt failed.
  void start(TimePoint now);

  enum class Disposition : std::uint8_t {
    Consumed,  // a check or an answer to one of ours (valid or rejected)
    NotMine,   // not STUN, not Binding, or an answer to a transaction we did not send
  };
  // Feeds one datagram that arrived from `from`. Never throws on any input.
  Disposition on_datagram(const base::SocketAddress& from, wire::ByteView datagram, TimePoint now);

  // The path layer heard data-plane traffic (QUIC) from `from`. From the selected
  // address it counts as consent; from another one (the peer's NAT rebound, or the peer
  // moved networks) it triggers an authenticated check there, and an answer moves the
  // selected path to it (selected() changes, the state stays or becomes Connected).
  void note_traffic_from(const base::SocketAddress& from, TimePoint now);

  // How often the selected path moved after the first selection.
  [[nodiscard]] std::uint64_t migrations() const { return migrations_; }

  // The next datagram to send now, if any. Also advances timeouts, so call it whenever
  // next_deadline() passes or a datagram was fed; loop until it returns nullopt.
  [[nodiscard]] std::optional<Transmit> poll_transmit(TimePoint now);

  // When poll_transmit() next has work; nullopt when only a datagram can change things.
  [[nodiscard]] std::optional<TimePoint> next_deadline() const;

  [[nodiscard]] AgentState state() const { return state_; }
  [[nodiscard]] const std::optional<SelectedPath>& selected() const { return selected_; }
  // Failed: a line for the user ("no answer from any of 3 addresses of the peer in 8s").
  [[nodiscard]] const std::string& failure_reason() const { return failure_reason_; }
  [[nodiscard]] const AgentStats& stats() const { return stats_; }
  // Remote candidates, including the peer-reflexive ones learned so far.
  [[nodiscard]] std::vector<Candidate> remote_candidates() const;
  // From start() to the first pair proven both ways (our check answered, and a check of
  // the peer's received on it): the punch itself, before nomination picks the best pair.
  [[nodiscard]] std::optional<Clock::duration> time_to_first_path() const;

 private:
  enum class PairState : std::uint8_t { Waiting, InProgress, Succeeded };
  struct Pair {
    Candidate remote;
    std::uint64_t priority = 0;
    PairState state = PairState::Waiting;
    TimePoint next_check{};
    bool nominated = false;  // Controlled: the peer sent USE-CANDIDATE on it
    bool inbound = false;    // a valid check of the peer's arrived on it
    bool triggered = false;  // RFC 8445 §7.3.1.4: check it before the ordinary ones
    unsigned checks = 0;     // sent on this pair so far
    bool probe_due = false;  // connected: check it once (a possible new path)
    std::optional<TimePoint> last_probe;
    std::optional<Clock::duration> rtt;
  };
  struct Outstanding {
    stun::TransactionId id{};
    std::size_t pair = 0;
    TimePoint sent{};
    bool use_candidate = false;
  };

  std::size_t add_pair(const Candidate& remote);
  [[nodiscard]] Pair new_pair(const Candidate& remote) const;
  std::optional<std::size_t> find_pair(const base::SocketAddress& address) const;
  void on_request(const base::SocketAddress& from, const stun::MessageView& message, TimePoint now);
  // False when the answer is not valid (wrong source or integrity): the transaction
  // stays open for the real answer.
  bool on_answer(const base::SocketAddress& from, const stun::MessageView& message,
                 const Outstanding& tx, TimePoint now);
  [[nodiscard]] Clock::duration retransmit_interval(const Pair& pair) const;
  void advance(TimePoint now);
  void select(std::size_t pair, TimePoint now);
  // Connected (or lost): schedule one check towards a new address of the peer's.
  void probe(const base::SocketAddress& from, std::optional<std::uint32_t> priority, TimePoint now);
  void note_both_ways(const Pair& pair, TimePoint now);
  [[nodiscard]] Transmit make_check(std::size_t pair, bool use_candidate, TimePoint now);
  [[nodiscard]] std::optional<std::size_t> best_valid_pair() const;
  [[nodiscard]] std::optional<std::size_t> next_pair_due(TimePoint now) const;

  AgentConfig config_;
  RandomSource random_;
  std::uint64_t tie_breaker_ = 0;
  std::uint32_t peer_reflexive_priority_ = 0;
  AgentState state_ = AgentState::Idle;
  std::vector<Pair> pairs_;
  std::size_t peer_reflexive_count_ = 0;
  std::deque<Outstanding> outstanding_;
  std::deque<Transmit> answers_;  // replies to the peer's checks, sent before anything else
  TimePoint started_{};
  std::optional<TimePoint> fire_deadline_;
  TimePoint next_pacing_slot_{};
  std::optional<TimePoint> first_valid_at_;
  std::optional<TimePoint> first_both_ways_at_;
  std::optional<std::size_t> nominating_;
  TimePoint next_nomination_check_{};
  std::optional<std::size_t> selected_pair_;
  std::optional<SelectedPath> selected_;
  std::optional<base::SocketAddress> seen_by_peer_;
  TimePoint last_consent_{};
  TimePoint next_keepalive_{};
  std::string failure_reason_;
  std::uint64_t migrations_ = 0;
  AgentStats stats_;
};

}  // namespace peertun::traversal
