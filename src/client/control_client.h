#pragma once
// The client's end of the relay control plane: connect, authenticate (Hello ->
// Welcome), then typed messages both ways.
//
// Threading: the client's io_context thread.

#include <memory>
#include <string>

#include "base/error.h"
#include "base/secret.h"
#include "client/relay_target.h"
#include "control/messages.h"
#include "io/asio.h"
#include "io/websocket.h"

namespace peertun::client {

enum class ControlErrc {
  Unreachable = 1,  // no TCP/WebSocket connection to the relay
  Rejected,         // the relay answered Error (bad token, ...)
  ProtocolError,    // the relay sent something we cannot read
  Disconnected,     // the connection ended
  TlsRejected,      // wss: the relay's certificate was not accepted (trust, name, pin)
};
const boost::system::error_category& control_client_category();
inline boost::system::error_code make_error_code(ControlErrc e) {
  return {static_cast<int>(e), control_client_category()};
}

class ControlClient {
 public:
  // What connect() gives: a client, or one line for the user saying why not
  // ("cannot reach the relay at 127.0.0.1:4040: Connection refused", "the relay refused
  // the login: ... (bad_token)", "the relay's TLS certificate is not trusted ...") with
  // the error (Unreachable, Rejected, ProtocolError, Disconnected, TlsRejected, or
  // io::TlsErrc::BadCredentials when --relay-ca/--relay-pin cannot be used). A
  // value, not an out-parameter: coroutines take no references.
  //
  // A wss target is verified as relay.ca_file / relay.pin say (tls_stream.h); the token
  // is sent only after the certificate was accepted.
  struct Connected {
    std::unique_ptr<ControlClient> client;
    base::ErrorCode error;
    std::string detail;
  };
  // Connects and authenticates.
  static io::Task<Connected> connect(RelayTarget relay, base::Secret token);

  [[nodiscard]] const control::Welcome& welcome() const { return welcome_; }
  // The relay's address as connected (the resolved IP), for STUN.
  [[nodiscard]] base::SocketAddress relay_address() const { return ws_->remote_address(); }

  bool send(const control::ClientMessage& message);

  // The next message. Errors: Disconnected (detail in the log), ProtocolError.
  io::Task<base::Result<control::RelayMessage>> receive();

  io::Task<void> close();
  void abort();

 private:
  ControlClient(std::shared_ptr<io::WebSocket> ws, control::Welcome welcome)
      : ws_(std::move(ws)), welcome_(std::move(welcome)) {}
  std::shared_ptr<io::WebSocket> ws_;
  control::Welcome welcome_;
};

}  // namespace peertun::client

template <>
struct boost::system::is_error_code_enum<peertun::client::ControlErrc> : std::true_type {};
