#include "pake/sealed.h"

#include <sodium.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "pake/envelope.h"

namespace peertun::pake {
namespace {

static_assert(cpace::kKeySize == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(kAeadTagSize == crypto_aead_xchacha20poly1305_ietf_ABYTES);

using Nonce = std::array<std::uint8_t, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES>;
constexpr std::size_t kHeaderSize = kEnvelopeHeaderSize + kCounterSize;
using AssociatedData = std::array<std::uint8_t, kHeaderSize + 1>;

// The direction a message travels, named by its sender.
std::uint8_t direction_byte(Role sender) { return sender == Role::A ? 'A' : 'B'; }

Nonce make_nonce(Role sender, std::uint64_t counter) {
  Nonce n{};
  n[0] = direction_byte(sender);
  for (std::size_t i = 0; i < kCounterSize; ++i) {
    n[n.size() - 1 - i] = static_cast<std::uint8_t>(counter >> (8 * i));
  }
  return n;
}

AssociatedData make_ad(Role sender, std::uint64_t counter) {
  AssociatedData ad{};
  const auto header = sealed_header(counter);
  std::copy(header.begin(), header.end(), ad.begin());
  ad.back() = direction_byte(sender);
  return ad;
}

}  // namespace

SealedChannel::SealedChannel(Role self, const cpace::Key& key_ab, const cpace::Key& key_ba)
    : self_(self),
      send_key_(self == Role::A ? key_ab : key_ba),
      recv_key_(self == Role::A ? key_ba : key_ab) {}

SealedChannel::SealedChannel(SealedChannel&& other) noexcept
    : self_(other.self_),
      send_key_(other.send_key_),
      recv_key_(other.recv_key_),
      send_counter_(other.send_counter_),
      recv_counter_(other.recv_counter_) {
  sodium_memzero(other.send_key_.data(), other.send_key_.size());
  sodium_memzero(other.recv_key_.data(), other.recv_key_.size());
}

SealedChannel& SealedChannel::operator=(SealedChannel&& other) noexcept {
  if (this != &other) {
    self_ = other.self_;
    send_key_ = other.send_key_;
    recv_key_ = other.recv_key_;
    send_counter_ = other.send_counter_;
    recv_counter_ = other.recv_counter_;
    sodium_memzero(other.send_key_.data(), other.send_key_.size());
    sodium_memzero(other.recv_key_.data(), other.recv_key_.size());
  }
  return *this;
}

SealedChannel::~SealedChannel() {
  sodium_memzero(send_key_.data(), send_key_.size());
  sodium_memzero(recv_key_.data(), recv_key_.size());
}

wire::Bytes SealedChannel::seal(wire::ByteView plaintext) {
  if (send_counter_ == std::numeric_limits<std::uint64_t>::max()) {
    // Unreachable in practice; reusing a nonce would be far worse than stopping.
    std::fputs("fatal: pake sealed channel counter exhausted\n", stderr);
    std::abort();
  }
  const std::uint64_t counter = send_counter_++;
  const Nonce nonce = make_nonce(self_, counter);
  const AssociatedData ad = make_ad(self_, counter);
  wire::Bytes out(kHeaderSize + plaintext.size() + kAeadTagSize);
  const auto header = sealed_header(counter);
  std::copy(header.begin(), header.end(), out.begin());
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kHeaderSize, &written, plaintext.data(),
                                             plaintext.size(), ad.data(), ad.size(), nullptr,
                                             nonce.data(), send_key_.data());
  out.resize(kHeaderSize + static_cast<std::size_t>(written));
  return out;
}

base::Result<wire::Bytes> SealedChannel::open(wire::ByteView sealed) {
  auto env = decode_envelope(sealed);
  if (!env) {
    return env.error();
  }
  if (env->type != MessageType::Sealed) {
    return Errc::ProtocolError;
  }
  if (env->counter < recv_counter_) {
    return Errc::Replayed;
  }
  if (env->counter > recv_counter_) {
    return Errc::OutOfOrder;
  }
  const Role sender = peer_of(self_);
  const Nonce nonce = make_nonce(sender, env->counter);
  const AssociatedData ad = make_ad(sender, env->counter);
  wire::Bytes plain(env->body.size() - kAeadTagSize);
  unsigned long long written = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &written, nullptr, env->body.data(),
                                                 env->body.size(), ad.data(), ad.size(),
                                                 nonce.data(), recv_key_.data()) != 0) {
    return Errc::Tampered;
  }
  plain.resize(static_cast<std::size_t>(written));
  ++recv_counter_;
  return plain;
}

}  // namespace peertun::pake
