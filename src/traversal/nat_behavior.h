#pragma once
// NAT behaviour discovery (RFC 5780 §4, vocabulary of RFC 4787 §4.1 and §5), sans-I/O.
//
// Three layers, each usable on its own:
//   1. The vocabulary: MappingBehavior, FilteringBehavior, NatVerdict, and their JSON
//      form (the verdict travels to the peer inside the sealed signalling).
//   2. Pure classifiers: classify() turns what the Binding tests observed into a
//      NatVerdict; quick_mapping_verdict() is the early verdict a session computes from
//      two or three Bindings on its data socket; direct_path_outlook() decides, from both
//      peers' verdicts, whether a direct UDP path can exist.
//   3. BehaviorProbe: the probe plan as a state machine. Time and datagrams in, requests
//      to send and the next deadline out, a NatVerdict at the end. The client's
//      nat_probe.h drives it over real sockets; unit tests drive it over a simulated NAT.
//
// Honesty rule: a verdict never claims more than its tests showed. Without an alternate
// server IP, address-dependent mapping cannot be told from endpoint-independent mapping,
// and endpoint-independent filtering cannot be told from address-dependent filtering;
// the verdict then carries the stronger-looking reading, `mapping_ip_tested` /
// `filtering_ip_tested` = false, confidence Partial and a `limits` note, and
// direct_path_outlook() only decides when every reading the tests allow agrees.
//
// Threads: none. Pure functions and a plain object owned by one strand.

#include <array>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "stun/binding.h"
#include "stun/message.h"

namespace peertun::traversal {

// RFC 4787 §4.1 (named by RFC 5780 §4.3). NoNat: the mapped address is the socket's
// own address, so there is no translation at all.
enum class MappingBehavior : std::uint8_t {
  Unknown,
  NoNat,
  EndpointIndependent,
  AddressDependent,
  AddressAndPortDependent,
};

// RFC 4787 §5 (named by RFC 5780 §4.4). NoNat: no NAT and nothing filtered (the "open
// internet"); a host without NAT behind a stateful firewall gets the firewall's
// measured filtering instead.
enum class FilteringBehavior : std::uint8_t {
  Unknown,
  NoNat,
  EndpointIndependent,
  AddressDependent,
  AddressAndPortDependent,
};

enum class UdpStatus : std::uint8_t { Unknown, Works, Blocked };
// RFC 5780 §4.6: does a packet sent to our own mapped address come back to us?
enum class Hairpin : std::uint8_t { Unknown, Yes, No };
// Full: every test RFC 5780 §4.3/§4.4 needs ran and was conclusive. Partial: some ran,
// and `limits` says what is missing. None: nothing conclusive.
enum class Confidence : std::uint8_t { None, Partial, Full };

struct NatVerdict {
  UdpStatus udp = UdpStatus::Unknown;
  std::optional<bool> behind_nat{};
  MappingBehavior mapping = MappingBehavior::Unknown;
  FilteringBehavior filtering = FilteringBehavior::Unknown;
  // False when the server had no alternate IP (or its test got no answer): then an
  // EndpointIndependent mapping may really be AddressDependent (RFC 5780 §4.3 test II
  // was not run).
  bool mapping_ip_tested = false;
  // False when no CHANGE-REQUEST change-IP answer could be tested: then an
  // AddressDependent filtering may really be EndpointIndependent (RFC 5780 §4.4 test II).
  bool filtering_ip_tested = false;
  std::optional<base::SocketAddress> public_address{};  // mapped address seen by the primary
  Hairpin hairpin = Hairpin::Unknown;
  Confidence confidence = Confidence::None;
  // What could not be tested, one sentence each, for the user.
  std::vector<std::string> limits{};

  friend bool operator==(const NatVerdict&, const NatVerdict&) = default;
};

// The short user-facing name: "no NAT", "full cone", "restricted cone",
// "port-restricted cone", "symmetric", "UDP blocked" or "unknown". It names the reading
// the tests support; check `confidence`/`limits` before trusting a Partial one.
[[nodiscard]] std::string_view verdict_name(const NatVerdict& verdict);

// Stable lower-case words, used in JSON and CLI output: "unknown", "no-nat",
// "endpoint-independent", "address-dependent", "address-and-port-dependent";
// "works"/"blocked"; "yes"/"no"; "none"/"partial"/"full". from_string returns nullopt for
// any other word.
[[nodiscard]] std::string_view to_string(MappingBehavior m);
[[nodiscard]] std::string_view to_string(FilteringBehavior f);
[[nodiscard]] std::string_view to_string(UdpStatus u);
[[nodiscard]] std::string_view to_string(Hairpin h);
[[nodiscard]] std::string_view to_string(Confidence c);
[[nodiscard]] std::optional<MappingBehavior> mapping_from_string(std::string_view s);
[[nodiscard]] std::optional<FilteringBehavior> filtering_from_string(std::string_view s);
[[nodiscard]] std::optional<UdpStatus> udp_status_from_string(std::string_view s);
[[nodiscard]] std::optional<Hairpin> hairpin_from_string(std::string_view s);
[[nodiscard]] std::optional<Confidence> confidence_from_string(std::string_view s);

// JSON form, e.g. {"udp":"works","behind_nat":true,"mapping":"endpoint-independent",
// "filtering":"address-dependent","mapping_ip_tested":false,"filtering_ip_tested":false,
// "public":"203.0.113.5:4242","hairpin":"unknown","confidence":"partial","limits":[...]}.
// Absent optional fields are omitted.
[[nodiscard]] boost::json::object to_json(const NatVerdict& verdict);
// Bounds for decoding what a peer sent.
inline constexpr std::size_t kMaxVerdictLimits = 8;
inline constexpr std::size_t kMaxVerdictLimitLength = 200;
// Accepts what to_json writes. A word this version does not know (a newer peer's)
// decodes as Unknown/None, which never overclaims. Errors: invalid_argument for
// anything else malformed (not an object, wrong JSON types, a bad address, too many or
// too long limits). Never throws.
[[nodiscard]] base::Result<NatVerdict> nat_verdict_from_json(const boost::json::value& json);

// --- Classifiers ------------------------------------------------------------------------

// The outcome of one Binding test.
enum class TestOutcome : std::uint8_t {
  NotRun,    // not attempted (the server cannot do it, or it was not needed)
  Answered,  // a success response arrived
  NoAnswer,  // the whole bound passed without a response (the conclusive "no")
  Refused,   // an error response (e.g. 420 from a server without RFC 5780)
  Cut,       // the overall budget ended before this test had its full bound
};

struct TestResult {
  TestOutcome outcome = TestOutcome::NotRun;
  std::optional<base::SocketAddress> mapped{};  // XOR-MAPPED-ADDRESS when Answered
  std::optional<base::SocketAddress> source{};  // where the answer came from
};

// Everything RFC 5780 §4.3 (mapping) and §4.4 (filtering) tests observed. The mapping
// tests run on one socket, the filtering tests on another, fresh one: filtering tests
// "are sensitive to prior state on the NAT", and the mapping tests open the NAT towards
// the alternate address.
struct Observations {
  base::SocketAddress primary{};               // the server's main address
  std::optional<base::SocketAddress> other{};  // OTHER-ADDRESS (alt IP or same IP, alt port)
  std::vector<base::SocketAddress> local{};    // the mapping socket's own addresses
  TestResult map_primary{};                    // §4.3 test I
  TestResult map_alt_port{};                   // primary IP, alternate port
  TestResult map_alt_ip{};                     // §4.3 test II: alternate IP, primary port
  TestResult map_alt_both{};                   // §4.3 test III: alternate IP and port
  TestResult filter_primary{};                 // §4.4 test I (filtering socket)
  TestResult filter_change_both{};             // §4.4 test II: change IP and port
  TestResult filter_change_port{};             // §4.4 test III: change port
  Hairpin hairpin = Hairpin::Unknown;
};

// True when `other` names a different IP than `primary`: the server can run the IP tests.
[[nodiscard]] bool server_has_alternate_ip(const Observations& o);

// The verdict RFC 5780 §4.3/§4.4 allow from `o`, with limits for every test that was
// missing. Total: any combination of outcomes gives a verdict (possibly "unknown").
[[nodiscard]] NatVerdict classify(const Observations& o);

// The early verdict a session runs on its data socket (mapping only): the mapped
// address seen from the relay's primary address, its alternate port and, when the relay
// has one, its alternate IP (primary port). nullopt = no answer. `local` are the data
// socket's own addresses (to spot "no NAT"); empty = unknown. Filtering is not tested.
[[nodiscard]] NatVerdict quick_mapping_verdict(std::optional<base::SocketAddress> primary_mapped,
                                               std::optional<base::SocketAddress> alt_port_mapped,
                                               std::optional<base::SocketAddress> alt_ip_mapped,
                                               std::span<const base::SocketAddress> local = {});

// A session's quick verdict (mapping measured on its data socket) completed with the
// filtering and hairpin a full probe measured on other sockets of the same host: a NAT
// filters all its mappings alike (RFC 4787 §5), so the fresh sockets' answer holds for
// the data socket too. `full` with unknown filtering leaves `session` as it was.
[[nodiscard]] NatVerdict with_filtering(NatVerdict session, const NatVerdict& full);

// --- Pair decision ----------------------------------------------------------------------

enum class DirectPathOutlook : std::uint8_t { Possible, Impossible, Unknown };
[[nodiscard]] std::string_view to_string(DirectPathOutlook o);

struct PathOutlook {
  DirectPathOutlook outlook = DirectPathOutlook::Unknown;
  std::string reason;  // e.g. "symmetric NAT on peer B"
};

// Whether a direct UDP path between peers with these verdicts can exist (RFC 4787 §4/§5
// reasoning, with peer-reflexive learning as in RFC 8445 §7.3.1.3):
//   - UDP blocked on either side: impossible;
//   - both behind the same public IP: possible (LAN or hairpin), reason "same NAT";
//   - both mappings symmetric (address- or address-and-port-dependent): impossible;
//   - one symmetric, the other filtering by port (address-and-port-dependent): impossible;
//   - one symmetric, the other endpoint-independent mapping with endpoint-independent or
//     address-dependent filtering: possible (the cone side learns the symmetric side's
//     new mapping as a peer-reflexive candidate);
//   - no symmetric side: possible.
// Missing or partial data is never read as impossible: every reading the verdicts allow
// (Unknown = anything; untested IP = the weaker neighbour too) is tried, and only an
// outcome they all agree on is returned; otherwise Unknown.
[[nodiscard]] PathOutlook direct_path_outlook(const NatVerdict& a, const NatVerdict& b,
                                              std::string_view a_name = "peer A",
                                              std::string_view b_name = "peer B");

// --- The probe plan ---------------------------------------------------------------------

// RFC 8489 §6.2.1 wants RTO > 500 ms when nothing is known about the path; we start at
// 250 ms (as client/stun_client.h) because the whole plan must end in ~1.5 s, and after
// the first answer use 3 x the measured RTT (RFC 6298 §2.2 with RTTVAR = RTT/2), kept
// within [kMinRto, kInitialRto].
inline constexpr auto kInitialRto = std::chrono::milliseconds(250);
inline constexpr auto kMinRto = std::chrono::milliseconds(50);
// The whole probe, first request to verdict, on a healthy network.
inline constexpr auto kDefaultProbeBudget = std::chrono::milliseconds(1500);
// How long a dependent test (anything after test I) waits before "no answer" counts as
// the NAT's answer. Long enough for several retransmissions at kInitialRto.
inline constexpr auto kDependentTestBound = std::chrono::milliseconds(700);

enum class ProbeMode : std::uint8_t {
  Full,          // mapping + filtering + hairpin, two sockets (debug nat-type)
  QuickMapping,  // mapping only, one socket (the session's data socket)
};

// Which of the two sockets a request leaves from / a datagram arrived on.
enum class ProbeSocket : std::uint8_t { Mapping = 0, Filtering = 1 };

enum class ProbeTest : std::uint8_t {
  MapPrimary,
  MapAltPort,
  MapAltIp,
  MapAltBoth,
  FilterPrimary,
  FilterChangeBoth,
  FilterChangePort,
  Hairpin,
};
inline constexpr std::size_t kProbeTestCount = 8;
[[nodiscard]] std::string_view to_string(ProbeTest t);

struct ProbeConfig {
  ProbeMode mode = ProbeMode::Full;
  base::SocketAddress primary{};
  // The server's OTHER-ADDRESS when known in advance (the relay's Welcome announces its
  // alternate port and IP); otherwise learnt from test I's answer.
  std::optional<base::SocketAddress> other{};
  // The mapping socket's own addresses (interface addresses x its port), to spot "no NAT".
  std::vector<base::SocketAddress> local{};
  std::chrono::milliseconds budget = kDefaultProbeBudget;
  std::chrono::milliseconds test_bound = kDependentTestBound;
  std::string software{};  // SOFTWARE in our requests; empty = none
};

struct ProbeSend {
  ProbeTest test = ProbeTest::MapPrimary;
  ProbeSocket socket = ProbeSocket::Mapping;
  base::SocketAddress destination{};
  stun::Bytes packet{};
};

// One run of the plan. Use: start(now); then loop { send everything poll_send(now)
// returns; wait until next_deadline() or a datagram; on_datagram(...) / on_timer(now) }
// until done(); then verdict(). Each request is retransmitted (RFC 8489 §6.2.1, RTO
// doubling) until its answer or its bound; the whole run ends by start + budget.
//
// Full mode: test I on both sockets at once; when OTHER-ADDRESS is known, the mapping
// tests to the alternate port/IP, the CHANGE-REQUEST tests and the hairpin test all run
// concurrently. Quick mode: the three mapping requests at once, on the mapping socket.
class BehaviorProbe {
 public:
  using Clock = std::chrono::steady_clock;

  explicit BehaviorProbe(ProbeConfig config);

  void start(Clock::time_point now);
  // Requests due at `now` (first sends and retransmissions). Empty when none.
  [[nodiscard]] std::vector<ProbeSend> poll_send(Clock::time_point now);
  // A datagram that arrived on `socket` from `source`. Returns true if it belonged to this
  // probe (a response to one of our transactions, or our own hairpinned request), false
  // otherwise: the caller then hands it to whoever else reads that socket. Never throws,
  // whatever the bytes.
  bool on_datagram(ProbeSocket socket, const base::SocketAddress& source, stun::ByteView data,
                   Clock::time_point now);
  // Ends tests whose bound has passed.
  void on_timer(Clock::time_point now);
  // When to call poll_send/on_timer next; nullopt once done().
  [[nodiscard]] std::optional<Clock::time_point> next_deadline() const;
  [[nodiscard]] bool done() const { return done_; }
  // Valid any time (before done(), it reflects what is known so far).
  [[nodiscard]] NatVerdict verdict() const;
  [[nodiscard]] const Observations& observations() const { return obs_; }

 private:
  enum class State : std::uint8_t { Idle, Running, Finished };
  struct Txn {
    State state = State::Idle;
    ProbeSocket socket = ProbeSocket::Mapping;
    stun::TransactionId txid{};
    base::SocketAddress destination{};
    stun::Bytes request{};
    Clock::time_point started{};
    Clock::time_point next_send{};
    Clock::time_point deadline{};
    Clock::duration rto{};
    bool full_bound = true;  // false: cut short by the overall budget
  };

  void launch(ProbeTest test, base::SocketAddress destination, stun::BindingRequestOptions options,
              Clock::time_point now, Clock::duration bound);
  void launch_dependent(Clock::time_point now);
  void finish(ProbeTest test, TestOutcome outcome);
  void check_done(Clock::time_point now);
  // nullptr for ProbeTest::Hairpin.
  TestResult* result_of(ProbeTest test);

  ProbeConfig config_;
  Observations obs_;
  std::array<Txn, kProbeTestCount> txns_{};
  Clock::time_point end_{};
  Clock::duration rto_ = kInitialRto;
  bool started_ = false;
  bool dependents_launched_ = false;
  bool done_ = false;
};

}  // namespace peertun::traversal
