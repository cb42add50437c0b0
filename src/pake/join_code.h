#pragma once
// Join codes: "pt-p2p-NNNN-SSSS-SSSS".
//
// NNNN is the relay's nameplate (4 Crockford base32 symbols = 20 bits): it names the
// rendezvous slot on the relay and is public. SSSS-SSSS is a 40-bit secret minted by peer
// A (8 symbols); it is the CPace password and never reaches the relay. The relay burns a
// nameplate after one failed handshake, so an attacker gets one online guess (2^-40) per
// code. See docs/protocol/pake.md.
//
// The formatted code is also the path-safe display form (mount dirs, status commands):
// it only contains [a-z0-9A-Z-].
//
// Pure functions; any thread.

#include <string>
#include <string_view>

#include "base/error.h"
#include "base/secret.h"
#include "pake/error.h"

namespace peertun::pake {

inline constexpr std::string_view kJoinCodePrefix = "pt-p2p-";
inline constexpr int kNameplateSymbols = 4;  // 20 bits
inline constexpr int kSecretSymbols = 8;     // 40 bits

struct JoinCode {
  std::string nameplate;  // canonical: 4 upper-case Crockford symbols, e.g. "2A91"
  base::Secret secret;    // canonical: 8 upper-case Crockford symbols, no dash

  friend bool operator==(const JoinCode&, const JoinCode&) = default;
};

// A fresh code for `nameplate` (as minted by the relay; normalised here because the
// relay is not trusted to send canonical text) with a random 40-bit secret.
// Errors: those of normalize_nameplate.
[[nodiscard]] base::Result<JoinCode> generate_join_code(std::string_view nameplate);

// "pt-p2p-2A91-7XKP-Q4L9". The code must be canonical (as produced by this module).
[[nodiscard]] std::string format_join_code(const JoinCode& code);

// Parses what a person typed or pasted. Tolerant: case-insensitive; Crockford confusables
// (O->0, I/L->1); whitespace anywhere (leading, trailing, between groups); dashes optional;
// the "pt-p2p-" prefix optional. The result is canonical.
// Errors: Empty, BadSymbol, BadPrefix, BadLength. Messages never echo the input.
[[nodiscard]] base::Result<JoinCode> parse_join_code(std::string_view text);

// Surrounding whitespace trimmed, case and confusables folded: "2a9l" -> "2A91".
// Errors: Empty, BadSymbol, BadLength.
[[nodiscard]] base::Result<std::string> normalize_nameplate(std::string_view text);

}  // namespace peertun::pake
