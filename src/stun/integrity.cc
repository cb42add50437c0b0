// MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5), FINGERPRINT (CRC-32, §14.7), the
// long-term key (MD5, §9.2.2) and MessageBuilder::finish(), which appends the first two.
// GnuTLS supplies the hashes; only this file includes it.

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <cstring>
#include <string>

#include "stun/message.h"

namespace peertun::stun {
namespace {

// CRC-32 with the reflected polynomial 0xEDB88320, the one RFC 8489 §14.7 cites from
// ITU V.42 / IEEE 802.3.
constexpr std::array<std::uint32_t, 256> make_crc_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) {
      c = (c & 1u) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    }
    table[i] = c;
  }
  return table;
}
constexpr auto kCrcTable = make_crc_table();

using Sha1Digest = std::array<std::uint8_t, kMessageIntegritySize>;

// HMAC-SHA1 of header-with-length `length_field` followed by raw[2+2 .. end).
bool hmac_sha1_adjusted(ByteView key, ByteView message_prefix, std::uint16_t length_field,
                        Sha1Digest& out) {
  gnutls_hmac_hd_t h = nullptr;
  if (gnutls_hmac_init(&h, GNUTLS_MAC_SHA1, key.data(), key.size()) < 0) {
    return false;
  }
  std::array<std::uint8_t, 2> len;
  wire::store_u16(len.data(), length_field);
  const bool ok = gnutls_hmac(h, message_prefix.data(), 2) >= 0 &&
                  gnutls_hmac(h, len.data(), len.size()) >= 0 &&
                  gnutls_hmac(h, message_prefix.data() + 4, message_prefix.size() - 4) >= 0;
  gnutls_hmac_deinit(h, out.data());
  return ok;
}

// Timing does not depend on where the first difference is.
bool constant_time_equal(ByteView a, ByteView b) {
  if (a.size() != b.size()) {
    return false;
  }
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

std::uint32_t crc32(ByteView data) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::uint8_t b : data) {
    c = kCrcTable[(c ^ b) & 0xFFu] ^ (c >> 8);
  }
  return c ^ 0xFFFFFFFFu;
}

base::Result<void> verify_fingerprint(const MessageView& message) {
  const auto at = message.fingerprint_offset();
  if (!at) {
    return Errc::NoFingerprint;
  }
  // parse() guarantees FINGERPRINT is the last attribute, so the length field already
  // covers it, as §14.7 requires for the CRC input.
  const ByteView raw = message.raw();
  const std::uint32_t expected = crc32(raw.first(*at)) ^ kFingerprintXor;
  if (wire::load_u32(&raw[*at + kAttributeHeaderSize]) != expected) {
    return Errc::FingerprintMismatch;
  }
  return {};
}

base::Result<void> verify_message_integrity(const MessageView& message, ByteView key) {
  const auto at = message.integrity_offset();
  if (!at) {
    return Errc::NoMessageIntegrity;
  }
  const ByteView raw = message.raw();
  // §14.5: the length field counts up to the end of MESSAGE-INTEGRITY, ignoring what follows.
  const auto length_field =
      static_cast<std::uint16_t>(*at + kAttributeHeaderSize + kMessageIntegritySize - kHeaderSize);
  Sha1Digest digest{};
  if (!hmac_sha1_adjusted(key, raw.first(*at), length_field, digest)) {
    return Errc::CryptoFailure;
  }
  if (!constant_time_equal(digest,
                           raw.subspan(*at + kAttributeHeaderSize, kMessageIntegritySize))) {
    return Errc::IntegrityMismatch;
  }
  return {};
}

LongTermKey long_term_key(std::string_view username, std::string_view realm,
                          std::string_view password) {
  std::string input;
  input.reserve(username.size() + realm.size() + password.size() + 2);
  input.append(username).append(":").append(realm).append(":").append(password);
  LongTermKey key{};
  // MD5 cannot fail for a valid algorithm id; on a FIPS-restricted GnuTLS it would, and
  // the all-zero key then simply fails every integrity check.
  if (gnutls_hash_fast(GNUTLS_DIG_MD5, input.data(), input.size(), key.data()) < 0) {
    key.fill(0);
  }
  // Do not leave the password in a freed heap block longer than needed.
  std::memset(input.data(), 0, input.size());
  return key;
}

Bytes MessageBuilder::finish(std::optional<ByteView> integrity_key, bool fingerprint) && {
  if (integrity_key) {
    const std::size_t at = out_.size();
    set_length(at + kAttributeHeaderSize + kMessageIntegritySize - kHeaderSize);
    Sha1Digest digest{};
    // A GnuTLS failure leaves the digest zero: the peer rejects the message, which is
    // the safe outcome for a failure that cannot happen with SHA-1.
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA1, integrity_key->data(), integrity_key->size(), out_.data(),
                         at, digest.data()) < 0) {
      digest.fill(0);
    }
    out_.resize(at + kAttributeHeaderSize + kMessageIntegritySize);
    wire::store_u16(&out_[at], attr::kMessageIntegrity);
    wire::store_u16(&out_[at + 2], static_cast<std::uint16_t>(kMessageIntegritySize));
    std::memcpy(&out_[at + kAttributeHeaderSize], digest.data(), digest.size());
  }
  if (fingerprint) {
    const std::size_t at = out_.size();
    set_length(at + kAttributeHeaderSize + 4 - kHeaderSize);
    const std::uint32_t crc = crc32(ByteView(out_.data(), at)) ^ kFingerprintXor;
    out_.resize(at + kAttributeHeaderSize + 4);
    wire::store_u16(&out_[at], attr::kFingerprint);
    wire::store_u16(&out_[at + 2], 4);
    wire::store_u32(&out_[at + kAttributeHeaderSize], crc);
  }
  set_length(out_.size() - kHeaderSize);
  return std::move(out_);
}

}  // namespace peertun::stun
