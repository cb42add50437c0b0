#pragma once
// Standard base64 (RFC 4648 §4: alphabet A-Z a-z 0-9 + /, '=' padding), for binary
// payloads inside JSON text (the control plane's Signal).
//
// Decoding is strict, so every byte string has exactly one accepted encoding and
// decode(text) succeeds only if encode(decode(text)) == text:
//   - the length must be a multiple of 4 (padding is required, RFC 4648 §3.2);
//   - only alphabet characters, no whitespace or line breaks (§3.3: "MUST reject");
//   - '=' only as the last one or two characters of the final quantum;
//   - the unused low bits of the last symbol before padding must be zero (§3.5).

#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "wire/bytes.h"

namespace peertun::wire {

// Length of the encoding of n bytes: 4 * ceil(n / 3).
[[nodiscard]] constexpr std::size_t base64_encoded_size(std::size_t n) {
  return (n / 3 + (n % 3 != 0 ? 1 : 0)) * 4;
}

[[nodiscard]] std::string base64_encode(ByteView data);

// Decodes `text` (untrusted). Returns nullopt on a bad character, a length that is
// not a multiple of 4, misplaced or excess padding, non-zero trailing bits, or a
// decoded length above `max_decoded`; the length limit is checked before any
// allocation, so callers bound memory by passing their own limit.
[[nodiscard]] std::optional<Bytes> base64_decode(
    std::string_view text, std::size_t max_decoded = std::numeric_limits<std::size_t>::max());

}  // namespace peertun::wire
