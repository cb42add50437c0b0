#include "quic/core/errc.h"

namespace peertun::quic {
namespace {

const char* message(int ev) noexcept {
  switch (static_cast<Errc>(ev)) {
    case Errc::IdentityFailed:
      return "could not create this session's key pair and certificate";
    case Errc::BadFingerprint:
      return "certificate fingerprint is not a SHA-256 digest in hex (64 hex digits)";
    case Errc::PeerCertificateMismatch:
      return "peer's certificate does not match the fingerprint exchanged with the join code";
    case Errc::CertificateRejectedByPeer:
      return "the peer rejected our certificate: it does not match the fingerprint "
             "exchanged with the join code";
    case Errc::HandshakeFailed:
      return "QUIC/TLS handshake failed";
    case Errc::HandshakeTimeout:
      return "QUIC handshake timed out";
    case Errc::IdleTimeout:
      return "QUIC connection timed out: nothing heard from the peer";
    case Errc::ClosedByPeer:
      return "the peer closed the connection";
    case Errc::ClosedLocally:
      return "the connection was closed";
    case Errc::PeerProtocolError:
      return "the peer violated the QUIC protocol";
    case Errc::InternalError:
      return "internal QUIC error";
    case Errc::NotConnected:
      return "the QUIC connection is not established";
    case Errc::StreamLimit:
      return "the peer allows no more streams for now";
    case Errc::UnknownStream:
      return "no such QUIC stream";
    case Errc::StreamReset:
      return "the peer reset the stream";
    case Errc::StreamFinished:
      return "the stream was already finished";
    case Errc::DatagramsDisabled:
      return "the peer does not accept QUIC datagrams";
    case Errc::DatagramTooLarge:
      return "datagram is larger than the connection can carry";
  }
  return "unknown quic error";
}

constexpr base::SimpleErrorCategory kCategory("quic", &message);

}  // namespace

const boost::system::error_category& quic_category() noexcept { return kCategory; }

}  // namespace peertun::quic
