// GnuTLS over memory buffers, driven by Asio (see tls_stream.h). No Beast here.
#include "io/tls_stream.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <algorithm>
#include <boost/asio/append.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "base/log.h"
#include "wire/bytes.h"

namespace peertun::io {
namespace {

const char* tls_message(int ev) noexcept {
  switch (static_cast<TlsErrc>(ev)) {
    case TlsErrc::HandshakeFailed:
      return "TLS handshake failed";
    case TlsErrc::AlertReceived:
      return "the peer refused the TLS handshake";
    case TlsErrc::CertificateUntrusted:
      return "the TLS certificate is not trusted";
    case TlsErrc::CertificateWrongHost:
      return "the TLS certificate is for another host";
    case TlsErrc::CertificateExpired:
      return "the TLS certificate has expired or is not valid yet";
    case TlsErrc::PinMismatch:
      return "the TLS certificate's key does not match the pin";
    case TlsErrc::RecordError:
      return "a TLS record could not be read";
    case TlsErrc::Busy:
      return "a TLS operation of the same kind is already pending";
    case TlsErrc::BadCredentials:
      return "a TLS certificate, key or CA file cannot be used";
  }
  return "unknown TLS error";
}

constexpr base::SimpleErrorCategory kTlsCategory("peertun.io.tls", tls_message);

// TLS 1.2 and 1.3 only: everything older is broken or deprecated (RFC 8996).
constexpr char kPriority[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
constexpr char kPinPrefix[] = "sha256:";
constexpr std::size_t kPinBytes = 32;
// One socket read takes at most this much ciphertext (a few TLS records).
constexpr std::size_t kMaxReadChunk = 64 * 1024;
// RFC 8446 section 5.1: "The length (in bytes) of the following TLSPlaintext.fragment.
// The length MUST NOT exceed 2^14 bytes." A write gathers small buffers (a WebSocket
// frame header and its payload) into records of up to this size.
constexpr std::size_t kMaxRecordPlaintext = 16 * 1024;

spdlog::logger& log() { return base::logger("io.tls"); }

bool parse_pin(std::string_view text, std::array<unsigned char, kPinBytes>& out) {
  if (!text.starts_with(kPinPrefix)) {
    return false;
  }
  text.remove_prefix(std::strlen(kPinPrefix));
  // Exactly 64 digits: from_hex alone would also skip whitespace.
  auto bytes = text.size() == 2 * kPinBytes ? wire::from_hex(text) : std::nullopt;
  if (!bytes || bytes->size() != kPinBytes) {
    return false;
  }
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return true;
}

std::string format_pin(const unsigned char* bytes, std::size_t size) {
  return kPinPrefix + wire::to_hex({bytes, size});
}

// SHA-256 of a DER certificate's SubjectPublicKeyInfo: stays the same when a
// certificate is renewed with the same key.
bool spki_sha256(const gnutls_datum_t& der, std::array<unsigned char, kPinBytes>& out) {
  gnutls_x509_crt_t crt = nullptr;
  if (gnutls_x509_crt_init(&crt) < 0) {
    return false;
  }
  std::size_t size = out.size();
  const bool ok =
      gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) >= 0 &&
      gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, out.data(), &size) >= 0 &&
      size == kPinBytes;
  gnutls_x509_crt_deinit(crt);
  return ok;
}

// Reads a whole file, or says why not (names the file).
bool read_file(const std::string& path, const char* what, gnutls_datum_t& out,
               std::string& detail) {
  // fopen() sets errno when it fails (POSIX), so the reason is the real one.
  std::FILE* probe = std::fopen(path.c_str(), "rb");
  if (probe == nullptr) {
    const int error = errno;
    detail = std::string("cannot read the ") + what + " file " + path + ": " + std::strerror(error);
    return false;
  }
  std::fclose(probe);
  if (gnutls_load_file(path.c_str(), &out) < 0) {
    detail = std::string("cannot read the ") + what + " file " + path;
    return false;
  }
  return true;
}

struct Datum {
  gnutls_datum_t d{nullptr, 0};
  Datum() = default;
  Datum(const Datum&) = delete;
  Datum& operator=(const Datum&) = delete;
  ~Datum() { gnutls_free(d.data); }
};

// Which verification problem to report first: a chain nobody vouches for matters more
// than its dates, and both more than the name.
TlsErrc classify(unsigned status, const char*& reason) {
  if ((status & GNUTLS_CERT_SIGNER_NOT_FOUND) != 0) {
    reason = "issued by an unknown authority";
    return TlsErrc::CertificateUntrusted;
  }
  if ((status & (GNUTLS_CERT_SIGNER_NOT_CA | GNUTLS_CERT_SIGNATURE_FAILURE |
                 GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE)) != 0) {
    reason = "invalid signature chain";
    return TlsErrc::CertificateUntrusted;
  }
  if ((status & GNUTLS_CERT_INSECURE_ALGORITHM) != 0) {
    reason = "signed with an insecure algorithm";
    return TlsErrc::CertificateUntrusted;
  }
  if ((status & GNUTLS_CERT_REVOKED) != 0) {
    reason = "revoked";
    return TlsErrc::CertificateUntrusted;
  }
  if ((status & GNUTLS_CERT_EXPIRED) != 0) {
    reason = "expired";
    return TlsErrc::CertificateExpired;
  }
  if ((status & GNUTLS_CERT_NOT_ACTIVATED) != 0) {
    reason = "not valid yet";
    return TlsErrc::CertificateExpired;
  }
  if ((status & GNUTLS_CERT_UNEXPECTED_OWNER) != 0) {
    reason = "issued for another name";
    return TlsErrc::CertificateWrongHost;
  }
  if ((status & GNUTLS_CERT_PURPOSE_MISMATCH) != 0) {
    reason = "not meant for TLS servers";
    return TlsErrc::CertificateUntrusted;
  }
  reason = "rejected";
  return TlsErrc::CertificateUntrusted;
}

}  // namespace

const boost::system::error_category& tls_category() { return kTlsCategory; }

bool is_valid_pin(std::string_view text) {
  std::array<unsigned char, kPinBytes> bytes{};
  return parse_pin(text, bytes);
}

bool is_usable_ca_file(const std::string& path, std::string& detail) {
  Datum pem;
  if (!read_file(path, "CA", pem.d, detail)) {
    return false;
  }
  gnutls_x509_crt_t* certs = nullptr;
  unsigned count = 0;
  if (gnutls_x509_crt_list_import2(&certs, &count, &pem.d, GNUTLS_X509_FMT_PEM, 0) < 0) {
    count = 0;
    certs = nullptr;
  }
  for (unsigned i = 0; i < count; ++i) {
    gnutls_x509_crt_deinit(certs[i]);
  }
  gnutls_free(certs);
  if (count == 0) {
    detail = "the CA file " + path + " holds no PEM certificate";
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------
// TlsContext

struct TlsContext::Impl {
  bool server = false;
  gnutls_certificate_credentials_t credentials = nullptr;
  gnutls_priority_t priority = nullptr;
  std::string pin_text;  // server: its certificate's pin
  bool use_pin = false;  // client: check the pin instead of the CA chain
  std::array<unsigned char, kPinBytes> pin{};

  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() {
    if (priority != nullptr) {
      gnutls_priority_deinit(priority);
    }
    if (credentials != nullptr) {
      gnutls_certificate_free_credentials(credentials);
    }
  }
};

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;
bool TlsContext::is_server() const { return impl_->server; }
const std::string& TlsContext::pin() const { return impl_->pin_text; }

namespace {

bool init_common(TlsContext::Impl& impl, std::string& detail) {
  if (gnutls_certificate_allocate_credentials(&impl.credentials) < 0) {
    detail = "cannot allocate TLS credentials";
    return false;
  }
  if (gnutls_priority_init(&impl.priority, kPriority, nullptr) < 0) {
    detail = "GnuTLS rejects the priority string";
    return false;
  }
  return true;
}

}  // namespace

base::Result<std::shared_ptr<const TlsContext>> TlsContext::server(const std::string& cert_file,
                                                                   const std::string& key_file,
                                                                   std::string& detail) {
  const base::ErrorCode bad = TlsErrc::BadCredentials;
  auto impl = std::make_unique<Impl>();
  impl->server = true;
  if (!init_common(*impl, detail)) {
    return bad;
  }
  // Load each file on its own first, so the message names the one that is wrong.
  Datum cert_pem;
  Datum key_pem;
  if (!read_file(cert_file, "certificate", cert_pem.d, detail) ||
      !read_file(key_file, "key", key_pem.d, detail)) {
    return bad;
  }
  gnutls_x509_crt_t* certs = nullptr;
  unsigned cert_count = 0;
  if (gnutls_x509_crt_list_import2(&certs, &cert_count, &cert_pem.d, GNUTLS_X509_FMT_PEM, 0) < 0 ||
      cert_count == 0) {
    detail = "the certificate file " + cert_file + " holds no PEM certificate";
    return bad;
  }
  const std::time_t expires = gnutls_x509_crt_get_expiration_time(certs[0]);
  for (unsigned i = 0; i < cert_count; ++i) {
    gnutls_x509_crt_deinit(certs[i]);
  }
  gnutls_free(certs);
  {
    gnutls_x509_privkey_t key = nullptr;
    if (gnutls_x509_privkey_init(&key) < 0) {
      detail = "cannot allocate a private key";
      return bad;
    }
    const int rc = gnutls_x509_privkey_import2(key, &key_pem.d, GNUTLS_X509_FMT_PEM, nullptr, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0) {
      detail = "the key file " + key_file + " holds no unencrypted PEM private key";
      return bad;
    }
  }
  const int rc = gnutls_certificate_set_x509_key_mem2(impl->credentials, &cert_pem.d, &key_pem.d,
                                                      GNUTLS_X509_FMT_PEM, nullptr, 0);
  if (rc == GNUTLS_E_CERTIFICATE_KEY_MISMATCH) {
    detail = "the key in " + key_file + " does not belong to the certificate in " + cert_file;
    return bad;
  }
  if (rc < 0) {
    detail = "cannot use " + cert_file + " with " + key_file + ": " + gnutls_strerror(rc);
    return bad;
  }
  // Clients of a self-signed relay need the pin: no pin, no start.
  gnutls_datum_t leaf{nullptr, 0};  // points into the credentials: not freed here
  std::array<unsigned char, kPinBytes> pin{};
  if (gnutls_certificate_get_crt_raw(impl->credentials, 0, 0, &leaf) < 0 ||
      !spki_sha256(leaf, pin)) {
    detail = "cannot compute the key pin of the certificate in " + cert_file;
    return bad;
  }
  impl->pin_text = format_pin(pin.data(), pin.size());
  if (expires != static_cast<std::time_t>(-1) && expires < std::time(nullptr)) {
    // Still start: the operator may be replacing it, and clients will say why they fail.
    log().warn("tls.certificate_expired file={}", cert_file);
  }
  return std::shared_ptr<const TlsContext>(new TlsContext(std::move(impl)));
}

base::Result<std::shared_ptr<const TlsContext>> TlsContext::client(const TlsClientTrust& trust,
                                                                   std::string& detail) {
  const base::ErrorCode bad = TlsErrc::BadCredentials;
  auto impl = std::make_unique<Impl>();
  if (!init_common(*impl, detail)) {
    return bad;
  }
  if (!trust.pin.empty() && !trust.ca_file.empty()) {
    detail =
        "a relay pin and a relay CA file exclude each other: a pin accepts only that key "
        "and consults no CA; give one";
    return bad;
  }
  if (!trust.pin.empty()) {
    if (!parse_pin(trust.pin, impl->pin)) {
      detail = "the relay pin must look like sha256:<64 hex digits>";
      return bad;
    }
    impl->use_pin = true;
    return std::shared_ptr<const TlsContext>(new TlsContext(std::move(impl)));
  }
  const int system = gnutls_certificate_set_x509_system_trust(impl->credentials);
  if (system <= 0) {
    // Not fatal: a CA file may be all this client needs (a minimal container).
    log().debug("tls.no_system_trust result={}", system);
  }
  if (!trust.ca_file.empty()) {
    Datum pem;
    if (!read_file(trust.ca_file, "CA", pem.d, detail)) {
      return bad;
    }
    const int added =
        gnutls_certificate_set_x509_trust_mem(impl->credentials, &pem.d, GNUTLS_X509_FMT_PEM);
    if (added <= 0) {
      detail = "the CA file " + trust.ca_file + " holds no PEM certificate";
      return bad;
    }
  }
  return std::shared_ptr<const TlsContext>(new TlsContext(std::move(impl)));
}

// ---------------------------------------------------------------------------------
// Core: the socket and the GnuTLS session, shared by the stream and its operations.

struct TlsStream::Core : std::enable_shared_from_this<TlsStream::Core> {
  explicit Core(asio::ip::tcp::socket s) : socket(std::move(s)) {}
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;
  ~Core() {
    if (session != nullptr) {
      gnutls_deinit(session);
    }
  }

  asio::ip::tcp::socket socket;
  std::shared_ptr<const TlsContext> context;
  gnutls_session_t session = nullptr;
  // Client: the name to verify. GnuTLS keeps a pointer to it, so it lives here.
  std::string server_name;
  // Ciphertext received and not yet pulled by GnuTLS; released when drained so that
  // an idle stream holds none.
  std::vector<unsigned char> in;
  std::size_t in_offset = 0;
  bool eof = false;
  // Ciphertext GnuTLS produced: `out` collects, `sending` is on the wire. Invariant:
  // `sending` is non-empty only while `writing`.
  std::vector<unsigned char> out;
  std::vector<unsigned char> sending;
  bool writing = false;
  bool reading = false;
  bool handshaking = false;
  // The handshake and the certificate checks (CA, name, dates or pin) succeeded. Reads
  // and writes need it.
  bool handshake_done = false;
  // The first handshake failure, final: a second async_handshake reports it again
  // instead of trying again, so nothing can turn a refused certificate into a session.
  base::ErrorCode handshake_error;
  int last_error = 0;
  const char* last_reason = nullptr;
  // The deadline of expires_after(); a generation tells a stale expiry from a live one.
  std::unique_ptr<asio::steady_timer> deadline;
  unsigned deadline_generation = 0;
  bool timed_out = false;

  static ssize_t push(gnutls_transport_ptr_t ptr, const void* data, std::size_t size) {
    auto* core = static_cast<Core*>(ptr);
    const auto* bytes = static_cast<const unsigned char*>(data);
    core->out.insert(core->out.end(), bytes, bytes + size);
    return static_cast<ssize_t>(size);
  }

  static ssize_t pull(gnutls_transport_ptr_t ptr, void* data, std::size_t size) {
    auto* core = static_cast<Core*>(ptr);
    const std::size_t available = core->in.size() - core->in_offset;
    if (available == 0) {
      if (core->eof) {
        return 0;
      }
      gnutls_transport_set_errno(core->session, EAGAIN);
      return -1;
    }
    const std::size_t n = std::min(size, available);
    std::memcpy(data, core->in.data() + core->in_offset, n);
    core->in_offset += n;
    if (core->in_offset == core->in.size()) {
      std::vector<unsigned char>().swap(core->in);
      core->in_offset = 0;
    }
    return static_cast<ssize_t>(n);
  }

  // Only asked for in blocking modes; with GNUTLS_NONBLOCK it answers "what is here".
  static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned /*ms*/) {
    auto* core = static_cast<Core*>(ptr);
    return (core->in.size() > core->in_offset || core->eof) ? 1 : 0;
  }

  bool init_session() {
    const auto& ctx = context->impl();
    const unsigned flags = (ctx.server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
                           GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
    if (gnutls_init(&session, flags) < 0) {
      session = nullptr;
      return false;
    }
    gnutls_transport_set_ptr(session, this);
    gnutls_transport_set_push_function(session, &Core::push);
    gnutls_transport_set_pull_function(session, &Core::pull);
    gnutls_transport_set_pull_timeout_function(session, &Core::pull_timeout);
    // Our deadline (expires_after) bounds the handshake, not GnuTLS's default 40 s.
    gnutls_handshake_set_timeout(session, 0);
    if (gnutls_priority_set(session, ctx.priority) < 0 ||
        gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, ctx.credentials) < 0) {
      return false;
    }
    if (!ctx.server && !ctx.use_pin) {
      if (server_name.empty()) {
        // GnuTLS would skip the name check: a certificate any trusted CA issued for any
        // host would pass.
        last_reason = "no server name to verify the certificate against";
        return false;
      }
      // An IP literal is checked against the certificate's IP addresses.
      gnutls_session_set_verify_cert(session, server_name.c_str(), 0);
    }
    // RFC 6066 section 3: SNI carries DNS names only, never IP literals.
    if (!ctx.server && !server_name.empty() && !base::IpAddress::parse(server_name)) {
      gnutls_server_name_set(session, GNUTLS_NAME_DNS, server_name.data(), server_name.size());
    }
    return true;
  }

  // A socket error as the operation reports it: our own deadline closing the socket is
  // a timeout, not an abort.
  [[nodiscard]] base::ErrorCode socket_error(base::ErrorCode ec) const {
    if (timed_out) {
      return asio::error::timed_out;
    }
    return ec;
  }

  // Ciphertext received and not yet pulled by GnuTLS.
  [[nodiscard]] std::size_t unread() const { return in.size() - in_offset; }

  // After GNUTLS_E_AGAIN: whether to call GnuTLS again before going to the socket.
  // GnuTLS also says AGAIN after it handled a TLS 1.3 post-handshake message
  // (NewSessionTicket, KeyUpdate), although the records behind it may be in `in`
  // already; waiting for the socket then stalls until the peer sends again. Retrying
  // while a call consumed input, or GnuTLS holds decrypted data, ends: every retry
  // consumes at least one record, and a call that consumes nothing goes to the socket.
  [[nodiscard]] bool retry_before_fill(std::size_t unread_before) const {
    return unread() < unread_before || gnutls_record_check_pending(session) > 0;
  }

  enum class Fill { Data, WouldBlock, Failed };
  // Moves what the socket has into `in` without blocking. EOF counts as data: GnuTLS
  // must see it (pull returns 0) to tell close_notify from truncation.
  Fill fill(base::ErrorCode& ec) {
    std::size_t available = socket.available(ec);
    if (ec) {
      return Fill::Failed;
    }
    const std::size_t want = std::clamp<std::size_t>(available, 1, kMaxReadChunk);
    const std::size_t old = in.size();
    in.resize(old + want);
    const std::size_t n = socket.read_some(asio::buffer(in.data() + old, want), ec);
    in.resize(old + n);
    if (in.empty()) {
      std::vector<unsigned char>().swap(in);
      in_offset = 0;
    }
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      ec = {};
      return Fill::WouldBlock;
    }
    if (ec == asio::error::eof) {
      ec = {};
      eof = true;
      return Fill::Data;
    }
    return ec ? Fill::Failed : Fill::Data;
  }

  // Sends what the read path produced (a TLS 1.3 KeyUpdate answer, an alert) without
  // blocking, when no write is on the wire; the rest goes with the next write.
  void flush_now() {
    if (writing || out.empty()) {
      return;
    }
    base::ErrorCode ec;
    const std::size_t n = socket.write_some(asio::buffer(out), ec);
    out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(n));
    if (out.empty()) {
      std::vector<unsigned char>().swap(out);
    }
  }

  template <class Self>
  void write_out(Self&& self) {
    writing = true;
    sending.swap(out);
    asio::async_write(socket, asio::buffer(sending), std::forward<Self>(self));
  }

  void wrote() {
    writing = false;
    std::vector<unsigned char>().swap(sending);
  }

  void expires_after(std::chrono::steady_clock::duration timeout) {
    ++deadline_generation;
    timed_out = false;
    if (!deadline) {
      deadline = std::make_unique<asio::steady_timer>(socket.get_executor());
    }
    deadline->expires_after(timeout);
    deadline->async_wait(
        [weak = weak_from_this(), generation = deadline_generation](base::ErrorCode ec) {
          auto core = weak.lock();
          if (!core || ec || core->deadline_generation != generation) {
            return;
          }
          core->timed_out = true;
          base::ErrorCode ignored;
          core->socket.close(ignored);
        });
  }

  void expires_never() {
    ++deadline_generation;
    if (deadline) {
      deadline->cancel();
      deadline.reset();
    }
  }
};

namespace {

using Core = TlsStream::Core;

// What the operations share. An operation that has not yet waited on anything must
// not call its handler from inside the initiating call (Asio's rule), so finish()
// posts it and it completes from there (`posted`).
struct OpBase {
  explicit OpBase(std::shared_ptr<Core> c) : core(std::move(c)) {}
  std::shared_ptr<Core> core;
  bool waited = false;
  bool posted = false;
  // This operation set its kind's flag (handshaking, reading) and must clear it. A Busy
  // rejection did not: the flag belongs to the operation still pending.
  bool owns_flag = false;
  base::ErrorCode result;
  std::size_t result_bytes = 0;

  template <class Self>
  void finish(Self& self, base::ErrorCode ec, std::size_t n = 0) {
    posted = true;
    result = ec;
    result_bytes = n;
    auto executor = core->socket.get_executor();
    asio::post(executor, std::move(self));
  }
};

base::ErrorCode map_record_error(int rc) {
  if (rc == GNUTLS_E_PREMATURE_TERMINATION) {
    // The peer closed TCP without close_notify. WebSocket frames carry their own
    // lengths, so truncation cannot go unnoticed above us: treat it as EOF.
    return asio::error::eof;
  }
  return TlsErrc::RecordError;
}

struct HandshakeOp : OpBase {
  using OpBase::OpBase;
  // Flushing: ciphertext out, then back to the handshake. FlushThenDone: the last
  // flight (or a failure's alert) out, then complete with `result`.
  enum class State { Run, Flushing, FlushThenDone } state = State::Run;

  template <class Self>
  void operator()(Self& self, base::ErrorCode ec = {}, std::size_t /*n*/ = 0) {
    if (posted) {
      release(result);
      self.complete(result);
      return;
    }
    if (state == State::Flushing || state == State::FlushThenDone) {
      core->wrote();
      if (state == State::FlushThenDone) {
        // A failure keeps its own error; a success reports a failed final write.
        return done(self, result ? result : (ec ? core->socket_error(ec) : base::ErrorCode{}));
      }
      if (ec) {
        return done(self, core->socket_error(ec));
      }
      state = State::Run;
    } else if (ec) {  // from async_wait
      return done(self, core->socket_error(ec));
    }
    for (;;) {
      const std::size_t unread_before = core->unread();
      const int rc = gnutls_handshake(core->session);
      if (rc == GNUTLS_E_SUCCESS) {
        if (auto pin_error = check_pin(); pin_error) {
          return fail(self, pin_error);
        }
        core->handshake_done = true;
        if (!core->out.empty()) {
          // The client's Finished (and anything after it) must reach the peer.
          result = {};
          state = State::FlushThenDone;
          waited = true;
          core->write_out(std::move(self));
          return;
        }
        return done(self, {});
      }
      if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
        if (!core->out.empty()) {
          state = State::Flushing;
          waited = true;
          core->write_out(std::move(self));
          return;
        }
        if (core->retry_before_fill(unread_before)) {
          continue;
        }
        base::ErrorCode fill_ec;
        switch (core->fill(fill_ec)) {
          case Core::Fill::Data:
            continue;
          case Core::Fill::WouldBlock:
            waited = true;
            core->socket.async_wait(asio::socket_base::wait_read, std::move(self));
            return;
          case Core::Fill::Failed:
            return done(self, core->socket_error(fill_ec));
        }
      }
      if (gnutls_error_is_fatal(rc) == 0) {
        continue;  // a warning alert: GnuTLS says the handshake may go on
      }
      return fail(self, classify_failure(rc));
    }
  }

  base::ErrorCode check_pin() {
    const auto& ctx = core->context->impl();
    if (ctx.server || !ctx.use_pin) {
      return {};
    }
    unsigned count = 0;
    const gnutls_datum_t* chain = gnutls_certificate_get_peers(core->session, &count);
    std::array<unsigned char, kPinBytes> got{};
    if (chain == nullptr || count == 0 || !spki_sha256(chain[0], got) || got != ctx.pin) {
      core->last_reason = "the certificate's key is not the pinned one";
      return TlsErrc::PinMismatch;
    }
    return {};
  }

  base::ErrorCode classify_failure(int rc) {
    core->last_error = rc;
    if (rc == GNUTLS_E_PREMATURE_TERMINATION) {
      return core->socket_error(asio::error::eof);
    }
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
      const unsigned status = gnutls_session_get_verify_cert_status(core->session);
      return classify(status, core->last_reason);
    }
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
      core->last_reason = gnutls_alert_get_name(gnutls_alert_get(core->session));
      return TlsErrc::AlertReceived;
    }
    core->last_reason = gnutls_strerror(rc);
    return TlsErrc::HandshakeFailed;
  }

  // Tells the peer why (one alert, best effort), then completes with `error`.
  template <class Self>
  void fail(Self& self, base::ErrorCode error) {
    const bool peer_gone = error == asio::error::eof || error == asio::error::timed_out ||
                           error == TlsErrc::AlertReceived;
    if (!peer_gone) {
      if (error == TlsErrc::PinMismatch) {
        gnutls_alert_send(core->session, GNUTLS_AL_FATAL, GNUTLS_A_BAD_CERTIFICATE);
      } else if (core->last_error != 0) {
        gnutls_alert_send_appropriate(core->session, core->last_error);
      }
    }
    if (!peer_gone && !core->out.empty()) {
      result = error;
      state = State::FlushThenDone;
      waited = true;
      core->write_out(std::move(self));
      return;
    }
    done(self, error);
  }

  template <class Self>
  void done(Self& self, base::ErrorCode ec) {
    if (waited) {
      release(ec);
      self.complete(ec);
      return;
    }
    finish(self, ec);
  }

  // Clears `handshaking` if this operation set it, and keeps its failure for good.
  void release(base::ErrorCode ec) {
    if (!owns_flag) {
      return;
    }
    owns_flag = false;
    core->handshaking = false;
    if (ec && !core->handshake_error) {
      core->handshake_error = ec;
    }
  }
};

struct ReadOp : OpBase {
  using OpBase::OpBase;
  asio::mutable_buffer buffer;

  template <class Self>
  void operator()(Self& self, base::ErrorCode ec = {}, std::size_t /*n*/ = 0) {
    if (posted) {
      release();
      self.complete(result, result_bytes);
      return;
    }
    if (ec) {  // from async_wait
      return done(self, core->socket_error(ec), 0);
    }
    if (buffer.size() == 0) {
      return done(self, {}, 0);
    }
    for (;;) {
      const std::size_t unread_before = core->unread();
      const ssize_t rc = gnutls_record_recv(core->session, buffer.data(), buffer.size());
      if (rc > 0) {
        core->flush_now();
        return done(self, {}, static_cast<std::size_t>(rc));
      }
      if (rc == 0) {
        return done(self, asio::error::eof, 0);  // close_notify
      }
      if (rc == GNUTLS_E_AGAIN) {
        core->flush_now();
        if (core->retry_before_fill(unread_before)) {
          continue;
        }
        base::ErrorCode fill_ec;
        switch (core->fill(fill_ec)) {
          case Core::Fill::Data:
            continue;
          case Core::Fill::WouldBlock:
            waited = true;
            core->socket.async_wait(asio::socket_base::wait_read, std::move(self));
            return;
          case Core::Fill::Failed:
            return done(self, core->socket_error(fill_ec), 0);
        }
      }
      if (rc == GNUTLS_E_REHANDSHAKE) {
        // TLS 1.2 renegotiation (a HelloRequest, or a ClientHello after the handshake):
        // we never renegotiate. RFC 5246 section 7.2.2: no_renegotiation "is always a
        // warning"; the read goes on, and a peer that insists ends the connection itself.
        gnutls_alert_send(core->session, GNUTLS_AL_WARNING, GNUTLS_A_NO_RENEGOTIATION);
        core->flush_now();
        continue;
      }
      // Warning alerts and interruptions let the read go on. Each of these consumed a
      // record, so the loop ends.
      if (rc == GNUTLS_E_INTERRUPTED || rc == GNUTLS_E_WARNING_ALERT_RECEIVED) {
        continue;
      }
      core->last_error = static_cast<int>(rc);
      core->last_reason = gnutls_strerror(static_cast<int>(rc));
      core->flush_now();
      return done(self, map_record_error(static_cast<int>(rc)), 0);
    }
  }

  template <class Self>
  void done(Self& self, base::ErrorCode ec, std::size_t n) {
    if (waited) {
      release();
      self.complete(ec, n);
      return;
    }
    finish(self, ec, n);
  }

  // Clears `reading` if this operation set it.
  void release() {
    if (owns_flag) {
      owns_flag = false;
      core->reading = false;
    }
  }
};

struct WriteOp : OpBase {
  using OpBase::OpBase;
  std::size_t plaintext = 0;

  // Encrypts everything into `out` (the push function never blocks), then writes it.
  // Not gnutls_record_cork(): corking replaces GnuTLS's note that it owes the peer a
  // KeyUpdate (RFC 8446 section 4.6.3: "prior to sending its next Application Data
  // record"), so that answer would never go out. Small buffers are gathered instead, so
  // that a WebSocket frame header costs no record of its own.
  template <class Self>
  void start(Self& self, const TlsStream::ConstBuffers& buffers, std::size_t count) {
    std::vector<unsigned char> gathered;
    for (std::size_t i = 0; i < count; ++i) {
      const auto* data = static_cast<const unsigned char*>(buffers[i].data());
      const std::size_t size = buffers[i].size();
      if (gathered.size() + size > kMaxRecordPlaintext) {
        if (!send(gathered.data(), gathered.size())) {
          return finish(self, TlsErrc::RecordError);
        }
        gathered.clear();
      }
      if (size >= kMaxRecordPlaintext) {  // a whole record or more: no copy
        if (!send(data, size)) {
          return finish(self, TlsErrc::RecordError);
        }
        continue;
      }
      gathered.insert(gathered.end(), data, data + size);
    }
    if (!send(gathered.data(), gathered.size())) {
      return finish(self, TlsErrc::RecordError);
    }
    if (core->out.empty()) {
      return finish(self, {}, plaintext);
    }
    waited = true;
    core->write_out(std::move(self));
  }

  // All of [p, p + size) into records. The push function never fails, so GnuTLS never
  // asks to be called again (GNUTLS_E_AGAIN): any error is final.
  bool send(const unsigned char* p, std::size_t size) {
    while (size > 0) {
      const ssize_t rc = gnutls_record_send(core->session, p, size);
      if (rc <= 0) {
        core->last_error = static_cast<int>(rc);
        core->last_reason = gnutls_strerror(static_cast<int>(rc));
        return false;
      }
      p += rc;
      size -= static_cast<std::size_t>(rc);
      plaintext += static_cast<std::size_t>(rc);
    }
    return true;
  }

  template <class Self>
  void operator()(Self& self, base::ErrorCode ec = {}, std::size_t /*n*/ = 0) {
    if (posted) {
      self.complete(result, result_bytes);
      return;
    }
    core->wrote();
    if (ec) {
      self.complete(core->socket_error(ec), 0);
      return;
    }
    if (!core->out.empty()) {  // the read path queued more meanwhile
      core->write_out(std::move(self));
      return;
    }
    self.complete({}, plaintext);
  }
};

struct ShutdownOp : OpBase {
  using OpBase::OpBase;
  template <class Self>
  void start(Self& self) {
    if (core->session != nullptr && core->handshake_done) {
      gnutls_bye(core->session, GNUTLS_SHUT_WR);  // never blocks: close_notify goes to `out`
    }
    if (core->out.empty()) {
      return finish(self, {});
    }
    waited = true;
    core->write_out(std::move(self));
  }

  template <class Self>
  void operator()(Self& self, base::ErrorCode ec = {}, std::size_t /*n*/ = 0) {
    if (posted) {
      self.complete(result);
      return;
    }
    core->wrote();
    self.complete(ec ? core->socket_error(ec) : base::ErrorCode{});
  }
};

// Runs `start` inside async_compose so that `self` exists; each op's operator()
// handles everything after.
template <class Op, class Start>
struct Starter {
  Op op;
  Start start;
  bool begun = false;
  template <class Self>
  void operator()(Self& self, base::ErrorCode ec = {}, std::size_t n = 0) {
    if (!begun) {
      begun = true;
      start(op, self);
      return;
    }
    op(self, ec, n);
  }
};

}  // namespace

// ---------------------------------------------------------------------------------
// TlsStream

TlsStream::TlsStream(asio::ip::tcp::socket socket)
    : core_(std::make_shared<Core>(std::move(socket))) {}

TlsStream::TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<const TlsContext> context,
                     std::string server_name)
    : core_(std::make_shared<Core>(std::move(socket))) {
  core_->context = std::move(context);
  base::ErrorCode ec;
  // Reads and the read path's flushes are non-blocking calls after a readiness wait.
  core_->socket.non_blocking(true, ec);
  core_->server_name = std::move(server_name);
  if (!core_->init_session()) {
    // The handshake reports it; a stream without a session fails every operation.
    if (core_->session != nullptr) {
      gnutls_deinit(core_->session);
      core_->session = nullptr;
    }
    log().error("tls.session_init_failed reason={}",
                core_->last_reason != nullptr ? core_->last_reason : "gnutls");
  }
}

TlsStream::TlsStream(TlsStream&& other) noexcept = default;
TlsStream& TlsStream::operator=(TlsStream&& other) noexcept {
  if (this != &other) {
    if (core_) {
      base::ErrorCode ignored;
      core_->socket.close(ignored);
    }
    core_ = std::move(other.core_);
  }
  return *this;
}

TlsStream::~TlsStream() {
  if (core_) {
    core_->expires_never();
    base::ErrorCode ignored;
    core_->socket.close(ignored);
  }
}

TlsStream::executor_type TlsStream::get_executor() { return core_->socket.get_executor(); }
TlsStream::next_layer_type& TlsStream::next_layer() { return core_->socket; }
std::shared_ptr<TlsStream::next_layer_type> TlsStream::shared_next_layer() const {
  return {core_, &core_->socket};  // aliasing: owns the Core, points at its socket
}
bool TlsStream::is_tls() const { return core_ && core_->context != nullptr; }

void TlsStream::expires_after(std::chrono::steady_clock::duration timeout) {
  core_->expires_after(timeout);
}
void TlsStream::expires_never() { core_->expires_never(); }

const char* TlsStream::last_error_text() const {
  if (!core_ || core_->last_reason == nullptr) {
    return "none";
  }
  return core_->last_reason;
}

void TlsStream::start_handshake(Handler handler) {
  auto core = core_;
  auto start = [](HandshakeOp& op, auto& self) {
    auto& c = *op.core;
    if (c.context == nullptr) {
      return op.finish(self, {});
    }
    if (c.session == nullptr && !c.handshake_error) {
      c.handshake_error = TlsErrc::HandshakeFailed;
    }
    if (c.handshake_error) {
      return op.finish(self, c.handshake_error);  // final: see Core::handshake_error
    }
    if (c.handshake_done) {
      return op.finish(self, {});
    }
    if (c.handshaking || c.writing || c.reading) {
      return op.finish(self, TlsErrc::Busy);
    }
    c.handshaking = true;
    op.owns_flag = true;
    op(self);
  };
  asio::async_compose<Handler, void(base::ErrorCode)>(
      Starter<HandshakeOp, decltype(start)>{HandshakeOp{core}, start}, handler, core->socket);
}

void TlsStream::start_read(asio::mutable_buffer buffer, ReadHandler handler) {
  auto core = core_;
  ReadOp op{core};
  op.buffer = buffer;
  auto start = [](ReadOp& o, auto& self) {
    auto& c = *o.core;
    if (c.reading || c.handshaking) {
      return o.finish(self, TlsErrc::Busy);
    }
    if (!c.handshake_done || c.handshake_error) {
      return o.finish(self, TlsErrc::HandshakeFailed);  // no verified peer to read from
    }
    c.reading = true;
    o.owns_flag = true;
    o(self);
  };
  asio::async_compose<ReadHandler, void(base::ErrorCode, std::size_t)>(
      Starter<ReadOp, decltype(start)>{op, start}, handler, core->socket);
}

void TlsStream::start_write(const ConstBuffers& buffers, std::size_t count, WriteHandler handler) {
  auto core = core_;
  auto start = [buffers, count](WriteOp& o, auto& self) {
    auto& c = *o.core;
    if (c.writing || c.handshaking) {
      return o.finish(self, TlsErrc::Busy);
    }
    if (!c.handshake_done || c.handshake_error) {
      return o.finish(self, TlsErrc::HandshakeFailed);  // no verified peer to write to
    }
    o.start(self, buffers, count);
  };
  asio::async_compose<WriteHandler, void(base::ErrorCode, std::size_t)>(
      Starter<WriteOp, decltype(start)>{WriteOp{core}, start}, handler, core->socket);
}

void TlsStream::start_shutdown(Handler handler) {
  auto core = core_;
  auto start = [](ShutdownOp& o, auto& self) {
    auto& c = *o.core;
    if (c.writing) {
      return o.finish(self, TlsErrc::Busy);
    }
    o.start(self);
  };
  asio::async_compose<Handler, void(base::ErrorCode)>(
      Starter<ShutdownOp, decltype(start)>{ShutdownOp{core}, start}, handler, core->socket);
}

}  // namespace peertun::io
