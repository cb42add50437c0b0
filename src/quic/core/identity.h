#pragma once
// A peer's TLS identity for one session: an ephemeral ECDSA P-256 key and a self-signed
// certificate (GnuTLS), named by the SHA-256 of the certificate's DER encoding. The
// fingerprint travels inside the PAKE-sealed signalling; each side gives the other's to
// its Connection, which refuses any other certificate during the TLS handshake
// (docs/protocol/quic.md, "Identity").
//
// Threading: an Identity is immutable after generate(); share it with shared_ptr. GnuTLS
// credentials are safe to use from several connections on one thread.

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace peertun::quic {

struct Fingerprint {
  std::array<std::uint8_t, 32> bytes{};

  // SHA-256 of a DER certificate.
  [[nodiscard]] static Fingerprint of_der(std::span<const std::uint8_t> der);
  // 64 hex digits, either case. Errors: Errc::BadFingerprint.
  [[nodiscard]] static base::Result<Fingerprint> parse(std::string_view hex);
  // Lower-case hex, 64 digits.
  [[nodiscard]] std::string to_hex() const;

  friend bool operator==(const Fingerprint&, const Fingerprint&) = default;
};

class Identity {
 public:
  // Makes a fresh key pair and certificate (1.5-6 ms on these machines).
  // Errors: Errc::IdentityFailed.
  [[nodiscard]] static base::Result<std::shared_ptr<const Identity>> generate();

  Identity(const Identity&) = delete;
  Identity& operator=(const Identity&) = delete;
  ~Identity();

  [[nodiscard]] const Fingerprint& fingerprint() const { return fingerprint_; }
  [[nodiscard]] std::span<const std::uint8_t> certificate_der() const { return der_; }

  // For quic/core only: the gnutls_certificate_credentials_t holding key and certificate.
  [[nodiscard]] void* native_credentials() const { return credentials_; }

 private:
  Identity() = default;
  void* credentials_ = nullptr;  // gnutls_certificate_credentials_t, owned
  std::vector<std::uint8_t> der_;
  Fingerprint fingerprint_;
};

}  // namespace peertun::quic
