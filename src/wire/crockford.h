#pragma once
// Crockford base32 (https://www.crockford.com/base32.html) for human-typed codes:
// nameplates and join-code secrets. Encoding uses the 32 symbols
// 0-9 A-Z minus I, L, O, U. Decoding is case-insensitive and maps the confusables
// O/o -> 0 and I/i/L/l -> 1, as the spec requires.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace peertun::wire {

// The low 5*chars bits of value as `chars` symbols, most significant first.
// chars must be 1..12.
[[nodiscard]] std::string crockford_encode(std::uint64_t value, int chars);

// Decodes 1..12 symbols (no separators). nullopt on any other character.
[[nodiscard]] std::optional<std::uint64_t> crockford_decode(std::string_view text);

}  // namespace peertun::wire
