#pragma once
// TLS (1.2 and 1.3, GnuTLS) over a TCP socket, shaped as an Asio AsyncStream so that
// Boost.Beast's websocket::stream and http::async_read run on it unchanged. No Beast
// here: websocket.cc adds the WebSocket teardown hooks, so this header stays cheap.
//
// A TlsStream is either plain (bytes pass straight to the socket: ws://) or TLS
// (wss://), chosen at construction; one stream type keeps Beast's templates
// instantiated once. GnuTLS runs over memory buffers (custom push/pull): ciphertext
// it produces queues in the stream and goes out with async writes, ciphertext the
// socket delivers is read without blocking after the socket reports readability, so an
// idle stream holds no read buffer.
//
// Operations follow Asio's rules: at most one read, one write and one of
// handshake/shutdown pending at a time (Beast keeps to this); completion handlers run
// on their associated executor, never inside the initiating call. The stream's state
// is shared with its pending operations, so destroying the stream is safe while they
// run: it closes the socket and they complete with operation_aborted.
//
// Threading: the io_context thread that owns the socket; not thread-safe.

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "io/asio.h"

namespace peertun::io {

enum class TlsErrc {
  HandshakeFailed = 1,   // no TLS 1.2+ agreement: not TLS at all, old versions, bad records;
                         // or a read/write on a stream whose handshake has not succeeded
  AlertReceived,         // the peer ended the handshake with a fatal alert
  CertificateUntrusted,  // client: the chain leads to no trusted CA (or is invalid)
  CertificateWrongHost,  // client: a valid certificate, but for another name
  CertificateExpired,    // client: outside its validity period
  PinMismatch,           // client: the certificate's key is not the pinned one
  RecordError,           // after the handshake: a record failed to decrypt or parse
  Busy,                  // an operation of the same kind is already pending (caller bug)
  BadCredentials,        // a certificate, key or CA file cannot be used
};
const boost::system::error_category& tls_category();
inline boost::system::error_code make_error_code(TlsErrc e) {
  return {static_cast<int>(e), tls_category()};
}

// What a client trusts. With a pin, only a certificate whose SubjectPublicKeyInfo has
// that SHA-256 is accepted (no CA, name or date check: the self-signed case).
// Otherwise the system trust store plus `ca_file`, and the name must match. A pin and a
// CA file exclude each other (a pin consults no CA, so the file would be ignored).
struct TlsClientTrust {
  std::string ca_file;  // PEM, one or more CA certificates; empty = system store only
  std::string pin;      // "sha256:" + 64 hex digits; empty = no pin
};

// "sha256:HEX" (64 hex digits, either case) is a well-formed pin.
[[nodiscard]] bool is_valid_pin(std::string_view text);

// Whether `path` is a readable file holding at least one PEM certificate, as
// TlsClientTrust::ca_file must; if not, `detail` names the file and says why. For
// checking settings at start-up.
[[nodiscard]] bool is_usable_ca_file(const std::string& path, std::string& detail);

// Credentials and settings shared by every stream of one side. Immutable once made;
// streams keep it alive (shared_ptr) for as long as they exist.
class TlsContext {
 public:
  // Loads a PEM certificate chain and its private key. Errors: BadCredentials, with
  // `detail` naming the file and the problem (unreadable, not PEM, key does not match).
  [[nodiscard]] static base::Result<std::shared_ptr<const TlsContext>> server(
      const std::string& cert_file, const std::string& key_file, std::string& detail);
  // Errors: BadCredentials (unreadable or empty CA file; bad pin; both a pin and a CA
  // file), with `detail`.
  [[nodiscard]] static base::Result<std::shared_ptr<const TlsContext>> client(
      const TlsClientTrust& trust, std::string& detail);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  [[nodiscard]] bool is_server() const;
  // Server: the pin of its certificate ("sha256:HEX"), for clients to configure.
  [[nodiscard]] const std::string& pin() const;

  struct Impl;
  [[nodiscard]] const Impl& impl() const { return *impl_; }

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class TlsStream {
 public:
  using executor_type = Executor;
  using next_layer_type = asio::ip::tcp::socket;
  using ReadHandler = asio::any_completion_handler<void(base::ErrorCode, std::size_t)>;
  using WriteHandler = ReadHandler;
  using Handler = asio::any_completion_handler<void(base::ErrorCode)>;
  // A write takes at most this many buffers of a sequence (a write may be partial).
  static constexpr std::size_t kMaxWriteBuffers = 16;
  using ConstBuffers = std::array<asio::const_buffer, kMaxWriteBuffers>;

  // Plain: no TLS, bytes go straight to the socket.
  explicit TlsStream(asio::ip::tcp::socket socket);
  // TLS with `context`'s side. A client verifies `server_name` (a DNS name or an IP
  // literal) against the certificate and sends it as SNI when it is a name. A client that
  // verifies against CAs (no pin) needs the name: without one its handshake fails
  // (HandshakeFailed) rather than accept a certificate for any host.
  TlsStream(asio::ip::tcp::socket socket, std::shared_ptr<const TlsContext> context,
            std::string server_name = {});
  TlsStream(TlsStream&& other) noexcept;
  TlsStream& operator=(TlsStream&& other) noexcept;
  // Closes the socket; pending operations complete with operation_aborted.
  ~TlsStream();

  executor_type get_executor();
  next_layer_type& next_layer();
  // The socket, sharing ownership of the stream's state: valid (closed once the stream
  // is gone) for as long as the pointer lives, for an operation that may outlive the
  // stream (the WebSocket teardown in websocket.cc).
  [[nodiscard]] std::shared_ptr<next_layer_type> shared_next_layer() const;
  [[nodiscard]] bool is_tls() const;

  // Operations still pending after `timeout` fail with asio::error::timed_out (the
  // socket is closed). Bounds a TLS handshake and what follows until expires_never().
  void expires_after(std::chrono::steady_clock::duration timeout);
  void expires_never();

  // GnuTLS's text for the last TLS failure on this stream (static storage), for logs.
  [[nodiscard]] const char* last_error_text() const;

  // The TLS handshake (plain: completes at once). Signature void(error_code). Errors:
  // TlsErrc (HandshakeFailed, AlertReceived, Certificate*, PinMismatch, Busy), eof (the
  // peer left), timed_out, socket errors. A failure is final: a later handshake on the
  // same stream reports it again and reads and writes fail with HandshakeFailed.
  template <class Token>
  auto async_handshake(Token&& token) {
    return asio::async_initiate<Token, void(base::ErrorCode)>(
        [this](auto handler) { start_handshake(Handler(std::move(handler))); }, token);
  }

  // Reads some bytes into the first non-empty buffer. Signature void(error_code, size_t).
  // Errors: eof (close_notify, or TCP EOF), RecordError, HandshakeFailed (TLS: no
  // successful handshake yet), Busy, timed_out, socket errors. TLS 1.3 post-handshake
  // messages (NewSessionTicket, KeyUpdate) are consumed on the way; TLS 1.2
  // renegotiation is refused (RFC 5246 section 7.2.2: a no_renegotiation warning).
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(base::ErrorCode, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          if (!is_tls()) {
            next_layer().async_read_some(b, std::move(handler));
            return;
          }
          asio::mutable_buffer first;
          for (auto it = asio::buffer_sequence_begin(b); it != asio::buffer_sequence_end(b); ++it) {
            if (asio::mutable_buffer(*it).size() != 0) {
              first = *it;
              break;
            }
          }
          start_read(first, ReadHandler(std::move(handler)));
        },
        token, buffers);
  }

  // Writes some bytes: the first kMaxWriteBuffers buffers, all or an error. Signature
  // void(error_code, size_t). Errors: RecordError, HandshakeFailed (TLS: no successful
  // handshake yet), Busy, timed_out, socket errors. A KeyUpdate the peer asked for
  // (RFC 8446 section 4.6.3) goes out before this write's data.
  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return asio::async_initiate<Token, void(base::ErrorCode, std::size_t)>(
        [this](auto handler, const ConstBufferSequence& b) {
          if (!is_tls()) {
            next_layer().async_write_some(b, std::move(handler));
            return;
          }
          ConstBuffers list{};
          std::size_t count = 0;
          for (auto it = asio::buffer_sequence_begin(b);
               it != asio::buffer_sequence_end(b) && count < kMaxWriteBuffers; ++it) {
            list[count++] = asio::const_buffer(*it);
          }
          start_write(list, count, WriteHandler(std::move(handler)));
        },
        token, buffers);
  }

  // Sends close_notify (TLS; plain: nothing) and waits until it is on the wire. The TCP
  // connection is left open for the caller to shut down. Signature void(error_code).
  template <class Token>
  auto async_shutdown(Token&& token) {
    return asio::async_initiate<Token, void(base::ErrorCode)>(
        [this](auto handler) { start_shutdown(Handler(std::move(handler))); }, token);
  }

  struct Core;

 private:
  void start_handshake(Handler handler);
  void start_read(asio::mutable_buffer buffer, ReadHandler handler);
  void start_write(const ConstBuffers& buffers, std::size_t count, WriteHandler handler);
  void start_shutdown(Handler handler);

  std::shared_ptr<Core> core_;
};

}  // namespace peertun::io

template <>
struct boost::system::is_error_code_enum<peertun::io::TlsErrc> : std::true_type {};
