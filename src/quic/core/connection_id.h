#pragma once
// Connection IDs that can never be mistaken for STUN.
//
// The path layer shares one UDP socket between STUN and QUIC and demultiplexes by the
// first byte (RFC 7983: 0-3 is STUN) AND the magic cookie in bytes 4-7 (RFC 8489 section
// 5), because ngtcp2 0.12.1 greases the QUIC fixed bit (RFC 9287) and about one short-
// header packet in eight starts with a byte in 0-3. A short header's bytes 1..N are the
// Destination Connection ID, which the receiving endpoint chose: so every connection ID
// we issue has CID bytes 3-6 (packet bytes 4-7) different from the cookie, and the demux
// is unambiguous (docs/protocol/quic.md, "Connection IDs").

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace peertun::quic {

// 8 bytes, ngtcp2's default; at least 7 so that packet bytes 4-7 lie inside the CID.
inline constexpr std::size_t kConnectionIdLength = 8;
static_assert(kConnectionIdLength >= 7);

// RFC 8489 section 5: "The magic cookie field MUST contain the fixed value 0x2112A442".
inline constexpr std::array<std::uint8_t, 4> kStunMagicCookie = {0x21, 0x12, 0xA4, 0x42};

// Rewrites `cid` in place (any length) so that its bytes 3-6 differ from the cookie;
// leaves every other CID untouched.
void make_stun_safe(std::span<std::uint8_t> cid);

// Fills `out` with random bytes, then make_stun_safe.
void generate_connection_id(std::span<std::uint8_t> out);

// The path layer's rule: first byte 0-3 and bytes 4-7 equal to the magic cookie.
[[nodiscard]] bool looks_like_stun(std::span<const std::uint8_t> datagram);

}  // namespace peertun::quic
