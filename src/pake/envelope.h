#pragma once
// The binary envelope of every p2p signalling payload (the relay's opaque `signal`
// messages). Layout (docs/protocol/pake.md, "Envelope"):
//
//   0        1        2
//   +--------+--------+----------------------------------------------+
//   | version| type   | body                                         |
//   +--------+--------+----------------------------------------------+
//   Share   (1): body = Y, 32 bytes (ristretto255 encoding)            -> 34 bytes total
//   Confirm (2): body = tag, 32 bytes (HMAC-SHA-512-256)               -> 34 bytes total
//   Sealed  (3): body = counter (8 bytes, big-endian) || ciphertext (>= 16 bytes:
//                XChaCha20-Poly1305 output including its tag)       -> >= 26 bytes total
//
// Pure functions; any thread.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/error.h"
#include "pake/error.h"
#include "wire/bytes.h"

namespace peertun::pake {

inline constexpr std::uint8_t kEnvelopeVersion = 1;
inline constexpr std::size_t kEnvelopeHeaderSize = 2;
inline constexpr std::size_t kShareBodySize = 32;
inline constexpr std::size_t kConfirmBodySize = 32;
inline constexpr std::size_t kCounterSize = 8;
inline constexpr std::size_t kAeadTagSize = 16;  // crypto_aead_xchacha20poly1305_ietf_ABYTES

enum class MessageType : std::uint8_t { Share = 1, Confirm = 2, Sealed = 3 };

struct Envelope {
  MessageType type = MessageType::Share;
  std::uint64_t counter = 0;  // Sealed only; 0 otherwise
  wire::ByteView body;        // Share/Confirm: the 32 bytes; Sealed: the ciphertext.
                              // A view into the decoded payload: valid as long as it.
};

// Errors: Truncated (shorter than the header or than the type requires), BadVersion,
// UnknownType, TrailingBytes (Share/Confirm longer than 34 bytes).
[[nodiscard]] base::Result<Envelope> decode_envelope(wire::ByteView payload);

[[nodiscard]] wire::Bytes encode_share(std::span<const std::uint8_t, kShareBodySize> y);
[[nodiscard]] wire::Bytes encode_confirm(std::span<const std::uint8_t, kConfirmBodySize> tag);
// The first kEnvelopeHeaderSize + kCounterSize bytes of a Sealed envelope; also the
// associated data prefix sealing binds (see sealed.h).
[[nodiscard]] std::array<std::uint8_t, kEnvelopeHeaderSize + kCounterSize> sealed_header(
    std::uint64_t counter);
// ciphertext must be at least kAeadTagSize bytes (it always is when it comes from
// SealedChannel::seal).
[[nodiscard]] wire::Bytes encode_sealed(std::uint64_t counter, wire::ByteView ciphertext);

}  // namespace peertun::pake
