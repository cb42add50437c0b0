#include "quic/core/identity.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <chrono>

#include "base/random.h"
#include "quic/core/errc.h"
#include "wire/bytes.h"

namespace peertun::quic {
namespace {

// The certificate is only ever checked against its pinned fingerprint, never against a
// CA or a clock, so its validity window just has to look sane to GnuTLS.
constexpr auto kCertificateLifetime = std::chrono::hours(24 * 30);
constexpr auto kClockSkewAllowance = std::chrono::hours(1);

// Owns the GnuTLS objects while the certificate is built; frees them on every path.
struct Builder {
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  gnutls_certificate_credentials_t cred = nullptr;
  ~Builder() {
    if (crt != nullptr) {
      gnutls_x509_crt_deinit(crt);
    }
    if (key != nullptr) {
      gnutls_x509_privkey_deinit(key);
    }
    if (cred != nullptr) {
      gnutls_certificate_free_credentials(cred);
    }
  }
};

}  // namespace

Fingerprint Fingerprint::of_der(std::span<const std::uint8_t> der) {
  Fingerprint fp;
  gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data(), der.size(), fp.bytes.data());
  return fp;
}

base::Result<Fingerprint> Fingerprint::parse(std::string_view hex) {
  Fingerprint fp;
  // Exactly 64 digits: from_hex alone would also skip whitespace.
  auto bytes = hex.size() == fp.bytes.size() * 2 ? wire::from_hex(hex) : std::nullopt;
  if (!bytes || bytes->size() != fp.bytes.size()) {
    return make_error_code(Errc::BadFingerprint);
  }
  std::copy(bytes->begin(), bytes->end(), fp.bytes.begin());
  return fp;
}

std::string Fingerprint::to_hex() const { return wire::to_hex(bytes); }

base::Result<std::shared_ptr<const Identity>> Identity::generate() {
  const auto failed = make_error_code(Errc::IdentityFailed);
  Builder b;
  if (gnutls_x509_privkey_init(&b.key) < 0 ||
      gnutls_x509_privkey_generate(b.key, GNUTLS_PK_ECDSA,
                                   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0) {
    return failed;
  }
  if (gnutls_x509_crt_init(&b.crt) < 0) {
    return failed;
  }
  std::array<std::uint8_t, 16> serial;
  base::random_bytes(serial);
  serial[0] &= 0x7f;  // a positive INTEGER (RFC 5280 section 4.1.2.2)
  const auto now = std::chrono::system_clock::now();
  const auto activation = std::chrono::system_clock::to_time_t(now - kClockSkewAllowance);
  const auto expiration = std::chrono::system_clock::to_time_t(now + kCertificateLifetime);
  static constexpr char kCommonName[] = "peertun";
  if (gnutls_x509_crt_set_version(b.crt, 3) < 0 ||
      gnutls_x509_crt_set_serial(b.crt, serial.data(), serial.size()) < 0 ||
      gnutls_x509_crt_set_activation_time(b.crt, activation) < 0 ||
      gnutls_x509_crt_set_expiration_time(b.crt, expiration) < 0 ||
      gnutls_x509_crt_set_dn_by_oid(b.crt, GNUTLS_OID_X520_COMMON_NAME, 0, kCommonName,
                                    sizeof kCommonName - 1) < 0 ||
      gnutls_x509_crt_set_key(b.crt, b.key) < 0 ||
      gnutls_x509_crt_set_key_usage(b.crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
      gnutls_x509_crt_sign2(b.crt, b.crt, b.key, GNUTLS_DIG_SHA256, 0) < 0) {
    return failed;
  }
  gnutls_datum_t der{};
  if (gnutls_x509_crt_export2(b.crt, GNUTLS_X509_FMT_DER, &der) < 0) {
    return failed;
  }
  std::vector<std::uint8_t> der_bytes(der.data, der.data + der.size);
  gnutls_free(der.data);
  // The credentials copy key and certificate, so the builder may free its own.
  if (gnutls_certificate_allocate_credentials(&b.cred) < 0 ||
      gnutls_certificate_set_x509_key(b.cred, &b.crt, 1, b.key) < 0) {
    return failed;
  }
  std::shared_ptr<Identity> identity(new Identity());
  identity->credentials_ = b.cred;
  b.cred = nullptr;
  identity->fingerprint_ = Fingerprint::of_der(der_bytes);
  identity->der_ = std::move(der_bytes);
  return std::shared_ptr<const Identity>(std::move(identity));
}

Identity::~Identity() {
  if (credentials_ != nullptr) {
    gnutls_certificate_free_credentials(
        static_cast<gnutls_certificate_credentials_t>(credentials_));
  }
}

}  // namespace peertun::quic
