#pragma once
// SealedChannel: authenticated encryption of p2p signalling after the handshake, so the
// relay that forwards it can neither read, alter, replay, reorder nor drop a message
// unnoticed. docs/protocol/pake.md, "Sealed messages".
//
// Each direction has its own key (from the CPace key schedule) and a 64-bit message
// counter starting at 0. A message is a Sealed envelope (envelope.h):
//   version || type || counter (8, big-endian) || XChaCha20-Poly1305-IETF(plaintext)
// with nonce = direction byte || 15 zero bytes || counter (8, big-endian), and associated
// data = the 10 envelope header bytes || direction byte. Nonces never repeat under a key
// because the counter only grows. open() accepts only the exact next counter: the relay
// path is ordered and reliable, so anything else is an attack or a bug.
//
// Sans-I/O; one instance per session, used from one strand.

#include <cstdint>

#include "base/error.h"
#include "pake/cpace.h"
#include "pake/error.h"
#include "pake/role.h"
#include "wire/bytes.h"

namespace peertun::pake {

class SealedChannel {
 public:
  // key_ab seals A -> B, key_ba seals B -> A; `self` picks which one we send with.
  SealedChannel(Role self, const cpace::Key& key_ab, const cpace::Key& key_ba);
  SealedChannel(SealedChannel&&) noexcept;
  SealedChannel& operator=(SealedChannel&&) noexcept;
  SealedChannel(const SealedChannel&) = delete;
  SealedChannel& operator=(const SealedChannel&) = delete;
  ~SealedChannel();

  // A complete Sealed envelope, ready to send as a signal payload. Each call uses the
  // next send counter. (2^64 messages cannot be sent in practice; the process aborts
  // rather than reuse a nonce.)
  [[nodiscard]] wire::Bytes seal(wire::ByteView plaintext);

  // The plaintext of the peer's next message. On any error the receive counter does not
  // advance. Errors: envelope errors (Truncated, BadVersion, UnknownType); ProtocolError
  // (not a Sealed envelope); Replayed (counter below the next expected); OutOfOrder
  // (counter above it: something was dropped or reordered); Tampered (authentication
  // failed: altered, or sealed by ourselves / under another key).
  [[nodiscard]] base::Result<wire::Bytes> open(wire::ByteView sealed);

  [[nodiscard]] std::uint64_t sent() const { return send_counter_; }
  [[nodiscard]] std::uint64_t received() const { return recv_counter_; }

 private:
  Role self_;
  cpace::Key send_key_{};
  cpace::Key recv_key_{};
  std::uint64_t send_counter_ = 0;
  std::uint64_t recv_counter_ = 0;
};

}  // namespace peertun::pake
