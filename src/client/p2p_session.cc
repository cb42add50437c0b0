#include "client/p2p_session.h"

#include "base/log.h"
#include "client/stun_client.h"
#include "io/interfaces.h"
#include "pake/error.h"
#include "pake/handshake.h"

namespace peertun::client {
namespace {

spdlog::logger& log() { return base::logger("client.p2p"); }

std::string relay_error_line(const control::Error& e) {
  switch (e.code) {
    case control::ErrorCode::UnknownNameplate:
      return "unknown join code: no session with this nameplate on the relay (check the code)";
    case control::ErrorCode::NameplateExpired:
      return "this join code has expired; ask for a new one";
    case control::ErrorCode::NameplateInUse:
      return "this join code was already used; ask for a new one";
    default:
      return "the relay refused: " + e.message + " (" + std::string(control::to_string(e.code)) +
             ")";
  }
}

wire::Bytes to_bytes(std::string_view s) { return {s.begin(), s.end()}; }

}  // namespace

io::Task<std::optional<Failure>> P2pSession::share() { return run(true, std::nullopt); }

io::Task<std::optional<Failure>> P2pSession::join(pake::JoinCode code) {
  return run(false, std::move(code));
}

void P2pSession::stop() {
  stopping_ = true;
  if (control_) {
    control_->abort();
  }
  if (socket_) {
    socket_->cancel();
  }
}

io::Task<std::optional<Failure>> P2pSession::gather() {
  auto executor = co_await io::asio::this_coro::executor;
  const auto relay_ip = control_->relay_address().ip();
  const base::IpAddress any =
      relay_ip.is_v4() ? base::IpAddress::v4({0, 0, 0, 0}) : base::IpAddress::v6({});
  auto socket = io::UdpSocket::open(executor, {any, 0});
  if (!socket) {
    co_return Failure{1, "cannot open a UDP socket: " + socket.error().message()};
  }
  socket_.emplace(std::move(*socket));
  const std::uint16_t local_port = socket_->local_address().port();
  for (const auto& ip : io::interface_addresses(relay_ip.is_loopback())) {
    if (ip.family() != relay_ip.family()) {
      continue;  // this socket speaks one family
    }
    if (ours_.host.size() >= kMaxHostCandidates) {
      break;
    }
    ours_.host.emplace_back(ip, local_port);
  }
  const base::SocketAddress stun_server(relay_ip, control_->welcome().stun_port);
  // A named value, not `{}`: GCC 12 destroys a braced temporary coroutine argument twice.
  stun::BindingRequestOptions options;
  auto mapped = co_await stun_binding(*socket_, stun_server, options, settings_.stun_timeout);
  if (stopping_) {
    co_return std::nullopt;
  }
  if (mapped) {
    ours_.reflexive = mapped->mapped_address;
    observer_.public_address(mapped->mapped_address);
  } else {
    log().warn("stun.failed server={} error={}", stun_server.to_string(), mapped.error().message());
    observer_.stun_failed(mapped.error().message());
  }
  co_return std::nullopt;
}

io::Task<std::optional<Failure>> P2pSession::run(bool is_a, std::optional<pake::JoinCode> code) {
  const char peer_role = is_a ? 'B' : 'A';
  auto connected = co_await ControlClient::connect(settings_.relay, settings_.token);
  if (!connected.client) {
    co_return Failure{1, connected.detail};
  }
  control_ = std::move(connected.client);
  if (stopping_) {
    co_return std::nullopt;
  }
  observer_.relay_connected(control_->welcome());

  if (auto failed = co_await gather()) {
    co_return failed;
  }
  if (stopping_) {
    co_return std::nullopt;
  }

  if (is_a) {
    control_->send(control::CreateSession{});
  } else {
    control_->send(control::JoinSession{code.value().nameplate});  // join() always has a code
  }

  std::optional<pake::Handshake> handshake;
  std::optional<pake::SealedChannel> channel;
  auto executor = co_await io::asio::this_coro::executor;
  // Bounds the PAKE and exchange: if they are not done in time the connection is cut.
  io::asio::steady_timer handshake_timer(executor);

  auto begin_handshake = [&](const std::string& session_id) -> std::optional<Failure> {
    if (!code) {
      return Failure{1, "the relay paired us before a join code existed"};
    }
    auto hs =
        pake::Handshake::start(is_a ? pake::Role::A : pake::Role::B, *code, to_bytes(session_id));
    if (!hs) {
      return Failure{1, "cannot start the handshake: " + hs.error().message()};
    }
    handshake.emplace(std::move(*hs));
    control_->send(control::Signal{handshake->first_message()});
    handshake_timer.expires_after(kHandshakeTimeout);
    handshake_timer.async_wait([this](const base::ErrorCode& ec) {
      if (ec || peer_info_) {
        return;
      }
      timed_out_ = true;
      if (control_) {
        control_->abort();
      }
    });
    return std::nullopt;
  };

  for (;;) {
    auto message = co_await control_->receive();
    if (!message) {
      handshake_timer.cancel();
      if (stopping_) {
        co_return std::nullopt;
      }
      if (timed_out_) {
        co_return Failure{1, "the handshake with peer " + std::string(1, peer_role) +
                                 " did not finish within " +
                                 std::to_string(kHandshakeTimeout.count()) + "s"};
      }
      if (message.error() == ControlErrc::ProtocolError) {
        co_return Failure{1, "the relay sent a message this client cannot read"};
      }
      co_return Failure{1, "lost the connection to the relay"};
    }
    std::optional<Failure> failure;
    bool finished = false;
    std::visit(
        [&](auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, control::Error>) {
            failure = Failure{1, relay_error_line(m)};
          } else if constexpr (std::is_same_v<T, control::SessionCreated>) {
            if (!is_a || code) {
              failure = Failure{1, "the relay sent an unexpected session_created"};
              return;
            }
            auto generated = pake::generate_join_code(m.nameplate);
            if (!generated) {
              failure = Failure{1, "the relay sent a malformed nameplate"};
              return;
            }
            code = std::move(*generated);
            observer_.join_code(pake::format_join_code(*code));
          } else if constexpr (std::is_same_v<T, control::PeerJoined>) {
            if (!is_a || !code || handshake) {
              failure = Failure{1, "the relay sent an unexpected peer_joined"};
              return;
            }
            observer_.peer_joined();
            failure = begin_handshake(m.session_id);
          } else if constexpr (std::is_same_v<T, control::SessionJoined>) {
            if (is_a || handshake) {
              failure = Failure{1, "the relay sent an unexpected session_joined"};
              return;
            }
            failure = begin_handshake(m.session_id);
          } else if constexpr (std::is_same_v<T, control::Signal>) {
            if (!handshake) {
              failure = Failure{1, "signalling arrived before the session was paired"};
              return;
            }
            if (!channel) {
              auto replies = handshake->on_message(m.payload);
              if (!replies) {
                const bool wrong_code = replies.error() == pake::Errc::WrongCode;
                control_->send(control::Abort{wrong_code ? control::AbortReason::WrongCode
                                                         : control::AbortReason::ProtocolError});
                failure =
                    Failure{1, wrong_code ? "wrong join code"
                                          : "the handshake failed: " + replies.error().message()};
                return;
              }
              for (auto& r : *replies) {
                control_->send(control::Signal{std::move(r)});
              }
              if (handshake->complete()) {
                channel.emplace(handshake->take_channel());
                const auto text = encode_peer_info(ours_);
                control_->send(control::Signal{channel->seal(to_bytes(text))});
              }
              return;
            }
            auto plain = channel->open(m.payload);
            if (!plain) {
              control_->send(control::Abort{control::AbortReason::ProtocolError});
              failure = Failure{1, "a sealed message from peer " + std::string(1, peer_role) +
                                       " failed authentication (" + plain.error().message() +
                                       "); the relay may be tampering"};
              return;
            }
            const std::string_view text(reinterpret_cast<const char*>(plain->data()),
                                        plain->size());
            auto info = decode_peer_info(text);
            if (!info) {
              failure =
                  Failure{1, "peer " + std::string(1, peer_role) + " sent unreadable addresses"};
              return;
            }
            if (!peer_info_) {
              peer_info_ = *info;
              handshake_timer.cancel();
              if (auto best = best_address(*info)) {
                observer_.peer_address(peer_role, *best);
              }
            }
          } else if constexpr (std::is_same_v<T, control::PeerLeft>) {
            if (peer_info_) {
              observer_.peer_left(peer_role);
              finished = true;
              return;
            }
            if (m.reason == control::PeerLeftReason::WrongCode) {
              failure = Failure{1, "wrong join code"};
            } else {
              failure = Failure{
                  1, "peer " + std::string(1, peer_role) + " left before the handshake completed"};
            }
          } else {
            failure = Failure{1, "the relay sent an unexpected message"};
          }
        },
        *message);
    if (failure) {
      handshake_timer.cancel();
      co_await control_->close();
      co_return failure;
    }
    if (finished) {
      co_await control_->close();
      co_return std::nullopt;
    }
  }
}

}  // namespace peertun::client
