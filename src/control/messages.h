#pragma once
// The relay control-plane messages (docs/protocol/control.md): what a peertun client
// and the relay say to each other as WebSocket text frames on /v1/control.
//
// Plain values; codec.h turns them into JSON and back. A value decoded by codec.h
// always satisfies the limits below; encode() expects them too (it does not check,
// and a value outside them yields a message the receiver rejects with BadField).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "base/secret.h"
#include "base/socket_address.h"
#include "wire/bytes.h"

namespace peertun::control {

// The protocol version carried as "v" in every message. Bumped only for changes an
// old peer would misread; new types and new optional fields keep it.
inline constexpr std::int64_t kProtocolVersion = 1;

// Largest text frame either side accepts, checked before parsing.
inline constexpr std::size_t kMaxMessageSize = std::size_t{64} * 1024;
// Largest Signal payload, after base64 decoding. Signalling is a few PAKE messages
// and candidate lists; 16 KiB leaves room without letting a peer make the relay buffer
// much per session.
inline constexpr std::size_t kMaxSignalPayload = std::size_t{16} * 1024;
// Tokens are 1..256 visible ASCII characters (0x21-0x7E): no spaces, no controls.
inline constexpr std::size_t kMaxTokenLength = 256;
// "client" in Hello and "relay" in Welcome: 1..256 bytes of UTF-8.
inline constexpr std::size_t kMaxSoftwareLength = 256;
// Error.message: 0..1024 bytes of UTF-8.
inline constexpr std::size_t kMaxErrorMessageLength = 1024;
// Nameplates are 4 Crockford base32 symbols (20 bits), canonical upper case.
inline constexpr std::size_t kNameplateLength = 4;
// Session ids are 16 random bytes as 32 lower-case hex digits.
inline constexpr std::size_t kSessionIdLength = 32;
// A nameplate nobody joins expires after this long (the relay's policy, announced to A
// in SessionCreated.expires_in_s).
inline constexpr std::chrono::seconds kNameplateLifetime{600};

// Why a peer gives up on a session. Decoding maps a reason this version does not know
// (from a newer peer) to Unknown instead of failing, so old receivers keep working.
enum class AbortReason : std::uint8_t { WrongCode, Cancelled, ProtocolError, Unknown };

// Why the relay tells a peer the other side is gone. Unknown as for AbortReason.
enum class PeerLeftReason : std::uint8_t {
  Disconnected,
  WrongCode,
  Cancelled,
  ProtocolError,
  Unknown
};

// How a peer's attempt at a direct path ended (PathReport). Unknown as for AbortReason.
enum class PathOutcome : std::uint8_t { Direct, Failed, Impossible, Unknown };

// The relay's error codes, sent in Error. Unknown as for AbortReason.
enum class ErrorCode : std::uint8_t {
  MissingToken,
  BadToken,
  BadMessage,
  UnsupportedVersion,
  UnknownNameplate,
  NameplateExpired,
  NameplateInUse,
  NotInSession,
  AlreadyInSession,
  RateLimited,
  Internal,
  Unknown
};

// The JSON spelling ("wrong_code", "rate_limited", ...; Unknown is "unknown").
[[nodiscard]] std::string_view to_string(AbortReason reason);
[[nodiscard]] std::string_view to_string(PeerLeftReason reason);
[[nodiscard]] std::string_view to_string(ErrorCode code);
[[nodiscard]] std::string_view to_string(PathOutcome outcome);

// ---- client -> relay ----

// Must be the first message on a connection.
struct Hello {
  base::Secret token;
  std::string client;  // software/version, e.g. "peertun/0.1.0"
  friend bool operator==(const Hello&, const Hello&) = default;
};

// Peer A asks for a session and its nameplate.
struct CreateSession {
  friend bool operator==(const CreateSession&, const CreateSession&) = default;
};

// Peer B joins A's session by nameplate.
struct JoinSession {
  std::string nameplate;  // 4 Crockford symbols; decoding canonicalises ("2a9l" -> "2A91")
  friend bool operator==(const JoinSession&, const JoinSession&) = default;
};

// Opaque (PAKE-sealed) bytes for the other peer; the relay forwards them verbatim.
// The same type travels in both directions.
struct Signal {
  wire::Bytes payload;  // 1..kMaxSignalPayload bytes
  friend bool operator==(const Signal&, const Signal&) = default;
};

// The client ends its session; the relay tells the other side with PeerLeft and burns
// the nameplate.
struct Abort {
  AbortReason reason = AbortReason::Cancelled;
  friend bool operator==(const Abort&, const Abort&) = default;
};

// Sent once the peer's candidates are in hand and this client answers connectivity
// checks. When both peers of a session have sent it, the relay sends Fire to both.
struct PunchReady {
  friend bool operator==(const PunchReady&, const PunchReady&) = default;
};

// Largest PathReport.reason, bytes of UTF-8.
inline constexpr std::size_t kMaxPathReasonLength = 256;
// Largest PathReport.rtt_ms (an hour: anything above is a broken clock).
inline constexpr std::uint32_t kMaxReportedRttMs = 3'600'000;

// How the attempt at a direct path ended, for the relay's records and metrics (and, in
// a later version, `peertun p2p status`). Carries no address: the relay already knows
// the peers' public addresses and learns nothing else from it.
struct PathReport {
  PathOutcome outcome = PathOutcome::Unknown;
  std::string reason;                   // for humans, e.g. "symmetric NAT on peer B"
  std::optional<std::uint32_t> rtt_ms;  // of the direct path, when there is one
  friend bool operator==(const PathReport&, const PathReport&) = default;
};

// ---- relay -> client ----

// To both peers of a session at the same moment, once both sent PunchReady: start the
// connectivity checks now, so each side's first packets open its NAT just as the
// other side's arrive (synchronised simultaneous open).
struct Fire {
  friend bool operator==(const Fire&, const Fire&) = default;
};

struct Welcome {
  base::SocketAddress observed_address;   // the client as seen on the TCP connection
  std::uint16_t stun_port = 0;            // 1..65535: STUN/TURN on the relay's UDP
  std::uint16_t alt_port = 0;             // RFC 5780 alternate port; 0 = none
  std::optional<base::IpAddress> alt_ip;  // RFC 5780 alternate address, if configured
  std::string relay;                      // software/version
  std::uint32_t ping_interval_s = 0;      // >= 1
  friend bool operator==(const Welcome&, const Welcome&) = default;
};

struct Error {
  ErrorCode code = ErrorCode::Internal;
  std::string message;  // for humans; never contains a secret
  friend bool operator==(const Error&, const Error&) = default;
};

// To A: its nameplate.
struct SessionCreated {
  std::string nameplate;
  std::string session_id;
  std::uint32_t expires_in_s = 0;
  friend bool operator==(const SessionCreated&, const SessionCreated&) = default;
};

// To B: the join succeeded.
struct SessionJoined {
  std::string nameplate;
  std::string session_id;
  friend bool operator==(const SessionJoined&, const SessionJoined&) = default;
};

// To A: B has joined.
struct PeerJoined {
  std::string session_id;
  friend bool operator==(const PeerJoined&, const PeerJoined&) = default;
};

// The other peer is gone (disconnected or aborted); the session is over.
struct PeerLeft {
  PeerLeftReason reason = PeerLeftReason::Disconnected;
  friend bool operator==(const PeerLeft&, const PeerLeft&) = default;
};

using ClientMessage =
    std::variant<Hello, CreateSession, JoinSession, Signal, Abort, PunchReady, PathReport>;
using RelayMessage =
    std::variant<Welcome, Error, SessionCreated, SessionJoined, PeerJoined, Signal, PeerLeft, Fire>;

// The "type" string of a message ("hello", "session_created", ...), for logs.
[[nodiscard]] std::string_view type_name(const ClientMessage& message);
[[nodiscard]] std::string_view type_name(const RelayMessage& message);

}  // namespace peertun::control
