#pragma once
// WebSocket (RFC 6455) server and client behind a small interface, over plain TCP
// (ws) or TLS (wss, tls_stream.h). Boost.Beast is confined to websocket.cc: one Beast
// coroutine file costs ~30 s and ~780 MB to compile, so nothing else includes it.
//
// Threading: single-threaded io_context; a WebSocket and its server belong to the
// executor they were created on.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"
#include "base/socket_address.h"
#include "io/asio.h"

namespace peertun::io {

class TlsContext;

struct WebSocketOptions {
  // Bound on the TCP connect (client), the TLS handshake and the HTTP upgrade (both
  // sides).
  std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(10);
  // A connection with no traffic for half this gets a ping; with none for all of it,
  // it is closed. Both sides ping, so a dead peer is found within this bound.
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(40);
  // Larger messages close the connection (code 1009).
  std::size_t max_message_bytes = std::size_t{64} * 1024;
  // A peer that does not read its messages is disconnected once this much waits.
  std::size_t max_queued_bytes = std::size_t{1024} * 1024;
  // With a context, TLS (wss): the server serves every request, WebSocket and plain
  // HTTP, over TLS only; the client verifies the server as the context says. Null:
  // plain TCP (ws).
  std::shared_ptr<const TlsContext> tls;
};

class WebSocket : public std::enable_shared_from_this<WebSocket> {
 public:
  struct Impl;
  explicit WebSocket(std::unique_ptr<Impl> impl);
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // Reads the next message. Errors: the peer closed (beast closed / eof),
  // a timeout, a too-large message, operation_aborted after cancel().
  Task<base::Result<std::string>> read();

  // Queues a text message; queued messages go out in order. Returns false (and
  // drops the message) when the connection is closing or its queue is over
  // max_queued_bytes, in which case the connection is torn down.
  bool send(std::string text);

  // Sends a close frame with code and reason after the queued messages, waiting at
  // most `timeout` for them and for the peer's close; then the socket is closed.
  Task<void> close(std::uint16_t code, std::string reason,
                   std::chrono::steady_clock::duration timeout = std::chrono::seconds(2));

  // Closes the TCP connection now (pending reads finish with an error).
  void abort();

  [[nodiscard]] base::SocketAddress remote_address() const;
  [[nodiscard]] bool is_open() const;

 private:
  Task<void> write_loop(std::shared_ptr<WebSocket> self);
  std::unique_ptr<Impl> impl_;
};

// A plain HTTP answer for requests that are not a WebSocket upgrade to the control
// path (metrics, dashboard).
struct HttpResponse {
  unsigned status = 404;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body = "not found\n";
};
using HttpHandler = std::function<HttpResponse(const std::string& target)>;

class WebSocketServer {
 public:
  using Handler = std::function<Task<void>(std::shared_ptr<WebSocket>)>;

  // Listens on `listen` (TCP) and, for each connection that upgrades on `path`,
  // runs `handler` in its own coroutine. Other HTTP requests go to `http` (or get
  // 404). With options.tls (a server context) every connection starts with a TLS
  // handshake; failures (plain HTTP, garbage, a stall past handshake_timeout) close
  // that connection, are logged at debug and counted. Errors: bind/listen failures.
  static base::Result<std::unique_ptr<WebSocketServer>> start(
      Executor executor, const base::SocketAddress& listen, std::string path,
      WebSocketOptions options, Handler handler, HttpHandler http = nullptr);
  ~WebSocketServer();

  [[nodiscard]] base::SocketAddress local_address() const;
  // TLS handshakes that failed or timed out since start().
  [[nodiscard]] std::uint64_t tls_handshake_failures() const;
  // Stops accepting; established connections are unaffected.
  void stop();

  struct Impl;

 private:
  explicit WebSocketServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Connects to ws://host:port/path, or wss:// when options.tls holds a client context
// (the certificate is checked for `host`). Resolves host names. Errors: resolve,
// connect, TLS (TlsErrc: untrusted, wrong host, expired, pin, handshake), WebSocket
// handshake failures (including a non-101 HTTP answer), timeouts.
Task<base::Result<std::shared_ptr<WebSocket>>> connect_websocket(std::string host,
                                                                 std::uint16_t port,
                                                                 std::string path,
                                                                 WebSocketOptions options);

// True for the errors that mean "the other side went away": a close frame, EOF,
// reset, or our own cancellation. Callers treat these as control flow.
[[nodiscard]] bool is_disconnect(const base::ErrorCode& ec);

// True when a plain (ws) connect got an answer that is not HTTP at all, or none: what
// a ws:// client sees from a wss-only server. Callers use it for a hint.
[[nodiscard]] bool is_not_http(const base::ErrorCode& ec);

}  // namespace peertun::io
