#pragma once
// JSON encoding of the control-plane messages (docs/protocol/control.md). Pure
// functions of their arguments: no I/O, no state, callable from any thread.
//
// Every message is one JSON object with "v": 1 and "type". Decoding ignores fields it
// does not know, so a newer peer can add optional fields; a type it does not know is
// UnknownType, which the relay answers with Error{bad_message}. Decoding never
// throws on any input and never reveals a field's value in an error: in particular a
// Hello token never reaches `detail`.

#include <boost/system/error_code.hpp>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/error.h"
#include "control/messages.h"

namespace peertun::control {

enum class Errc {
  TooLarge = 1,        // input longer than kMaxMessageSize (checked before parsing)
  NotJson,             // not one well-formed JSON text (or nested deeper than 32)
  NotAnObject,         // JSON, but not an object
  UnsupportedVersion,  // "v" is an integer other than kProtocolVersion
  UnknownType,         // "type" names no message of this direction
  MissingField,        // a required field (or "v", "type") is absent
  BadField,            // a field has the wrong JSON type, is out of range or malformed
};

[[nodiscard]] const boost::system::error_category& error_category() noexcept;
[[nodiscard]] inline base::ErrorCode make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// The code the relay replies with when decode_client_message fails:
// UnsupportedVersion -> unsupported_version, anything else -> bad_message.
[[nodiscard]] ErrorCode reply_code_for(const base::ErrorCode& decode_error);

// Serialises one message as compact JSON, "v" and "type" first. Hello carries the
// token in clear: the returned string is as secret as the token.
[[nodiscard]] std::string encode(const ClientMessage& message);
[[nodiscard]] std::string encode(const RelayMessage& message);
// Signal travels both ways with the same encoding; this overload avoids the ambiguity.
[[nodiscard]] std::string encode(const Signal& message);

// What the relay parses. Errors: every Errc. Nameplates come back canonical.
[[nodiscard]] base::Result<ClientMessage> decode_client_message(std::string_view json);
// What the client parses. Errors: every Errc.
[[nodiscard]] base::Result<RelayMessage> decode_relay_message(std::string_view json);

// The same, and on failure `detail` says what was wrong, naming the field
// (`field "nameplate": expected 4 Crockford base32 symbols`). It never quotes a
// field's value, so it is safe to log and to send back in Error.message.
[[nodiscard]] base::Result<ClientMessage> decode_client_message(std::string_view json,
                                                                std::string& detail);
[[nodiscard]] base::Result<RelayMessage> decode_relay_message(std::string_view json,
                                                              std::string& detail);

}  // namespace peertun::control

template <>
struct boost::system::is_error_code_enum<peertun::control::Errc> : std::true_type {};
