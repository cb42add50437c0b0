#include "client/control_client.h"

#include "base/log.h"
#include "control/codec.h"

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
  }
  return "unknown control client error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.client.control", message);
constexpr char kClientSoftware[] = "peertun/0.1.0";

spdlog::logger& log() { return base::logger("client.control"); }

}  // namespace

const boost::system::error_category& control_client_category() { return kCategory; }

io::Task<ControlClient::Connected> ControlClient::connect(RelayTarget relay, base::Secret token) {
  io::WebSocketOptions options;
  auto ws = co_await io::connect_websocket(relay.host, relay.port, "/v1/control", options);
  if (!ws) {
    co_return Connected{
        nullptr, ControlErrc::Unreachable,
        "cannot reach the relay at " + relay.display() + ": " + ws.error().message()};
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
  log().info("control.connected relay={} observed={}", relay.display(),
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
