#pragma once
// CPace on ristretto255 with SHA-512 (CPACE-RISTR255-SHA512), initiator-responder mode,
// following draft-irtf-cfrg-cpace-21 (sections 7, 8.1, 8.3 and appendix A), plus the
// explicit key confirmation of its section 10.4 and peertun's key schedule.
// docs/protocol/pake.md describes the whole construction.
//
// Sans-I/O and synchronous: values in, values out; any thread (each object used by one at
// a time). Call base::init_crypto() (or anything in base/random.h) once before use.
// Secret material (scalar, ISK, derived keys) is wiped when its holder is destroyed.

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "base/error.h"
#include "pake/error.h"
#include "pake/join_code.h"
#include "pake/role.h"
#include "wire/bytes.h"

namespace peertun::pake::cpace {

// RFC 9496 section 4.3.2: a ristretto255 element encodes to 32 bytes; scalars are 32-byte
// little-endian integers.
inline constexpr std::size_t kPointSize = 32;
inline constexpr std::size_t kScalarSize = 32;
// SHA-512: 64-byte output, 128-byte input block (draft section 6.2, H.s_in_bytes).
inline constexpr std::size_t kIskSize = 64;
inline constexpr std::size_t kHashBlockSize = 128;
// Draft section 8.3: G_Ristretto255.DSI.
inline constexpr std::string_view kDsi = "CPaceRistretto255";
// Our channel identifier label and associated data (see channel_identifier()).
inline constexpr std::string_view kChannelLabel = "peertun/p2p/v1";
inline constexpr std::string_view kAdA = "A";
inline constexpr std::string_view kAdB = "B";
// Confirmation tags: HMAC-SHA-512-256.
inline constexpr std::size_t kTagSize = 32;
inline constexpr std::size_t kKeySize = 32;

using Point = std::array<std::uint8_t, kPointSize>;
using Scalar = std::array<std::uint8_t, kScalarSize>;
using Isk = std::array<std::uint8_t, kIskSize>;
using Key = std::array<std::uint8_t, kKeySize>;
using Tag = std::array<std::uint8_t, kTagSize>;

// --- Draft building blocks (appendix A), exposed so tests can check the published vectors.

// LEB128 length || data.
[[nodiscard]] wire::Bytes prepend_len(wire::ByteView data);
// prepend_len(a0) || prepend_len(a1) || ...
[[nodiscard]] wire::Bytes lv_cat(std::initializer_list<wire::ByteView> parts);
// lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid), len_zpad filling the first hash block.
[[nodiscard]] wire::Bytes generator_string(wire::ByteView dsi, wire::ByteView prs,
                                           wire::ByteView ci, wire::ByteView sid,
                                           std::size_t s_in_bytes);
// element_derivation(SHA-512(generator_string(...))), encoded.
[[nodiscard]] Point calculate_generator(wire::ByteView prs, wire::ByteView ci, wire::ByteView sid);
// encode(y * decode(x)). Errors: InvalidShare if x is not a canonical encoding or the
// result is the identity (that is how CPace's "abort if K = G.I" surfaces).
[[nodiscard]] base::Result<Point> scalar_mult_vfy(const Scalar& y, wire::ByteView x);
// lv_cat(Ya, ADa) || lv_cat(Yb, ADb).
[[nodiscard]] wire::Bytes transcript_ir(wire::ByteView ya, wire::ByteView ad_a, wire::ByteView yb,
                                        wire::ByteView ad_b);
// SHA-512(lv_cat(DSI || "_ISK", sid, K) || transcript).
[[nodiscard]] Isk derive_isk(wire::ByteView sid, const Point& k, wire::ByteView transcript);

// --- peertun bindings.

// CI = lv_cat("peertun/p2p/v1", nameplate): binds the protocol version and the rendezvous.
[[nodiscard]] wire::Bytes channel_identifier(std::string_view nameplate);
// PRS = the canonical 8-symbol secret as ASCII.

struct Inputs {
  wire::ByteView prs;
  wire::ByteView ci;
  wire::ByteView sid;
  wire::ByteView ad_a;
  wire::ByteView ad_b;
};

// Everything derived from ISK (keyed BLAKE2b-256, one label each; docs/protocol/pake.md).
struct SessionKeys {
  Key confirm_a;       // A's confirmation MAC key
  Key confirm_b;       // B's confirmation MAC key
  Key traffic_ab;      // seals A -> B
  Key traffic_ba;      // seals B -> A
  Key session_secret;  // for later uses beyond the checks (kept stable for callers)
  Key check_ab;        // keys A's connectivity checks and B's answers to them
  Key check_ba;        // keys B's connectivity checks and A's answers to them
  SessionKeys() = default;
  SessionKeys(const SessionKeys&) = default;
  SessionKeys& operator=(const SessionKeys&) = default;
  ~SessionKeys();
};

[[nodiscard]] SessionKeys derive_session_keys(const Isk& isk);
// HMAC-SHA-512-256(confirm key of `sender`, transcript).
[[nodiscard]] Tag confirmation_tag(const SessionKeys& keys, Role sender, wire::ByteView transcript);
// Constant-time check of the tag `sender` sent. Errors: WrongCode, Truncated (bad size).
[[nodiscard]] base::Result<void> verify_confirmation(const SessionKeys& keys, Role sender,
                                                     wire::ByteView transcript, wire::ByteView tag);

// One party's CPace run.
class Cpace {
 public:
  // Fresh random scalar (crypto_core_ristretto255_scalar_random). The inputs are copied
  // as needed; the views need not outlive the call.
  // Errors: InvalidShare if the generator or our share is the identity (negligible).
  [[nodiscard]] static base::Result<Cpace> start(Role role, const Inputs& in);
  // peertun's inputs: PRS = code.secret, CI = channel_identifier(code.nameplate),
  // ADa = "A", ADb = "B", sid = session_id.
  [[nodiscard]] static base::Result<Cpace> start(Role role, const JoinCode& code,
                                                 wire::ByteView session_id);
  // Testing only: a fixed scalar so the draft's vectors can be reproduced. Never use a
  // fixed scalar in production: scalars MUST NOT be reused (draft section 10.9).
  [[nodiscard]] static base::Result<Cpace> start_with_scalar_for_testing(Role role,
                                                                         const Inputs& in,
                                                                         const Scalar& y);

  Cpace(Cpace&&) noexcept;
  Cpace& operator=(Cpace&&) noexcept;
  Cpace(const Cpace&) = delete;
  Cpace& operator=(const Cpace&) = delete;
  ~Cpace();

  [[nodiscard]] Role role() const { return role_; }
  // Our public share Y (to send to the peer).
  [[nodiscard]] const Point& share() const { return share_; }

  struct Output {
    Isk isk;
    wire::Bytes transcript;  // transcript_ir(Ya, ADa, Yb, ADb)
  };
  // Combines the peer's share. Errors: InvalidShare (bad encoding, identity, or a
  // reflection of our own share).
  [[nodiscard]] base::Result<Output> finish(wire::ByteView peer_share) const;

 private:
  Cpace() = default;
  Role role_ = Role::A;
  Scalar scalar_{};
  Point share_{};
  wire::Bytes sid_;
  wire::Bytes ad_a_;
  wire::Bytes ad_b_;
};

}  // namespace peertun::pake::cpace
