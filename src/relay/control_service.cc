#include "relay/control_service.h"

#include <algorithm>

#include "base/log.h"
#include "base/random.h"
#include "control/codec.h"

namespace peertun::relay {
namespace {

spdlog::logger& log() { return base::logger("relay.control"); }

constexpr char kRelaySoftware[] = "peertun-relay/0.1.0";
constexpr auto kExpirySweepInterval = std::chrono::seconds(5);
// Token bucket per connection: a P2P setup needs a handful of messages; this leaves
// generous room for later protocol steps while stopping floods.
constexpr double kMessagesPerSecond = 20.0;
constexpr double kMessageBurst = 100.0;
// WebSocket close code for a refused connection (RFC 6455 §7.4.1).
constexpr std::uint16_t kClosePolicy = 1008;

using Clock = std::chrono::steady_clock;

}  // namespace

struct ControlService::Connection {
  ConnectionId id;
  std::shared_ptr<io::WebSocket> ws;
  bool authenticated = false;
  // Set once the relay has refused this connection: it closes with 1008 after the
  // error message goes out.
  bool closing = false;
  double tokens = kMessageBurst;
  Clock::time_point last_refill = Clock::now();
  // The first path_report counts in the metrics; later ones (a peer repeating itself)
  // are only logged.
  bool path_reported = false;
};

namespace {

// A peer's free text goes into a key="value" log line: no quotes, backslashes or
// control characters that could forge fields or lines.
std::string loggable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f || c == '"' || c == '\\') ? '?' : c;
  }
  return out;
}

}  // namespace

ControlService::ControlService(io::Executor executor, ControlServiceConfig config,
                               RelayStats& stats)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      stats_(stats),
      registry_(config_.session_ttl,
                [] { return base::random_uniform(SessionRegistry::kNameplateSpace); }),
      expiry_timer_(executor_),
      alive_(std::make_shared<bool>(true)) {}

ControlService::~ControlService() { stop(); }

void ControlService::start() {
  io::asio::co_spawn(executor_, expiry_loop(alive_),
                     [](std::exception_ptr e) { io::log_task_exception(e, "control.expiry"); });
}

void ControlService::stop() {
  if (!*alive_) {
    return;
  }
  *alive_ = false;
  expiry_timer_.cancel();
  for (auto& [id, conn] : connections_) {
    conn->ws->abort();
  }
}

bool ControlService::token_accepted(const base::Secret& token) const {
  // Check every configured token, so timing does not reveal which one matched.
  bool accepted = false;
  for (const auto& t : config_.tokens) {
    accepted = base::constant_time_equal(t.reveal(), token.reveal()) || accepted;
  }
  return accepted;
}

io::Task<void> ControlService::serve(std::shared_ptr<io::WebSocket> ws) {
  auto alive = alive_;
  if (!*alive) {
    co_return;
  }
  Connection conn{next_id_++, ws};
  connections_[conn.id] = &conn;
  ++stats_.connections_total;
  ++stats_.connections_active;
  log().debug("control.connected id={} remote={}", conn.id, ws->remote_address().to_string());

  // A connection that never authenticates must not hold a slot: the timer closes it.
  auto hello_timer = std::make_shared<io::asio::steady_timer>(executor_, config_.hello_timeout);
  hello_timer->async_wait([ws, this_stats = &stats_, alive](const base::ErrorCode& ec) {
    if (ec || !*alive) {
      return;
    }
    ++this_stats->hello_timeouts;
    ws->abort();
  });

  for (;;) {
    auto text = co_await ws->read();
    if (!*alive) {
      co_return;
    }
    if (!text) {
      if (!io::is_disconnect(text.error())) {
        log().debug("control.read_failed id={} error={}", conn.id, text.error().message());
      }
      break;
    }
    if (hello_timer) {
      // The first message decides: authenticated or closed. Either way the timer's
      // job is done, and an idle session should not keep it.
      hello_timer->cancel();
      hello_timer.reset();
    }
    // Refill the bucket and spend one token.
    const auto now = Clock::now();
    conn.tokens =
        std::min(kMessageBurst,
                 conn.tokens + kMessagesPerSecond *
                                   std::chrono::duration<double>(now - conn.last_refill).count());
    conn.last_refill = now;
    if (conn.tokens < 1.0) {
      ++stats_.rate_limited;
      refuse(conn, control::ErrorCode::RateLimited, "too many messages; slow down");
    } else {
      conn.tokens -= 1.0;
      handle(conn, *text);
    }
    if (conn.closing) {
      break;
    }
  }

  if (hello_timer) {
    hello_timer->cancel();
  }
  if (*alive) {
    end_session(conn, control::PeerLeftReason::Disconnected);
    connections_.erase(conn.id);
    --stats_.connections_active;
    if (conn.authenticated) {
      --stats_.authenticated_active;
    }
  }
  if (conn.closing && ws->is_open()) {
    co_await ws->close(kClosePolicy, "");
  }
  log().debug("control.disconnected id={}", conn.id);
}

void ControlService::send_error(Connection& conn, control::ErrorCode code, std::string message) {
  conn.ws->send(control::encode(control::RelayMessage{control::Error{code, std::move(message)}}));
}

void ControlService::refuse(Connection& conn, control::ErrorCode code, std::string message) {
  send_error(conn, code, std::move(message));
  conn.closing = true;
}

void ControlService::end_session(Connection& conn, control::PeerLeftReason reason) {
  auto peer = registry_.end_session_of(conn.id, Clock::now());
  if (!peer) {
    return;
  }
  auto it = connections_.find(*peer);
  if (it == connections_.end()) {
    return;
  }
  it->second->ws->send(control::encode(control::RelayMessage{control::PeerLeft{reason}}));
}

void ControlService::handle(Connection& conn, std::string_view text) {
  std::string detail;
  auto decoded = control::decode_client_message(text, detail);
  if (!decoded) {
    ++stats_.bad_messages;
    const auto code = control::reply_code_for(decoded.error());
    log().debug("control.bad_message id={} detail={}", conn.id, detail);
    // Before authentication garbage ends the connection; after it, only the message.
    if (conn.authenticated) {
      send_error(conn, code, "cannot read message: " + detail);
    } else {
      refuse(conn, code, "cannot read message: " + detail);
    }
    return;
  }
  auto& message = *decoded;

  if (!conn.authenticated) {
    const auto* hello = std::get_if<control::Hello>(&message);
    if (hello == nullptr) {
      ++stats_.auth_failures;
      refuse(conn, control::ErrorCode::MissingToken,
             "the first message must be hello with a token");
      return;
    }
    if (hello->token.empty() || !token_accepted(hello->token)) {
      ++stats_.auth_failures;
      log().info("control.auth_failed id={} remote={}", conn.id,
                 conn.ws->remote_address().to_string());
      refuse(conn,
             hello->token.empty() ? control::ErrorCode::MissingToken : control::ErrorCode::BadToken,
             hello->token.empty() ? "no token given" : "the relay does not accept this token");
      return;
    }
    conn.authenticated = true;
    ++stats_.authenticated_active;
    control::Welcome welcome;
    welcome.observed_address = conn.ws->remote_address();
    welcome.stun_port = config_.stun_port;
    welcome.alt_port = config_.alt_port;
    welcome.alt_ip = config_.alt_ip;
    welcome.relay = kRelaySoftware;
    welcome.ping_interval_s = static_cast<std::uint32_t>(config_.ping_interval.count());
    conn.ws->send(control::encode(control::RelayMessage{welcome}));
    return;
  }

  const auto now = Clock::now();
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, control::Hello>) {
          ++stats_.bad_messages;
          send_error(conn, control::ErrorCode::BadMessage, "already authenticated");
        } else if constexpr (std::is_same_v<T, control::CreateSession>) {
          auto created = registry_.create(conn.id, now);
          if (!created) {
            send_error(conn,
                       created.error() == RegistryErrc::AlreadyInSession
                           ? control::ErrorCode::AlreadyInSession
                           : control::ErrorCode::Internal,
                       created.error().message());
            return;
          }
          ++stats_.sessions_created;
          log().info("session.created id={} nameplate={}", conn.id, created->nameplate);
          conn.ws->send(control::encode(control::RelayMessage{
              control::SessionCreated{created->nameplate, created->session_id,
                                      static_cast<std::uint32_t>(config_.session_ttl.count())}}));
        } else if constexpr (std::is_same_v<T, control::JoinSession>) {
          auto joined = registry_.join(m.nameplate, conn.id, now);
          if (!joined) {
            ++stats_.join_failures;
            control::ErrorCode code = control::ErrorCode::UnknownNameplate;
            switch (static_cast<RegistryErrc>(joined.error().value())) {
              case RegistryErrc::AlreadyInSession:
              case RegistryErrc::OwnSession:
                code = control::ErrorCode::AlreadyInSession;
                break;
              case RegistryErrc::NameplateExpired:
                code = control::ErrorCode::NameplateExpired;
                break;
              case RegistryErrc::NameplateUsed:
                code = control::ErrorCode::NameplateInUse;
                break;
              default:
                break;
            }
            send_error(conn, code, joined.error().message());
            return;
          }
          ++stats_.sessions_joined;
          log().info("session.joined id={} owner={} nameplate={}", conn.id, joined->owner,
                     m.nameplate);
          conn.ws->send(control::encode(
              control::RelayMessage{control::SessionJoined{m.nameplate, joined->session_id}}));
          if (auto it = connections_.find(joined->owner); it != connections_.end()) {
            it->second->ws->send(
                control::encode(control::RelayMessage{control::PeerJoined{joined->session_id}}));
          }
        } else if constexpr (std::is_same_v<T, control::Signal>) {
          auto peer = registry_.peer_of(conn.id);
          auto it = peer ? connections_.find(*peer) : connections_.end();
          if (it == connections_.end()) {
            ++stats_.bad_messages;
            send_error(conn, control::ErrorCode::NotInSession,
                       "no peer to forward to: join or wait for a peer first");
            return;
          }
          ++stats_.signals_forwarded;
          it->second->ws->send(control::encode(m));
        } else if constexpr (std::is_same_v<T, control::PunchReady>) {
          auto both = registry_.punch_ready(conn.id);
          if (!both) {
            ++stats_.bad_messages;
            send_error(conn, control::ErrorCode::NotInSession,
                       "punch_ready outside a paired session");
            return;
          }
          auto it = *both ? connections_.find(**both) : connections_.end();
          if (it == connections_.end()) {
            return;
          }
          // Both sends are queued in the same turn of the event loop, so the two
          // fires leave together; the network's asymmetry is what remains.
          ++stats_.punches_fired;
          log().info("punch.fire id={} peer={}", conn.id, it->first);
          const auto fire = control::encode(control::RelayMessage{control::Fire{}});
          conn.ws->send(fire);
          it->second->ws->send(fire);
        } else if constexpr (std::is_same_v<T, control::PathReport>) {
          if (!registry_.peer_of(conn.id)) {
            ++stats_.bad_messages;
            send_error(conn, control::ErrorCode::NotInSession,
                       "path_report outside a paired session");
            return;
          }
          log().info("path.report id={} outcome={} rtt_ms={} reason=\"{}\"", conn.id,
                     control::to_string(m.outcome), m.rtt_ms ? std::to_string(*m.rtt_ms) : "-",
                     loggable(m.reason));
          if (conn.path_reported) {
            return;
          }
          conn.path_reported = true;
          switch (m.outcome) {
            case control::PathOutcome::Direct:
              ++stats_.paths_direct;
              break;
            case control::PathOutcome::Failed:
              ++stats_.paths_failed;
              break;
            case control::PathOutcome::Impossible:
              ++stats_.paths_impossible;
              break;
            case control::PathOutcome::Unknown:
              ++stats_.paths_unknown;
              break;
          }
        } else if constexpr (std::is_same_v<T, control::Abort>) {
          control::PeerLeftReason reason = control::PeerLeftReason::Cancelled;
          if (m.reason == control::AbortReason::WrongCode) {
            reason = control::PeerLeftReason::WrongCode;
          } else if (m.reason == control::AbortReason::ProtocolError) {
            reason = control::PeerLeftReason::ProtocolError;
          }
          log().info("session.aborted id={} reason={}", conn.id, control::to_string(m.reason));
          end_session(conn, reason);
        }
      },
      message);
}

io::Task<void> ControlService::expiry_loop(std::shared_ptr<bool> alive) {
  while (*alive) {
    expiry_timer_.expires_after(kExpirySweepInterval);
    auto [ec] = co_await expiry_timer_.async_wait(io::use_nothrow);
    // After stop() this object may be gone: look at nothing but `alive`.
    if (ec || !*alive) {
      co_return;
    }
    for (ConnectionId owner : registry_.expire(Clock::now())) {
      ++stats_.sessions_expired;
      if (auto it = connections_.find(owner); it != connections_.end()) {
        send_error(*it->second, control::ErrorCode::NameplateExpired,
                   "nobody joined within the nameplate's lifetime");
      }
    }
  }
}

}  // namespace peertun::relay
