#pragma once
// One P2P session up to a direct path: connect to the relay, learn our public address
// and NAT mapping by STUN from the socket that will carry the data, meet the peer by
// nameplate, run the PAKE over the relay, exchange candidates and NAT verdicts inside
// the sealed channel, then punch: both peers tell the relay they are ready, the relay
// fires both at once, and PAKE-keyed connectivity checks find a direct UDP path (or
// the verdicts say at once that none can exist). Peer A shares (mints the join code),
// peer B joins with it.
//
// Threading: runs on the client's io_context thread; stop() must be called there too.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "base/secret.h"
#include "base/socket_address.h"
#include "client/control_client.h"
#include "client/file_transfer.h"
#include "client/peer_info.h"
#include "client/peer_path.h"
#include "client/punch_driver.h"
#include "client/relay_target.h"
#include "client/share_channel.h"
#include "io/udp_socket.h"
#include "pake/join_code.h"
#include "quic/core/identity.h"
#include "quic/driver/session.h"
#include "share/exporter/exporter.h"
#include "share/fuse/mount.h"
#include "traversal/nat_behavior.h"
#include "traversal/punch_agent.h"

namespace peertun::client {

// How long the PAKE and address exchange may take once both peers are paired.
inline constexpr auto kHandshakeTimeout = std::chrono::seconds(30);
// When the peer leaves mid-transfer, how long its last word over QUIC (a refusal, a
// final digest) may take to be read before "left before the transfer completed".
inline constexpr auto kPeerGoneGrace = std::chrono::seconds(2);
// STUN transaction budget (RFC 8489 §6.2.1 retransmits inside it).
inline constexpr auto kStunTimeout = std::chrono::milliseconds(3000);
// How long B waits for its FUSE mount to go away when the session ends (requests still
// waiting for A are answered EIO at once; the detach itself is lazy).
inline constexpr auto kUnmountTimeout = std::chrono::seconds(5);

struct P2pSettings {
  RelayTarget relay;
  base::Secret token;
  std::chrono::milliseconds stun_timeout = kStunTimeout;
  // --p2p-attempt-timeout: from the relay's fire to giving up on a direct path.
  std::chrono::milliseconds attempt_timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(traversal::kDefaultAttemptTimeout);
  // `--send FILE`: push this file to the peer over QUIC once the direct path is up.
  std::optional<std::string> send_file;
  // `--receive DIR`: store the file the peer pushes in DIR, then end the session.
  std::optional<std::string> receive_dir;
  // `--quic-cc`: the sender's congestion control (only the sending side's choice acts).
  quic::CongestionControl congestion_control = quic::CongestionControl::Bbr;
  // Peer A: the folder to share (`peertun p2p DIR`), served read-only over QUIC; its
  // name as the user gave it goes to B for B's "Mounted" line.
  std::optional<std::string> share_dir;
  // Peer B: mount A's folder (unless --receive); at `mount_dir` (--mount), else at
  // /tmp/p2p-<join code>.
  bool mount = false;
  std::optional<std::string> mount_dir;
};

// What the user is told; the app prints it (human lines or JSON).
class P2pObserver {
 public:
  virtual ~P2pObserver() = default;
  virtual void relay_connected(const control::Welcome& /*welcome*/) {}
  virtual void join_code(const std::string& /*code*/) {}
  virtual void public_address(const base::SocketAddress& /*address*/) {}
  virtual void stun_failed(const std::string& /*why*/) {}
  virtual void peer_joined() {}
  virtual void peer_address(char /*peer_role*/, const base::SocketAddress& /*address*/) {}
  virtual void peer_left(char /*peer_role*/) {}
  // Our early NAT verdict (mapping only), before the peer is known.
  virtual void nat_verdict(const traversal::NatVerdict& /*verdict*/) {}
  // `fire_to_path`: from the relay's fire to the first pair proven both ways.
  virtual void punch_succeeded(const traversal::SelectedPath& /*path*/,
                               std::optional<std::chrono::milliseconds> /*fire_to_path*/) {}
  // `reason` names the side and the cause: "symmetric NAT on peer B", or what timed out.
  virtual void punch_failed(const std::string& /*reason*/, bool /*known_impossible*/) {}
  // The direct path stopped answering after it was up.
  virtual void path_lost(const std::string& /*reason*/) {}
  // The peer's address changed (its NAT rebound) and the path followed it.
  virtual void path_moved(const base::SocketAddress& /*remote*/) {}
  // QUIC is up on the direct path, the peer's certificate matched its fingerprint.
  virtual void quic_connected(char /*peer_role*/) {}
  // Peer A: peer B's requests are being served from `share_dir`.
  virtual void sharing(const std::string& /*share_dir*/, char /*peer_role*/) {}
  // Peer B: A's folder (`share_name` as A named it) is mounted at `mountpoint`.
  virtual void mounted(const std::string& /*share_name*/, const std::string& /*mountpoint*/) {}
  // Peer B: the mount is gone (`why`: Ctrl-C, peer left, unmounted from outside).
  virtual void unmounted(const std::string& /*mountpoint*/, const std::string& /*why*/) {}
  virtual void file_sent(const TransferResult& /*result*/) {}
  virtual void file_received(const TransferResult& /*result*/, const std::string& /*dir*/) {}
};

// Exit codes (also the CLI's): 0 success, 1 a failure at run time, 2 bad usage.
struct Failure {
  int exit_code = 1;
  std::string message;  // one line for the user; never contains a secret
};

class P2pSession {
 public:
  P2pSession(P2pSettings settings, P2pObserver& observer)
      : settings_(std::move(settings)), observer_(observer) {}

  // Peer A. Returns nullopt when the session ended normally (the peer left after the
  // exchange, or stop() was called).
  io::Task<std::optional<Failure>> share();
  // Peer B.
  io::Task<std::optional<Failure>> join(pake::JoinCode code);

  // Ends a running share()/join() promptly (Ctrl-C).
  void stop();

  // After the exchange: what the peer told us.
  [[nodiscard]] const std::optional<PeerInfo>& peer_info() const { return peer_info_; }

 private:
  // run_session() and then the teardown that must finish before the process may exit
  // (B's mount goes away, A's exporter stops).
  io::Task<std::optional<Failure>> run(bool is_a, std::optional<pake::JoinCode> code);
  io::Task<std::optional<Failure>> run_session(bool is_a, std::optional<pake::JoinCode> code);
  io::Task<void> unmount();
  // Peer A with a folder to share and no file to push.
  [[nodiscard]] bool serves_folder(bool is_a) const;
  // Peer A serves its folder to B over QUIC; peer B mounts it.
  io::Task<void> serve_folder(std::shared_ptr<quic::Session> session);
  io::Task<void> mount_folder(std::shared_ptr<quic::Session> session);
  // Opens the data socket and fills ours_ (host candidates, STUN mapping, NAT verdict).
  io::Task<std::optional<Failure>> gather();
  // Both peers' candidates are known: decide whether to punch, then start answering
  // checks and tell the relay we are ready (or report the impossible path at once).
  void prepare_punch(bool is_a);
  void on_punch_outcome(const PunchOutcome& outcome, bool is_a);
  // Dual-stack IPv6 when possible (so IPv6 host candidates exist), else the relay's
  // family. nullptr when no socket can be opened.
  static std::shared_ptr<io::UdpSocket> open_data_socket(io::Executor executor,
                                                         const base::IpAddress& relay_ip);
  // This session's ephemeral QUIC certificate; its fingerprint goes into ours_.
  std::optional<Failure> make_identity();
  // A datagram on the data socket that is not a connectivity check: QUIC's.
  void on_data_datagram(const io::ReceivedDatagram& datagram);
  // QUIC over the selected pair: A is the server, B the client.
  void start_tunnel(bool is_a, const base::SocketAddress& remote);
  io::Task<void> run_tunnel(bool is_a, std::shared_ptr<quic::Session> session);
  // Ends run(): with `failure`, or normally (nullopt) when the work is done.
  void finish(std::optional<Failure> failure);

  P2pSettings settings_;
  P2pObserver& observer_;
  io::Executor executor_;
  std::unique_ptr<ControlClient> control_;
  std::shared_ptr<io::UdpSocket> socket_;
  std::shared_ptr<PunchDriver> punch_;
  PeerInfo ours_;
  std::optional<PeerInfo> peer_info_;
  // The connectivity-check keys from the PAKE: ours signs our checks, theirs the peer's.
  wire::Bytes check_key_ours_;
  wire::Bytes check_key_theirs_;
  std::shared_ptr<const quic::Identity> identity_;
  std::shared_ptr<PeerPath> path_;
  std::shared_ptr<quic::Session> quic_;
  // QUIC datagrams that arrived before the tunnel started (the peer selected the pair
  // half a round trip before us); replayed into it. Bounded.
  std::vector<wire::Bytes> early_datagrams_;
  bool stopping_ = false;
  bool timed_out_ = false;
  bool finished_ = false;
  bool transfer_done_ = false;
  // Armed when the peer leaves mid-transfer (see kPeerGoneGrace).
  std::optional<io::asio::steady_timer> peer_gone_timer_;
  std::optional<Failure> finish_failure_;
  // Set when this side refused or failed the transfer, before telling the peer.
  std::optional<Failure> transfer_failure_;
  // The join code as the user gave it (B), for the default mountpoint /tmp/p2p-<code>.
  std::string code_text_;
  std::string nameplate_;
  std::shared_ptr<share::Exporter> exporter_;
  std::shared_ptr<QuicShareChannel> share_channel_;
  std::shared_ptr<share::Mount> mount_;
  bool peer_left_ = false;
};

}  // namespace peertun::client
