// The only file that includes Boost.Beast (see websocket.h for why).
#include "io/websocket.h"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <memory>
#include <utility>
#include <vector>

#include "base/log.h"
#include "io/tls_stream.h"

namespace peertun::io {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
// TlsStream under the WebSocket, plain (ws) or TLS (wss): one stream type, so Beast's
// templates are instantiated once. The WebSocket's own idle/handshake timeouts cover
// every wait after the upgrade, and beast::tcp_stream's extra timers cost ~0.5 KiB per
// idle session; tcp_stream is used only for the client's connect, and TlsStream's
// deadline bounds the TLS handshake and the HTTP request.
using Stream = websocket::stream<TlsStream>;

// Beast's WebSocket ends a connection through teardown hooks found by ADL on the
// next layer's type (as it does for asio::ssl::stream): close_notify first, then the
// TCP teardown Beast does for a plain socket. Declared here, before any use, so that
// tls_stream.h needs no Beast.
//
// The stream is used only while initiating (step 0): the WebSocket, and the TlsStream
// in it, may be destroyed while the teardown runs, so the TCP part goes through
// `socket`, which keeps the stream's state (and its closed socket) alive.
struct TlsTeardownOp {
  TlsStream* stream;  // step 0 only
  std::shared_ptr<asio::ip::tcp::socket> socket;
  beast::role_type role;
  int step = 0;

  template <class Self>
  void operator()(Self& self, base::ErrorCode ec = {}) {
    switch (step++) {
      case 0:
        std::exchange(stream, nullptr)->async_shutdown(std::move(self));
        return;
      case 1:
        if (ec == asio::error::operation_aborted || !socket->is_open()) {
          self.complete(ec);  // the stream is gone (or closed): nothing left to tear down
          return;
        }
        // A failed close_notify (peer gone) still needs the TCP part.
        websocket::async_teardown(role, *socket, std::move(self));
        return;
      default:
        self.complete(ec);
    }
  }
};

template <class TeardownHandler>
void async_teardown(beast::role_type role, TlsStream& stream, TeardownHandler&& handler) {
  asio::async_compose<TeardownHandler, void(base::ErrorCode)>(
      TlsTeardownOp{&stream, stream.shared_next_layer(), role}, handler, stream.next_layer());
}

// Only Beast's blocking calls use this; we make none, but the hook must exist.
inline void teardown(beast::role_type role, TlsStream& stream, base::ErrorCode& ec) {
  websocket::teardown(role, stream.next_layer(), ec);
}

namespace {

constexpr std::size_t kMaxHttpHeaderBytes = 8 * 1024;
// An idle read asks for only this much buffer; Beast would otherwise reserve a full
// frame (1.5 KiB) per waiting session. Later chunks of the message read larger.
constexpr std::size_t kFirstReadChunk = 64;
constexpr std::size_t kNextReadChunk = 4096;
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);
constexpr char kServerName[] = "peertun-relay";

spdlog::logger& log() { return base::logger("io.websocket"); }

void configure(Stream& ws, const WebSocketOptions& options, bool server) {
  websocket::stream_base::timeout t{};
  t.handshake_timeout = options.handshake_timeout;
  t.idle_timeout = options.idle_timeout;
  t.keep_alive_pings = true;
  ws.set_option(t);
  ws.read_message_max(options.max_message_bytes);
  // Without fragmentation a server (which does not mask) never needs Beast's 4 KiB
  // per-connection write buffer: that is most of what an idle session would cost.
  ws.auto_fragment(false);
  ws.set_option(websocket::stream_base::decorator(
      [server](auto& m) { m.set(http::field::server, server ? kServerName : "peertun"); }));
}

}  // namespace

struct WebSocket::Impl {
  Impl(Stream stream, base::SocketAddress remote_address, WebSocketOptions opts)
      : ws(std::move(stream)), remote(remote_address), options(opts), drained(ws.get_executor()) {}

  Stream ws;
  base::SocketAddress remote;
  WebSocketOptions options;
  // A vector, not a deque: libstdc++'s deque allocates ~600 bytes even when empty,
  // and an idle session's queue is always empty. Queues stay short, so erasing
  // from the front is cheap.
  std::vector<std::string> queue;
  std::size_t queued_bytes = 0;
  bool writing = false;
  bool closing = false;
  // Cancelled by the writer when the queue empties, to wake close().
  asio::steady_timer drained;
};

WebSocket::WebSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebSocket::~WebSocket() = default;

Task<base::Result<std::string>> WebSocket::read() {
  // Local buffer: an idle connection holds no message memory between reads.
  beast::flat_buffer buffer;
  std::size_t chunk = kFirstReadChunk;
  do {
    auto [ec, n] = co_await impl_->ws.async_read_some(buffer, chunk, use_nothrow);
    if (ec) {
      co_return ec;
    }
    chunk = kNextReadChunk;
  } while (!impl_->ws.is_message_done());
  co_return beast::buffers_to_string(buffer.data());
}

bool WebSocket::send(std::string text) {
  if (impl_->closing || !impl_->ws.is_open()) {
    return false;
  }
  if (impl_->queued_bytes + text.size() > impl_->options.max_queued_bytes) {
    log().warn("ws.slow_consumer remote={} queued_bytes={}", impl_->remote.to_string(),
               impl_->queued_bytes);
    abort();
    return false;
  }
  impl_->queued_bytes += text.size();
  impl_->queue.push_back(std::move(text));
  if (!impl_->writing) {
    impl_->writing = true;
    asio::co_spawn(impl_->ws.get_executor(), write_loop(shared_from_this()),
                   [](std::exception_ptr e) { log_task_exception(e, "ws.write_loop"); });
  }
  return true;
}

Task<void> WebSocket::write_loop(std::shared_ptr<WebSocket> self) {
  auto& impl = *self->impl_;
  while (!impl.queue.empty()) {
    impl.ws.text(true);
    auto [ec, n] = co_await impl.ws.async_write(asio::buffer(impl.queue.front()), use_nothrow);
    if (ec) {
      impl.queue.clear();
      impl.queued_bytes = 0;
      break;
    }
    impl.queued_bytes -= impl.queue.front().size();
    impl.queue.erase(impl.queue.begin());
  }
  impl.writing = false;
  impl.drained.cancel();
}

Task<void> WebSocket::close(std::uint16_t code, std::string reason,
                            std::chrono::steady_clock::duration timeout) {
  auto self = shared_from_this();
  if (impl_->closing) {
    co_return;
  }
  impl_->closing = true;
  if (impl_->writing) {
    impl_->drained.expires_after(timeout);
    co_await impl_->drained.async_wait(use_nothrow);
  }
  if (impl_->ws.is_open() && !impl_->writing) {
    // Beast bounds the close handshake with the handshake timeout set in configure().
    websocket::close_reason why(static_cast<websocket::close_code>(code), reason);
    co_await impl_->ws.async_close(why, use_nothrow);
  }
  abort();
}

void WebSocket::abort() {
  base::ErrorCode ec;
  beast::get_lowest_layer(impl_->ws).close(ec);
}

base::SocketAddress WebSocket::remote_address() const { return impl_->remote; }
bool WebSocket::is_open() const { return impl_->ws.is_open() && !impl_->closing; }

struct WebSocketServer::Impl {
  Impl(Executor ex, std::string p, WebSocketOptions o, Handler h, HttpHandler hh)
      : acceptor(ex),
        path(std::move(p)),
        options(std::move(o)),
        handler(std::move(h)),
        http(std::move(hh)) {}
  asio::ip::tcp::acceptor acceptor;
  std::string path;
  WebSocketOptions options;
  Handler handler;
  HttpHandler http;
  std::uint64_t tls_handshake_failures = 0;
};

namespace {

// The HTTP exchange up to the upgrade. Its parser, request and the moved-from
// stream die with this frame, so an idle WebSocket session keeps none of them
// (they were ~40% of an idle session's memory). Returns null when the connection
// was a plain HTTP request (answered here) or failed.
Task<std::shared_ptr<WebSocket>> upgrade(std::shared_ptr<WebSocketServer::Impl> server,
                                         asio::ip::tcp::socket socket) {
  base::ErrorCode ec;
  const auto remote_ep = socket.remote_endpoint(ec);
  if (ec) {
    co_return nullptr;
  }
  const auto remote = from_asio(remote_ep);
  TlsStream stream = server->options.tls ? TlsStream(std::move(socket), server->options.tls)
                                         : TlsStream(std::move(socket));
  // One deadline for the TLS handshake and the HTTP request: a client that stalls in
  // either is dropped after handshake_timeout.
  stream.expires_after(server->options.handshake_timeout);
  if (stream.is_tls()) {
    auto [tls_ec] = co_await stream.async_handshake(use_nothrow);
    if (tls_ec) {
      ++server->tls_handshake_failures;
      log().debug("tls.handshake_failed remote={} error={} detail={}", remote.to_string(),
                  tls_ec.message(), stream.last_error_text());
      co_return nullptr;
    }
  }

  http::request_parser<http::string_body> parser;
  parser.header_limit(kMaxHttpHeaderBytes);
  parser.body_limit(0);
  {
    beast::flat_buffer buffer;
    auto [read_ec, n] = co_await http::async_read(stream, buffer, parser, use_nothrow);
    if (read_ec) {
      log().debug("http.bad_request remote={} error={}", remote.to_string(), read_ec.message());
      co_return nullptr;
    }
  }
  auto req = parser.release();
  const std::string target(req.target());

  if (websocket::is_upgrade(req) && target == server->path) {
    stream.expires_never();  // the WebSocket timeouts take over
    Stream ws(std::move(stream));
    configure(ws, server->options, /*server=*/true);
    auto [accept_ec] = co_await ws.async_accept(req, use_nothrow);
    if (accept_ec) {
      log().debug("ws.upgrade_failed remote={} error={}", remote.to_string(), accept_ec.message());
      co_return nullptr;
    }
    co_return std::make_shared<WebSocket>(
        std::make_unique<WebSocket::Impl>(std::move(ws), remote, server->options));
  }

  HttpResponse answer;
  if (websocket::is_upgrade(req)) {
    answer = HttpResponse{404, "text/plain; charset=utf-8", "no WebSocket endpoint here\n"};
  } else if (server->http) {
    answer = server->http(target);
  }
  http::response<http::string_body> res{static_cast<http::status>(answer.status), req.version()};
  res.set(http::field::server, kServerName);
  res.set(http::field::content_type, answer.content_type);
  res.keep_alive(false);
  res.body() = std::move(answer.body);
  res.prepare_payload();
  auto [write_ec, written] = co_await http::async_write(stream, res, use_nothrow);
  if (!write_ec) {
    co_await stream.async_shutdown(use_nothrow);  // close_notify (TLS only)
    stream.next_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  }
  co_return nullptr;
}

Task<void> serve_connection(std::shared_ptr<WebSocketServer::Impl> server,
                            asio::ip::tcp::socket socket) {
  auto ws = co_await upgrade(server, std::move(socket));
  if (ws) {
    co_await server->handler(std::move(ws));
  }
}

Task<void> accept_loop(std::shared_ptr<WebSocketServer::Impl> server) {
  for (;;) {
    auto [ec, socket] = co_await server->acceptor.async_accept(use_nothrow);
    if (ec == asio::error::operation_aborted || !server->acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      // EMFILE and friends: back off instead of spinning; existing sessions go on.
      log().warn("ws.accept_failed error={}", ec.message());
      if (!co_await sleep_for(kAcceptRetryDelay)) {
        co_return;
      }
      continue;
    }
    asio::co_spawn(server->acceptor.get_executor(), serve_connection(server, std::move(socket)),
                   [](std::exception_ptr e) { log_task_exception(e, "ws.connection"); });
  }
}

}  // namespace

WebSocketServer::WebSocketServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebSocketServer::~WebSocketServer() { stop(); }

base::Result<std::unique_ptr<WebSocketServer>> WebSocketServer::start(
    Executor executor, const base::SocketAddress& listen, std::string path,
    WebSocketOptions options, Handler handler, HttpHandler http_handler) {
  auto impl = std::make_shared<Impl>(executor, std::move(path), std::move(options),
                                     std::move(handler), std::move(http_handler));
  const auto ep = to_tcp(listen);
  base::ErrorCode ec;
  impl->acceptor.open(ep.protocol(), ec);
  if (ec) {
    return ec;
  }
  impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ep.address().is_v6()) {
    impl->acceptor.set_option(asio::ip::v6_only(true), ec);
  }
  impl->acceptor.bind(ep, ec);
  if (ec) {
    return ec;
  }
  impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return ec;
  }
  asio::co_spawn(executor, accept_loop(impl),
                 [](std::exception_ptr e) { log_task_exception(e, "ws.accept_loop"); });
  return std::unique_ptr<WebSocketServer>(new WebSocketServer(std::move(impl)));
}

std::uint64_t WebSocketServer::tls_handshake_failures() const {
  return impl_->tls_handshake_failures;
}

base::SocketAddress WebSocketServer::local_address() const {
  base::ErrorCode ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  if (ec) {
    return {};
  }
  return from_asio(ep);
}

void WebSocketServer::stop() {
  base::ErrorCode ec;
  impl_->acceptor.close(ec);
}

Task<base::Result<std::shared_ptr<WebSocket>>> connect_websocket(std::string host,
                                                                 std::uint16_t port,
                                                                 std::string path,
                                                                 WebSocketOptions options) {
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(executor);
  auto [resolve_ec, results] =
      co_await resolver.async_resolve(host, std::to_string(port), use_nothrow);
  if (resolve_ec) {
    co_return resolve_ec;
  }

  beast::tcp_stream stream(executor);
  stream.expires_after(options.handshake_timeout);
  auto [connect_ec, ep] = co_await stream.async_connect(results, use_nothrow);
  if (connect_ec) {
    co_return connect_ec;
  }

  TlsStream tls = options.tls ? TlsStream(stream.release_socket(), options.tls, host)
                              : TlsStream(stream.release_socket());
  if (tls.is_tls()) {
    tls.expires_after(options.handshake_timeout);
    auto [tls_ec] = co_await tls.async_handshake(use_nothrow);
    if (tls_ec) {
      log().debug("tls.handshake_failed host={} error={} detail={}", host, tls_ec.message(),
                  tls.last_error_text());
      co_return tls_ec;
    }
    tls.expires_never();
  }
  Stream ws(std::move(tls));
  configure(ws, options, /*server=*/false);
  ws.auto_fragment(true);
  const std::string host_header =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  websocket::response_type response;
  auto [hs_ec] = co_await ws.async_handshake(response, host_header, path, use_nothrow);
  if (hs_ec) {
    co_return hs_ec;
  }
  co_return std::make_shared<WebSocket>(
      std::make_unique<WebSocket::Impl>(std::move(ws), from_asio(ep), options));
}

bool is_not_http(const base::ErrorCode& ec) {
  static const auto& http_category = http::make_error_code(http::error::end_of_stream).category();
  // The HTTP category covers end_of_stream and every parse error.
  return ec.category() == http_category || ec == asio::error::eof ||
         ec == asio::error::connection_reset;
}

bool is_disconnect(const base::ErrorCode& ec) {
  return ec == websocket::error::closed || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
         ec == asio::error::broken_pipe || ec == beast::error::timeout ||
         ec == asio::error::bad_descriptor;
}

}  // namespace peertun::io
