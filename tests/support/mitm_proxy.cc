// mitm_proxy: a man in the middle who knows the join code. Test-only
// (tests/integration/test_mitm.py; docs/protocol/quic.md, "What the pinning is for").
//
//   peer A <--ws--> relay <--ws--> [mitm_proxy] <--ws--> peer B      (control plane)
//   peer A <--udp--> [udp_a  mitm_proxy  udp_b] <--udp--> peer B     (data plane)
//
// Peer B connects here as if this were the relay; the proxy connects to the real relay as
// B and passes every control message through unchanged except the session's `signal`s.
// Knowing the code, it runs CPace twice: as B with A (through the relay) and as A with B.
// It opens each side's sealed peer_info and re-seals it for the other side with two
// changes:
//   - the candidates become one loopback UDP socket of the proxy's per side. The
//     connectivity checks are keyed from each CPace run's ISK (docs/protocol/traversal.md),
//     and the two runs have different ISKs, so A and B could not check each other
//     directly: the proxy answers each side's checks with that side's keys and passes
//     every other datagram (QUIC) between its two sockets untouched;
//   - the fingerprint becomes that of a certificate the proxy made (--swap says toward
//     whom; `none` keeps both, which shows the proxy is otherwise transparent).
// QUIC then runs end to end between A and B through the proxy, and a side that was given
// the proxy's fingerprint meets the other peer's real certificate.
//
// stdout, one line each, for the test:
//   mitm.ready control=127.0.0.1:P udp_a=127.0.0.1:X udp_b=127.0.0.1:Y
//   mitm.pake peer=A|B                          (a CPace run with that peer completed)
//   mitm.peer_info from=A to=B fingerprint=replaced|kept
//   mitm.punch peer=A|B remote=IP:PORT          (the path to that peer is selected)
// Failures go to stderr as "mitm.failed ...". One session; runs until SIGINT/SIGTERM.
// Loopback only: it punches only to the peers' 127.0.0.1 candidates.

#include <CLI/CLI.hpp>
#include <boost/asio/signal_set.hpp>
#include <deque>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "client/peer_info.h"
#include "client/punch_driver.h"
#include "control/codec.h"
#include "io/asio.h"
#include "io/udp_socket.h"
#include "io/websocket.h"
#include "pake/handshake.h"
#include "pake/join_code.h"
#include "quic/core/identity.h"
#include "traversal/candidate.h"

namespace {

using namespace peertun;

// QUIC datagrams held for a peer whose path is not selected yet (the other side's punch
// may finish half a round trip earlier); QUIC retransmits anything beyond.
constexpr std::size_t kMaxPending = 64;

void say(const std::string& line) { std::cout << line << std::endl; }
void complain(const std::string& line) { std::cerr << "mitm.failed " << line << std::endl; }

wire::Bytes to_bytes(std::string_view s) { return {s.begin(), s.end()}; }

// One half of the attack: the proxy plays the other peer toward `peer`.
struct Leg {
  char peer = 'A';
  pake::Role as = pake::Role::B;      // the role the proxy plays toward `peer`
  bool replace_fingerprint = true;    // in the peer_info the proxy gives `peer`
  std::shared_ptr<io::WebSocket> ws;  // signals for `peer` go out here
  std::optional<pake::Handshake> handshake;
  std::optional<pake::SealedChannel> channel;
  std::optional<client::PeerInfo> info;   // what `peer` told us
  bool told = false;                      // `peer` has the other side's peer_info from us
  std::shared_ptr<io::UdpSocket> socket;  // `peer` punches to this socket
  std::shared_ptr<client::PunchDriver> driver;
  std::optional<base::SocketAddress> remote;  // `peer`'s selected address
  std::deque<wire::Bytes> pending;            // QUIC for `peer` before `remote` is known
};

class Mitm {
 public:
  Mitm(io::Executor executor, pake::JoinCode code, std::string fake_fingerprint)
      : executor_(std::move(executor)),
        code_(std::move(code)),
        fake_fingerprint_(std::move(fake_fingerprint)) {
    a_.peer = 'A';
    a_.as = pake::Role::B;
    b_.peer = 'B';
    b_.as = pake::Role::A;
  }

  Leg& a() { return a_; }
  Leg& b() { return b_; }

  // The first B connection gets the session; later ones are turned away.
  bool claim() { return !std::exchange(claimed_, true); }

  void attach(std::shared_ptr<io::WebSocket> relay, std::shared_ptr<io::WebSocket> peer_b) {
    a_.ws = std::move(relay);
    b_.ws = std::move(peer_b);
  }

  // Either connection ended: end both, as a client that vanished would.
  void hang_up() {
    for (Leg* leg : {&a_, &b_}) {
      if (leg->ws) {
        leg->ws->abort();
      }
    }
  }

  void stop() {
    hang_up();
    for (Leg* leg : {&a_, &b_}) {
      if (leg->driver) {
        leg->driver->stop();
      }
    }
  }

  // A message from peer B for the relay. False ends the session.
  bool from_b(const std::string& text) {
    auto message = control::decode_client_message(text);
    if (message) {
      if (auto* signal = std::get_if<control::Signal>(&*message)) {
        return on_signal(b_, signal->payload);
      }
    }
    return a_.ws->send(text);
  }

  // A message from the relay for peer B. False ends the session.
  bool from_relay(const std::string& text) {
    auto message = control::decode_relay_message(text);
    if (!message) {
      return b_.ws->send(text);
    }
    if (auto* signal = std::get_if<control::Signal>(&*message)) {
      return on_signal(a_, signal->payload);
    }
    if (!b_.ws->send(text)) {
      return false;
    }
    if (auto* joined = std::get_if<control::SessionJoined>(&*message)) {
      // After forwarding: B starts its handshake on session_joined and refuses a signal
      // that comes before it.
      return start_handshakes(joined->session_id);
    }
    if (std::holds_alternative<control::Fire>(*message)) {
      // A has its fire from the relay at the same moment; both our sides punch now.
      for (Leg* leg : {&a_, &b_}) {
        if (leg->driver) {
          leg->driver->fire();
        }
      }
    }
    return true;
  }

 private:
  Leg& other(Leg& leg) { return &leg == &a_ ? b_ : a_; }

  static bool send_signal(Leg& leg, wire::Bytes payload) {
    return leg.ws->send(control::encode(control::Signal{std::move(payload)}));
  }

  // Both CPace runs use the relay's session id, as the peers do (p2p_session.cc).
  bool start_handshakes(const std::string& session_id) {
    for (Leg* leg : {&a_, &b_}) {
      auto hs = pake::Handshake::start(leg->as, code_, to_bytes(session_id));
      if (!hs) {
        complain("pake_start error=\"" + hs.error().message() + "\"");
        return false;
      }
      leg->handshake.emplace(std::move(*hs));
      if (!send_signal(*leg, leg->handshake->first_message())) {
        return false;
      }
    }
    return true;
  }

  bool on_signal(Leg& leg, wire::ByteView payload) {
    const std::string peer(1, leg.peer);
    if (!leg.handshake) {
      complain("signal_before_session peer=" + peer);
      return false;
    }
    if (!leg.channel) {
      auto replies = leg.handshake->on_message(payload);
      if (!replies) {
        complain("pake peer=" + peer + " error=\"" + replies.error().message() + "\"");
        return false;
      }
      for (auto& reply : *replies) {
        if (!send_signal(leg, std::move(reply))) {
          return false;
        }
      }
      if (leg.handshake->complete()) {
        leg.channel.emplace(leg.handshake->take_channel());
        say("mitm.pake peer=" + peer);
        return relay_peer_infos();
      }
      return true;
    }
    auto plain = leg.channel->open(payload);
    if (!plain) {
      complain("open peer=" + peer + " error=\"" + plain.error().message() + "\"");
      return false;
    }
    if (leg.info) {
      // peer_info is the only sealed message today (signalling.md); anything later would
      // pass through re-sealed, in order, once the other side can take it.
      Leg& to = other(leg);
      if (!to.told) {
        complain("sealed_message_too_early peer=" + peer);
        return false;
      }
      return send_signal(to, to.channel->seal(*plain));
    }
    auto info = client::decode_peer_info(
        std::string_view(reinterpret_cast<const char*>(plain->data()), plain->size()));
    if (!info) {
      complain("peer_info peer=" + peer + " error=\"" + info.error().message() + "\"");
      return false;
    }
    leg.info = std::move(*info);
    start_punch(leg);
    return relay_peer_infos();
  }

  // Gives each peer the other's peer_info once we have it and can seal for that peer.
  bool relay_peer_infos() {
    for (Leg* to : {&a_, &b_}) {
      Leg& from = other(*to);
      if (to->told || !to->channel || !from.info) {
        continue;
      }
      client::PeerInfo info = *from.info;
      info.host = {to->socket->local_address()};
      info.reflexive.reset();
      if (to->replace_fingerprint) {
        info.fingerprint = fake_fingerprint_;
      }
      to->told = true;
      say(std::string("mitm.peer_info from=") + from.peer + " to=" + to->peer +
          " fingerprint=" + (to->replace_fingerprint ? "replaced" : "kept"));
      if (!send_signal(*to, to->channel->seal(to_bytes(client::encode_peer_info(info))))) {
        return false;
      }
    }
    return true;
  }

  // Answers `leg.peer`'s checks on leg.socket with the keys of our CPace run with it, and
  // checks its loopback candidates once the relay fires (as the peers do, prepare_punch).
  void start_punch(Leg& leg) {
    traversal::AgentConfig config;
    config.role = leg.as == pake::Role::A ? traversal::AgentRole::Controlling
                                          : traversal::AgentRole::Controlled;
    const auto ours = leg.handshake->check_key(leg.as);
    const auto theirs = leg.handshake->check_key(pake::peer_of(leg.as));
    config.outgoing_key.assign(ours.begin(), ours.end());
    config.incoming_key.assign(theirs.begin(), theirs.end());
    config.local.push_back(
        traversal::make_candidate(traversal::CandidateType::Host, leg.socket->local_address()));
    auto add_remote = [&](traversal::CandidateType type, const base::SocketAddress& address) {
      if (address.ip().is_v4() && address.ip().is_loopback() &&
          traversal::is_usable_remote(address, true)) {
        config.remote.push_back(traversal::make_candidate(type, address));
      }
    };
    for (const auto& host : leg.info->host) {
      add_remote(traversal::CandidateType::Host, host);
    }
    if (leg.info->reflexive) {
      add_remote(traversal::CandidateType::ServerReflexive, *leg.info->reflexive);
    }
    leg.driver = client::PunchDriver::start(
        executor_, leg.socket, std::move(config),
        [this, &leg](const client::PunchOutcome& outcome) { on_punch(leg, outcome); },
        [this, &leg](const io::ReceivedDatagram& d) { pass_on(other(leg), d); }, nullptr);
  }

  void on_punch(Leg& leg, const client::PunchOutcome& outcome) {
    const std::string peer(1, leg.peer);
    if (outcome.state == traversal::AgentState::Connected && outcome.path) {
      leg.remote = outcome.path->remote.address;
      say("mitm.punch peer=" + peer + " remote=" + leg.remote->to_string());
      for (const auto& datagram : leg.pending) {
        (void)leg.socket->try_send(datagram, *leg.remote);
      }
      leg.pending.clear();
    } else if (outcome.state == traversal::AgentState::Failed) {
      complain("punch peer=" + peer + " reason=\"" + outcome.reason + "\"");
    }
  }

  // A datagram that is not a check (QUIC) goes to the other peer as it came, one
  // datagram per GRO segment. UDP: a full queue drops it and QUIC recovers.
  static void pass_on(Leg& to, const io::ReceivedDatagram& d) {
    const std::size_t step = d.segment_size == 0 ? d.data.size() : d.segment_size;
    for (std::size_t off = 0; off < d.data.size(); off += step) {
      const auto segment = d.data.subspan(off, std::min(step, d.data.size() - off));
      if (to.remote) {
        (void)to.socket->try_send(segment, *to.remote);
      } else if (to.pending.size() < kMaxPending) {
        to.pending.emplace_back(segment.begin(), segment.end());
      }
    }
  }

  io::Executor executor_;
  pake::JoinCode code_;
  std::string fake_fingerprint_;
  bool claimed_ = false;
  Leg a_;
  Leg b_;
};

// Reads `from` until it closes, handing each message to `on_message`; false from it ends
// the session. Then hangs up both connections.
io::Task<void> pump(std::shared_ptr<Mitm> mitm, std::shared_ptr<io::WebSocket> from,
                    std::function<bool(const std::string&)> on_message) {
  for (;;) {
    auto text = co_await from->read();
    if (!text || !on_message(*text)) {
      break;
    }
  }
  mitm->hang_up();
}

// Peer B's connection: connect to the relay as B, then pump both ways.
io::Task<void> serve(std::shared_ptr<Mitm> mitm, std::string relay_host, std::uint16_t relay_port,
                     std::shared_ptr<io::WebSocket> peer_b) {
  if (!mitm->claim()) {
    co_await peer_b->close(1008, "this proxy serves one session");
    co_return;
  }
  std::string path = "/v1/control";
  io::WebSocketOptions options;
  auto relay = co_await io::connect_websocket(relay_host, relay_port, path, options);
  if (!relay) {
    complain("relay_connect error=\"" + relay.error().message() + "\"");
    peer_b->abort();
    co_return;
  }
  mitm->attach(*relay, peer_b);
  Mitm* m = mitm.get();  // lives as long as the process (main holds it)
  std::function<bool(const std::string&)> from_relay = [m](const std::string& text) {
    return m->from_relay(text);
  };
  std::function<bool(const std::string&)> from_b = [m](const std::string& text) {
    return m->from_b(text);
  };
  auto executor = co_await io::asio::this_coro::executor;
  io::asio::co_spawn(executor, pump(mitm, *relay, std::move(from_relay)),
                     [](std::exception_ptr e) { io::log_task_exception(e, "mitm.relay"); });
  co_await pump(mitm, peer_b, std::move(from_b));
}

std::shared_ptr<io::UdpSocket> open_loopback_socket(io::Executor executor) {
  auto socket = io::UdpSocket::open(std::move(executor), {base::IpAddress::v4({127, 0, 0, 1}), 0});
  if (!socket) {
    complain("udp_open error=\"" + socket.error().message() + "\"");
    return nullptr;
  }
  return std::make_shared<io::UdpSocket>(std::move(*socket));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mitm_proxy: a test-only man in the middle who knows the join code"};
  std::string relay_text;
  std::string code_text;
  std::string swap = "both";
  app.add_option("--relay", relay_text, "the real relay, 127.0.0.1:PORT")->required();
  app.add_option("--code", code_text, "peer A's join code")->required();
  app.add_option("--swap", swap, "whose pinned fingerprint to replace")
      ->check(CLI::IsMember({"both", "to-a", "to-b", "none"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  const auto relay = base::SocketAddress::parse(relay_text);
  if (!relay) {
    std::cerr << "mitm_proxy: --relay must be IP:PORT\n";
    return 2;
  }
  auto code = pake::parse_join_code(code_text);
  if (!code) {
    std::cerr << "mitm_proxy: --code: " << code.error().message() << "\n";
    return 2;
  }
  // The certificate the proxy would present if it terminated QUIC itself; here only its
  // fingerprint matters: it is not the other peer's.
  auto identity = quic::Identity::generate();
  if (!identity) {
    std::cerr << "mitm_proxy: " << identity.error().message() << "\n";
    return 1;
  }

  io::asio::io_context io;
  auto mitm = std::make_shared<Mitm>(io.get_executor(), std::move(*code),
                                     (*identity)->fingerprint().to_hex());
  mitm->a().replace_fingerprint = swap == "both" || swap == "to-a";
  mitm->b().replace_fingerprint = swap == "both" || swap == "to-b";
  mitm->a().socket = open_loopback_socket(io.get_executor());
  mitm->b().socket = open_loopback_socket(io.get_executor());
  if (!mitm->a().socket || !mitm->b().socket) {
    return 1;
  }

  const std::string relay_host = relay->ip().to_string();
  const std::uint16_t relay_port = relay->port();
  auto server = io::WebSocketServer::start(
      io.get_executor(), {base::IpAddress::v4({127, 0, 0, 1}), 0}, "/v1/control",
      io::WebSocketOptions{}, [mitm, relay_host, relay_port](std::shared_ptr<io::WebSocket> ws) {
        return serve(mitm, relay_host, relay_port, std::move(ws));
      });
  if (!server) {
    std::cerr << "mitm_proxy: cannot listen: " << server.error().message() << "\n";
    return 1;
  }
  say("mitm.ready control=" + (*server)->local_address().to_string() +
      " udp_a=" + mitm->a().socket->local_address().to_string() +
      " udp_b=" + mitm->b().socket->local_address().to_string());

  io::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) {
      return;
    }
    (*server)->stop();
    mitm->stop();
    io.stop();
  });
  io.run();
  return 0;
}
