#include "pake/error.h"

namespace peertun::pake {
namespace {

const char* message(int ev) noexcept {
  switch (static_cast<Errc>(ev)) {
    case Errc::Empty:
      return "the join code is empty; paste the whole code, e.g. pt-p2p-2A91-7XKP-Q4L9";
    case Errc::BadPrefix:
      return "this is not a peertun p2p join code; it should start with pt-p2p-";
    case Errc::BadLength:
      return "the join code has the wrong number of characters; expected "
             "pt-p2p-NNNN-SSSS-SSSS (4 + 8 letters or digits)";
    case Errc::BadSymbol:
      return "the join code contains a character that cannot appear in it; codes use "
             "the digits 0-9 and the letters A-Z except U";
    case Errc::Truncated:
      return "signalling message is truncated";
    case Errc::BadVersion:
      return "signalling message has an unsupported version (is the peer running a "
             "different peertun version?)";
    case Errc::UnknownType:
      return "signalling message has an unknown type";
    case Errc::TrailingBytes:
      return "signalling message is longer than its type allows";
    case Errc::InvalidShare:
      return "the peer's key-exchange share is invalid";
    case Errc::WrongCode:
      return "the peers hold different join codes (check the code and ask for a new one: "
             "the relay discards a nameplate after one failed attempt)";
    case Errc::ProtocolError:
      return "unexpected signalling message for the current handshake state";
    case Errc::Tampered:
      return "a sealed signalling message failed authentication (altered in transit)";
    case Errc::Replayed:
      return "a sealed signalling message was replayed";
    case Errc::OutOfOrder:
      return "a sealed signalling message arrived out of order or one was dropped";
  }
  return "unknown pake error";
}

constexpr base::SimpleErrorCategory kCategory("pake", &message);

}  // namespace

const boost::system::error_category& pake_category() noexcept { return kCategory; }

}  // namespace peertun::pake
