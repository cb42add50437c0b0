#include "client/control_client.h"

#include "base/log.h"
#include "control/codec.h"
#include "io/tls_stream.h"

namespace peertun::client {
namespace {

const char* message(int ev) noexcept {
  switch (static_cast<ControlErrc>(ev)) {
    case ControlErrc::Unreachable:
      return "cannot reach the relay";
    case ControlErrc::Rejected:
      return "the relay refused the request";
    case ControlErrc::ProtocolError:
      return "the relay sent something this client cannot read";
    case ControlErrc::Disconnected:
      return "lost the connection to the relay";
    case ControlErrc::TlsRejected:
      return "the relay's TLS certificate was not accepted";
  }
  return "unknown control client error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.client.control", message);
constexpr char kClientSoftware[] = "peertun/0.1.0";

spdlog::logger& log() { return base::logger("client.control"); }

// One line for a failed connect, with what to do about it where we can tell.
ControlClient::Connected connect_failure(const RelayTarget& relay, const base::ErrorCode& ec) {
  const std::string where = relay.display();
  auto rejected = [](std::string text) {
    return ControlClient::Connected{nullptr, ControlErrc::TlsRejected, std::move(text)};
  };
  if (ec == io::TlsErrc::CertificateUntrusted) {
    return rejected("the relay's TLS certificate at " + where +
                    " is not trusted (no trusted authority vouches for it): pass the CA that "
                    "signed it with --relay-ca FILE, or pin its key with --relay-pin");
  }
  if (ec == io::TlsErrc::CertificateWrongHost) {
    return rejected("the relay's TLS certificate is for another host, not " + relay.host +
                    ": connect by a name the certificate lists");
  }
  if (ec == io::TlsErrc::CertificateExpired) {
    return rejected("the relay's TLS certificate at " + where +
                    " has expired or is not valid yet (check the relay's certificate and this "
                    "machine's clock)");
  }
  if (ec == io::TlsErrc::PinMismatch) {
    return rejected("the relay at " + where +
                    " presented a TLS key that does not match the configured relay pin");
  }
  std::string text = "cannot reach the relay at " + where + ": " + ec.message();
  if (relay.tls && (ec == io::TlsErrc::HandshakeFailed || ec == io::TlsErrc::AlertReceived ||
                    ec == boost::asio::error::eof)) {
    text += " (is it serving wss? a relay without --tls-cert needs ws://)";
  } else if (!relay.tls && io::is_not_http(ec)) {
    text += " (if the relay serves wss, use wss://" + where + ")";
  }
  return {nullptr, ControlErrc::Unreachable, std::move(text)};
}

}  // namespace

const boost::system::error_category& control_client_category() { return kCategory; }

io::Task<ControlClient::Connected> ControlClient::connect(RelayTarget relay, base::Secret token) {
  io::WebSocketOptions options;
  if (relay.tls) {
    std::string detail;
    auto context = io::TlsContext::client({relay.ca_file, relay.pin}, detail);
    if (!context) {
      // Our own settings are wrong (an unreadable or empty CA file, a bad pin): say so,
      // not that the relay's certificate was refused. The error is io's BadCredentials.
      co_return Connected{
          nullptr, context.error(),
          "the relay TLS settings cannot be used (--relay-ca, --relay-pin): " + detail};
    }
    options.tls = std::move(*context);
  }
  auto ws = co_await io::connect_websocket(relay.host, relay.port, "/v1/control", options);
  if (!ws) {
    co_return connect_failure(relay, ws.error());
  }
  (*ws)->send(control::encode(control::ClientMessage{control::Hello{token, kClientSoftware}}));
  auto first = co_await (*ws)->read();
  if (!first) {
    co_return Connected{nullptr, ControlErrc::Disconnected,
                        "the relay at " + relay.display() + " closed the connection during login"};
  }
  std::string why;
  auto decoded = control::decode_relay_message(*first, why);
  if (!decoded) {
    co_return Connected{nullptr, ControlErrc::ProtocolError,
                        "the relay at " + relay.display() + " sent an unreadable answer: " + why};
  }
  if (auto* err = std::get_if<control::Error>(&*decoded)) {
    co_return Connected{nullptr, ControlErrc::Rejected,
                        "the relay refused the login: " + err->message + " (" +
                            std::string(control::to_string(err->code)) + ")"};
  }
  auto* welcome = std::get_if<control::Welcome>(&*decoded);
  if (welcome == nullptr) {
    co_return Connected{nullptr, ControlErrc::ProtocolError,
                        "the relay at " + relay.display() + " did not welcome us"};
  }
  log().info("control.connected relay={} observed={}", relay.url(),
             welcome->observed_address.to_string());
  co_return Connected{
      std::unique_ptr<ControlClient>(new ControlClient(std::move(*ws), *welcome)), {}, {}};
}

bool ControlClient::send(const control::ClientMessage& message) {
  return ws_->send(control::encode(message));
}

io::Task<base::Result<control::RelayMessage>> ControlClient::receive() {
  auto text = co_await ws_->read();
  if (!text) {
    log().debug("control.read_failed error={}", text.error().message());
    co_return ControlErrc::Disconnected;
  }
  std::string why;
  auto decoded = control::decode_relay_message(*text, why);
  if (!decoded) {
    log().warn("control.bad_message detail={}", why);
    co_return ControlErrc::ProtocolError;
  }
  co_return std::move(*decoded);
}

io::Task<void> ControlClient::close() { co_await ws_->close(1000, ""); }
void ControlClient::abort() { ws_->abort(); }

}  // namespace peertun::client
