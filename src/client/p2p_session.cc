#include "client/p2p_session.h"

#include <algorithm>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <filesystem>

#include "base/log.h"
#include "client/nat_probe.h"
#include "io/interfaces.h"
#include "pake/error.h"
#include "pake/handshake.h"
#include "quic/core/errc.h"

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

bool is_symmetric(const traversal::NatVerdict& v) {
  return v.mapping == traversal::MappingBehavior::AddressDependent ||
         v.mapping == traversal::MappingBehavior::AddressAndPortDependent;
}

// Why no pair answered, in the words of DESIGN.md: the NAT that most likely caused it
// when the verdicts show one, else what the agent saw.
std::string explain_failure(const std::optional<traversal::NatVerdict>& a,
                            const std::optional<traversal::NatVerdict>& b,
                            const std::string& agent_reason) {
  std::string reason;
  for (const auto& [verdict, name] : {std::pair{&a, "A"}, std::pair{&b, "B"}}) {
    if (!*verdict) {
      continue;
    }
    std::string cause;
    if ((*verdict)->udp == traversal::UdpStatus::Blocked) {
      cause = "UDP blocked on peer ";
    } else if (is_symmetric(**verdict)) {
      cause = "symmetric NAT on peer ";
    }
    if (!cause.empty()) {
      reason += (reason.empty() ? "" : ", ") + cause + name;
    }
  }
  return reason.empty() ? agent_reason : reason + "; " + agent_reason;
}

// The relay refuses a longer reason as a malformed message; ours are short, but the
// verdict's wording is not ours to bound.
control::PathReport path_report(control::PathOutcome outcome, std::string reason,
                                std::optional<std::uint32_t> rtt_ms = std::nullopt) {
  if (reason.size() > control::kMaxPathReasonLength) {
    reason.resize(control::kMaxPathReasonLength);
  }
  return control::PathReport{outcome, std::move(reason), rtt_ms};
}

// The shared folder as B's "Mounted ... at" line shows it: as the user typed it when that
// is a short relative path ("./shared"), else its last component; never A's full
// absolute path.
std::string share_display_name(const std::string& dir) {
  auto printable = [](const std::string& s) {
    return !s.empty() && s.size() <= kMaxShareNameBytes &&
           std::none_of(s.begin(), s.end(), [](char c) {
             const auto u = static_cast<unsigned char>(c);
             return u < 0x20 || u == 0x7f;
           });
  };
  if (dir.front() != '/' && printable(dir)) {
    return dir;
  }
  auto name = std::filesystem::path(dir).lexically_normal().filename().string();
  if (name.empty()) {
    name = std::filesystem::path(dir).lexically_normal().parent_path().filename().string();
  }
  return printable(name) ? name : "shared folder";
}

}  // namespace

io::Task<std::optional<Failure>> P2pSession::share() { return run(true, std::nullopt); }

io::Task<std::optional<Failure>> P2pSession::join(pake::JoinCode code) {
  code_text_ = pake::format_join_code(code);
  nameplate_ = code.nameplate;
  return run(false, std::move(code));
}

io::Task<std::optional<Failure>> P2pSession::run(bool is_a, std::optional<pake::JoinCode> code) {
  executor_ = co_await io::asio::this_coro::executor;
  auto result = co_await run_session(is_a, std::move(code));
  stopping_ = true;  // whatever still runs (the tunnel's coroutines) must not finish() again
  if (exporter_) {
    exporter_->stop();
  }
  // Unmount before closing the channel: closing it fails the requests still waiting for
  // A, which the mount would take for A going away.
  co_await unmount();
  if (share_channel_) {
    share_channel_->close();
  }
  co_return result;
}

io::Task<void> P2pSession::unmount() {
  using namespace boost::asio::experimental::awaitable_operators;
  if (!mount_) {
    co_return;
  }
  if (!mount_->unmounted()) {
    if (peer_left_) {
      mount_->channel_failed();  // readers see EIO for a moment, then the mount goes
    } else {
      mount_->unmount();
    }
    // Bounded: a mount that cannot go away must not keep the process forever.
    io::asio::steady_timer limit(executor_, kUnmountTimeout);
    co_await (mount_->wait_unmounted() || limit.async_wait(io::use_nothrow));
  }
  std::string why;
  switch (mount_->end_reason()) {
    case share::MountEnd::KernelUnmounted:
      why = "unmounted from outside";
      break;
    case share::MountEnd::ChannelFailed:
      why = peer_left_ ? "peer A left" : "peer A went away";
      break;
    case share::MountEnd::Unmounted:
      why = peer_left_ ? "peer A left" : "stopped";
      break;
    case share::MountEnd::Mounted:
      why = "still mounted after " + std::to_string(kUnmountTimeout.count()) +
            "s; detach it with umount -l";
      break;
  }
  observer_.unmounted(mount_->mountpoint(), why);
}

bool P2pSession::serves_folder(bool is_a) const {
  return is_a && settings_.share_dir && !settings_.send_file;  // --send pushes instead
}

void P2pSession::stop() {
  stopping_ = true;
  if (mount_) {
    mount_->unmount();  // first: the channel's end below is then no failure to report
  }
  if (punch_) {
    punch_->stop();
  }
  if (quic_) {
    quic_->stop();
  }
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
  socket_ = open_data_socket(executor, relay_ip);
  if (!socket_) {
    co_return Failure{1, "cannot open a UDP socket for the data path"};
  }
  const std::uint16_t local_port = socket_->local_address().port();
  std::vector<base::IpAddress> usable;
  for (const auto& ip : io::interface_addresses(relay_ip.is_loopback())) {
    if (socket_->dual_stack() || ip.family() == relay_ip.family()) {
      usable.push_back(ip);
    }
  }
  for (const auto& c : traversal::host_candidates(usable, local_port, relay_ip.is_loopback())) {
    if (ours_.host.size() >= kMaxHostCandidates) {
      break;
    }
    ours_.host.push_back(c.address);
  }
  // The relay's main and alternate STUN addresses, probed from the data socket: the
  // mapping they see is the one the peer must reach, and whether it changes with the
  // destination is the early NAT verdict.
  const auto& welcome = control_->welcome();
  NatProbeTarget target{base::SocketAddress(relay_ip, welcome.stun_port), std::nullopt};
  if (welcome.alt_port != 0) {
    target.other = base::SocketAddress(welcome.alt_ip.value_or(relay_ip), welcome.alt_port);
  }
  // The filtering half of the verdict needs fresh sockets (RFC 5780 §4.4); it runs
  // alongside, so the whole gathering costs about one round trip plus the probe's
  // no-answer bound.
  auto verdict = co_await probe_session_nat(socket_, target, settings_.stun_timeout);
  if (stopping_) {
    co_return std::nullopt;
  }
  ours_.nat = verdict;
  observer_.nat_verdict(verdict);
  if (verdict.public_address) {
    ours_.reflexive = verdict.public_address;
    observer_.public_address(*verdict.public_address);
  } else {
    log().warn("stun.failed server={}", target.primary.to_string());
    observer_.stun_failed("no answer from the relay's STUN at " + target.primary.to_string() +
                          " (UDP may be blocked)");
  }
  co_return std::nullopt;
}

std::shared_ptr<io::UdpSocket> P2pSession::open_data_socket(io::Executor executor,
                                                            const base::IpAddress& relay_ip) {
  // Dual-stack when the host can: the IPv6 host candidates then join the IPv4 ones
  // (RFC 8445 gathers every family; a direct IPv6 pair needs no NAT at all). On loopback
  // the peers meet on the relay's family only, so demos and tests stay deterministic.
  if (!relay_ip.is_loopback()) {
    io::UdpSocket::Options options;
    options.dual_stack = true;
    if (auto dual = io::UdpSocket::open(executor, {base::IpAddress::v6({}), 0}, options)) {
      return std::make_shared<io::UdpSocket>(std::move(*dual));
    }
  }
  const base::IpAddress any =
      relay_ip.is_v4() ? base::IpAddress::v4({0, 0, 0, 0}) : base::IpAddress::v6({});
  auto socket = io::UdpSocket::open(executor, {any, 0});
  if (!socket) {
    log().error("socket.open_failed error={}", socket.error().message());
    return nullptr;
  }
  return std::make_shared<io::UdpSocket>(std::move(*socket));
}

void P2pSession::prepare_punch(bool is_a) {
  const char peer_role = is_a ? 'B' : 'A';
  const auto& theirs = *peer_info_;
  if (ours_.nat && theirs.nat) {
    const auto& verdict_a = is_a ? *ours_.nat : *theirs.nat;
    const auto& verdict_b = is_a ? *theirs.nat : *ours_.nat;
    const auto outlook = traversal::direct_path_outlook(verdict_a, verdict_b);
    log().info("punch.outlook outlook={} reason=\"{}\"", traversal::to_string(outlook.outlook),
               outlook.reason);
    if (outlook.outlook == traversal::DirectPathOutlook::Impossible) {
      observer_.punch_failed(outlook.reason, true);
      control_->send(path_report(control::PathOutcome::Impossible, outlook.reason));
      if (settings_.send_file || settings_.receive_dir) {
        finish(Failure{1, "no direct path to peer " + std::string(1, peer_role) + " (" +
                              outlook.reason +
                              "); transfers through the relay are not supported yet"});
      }
      return;
    }
  }
  traversal::AgentConfig config;
  config.role = is_a ? traversal::AgentRole::Controlling : traversal::AgentRole::Controlled;
  config.outgoing_key = check_key_ours_;
  config.incoming_key = check_key_theirs_;
  config.attempt_timeout = settings_.attempt_timeout;
  const auto family = socket_->local_address().family();
  auto reachable = [&](const base::SocketAddress& a) {
    return socket_->dual_stack() || a.family() == family;
  };
  for (const auto& h : ours_.host) {
    config.local.push_back(traversal::make_candidate(traversal::CandidateType::Host, h));
  }
  if (ours_.reflexive) {
    config.local.push_back(
        traversal::make_candidate(traversal::CandidateType::ServerReflexive, *ours_.reflexive));
  }
  const bool on_loopback = control_->relay_address().ip().is_loopback();
  for (const auto& h : theirs.host) {
    if (reachable(h) && traversal::is_usable_remote(h, on_loopback)) {
      config.remote.push_back(traversal::make_candidate(traversal::CandidateType::Host, h));
    }
  }
  if (theirs.reflexive && reachable(*theirs.reflexive) &&
      traversal::is_usable_remote(*theirs.reflexive, on_loopback)) {
    config.remote.push_back(
        traversal::make_candidate(traversal::CandidateType::ServerReflexive, *theirs.reflexive));
  }
  if (config.remote.empty()) {
    const std::string reason = "peer " + std::string(1, peer_role) + " has no usable address";
    observer_.punch_failed(reason, true);
    control_->send(path_report(control::PathOutcome::Impossible, reason));
    return;
  }
  punch_ = PunchDriver::start(
      executor_, socket_, std::move(config),
      [this, is_a](const PunchOutcome& outcome) { on_punch_outcome(outcome, is_a); },
      [this](const io::ReceivedDatagram& d) { on_data_datagram(d); },
      [this] {
        if (quic_) {
          quic_->flush();
        }
      });
  control_->send(control::PunchReady{});
}

void P2pSession::on_punch_outcome(const PunchOutcome& outcome, bool is_a) {
  switch (outcome.state) {
    case traversal::AgentState::Connected: {
      if (quic_ && path_) {
        // The peer's address changed under a running tunnel: send there now. QUIC sees
        // one stable peer and needs no re-handshake.
        if (path_->remote() != outcome.path->remote.address) {
          log().info("path.moved remote={}", outcome.path->remote.address.to_string());
          path_->set_remote(outcome.path->remote.address);
          observer_.path_moved(outcome.path->remote.address);
        }
        quic_->flush();
        break;
      }
      const auto rtt_ms = std::chrono::duration_cast<std::chrono::milliseconds>(outcome.path->rtt);
      log().info("punch.succeeded remote={} type={} rtt_ms={}",
                 outcome.path->remote.address.to_string(),
                 traversal::to_string(outcome.path->remote.type), rtt_ms.count());
      std::optional<std::chrono::milliseconds> fire_to_path;
      if (outcome.time_to_first_path) {
        fire_to_path =
            std::chrono::duration_cast<std::chrono::milliseconds>(*outcome.time_to_first_path);
      }
      observer_.punch_succeeded(*outcome.path, fire_to_path);
      control_->send(path_report(control::PathOutcome::Direct, "",
                                 static_cast<std::uint32_t>(rtt_ms.count())));
      start_tunnel(is_a, outcome.path->remote.address);
      break;
    }
    case traversal::AgentState::Failed: {
      const auto& theirs = peer_info_->nat;
      const auto reason =
          explain_failure(is_a ? ours_.nat : theirs, is_a ? theirs : ours_.nat, outcome.reason);
      log().info("punch.failed reason=\"{}\"", reason);
      observer_.punch_failed(reason, false);
      control_->send(path_report(control::PathOutcome::Failed, reason));
      if (settings_.send_file || settings_.receive_dir) {
        finish(Failure{1, "no direct path to peer " + std::string(1, is_a ? 'B' : 'A') + " (" +
                              reason + "); transfers through the relay are not supported yet"});
      }
      break;
    }
    case traversal::AgentState::PathLost:
      log().warn("punch.path_lost reason=\"{}\"", outcome.reason);
      observer_.path_lost(outcome.reason);
      break;
    default:
      break;
  }
}

std::optional<Failure> P2pSession::make_identity() {
  auto identity = quic::Identity::generate();
  if (!identity) {
    return Failure{1, "cannot make this session's QUIC identity: " + identity.error().message()};
  }
  identity_ = *identity;
  ours_.fingerprint = identity_->fingerprint().to_hex();
  return std::nullopt;
}

void P2pSession::on_data_datagram(const io::ReceivedDatagram& datagram) {
  if (quic_) {
    quic_->receive(datagram.data, datagram.segment_size);
    // QUIC packets from the selected address keep its consent fresh during a bulk
    // transfer whose keepalive checks might find the send queue full. (Spoofing them
    // needs an on-path attacker, who can also just drop our keepalives.)
    if (punch_) {
      punch_->note_traffic_from(
          base::SocketAddress(datagram.source.ip().unmapped(), datagram.source.port()));
    }
    return;
  }
  // Before the tunnel exists only the peer's first flight can arrive; keep a few, and
  // only from the peer's public or host addresses (a symmetric NAT changes the port, not
  // the address), so strangers cannot crowd it out.
  constexpr std::size_t kMaxEarlyDatagrams = 32;
  const auto& ip = datagram.source.ip();
  const bool from_peer =
      peer_info_ && ((peer_info_->reflexive && peer_info_->reflexive->ip() == ip.unmapped()) ||
                     std::any_of(peer_info_->host.begin(), peer_info_->host.end(),
                                 [&](const auto& h) { return h.ip() == ip.unmapped(); }));
  if (!from_peer) {
    return;
  }
  // A GRO batch holds several datagrams: keep each alone, as it is replayed.
  const std::size_t segment =
      datagram.segment_size != 0 ? datagram.segment_size : datagram.data.size();
  for (std::size_t off = 0;
       off < datagram.data.size() && early_datagrams_.size() < kMaxEarlyDatagrams; off += segment) {
    const auto piece = datagram.data.subspan(off, std::min(segment, datagram.data.size() - off));
    early_datagrams_.emplace_back(piece.begin(), piece.end());
  }
}

void P2pSession::start_tunnel(bool is_a, const base::SocketAddress& remote) {
  const char peer_role = is_a ? 'B' : 'A';
  if (!peer_info_->fingerprint || !identity_) {
    log().warn("quic.skipped reason=no_fingerprint");
    if (settings_.send_file || settings_.receive_dir) {
      finish(Failure{1, "peer " + std::string(1, peer_role) +
                            " runs a peertun without the QUIC data path; update it"});
    }
    return;
  }
  auto fingerprint = quic::Fingerprint::parse(*peer_info_->fingerprint);
  if (!fingerprint) {
    finish(Failure{1, "peer " + std::string(1, peer_role) + " sent a malformed fingerprint"});
    return;
  }
  const auto now = quic::Clock::now();
  quic::Config config;
  config.congestion_control = settings_.congestion_control;
  if (serves_folder(is_a)) {
    config.stream_send_buffer = kShareStreamSendBuffer;  // see share_channel.h
  }
  auto connection = is_a ? quic::Connection::server(identity_, *fingerprint, config, now)
                         : quic::Connection::client(identity_, *fingerprint, config, now);
  if (!connection) {
    finish(Failure{1, "cannot start QUIC: " + connection.error().message()});
    return;
  }
  path_ = std::make_shared<PeerPath>(socket_, remote);
  quic_ = quic::Session::create(executor_, std::move(*connection), path_);
  quic_->start();
  for (const auto& d : early_datagrams_) {
    quic_->receive(d, d.size());
  }
  early_datagrams_.clear();
  quic_->flush();
  io::asio::co_spawn(executor_, run_tunnel(is_a, quic_),
                     [](std::exception_ptr e) { io::log_task_exception(e, "p2p.tunnel"); });
}

io::Task<void> P2pSession::run_tunnel(bool is_a, std::shared_ptr<quic::Session> session) {
  const std::string peer = "peer " + std::string(1, is_a ? 'B' : 'A');
  if (auto ec = co_await session->handshake()) {
    if (!stopping_) {
      finish(Failure{1, "the QUIC connection with " + peer + " failed: " + ec.message()});
    }
    co_return;
  }
  log().info("quic.connected");
  observer_.quic_connected(is_a ? 'B' : 'A');
  if (settings_.send_file) {
    auto sent = co_await send_file(session, *settings_.send_file);
    if (!sent) {
      if (!stopping_) {
        finish(Failure{1, "sending " + *settings_.send_file + " to " + peer +
                              " failed: " + sent.error().message()});
      }
      co_return;
    }
    transfer_done_ = true;
    observer_.file_sent(*sent);
  }
  if (settings_.receive_dir) {
    auto received = co_await receive_file(session, *settings_.receive_dir);
    if (!received) {
      if (!stopping_) {
        // Close QUIC first so our refusal reaches the sender before the relay tells it
        // we left. The sender may quit before acknowledging the close: our own failure
        // is what we report then, not its leaving.
        transfer_failure_ =
            Failure{1, "receiving a file from " + peer + " failed: " + received.error().message()};
        co_await session->close(1, received.error().message(), std::chrono::seconds(2));
        finish(transfer_failure_);
      }
      co_return;
    }
    transfer_done_ = true;
    observer_.file_received(*received, *settings_.receive_dir);
    // The receiver's work is done: close QUIC cleanly (the sender has our digest) and end.
    co_await session->close(0, "done", std::chrono::seconds(2));
    finish(std::nullopt);
    co_return;
  }
  if (serves_folder(is_a)) {
    co_await serve_folder(session);
  } else if (!is_a && settings_.mount) {
    co_await mount_folder(session);
  }
}

io::Task<void> P2pSession::serve_folder(std::shared_ptr<quic::Session> session) {
  auto exporter = share::Exporter::create(executor_, *settings_.share_dir, {});
  if (!exporter) {
    finish(Failure{1, "cannot share " + *settings_.share_dir + ": " + exporter.error().message()});
    co_return;
  }
  exporter_ = *exporter;
  log().info("share.serving");
  observer_.sharing(*settings_.share_dir, 'B');
  const auto ended = co_await serve_share(session, exporter_);
  exporter_->stop();
  if (stopping_) {
    co_return;
  }
  log().info("share.ended reason=\"{}\"", ended.message());
  if (ended == ShareErrc::ProtocolError) {
    finish(Failure{1, "peer B broke the share protocol; stopped sharing"});
    co_return;
  }
  // B unmounted and closed QUIC (the relay also tells us it left), or the path died.
  if (ended == quic::Errc::ClosedByPeer) {
    observer_.peer_left('B');
    finish(std::nullopt);
    co_return;
  }
  finish(Failure{1, "the connection with peer B ended: " + ended.message()});
}

io::Task<void> P2pSession::mount_folder(std::shared_ptr<quic::Session> session) {
  share_channel_ = QuicShareChannel::start(executor_, session, [this](base::ErrorCode ec) {
    log().info("share.channel_failed reason=\"{}\"", ec.message());
    if (mount_) {
      mount_->channel_failed();
    }
  });
  share::MountOptions options;
  // DESIGN.md's /tmp/p2p-<code>: the secret in it is harmless by now, because the relay
  // burnt the nameplate when we joined. The source in /proc/mounts names the nameplate.
  options.mountpoint = settings_.mount_dir.value_or(share::default_mountpoint(code_text_));
  // A crashed run's mount stays behind under another code: clean those first (only the
  // ones whose peertun is gone).
  share::clean_stale_mounts(share::default_mountpoint(""));
  options.fsname = "peertun:" + nameplate_;
  auto mounted = co_await share::Mount::start(executor_, share_channel_, options);
  if (!mounted) {
    if (!stopping_) {
      finish(Failure{1, "cannot mount peer A's folder at " + options.mountpoint + ": " +
                            mounted.error().message()});
    }
    co_return;
  }
  mount_ = *mounted;
  if (stopping_) {
    co_return;  // run() unmounts it
  }
  log().info("share.mounted mountpoint={}", mount_->mountpoint());
  observer_.mounted(peer_info_->share_name.value_or("peer A's folder"), mount_->mountpoint());
  co_await mount_->wait_unmounted();
  if (stopping_) {
    co_return;
  }
  // Unmounted from outside (fusermount3 -u), or A's channel failed: the session is over.
  co_await session->close(0, "unmounted", std::chrono::seconds(1));
  finish(std::nullopt);
}

void P2pSession::finish(std::optional<Failure> failure) {
  if (finished_) {
    return;
  }
  finished_ = true;
  if (peer_gone_timer_) {
    peer_gone_timer_->cancel();
  }
  finish_failure_ = std::move(failure);
  if (control_) {
    control_->abort();  // run()'s receive ends; it returns finish_failure_
  }
}

io::Task<std::optional<Failure>> P2pSession::run_session(bool is_a,
                                                         std::optional<pake::JoinCode> code) {
  const char peer_role = is_a ? 'B' : 'A';
  // However run() ends, the punch driver's loops and QUIC end with it.
  struct StopPunch {
    P2pSession* session;
    ~StopPunch() {
      if (session->punch_) {
        session->punch_->stop();
      }
      if (session->quic_) {
        session->quic_->stop();
      }
      if (session->peer_gone_timer_) {
        session->peer_gone_timer_->cancel();
      }
    }
  } stop_punch{this};
  if (auto failed = make_identity()) {
    co_return failed;
  }
  if (serves_folder(is_a)) {
    ours_.share_name = share_display_name(*settings_.share_dir);
  }
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
      if (finished_) {
        co_return finish_failure_;
      }
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
                const auto ours = handshake->check_key(is_a ? pake::Role::A : pake::Role::B);
                const auto theirs = handshake->check_key(is_a ? pake::Role::B : pake::Role::A);
                check_key_ours_.assign(ours.begin(), ours.end());
                check_key_theirs_.assign(theirs.begin(), theirs.end());
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
              prepare_punch(is_a);
            }
          } else if constexpr (std::is_same_v<T, control::Fire>) {
            if (!punch_) {
              log().debug("punch.unexpected_fire");  // e.g. after an impossible verdict
              return;
            }
            punch_->fire();
          } else if constexpr (std::is_same_v<T, control::PeerLeft>) {
            if (peer_info_ && (settings_.send_file || settings_.receive_dir) && !transfer_done_) {
              // The peer may have left right after telling us over QUIC why (a refused
              // file): give the tunnel a moment to report that, then give up.
              peer_gone_timer_.emplace(executor_);
              peer_gone_timer_->expires_after(kPeerGoneGrace);
              peer_gone_timer_->async_wait([this, peer_role](const base::ErrorCode& ec) {
                if (!ec) {
                  finish(transfer_failure_ ? transfer_failure_
                                           : Failure{1, "peer " + std::string(1, peer_role) +
                                                            " left before the transfer completed"});
                }
              });
              return;
            }
            if (peer_info_) {
              peer_left_ = true;
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
