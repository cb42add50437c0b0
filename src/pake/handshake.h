#pragma once
// The p2p handshake over the relay's opaque `signal` messages: CPace plus explicit key
// confirmation, as a sans-I/O state machine. The client sends first_message() at once,
// feeds every signal payload from the peer to on_message() and sends what it returns.
//
//   A                                   B
//   Share(Ya)  ------------------->          (both at once: balanced, no waiting)
//              <-------------------  Share(Yb)
//   Confirm(Ta) ------------------>          (each sends its tag once it has the share)
//              <-------------------  Confirm(Tb)
//   complete() once the peer's tag verified; then take_channel() seals the rest.
//
// A wrong join code shows up on BOTH sides as WrongCode (each verifies the other's tag).
// docs/protocol/pake.md has the details. One instance per session, one strand.

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "base/error.h"
#include "pake/cpace.h"
#include "pake/error.h"
#include "pake/join_code.h"
#include "pake/role.h"
#include "pake/sealed.h"
#include "wire/bytes.h"

namespace peertun::pake {

class Handshake {
 public:
  // session_id: bytes both peers received from the relay for this session (CPace sid;
  // 16+ random bytes recommended). The code must be canonical (parse_join_code or
  // generate_join_code output). Errors: BadLength/BadSymbol for a malformed code,
  // InvalidShare (negligible: identity share).
  [[nodiscard]] static base::Result<Handshake> start(Role role, const JoinCode& code,
                                                     wire::ByteView session_id);

  // Our CPace share as a Share envelope; send it right away.
  [[nodiscard]] wire::Bytes first_message() const;

  // Feeds one payload from the peer; returns the payloads to send (possibly none).
  // Errors: envelope errors (Truncated, BadVersion, UnknownType, TrailingBytes);
  // InvalidShare; WrongCode (the peer's confirmation does not verify: different code or
  // session id, or a tampered share); ProtocolError (second Share, Confirm before Share,
  // Sealed before completion, anything after a failure). Every error except one after
  // completion is final (failed() becomes true). After completion every payload is
  // refused with ProtocolError and the handshake stays complete: route Sealed envelopes
  // to the SealedChannel instead.
  [[nodiscard]] base::Result<std::vector<wire::Bytes>> on_message(wire::ByteView payload);

  [[nodiscard]] bool complete() const { return state_ == State::Complete; }
  [[nodiscard]] bool failed() const { return state_ == State::Failed; }
  [[nodiscard]] Role role() const { return cpace_.role(); }

  // Precondition (aborts otherwise): complete() and not yet taken.
  [[nodiscard]] SealedChannel take_channel();
  // Precondition (aborts otherwise): complete().
  [[nodiscard]] std::array<std::uint8_t, 32> session_secret() const;
  // The key of the connectivity checks `sender` sends (and of the answers to them); one
  // per direction, so a check reflected back at its sender fails integrity.
  // Precondition (aborts otherwise): complete().
  [[nodiscard]] std::array<std::uint8_t, 32> check_key(Role sender) const;

 private:
  enum class State { AwaitShare, AwaitConfirm, Complete, Failed };

  explicit Handshake(cpace::Cpace c) : cpace_(std::move(c)) {}
  base::Result<std::vector<wire::Bytes>> fail(base::ErrorCode e);

  cpace::Cpace cpace_;
  State state_ = State::AwaitShare;
  std::optional<cpace::SessionKeys> keys_;
  wire::Bytes transcript_;
  bool channel_taken_ = false;
};

}  // namespace peertun::pake
