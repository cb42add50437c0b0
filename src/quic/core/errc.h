#pragma once
// The quic module's error codes. Raw ngtcp2 and GnuTLS integers never leave quic/core:
// every failure a caller can see is one of these (category "quic").

#include <boost/system/error_code.hpp>
#include <type_traits>

#include "base/error.h"

namespace peertun::quic {

enum class Errc {
  // Identity (Identity::generate, Fingerprint::parse).
  IdentityFailed = 1,  // GnuTLS could not make the key pair or the certificate
  BadFingerprint,      // not 64 hex digits (SHA-256)
  // Handshake.
  PeerCertificateMismatch,    // we refused the peer: its certificate is not the pinned one
  CertificateRejectedByPeer,  // the peer refused our certificate (its pin is not ours)
  HandshakeFailed,            // TLS failed for another reason (e.g. ALPN, no certificate)
  HandshakeTimeout,           // no handshake within Config::handshake_timeout
  // Connection lifetime.
  IdleTimeout,        // nothing heard from the peer for Config::idle_timeout
  ClosedByPeer,       // the peer closed (see Connection::close_info for its code and reason)
  ClosedLocally,      // we closed (Connection::close)
  PeerProtocolError,  // the peer broke QUIC (transport error); the connection is gone
  InternalError,      // the QUIC library failed (out of memory, callback failure)
  // Calls that are wrong for the current state (never fatal to the connection).
  NotConnected,       // the handshake has not completed yet, or the connection is closed
  StreamLimit,        // the peer allows no more streams right now
  UnknownStream,      // no such stream (never opened, or already finished)
  StreamReset,        // the peer reset the stream (see Connection::stream_reset_code)
  StreamFinished,     // write after FIN
  DatagramsDisabled,  // the peer did not enable RFC 9221 datagrams
  DatagramTooLarge,   // bigger than max_datagram_payload()
};

[[nodiscard]] const boost::system::error_category& quic_category() noexcept;

[[nodiscard]] inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), quic_category()};
}

}  // namespace peertun::quic

template <>
struct boost::system::is_error_code_enum<peertun::quic::Errc> : std::true_type {};
