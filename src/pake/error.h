#pragma once
// The pake module's error codes: join-code parsing, envelopes, CPace, sealing and the
// handshake state machine. Messages are written for the person typing the code and never
// contain the secret part of a join code.

#include <boost/system/error_code.hpp>
#include <type_traits>

#include "base/error.h"

namespace peertun::pake {

enum class Errc {
  // Join codes and nameplates (parse_join_code, normalize_nameplate).
  Empty = 1,  // nothing but whitespace or dashes
  BadPrefix,  // starts with something other than "pt-p2p-"
  BadLength,  // wrong number of symbols
  BadSymbol,  // a character outside Crockford base32, '-' and whitespace
  // Envelopes (decode_envelope).
  Truncated,      // shorter than its type requires
  BadVersion,     // version byte we do not speak
  UnknownType,    // type byte we do not know
  TrailingBytes,  // longer than its type allows
  // CPace.
  InvalidShare,  // peer share is not a ristretto255 encoding, or yields the identity
  WrongCode,     // key confirmation failed: the peers hold different join codes
  // Handshake state machine.
  ProtocolError,  // a message that is legal on the wire but not in this state
  // Sealed channel.
  Tampered,    // authentication failed: altered, or sealed under another key/direction
  Replayed,    // counter lower than expected: an old message again
  OutOfOrder,  // counter higher than expected: a message was dropped or reordered
};

[[nodiscard]] const boost::system::error_category& pake_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), pake_category()};
}

}  // namespace peertun::pake

template <>
struct boost::system::is_error_code_enum<peertun::pake::Errc> : std::true_type {};
