#include "quic/core/connection.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "base/log.h"
#include "base/random.h"
#include "quic/core/byte_queue.h"
#include "quic/core/connection_id.h"
#include "quic/core/errc.h"

namespace peertun::quic {
namespace {

constexpr std::string_view kAlpn = "peertun/1";
// TLS 1.3 only and no middlebox compatibility mode: QUIC forbids both (RFC 9001 section
// 4.2 and 8.4).
constexpr char kPriority[] = "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE";
// RFC 9001 section 4.8: CRYPTO_ERROR is 0x100 + the TLS alert.
constexpr std::uint64_t kCryptoErrorBase = 0x100;
// RFC 8446 section 6.2: the alerts that mean "your certificate is not acceptable".
constexpr std::uint8_t kAlertBadCertificate = 42;
constexpr std::uint8_t kAlertCertificateUnknown = 46;
// RFC 9000 section 10.2: stay closing/draining for three PTOs.
constexpr int kClosingPtoMultiple = 3;
// RFC 9000 section 10.2.1: answer packets in the closing state with CONNECTION_CLOSE, but
// "SHOULD limit the rate"; we resend a bounded number of times.
constexpr int kMaxCloseResends = 8;
// RFC 9000 section 19.19 puts no cap on the reason; ours must fit one packet.
constexpr std::size_t kMaxReasonBytes = 1000;
// Pieces of one stream offered per STREAM frame (chunks are 64 KiB; a packet ~1.4 KiB).
constexpr std::size_t kMaxStreamVecs = 4;
// Frames packed into one packet before we stop asking (every pass makes progress or
// removes a stream from the queue; this only bounds a pathological case).
constexpr int kMaxFramesPerPacket = 64;

ngtcp2_tstamp to_ts(TimePoint t) {
  return static_cast<ngtcp2_tstamp>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

TimePoint from_ts(ngtcp2_tstamp ts) {
  return TimePoint(std::chrono::duration_cast<Clock::duration>(
      std::chrono::nanoseconds(static_cast<std::int64_t>(ts))));
}

ngtcp2_cc_algo to_ngtcp2(CongestionControl cc) {
  switch (cc) {
    case CongestionControl::Bbr:
      return NGTCP2_CC_ALGO_BBR;
    case CongestionControl::Bbr2:
      return NGTCP2_CC_ALGO_BBR2;
    case CongestionControl::Cubic:
      return NGTCP2_CC_ALGO_CUBIC;
    case CongestionControl::Reno:
      return NGTCP2_CC_ALGO_RENO;
  }
  return NGTCP2_CC_ALGO_BBR;
}

base::ErrorCode err(Errc e) { return make_error_code(e); }

// The fixed virtual path ngtcp2 sees (documentation addresses, RFC 5737). The real
// addresses belong to the path layer underneath.
sockaddr_in virtual_address(std::uint8_t last_octet, std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  const std::array<std::uint8_t, 4> ip = {192, 0, 2, last_octet};
  std::memcpy(&a.sin_addr, ip.data(), 4);
  return a;
}

}  // namespace

std::string_view to_string(CongestionControl cc) {
  switch (cc) {
    case CongestionControl::Bbr:
      return "bbr";
    case CongestionControl::Bbr2:
      return "bbr2";
    case CongestionControl::Cubic:
      return "cubic";
    case CongestionControl::Reno:
      return "reno";
  }
  return "bbr";
}

std::optional<CongestionControl> parse_congestion_control(std::string_view text) {
  for (auto cc : {CongestionControl::Bbr, CongestionControl::Bbr2, CongestionControl::Cubic,
                  CongestionControl::Reno}) {
    if (text == to_string(cc)) {
      return cc;
    }
  }
  return std::nullopt;
}

struct Stream {
  Stream(StreamId stream_id, ChunkPool& pool) : id(stream_id), send(pool), recv(pool) {}
  StreamId id;
  // Send side: `send` holds [send_acked, send_end); [send_next, send_end) is unsent.
  ByteQueue send;
  std::uint64_t send_acked = 0;
  std::uint64_t send_next = 0;
  std::uint64_t send_end = 0;
  bool fin_requested = false;
  bool fin_sent = false;
  bool fin_acked = false;
  bool write_closed = false;  // reset locally or by the peer's STOP_SENDING
  bool flow_blocked = false;
  bool queued = false;
  // Receive side.
  ByteQueue recv;
  bool recv_fin = false;
  bool fin_delivered = false;
  std::optional<std::uint64_t> reset_code;
  bool reset_delivered = false;
  bool quic_closed = false;  // ngtcp2 has forgotten the stream

  [[nodiscard]] bool has_unsent() const {
    return !write_closed && (send_next < send_end || (fin_requested && !fin_sent));
  }
};

struct Connection::Impl {
  Role role;
  std::shared_ptr<const Identity> identity;
  Fingerprint expected_peer;
  Config config;
  TimePoint created;

  ngtcp2_conn* conn = nullptr;
  gnutls_session_t session = nullptr;
  ngtcp2_crypto_conn_ref conn_ref{};
  sockaddr_in local_addr = virtual_address(1, 1);
  sockaddr_in remote_addr = virtual_address(2, 2);
  ngtcp2_path path{};
  ngtcp2_path_storage write_path{};

  State state = State::Handshaking;
  base::ErrorCode error;
  std::optional<CloseInfo> close_info;
  std::uint32_t events = 0;
  bool pin_mismatch = false;

  // Closing.
  std::optional<std::pair<std::uint64_t, std::string>> close_request;
  std::vector<std::uint8_t> close_packet;
  bool close_packet_due = false;
  int close_resends = 0;
  TimePoint close_deadline{};

  // A packet larger than the batch's segment size waits here for the next write().
  std::vector<std::uint8_t> carry;
  std::size_t carry_len = 0;

  ChunkPool pool;
  std::unordered_map<StreamId, std::unique_ptr<Stream>> streams;
  std::deque<Stream*> send_queue;
  std::deque<StreamId> incoming;

  // Datagrams: bounded queues whose buffers are reused (no allocation once warm).
  std::deque<std::vector<std::uint8_t>> dgram_tx;
  std::deque<std::vector<std::uint8_t>> dgram_rx;
  std::vector<std::vector<std::uint8_t>> dgram_free;
  int dgram_unfit = 0;
  std::uint64_t dgram_id = 0;

  Stats stats;
  std::vector<std::vector<std::uint8_t>> issued_cids;

  Impl(Role r, std::shared_ptr<const Identity> id, Fingerprint peer, Config cfg, TimePoint now)
      : role(r), identity(std::move(id)), expected_peer(peer), config(cfg), created(now) {
    config.max_udp_payload = std::clamp<std::size_t>(config.max_udp_payload, 1200, kMaxUdpPayload);
    path.local = {reinterpret_cast<ngtcp2_sockaddr*>(&local_addr), sizeof local_addr};
    path.remote = {reinterpret_cast<ngtcp2_sockaddr*>(&remote_addr), sizeof remote_addr};
    if (role == Role::Server) {
      std::swap(path.local, path.remote);
    }
    ngtcp2_path_storage_zero(&write_path);
    carry.resize(kMaxUdpPayload);
    conn_ref.get_conn = [](ngtcp2_crypto_conn_ref* ref) {
      return static_cast<Impl*>(ref->user_data)->conn;
    };
    conn_ref.user_data = this;
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  ~Impl() {
    streams.clear();
    if (conn != nullptr) {
      ngtcp2_conn_del(conn);
    }
    if (session != nullptr) {
      gnutls_deinit(session);
    }
  }

  // ---- set-up ----------------------------------------------------------------------

  base::ErrorCode init_tls() {
    auto* cred = static_cast<gnutls_certificate_credentials_t>(identity->native_credentials());
    // The pin check runs inside gnutls_handshake, inside ngtcp2_conn_read_pkt: it must not
    // call into ngtcp2, only record the verdict.
    gnutls_certificate_set_verify_function(cred, &verify_peer);
    const unsigned flags = (role == Role::Server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                           GNUTLS_NO_END_OF_EARLY_DATA | GNUTLS_NO_TICKETS;
    if (gnutls_init(&session, flags) != 0) {
      session = nullptr;
      return err(Errc::InternalError);
    }
    const int configured = role == Role::Server
                               ? ngtcp2_crypto_gnutls_configure_server_session(session)
                               : ngtcp2_crypto_gnutls_configure_client_session(session);
    if (configured != 0 || gnutls_priority_set_direct(session, kPriority, nullptr) != 0) {
      return err(Errc::InternalError);
    }
    // The gnutls glue finds the ngtcp2_conn through this pointer; we find ourselves
    // through conn_ref.user_data.
    gnutls_session_set_ptr(session, &conn_ref);
    if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred) != 0) {
      return err(Errc::InternalError);
    }
    if (role == Role::Server) {
      // Mutual pinning: the client must show the certificate whose fingerprint it sent.
      gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUIRE);
    }
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>(kAlpn.data())),
                        static_cast<unsigned>(kAlpn.size())};
    if (gnutls_alpn_set_protocols(session, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0) {
      return err(Errc::InternalError);
    }
    return {};
  }

  static int verify_peer(gnutls_session_t s) {
    auto* ref = static_cast<ngtcp2_crypto_conn_ref*>(gnutls_session_get_ptr(s));
    auto* self = static_cast<Impl*>(ref->user_data);
    unsigned count = 0;
    const gnutls_datum_t* certs = gnutls_certificate_get_peers(s, &count);
    if (certs == nullptr || count == 0 ||
        Fingerprint::of_der({certs[0].data, certs[0].size}) != self->expected_peer) {
      self->pin_mismatch = true;
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    return 0;
  }

  void fill_settings(ngtcp2_settings& s, TimePoint now) const {
    ngtcp2_settings_default(&s);
    s.initial_ts = to_ts(now);
    s.cc_algo = to_ngtcp2(config.congestion_control);
    s.max_window = config.max_connection_window;
    s.max_stream_window = config.max_stream_window;
    s.handshake_timeout = static_cast<ngtcp2_duration>(config.handshake_timeout.count());
    s.max_tx_udp_payload_size = config.max_udp_payload;
  }

  void fill_params(ngtcp2_transport_params& p) const {
    ngtcp2_transport_params_default(&p);
    p.initial_max_stream_data_bidi_local = config.initial_stream_window;
    p.initial_max_stream_data_bidi_remote = config.initial_stream_window;
    p.initial_max_stream_data_uni = 0;
    p.initial_max_data = config.initial_connection_window;
    p.initial_max_streams_bidi = config.max_incoming_streams;
    p.initial_max_streams_uni = 0;
    p.max_idle_timeout = static_cast<ngtcp2_duration>(config.idle_timeout.count());
    // ngtcp2 asserts on more than 8 (NGTCP2_MAX_DCID_POOL_SIZE); spare IDs let the peer
    // change paths later.
    p.active_connection_id_limit = 8;
    p.max_datagram_frame_size = config.max_datagram_frame_size;
  }

  static ngtcp2_callbacks callbacks(Role role) {
    ngtcp2_callbacks cb{};
    if (role == Role::Client) {
      cb.client_initial = ngtcp2_crypto_client_initial_cb;
      cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
    } else {
      cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
    }
    cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
    cb.encrypt = ngtcp2_crypto_encrypt_cb;
    cb.decrypt = ngtcp2_crypto_decrypt_cb;
    cb.hp_mask = ngtcp2_crypto_hp_mask_cb;
    cb.update_key = ngtcp2_crypto_update_key_cb;
    cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
    cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
    cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
    cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb;
    cb.rand = [](std::uint8_t* dest, std::size_t len, const ngtcp2_rand_ctx*) {
      base::random_bytes({dest, len});
    };
    cb.get_new_connection_id = &on_new_connection_id;
    cb.handshake_completed = &on_handshake_completed;
    cb.recv_stream_data = &on_recv_stream_data;
    cb.acked_stream_data_offset = &on_acked_stream_data;
    cb.stream_open = &on_stream_open;
    cb.stream_close = &on_stream_close;
    cb.stream_reset = &on_stream_reset;
    cb.extend_max_stream_data = &on_extend_max_stream_data;
    cb.extend_max_local_streams_bidi = [](ngtcp2_conn*, std::uint64_t, void* user) {
      static_cast<Impl*>(user)->events |= kEventStreamWritable;
      return 0;
    };
    cb.recv_datagram = &on_recv_datagram;
    return cb;
  }

  base::ErrorCode create_client(TimePoint now) {
    if (auto ec = init_tls()) {
      return ec;
    }
    ngtcp2_cid dcid;
    ngtcp2_cid scid;
    // RFC 9000 section 7.2: the client's first DCID is random and at least 8 bytes.
    dcid.datalen = std::max<std::size_t>(NGTCP2_MIN_INITIAL_DCIDLEN, kConnectionIdLength);
    generate_connection_id({dcid.data, dcid.datalen});
    scid.datalen = kConnectionIdLength;
    generate_connection_id({scid.data, scid.datalen});
    remember_cid(scid);
    ngtcp2_settings settings;
    fill_settings(settings, now);
    ngtcp2_transport_params params;
    fill_params(params);
    auto cb = callbacks(Role::Client);
    if (ngtcp2_conn_client_new(&conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                               &params, nullptr, this) != 0) {
      conn = nullptr;
      return err(Errc::InternalError);
    }
    after_create();
    return {};
  }

  // The server's ngtcp2_conn exists from the client's first acceptable Initial on.
  base::ErrorCode create_server(const ngtcp2_pkt_hd& hd, TimePoint now) {
    ngtcp2_cid scid;
    scid.datalen = kConnectionIdLength;
    generate_connection_id({scid.data, scid.datalen});
    remember_cid(scid);
    ngtcp2_settings settings;
    fill_settings(settings, now);
    ngtcp2_transport_params params;
    fill_params(params);
    params.original_dcid = hd.dcid;
    params.stateless_reset_token_present = 1;
    base::random_bytes(params.stateless_reset_token);
    auto cb = callbacks(Role::Server);
    if (ngtcp2_conn_server_new(&conn, &hd.scid, &scid, &path, hd.version, &cb, &settings, &params,
                               nullptr, this) != 0) {
      conn = nullptr;
      return err(Errc::InternalError);
    }
    after_create();
    return {};
  }

  void after_create() {
    ngtcp2_conn_set_tls_native_handle(conn, session);
    if (config.keepalive_interval.count() > 0) {
      ngtcp2_conn_set_keep_alive_timeout(
          conn, static_cast<ngtcp2_duration>(config.keepalive_interval.count()));
    }
  }

  void remember_cid(const ngtcp2_cid& cid) {
    issued_cids.emplace_back(cid.data, cid.data + cid.datalen);
  }

  // ---- ngtcp2 callbacks (they only record; no ngtcp2 calls that re-enter) -------------

  static int on_new_connection_id(ngtcp2_conn*, ngtcp2_cid* cid, std::uint8_t* token,
                                  std::size_t cidlen, void* user) {
    auto* self = static_cast<Impl*>(user);
    cid->datalen = cidlen;
    generate_connection_id({cid->data, cidlen});
    base::random_bytes({token, NGTCP2_STATELESS_RESET_TOKENLEN});
    self->remember_cid(*cid);
    return 0;
  }

  static int on_handshake_completed(ngtcp2_conn*, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (self->state == State::Handshaking) {
      self->state = State::Established;
      self->events |= kEventHandshakeDone | kEventStreamWritable;
    }
    return 0;
  }

  static Stream* stream_of(void* stream_user) { return static_cast<Stream*>(stream_user); }

  static int on_recv_stream_data(ngtcp2_conn*, std::uint32_t flags, std::int64_t id, std::uint64_t,
                                 const std::uint8_t* data, std::size_t len, void* user,
                                 void* stream_user) {
    auto* self = static_cast<Impl*>(user);
    Stream* s = stream_of(stream_user);
    if (s == nullptr) {
      s = self->find_or_adopt(id);
    }
    // Flow control bounds what the peer can send, so this append never hits the limit.
    s->recv.append({data, len}, SIZE_MAX);
    if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0) {
      s->recv_fin = true;
    }
    self->stats.bytes_received += len;
    self->events |= kEventStreamReadable;
    return 0;
  }

  static int on_acked_stream_data(ngtcp2_conn*, std::int64_t, std::uint64_t offset,
                                  std::uint64_t len, void* user, void* stream_user) {
    auto* self = static_cast<Impl*>(user);
    Stream* s = stream_of(stream_user);
    if (s == nullptr) {
      return 0;
    }
    const std::uint64_t end = offset + len;
    if (end > s->send_acked) {
      s->send.pop(static_cast<std::size_t>(end - s->send_acked));
      s->send_acked = end;
    }
    if (s->fin_sent && s->send_acked == s->send_end) {
      s->fin_acked = true;
    }
    self->events |= kEventStreamWritable;
    return 0;
  }

  static int on_stream_open(ngtcp2_conn*, std::int64_t id, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->find_or_adopt(id);
    return 0;
  }

  static int on_stream_close(ngtcp2_conn* c, std::uint32_t, std::int64_t id, std::uint64_t,
                             void* user, void* stream_user) {
    auto* self = static_cast<Impl*>(user);
    if (Stream* s = stream_of(stream_user)) {
      s->quic_closed = true;
      if (s->send_acked == s->send_end && s->fin_sent) {
        s->fin_acked = true;
      }
      self->unqueue(s);
      self->events |= kEventStreamReadable | kEventStreamWritable;
      self->maybe_forget(s);
    }
    if (!ngtcp2_conn_is_local_stream(c, id)) {
      // Let the peer open another in its place.
      ngtcp2_conn_extend_max_streams_bidi(c, 1);
    }
    return 0;
  }

  static int on_stream_reset(ngtcp2_conn*, std::int64_t, std::uint64_t, std::uint64_t code,
                             void* user, void* stream_user) {
    auto* self = static_cast<Impl*>(user);
    if (Stream* s = stream_of(stream_user)) {
      s->reset_code = code;
      self->events |= kEventStreamReadable;
    }
    return 0;
  }

  static int on_extend_max_stream_data(ngtcp2_conn*, std::int64_t, std::uint64_t, void* user,
                                       void* stream_user) {
    auto* self = static_cast<Impl*>(user);
    if (Stream* s = stream_of(stream_user)) {
      s->flow_blocked = false;
      self->enqueue(s);
      self->events |= kEventStreamWritable;
    }
    return 0;
  }

  static int on_recv_datagram(ngtcp2_conn*, std::uint32_t, const std::uint8_t* data,
                              std::size_t len, void* user) {
    auto* self = static_cast<Impl*>(user);
    if (self->dgram_rx.size() >= self->config.datagram_queue) {
      // Unreliable by contract: the oldest unread one goes.
      self->recycle(std::move(self->dgram_rx.front()));
      self->dgram_rx.pop_front();
      ++self->stats.quic_datagrams_dropped;
    }
    auto buf = self->fresh_buffer();
    buf.assign(data, data + len);
    self->dgram_rx.push_back(std::move(buf));
    self->events |= kEventDatagram;
    return 0;
  }

  // ---- streams -----------------------------------------------------------------------

  Stream* find(StreamId id) const {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }

  Stream* find_or_adopt(StreamId id) {
    if (Stream* s = find(id)) {
      return s;
    }
    auto owned = std::make_unique<Stream>(id, pool);
    Stream* s = owned.get();
    streams.emplace(id, std::move(owned));
    ngtcp2_conn_set_stream_user_data(conn, id, s);
    if (!ngtcp2_conn_is_local_stream(conn, id)) {
      incoming.push_back(id);
      events |= kEventStreamOpened;
    }
    return s;
  }

  void enqueue(Stream* s) {
    if (!s->queued && !s->flow_blocked && s->has_unsent() && !s->quic_closed) {
      s->queued = true;
      send_queue.push_back(s);
    }
  }

  void unqueue(Stream* s) {
    if (s->queued) {
      s->queued = false;
      std::erase(send_queue, s);
    }
  }

  // A stream is forgotten once QUIC is done with it and the application has seen its end
  // (FIN or reset) or abandoned it; until then reads still work.
  void maybe_forget(Stream* s) {
    const bool recv_done =
        s->fin_delivered || s->reset_delivered || (s->write_closed && s->recv.empty());
    if (s->quic_closed && recv_done) {
      unqueue(s);
      streams.erase(s->id);
    }
  }

  // ---- writing -----------------------------------------------------------------------

  std::vector<std::uint8_t> fresh_buffer() {
    if (dgram_free.empty()) {
      return {};
    }
    auto b = std::move(dgram_free.back());
    dgram_free.pop_back();
    return b;
  }

  void recycle(std::vector<std::uint8_t> b) {
    if (dgram_free.size() < config.datagram_queue) {
      b.clear();
      dgram_free.push_back(std::move(b));
    }
  }

  // Writes one packet (coalescing datagrams and stream frames from several streams);
  // returns its size, 0 if nothing may be sent now, or a negative ngtcp2 error.
  ngtcp2_ssize write_packet(std::uint8_t* dest, std::size_t destlen, ngtcp2_tstamp ts) {
    ngtcp2_pkt_info pi{};
    const bool datagrams_ok = state == State::Established;
    for (int pass = 0; pass < kMaxFramesPerPacket; ++pass) {
      if (datagrams_ok && !dgram_tx.empty()) {
        auto& d = dgram_tx.front();
        ngtcp2_vec v{d.data(), d.size()};
        int accepted = 0;
        const auto n =
            ngtcp2_conn_writev_datagram(conn, &write_path.path, &pi, dest, destlen, &accepted,
                                        NGTCP2_WRITE_DATAGRAM_FLAG_MORE, dgram_id, &v, 1, ts);
        if (accepted != 0 || n == NGTCP2_ERR_INVALID_STATE || n == NGTCP2_ERR_INVALID_ARGUMENT) {
          if (accepted == 0) {
            ++stats.quic_datagrams_dropped;
          }
          ++dgram_id;
          dgram_unfit = 0;
          recycle(std::move(d));
          dgram_tx.pop_front();
          if (n == NGTCP2_ERR_WRITE_MORE || n == NGTCP2_ERR_INVALID_STATE ||
              n == NGTCP2_ERR_INVALID_ARGUMENT) {
            continue;
          }
          return n;
        }
        if (n > 0) {
          // A packet went out without it (other frames took the room). Twice in a row
          // means it never fits: drop it rather than retry forever (the note's §4 trap).
          if (++dgram_unfit >= 2) {
            ++stats.quic_datagrams_dropped;
            recycle(std::move(d));
            dgram_tx.pop_front();
            dgram_unfit = 0;
          }
        }
        return n;
      }

      Stream* s = nullptr;
      while (!send_queue.empty()) {
        Stream* front = send_queue.front();
        if (!front->has_unsent() || front->quic_closed) {
          unqueue(front);
          continue;
        }
        const std::uint64_t unsent = front->send_end - front->send_next;
        if (unsent > 0 && ngtcp2_conn_get_max_stream_data_left(conn, front->id) == 0) {
          front->flow_blocked = true;
          unqueue(front);
          continue;
        }
        s = front;
        break;
      }
      if (s != nullptr && s->send_end > s->send_next && ngtcp2_conn_get_max_data_left(conn) == 0) {
        // Connection-level flow control: no stream may send; ngtcp2 gives no callback
        // when it opens, so we simply ask again on the next write.
        s = nullptr;
      }
      if (s == nullptr) {
        return ngtcp2_conn_writev_stream(conn, &write_path.path, &pi, dest, destlen, nullptr,
                                         NGTCP2_WRITE_STREAM_FLAG_NONE, -1, nullptr, 0, ts);
      }

      std::array<std::span<const std::uint8_t>, kMaxStreamVecs> pieces;
      const std::size_t from = static_cast<std::size_t>(s->send_next - s->send_acked);
      const std::size_t count = s->send.gather(from, pieces);
      std::array<ngtcp2_vec, kMaxStreamVecs> vecs;
      std::uint64_t offered = 0;
      for (std::size_t i = 0; i < count; ++i) {
        vecs[i] = {const_cast<std::uint8_t*>(pieces[i].data()), pieces[i].size()};
        offered += pieces[i].size();
      }
      const bool fin = s->fin_requested && s->send_next + offered == s->send_end;
      std::uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
      if (fin) {
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      }
      ngtcp2_ssize taken = -1;
      const auto n = ngtcp2_conn_writev_stream(conn, &write_path.path, &pi, dest, destlen, &taken,
                                               flags, s->id, vecs.data(), count, ts);
      if (taken >= 0) {
        s->send_next += static_cast<std::uint64_t>(taken);
        if (fin && s->send_next == s->send_end) {
          s->fin_sent = true;
        }
        stats.bytes_sent += static_cast<std::uint64_t>(taken);
      }
      if (n == NGTCP2_ERR_WRITE_MORE) {
        if (!s->has_unsent()) {
          unqueue(s);
        }
        continue;
      }
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
        s->flow_blocked = true;
        unqueue(s);
        continue;
      }
      if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
        s->write_closed = true;
        unqueue(s);
        continue;
      }
      if (n > 0 && send_queue.size() > 1) {
        // Round robin: the next packet starts with the next stream. (With one stream
        // there is nothing to rotate; this runs once per packet.)
        unqueue(s);
        enqueue(s);
      }
      return n;
    }
    // Bounded out: close the packet being built.
    return ngtcp2_conn_writev_stream(conn, &write_path.path, &pi, dest, destlen, nullptr,
                                     NGTCP2_WRITE_STREAM_FLAG_NONE, -1, nullptr, 0, ts);
  }

  base::Result<TxBatch> write(std::span<std::uint8_t> buffer, TimePoint now) {
    if (buffer.size() < config.max_udp_payload) {
      return err(Errc::InternalError);
    }
    if (carry_len > 0) {
      std::memcpy(buffer.data(), carry.data(), carry_len);
      TxBatch b{carry_len, carry_len};
      carry_len = 0;
      ++stats.packets_sent;
      return b;
    }
    if (close_request && (state == State::Handshaking || state == State::Established)) {
      auto [code, reason] = *close_request;
      close_request.reset();
      ngtcp2_connection_close_error ccerr;
      ngtcp2_connection_close_error_default(&ccerr);
      ngtcp2_connection_close_error_set_application_error(
          &ccerr, code, reinterpret_cast<const std::uint8_t*>(reason.data()), reason.size());
      close_info = CloseInfo{false, true, code, reason};
      enter_closing(ccerr, err(Errc::ClosedLocally), now);
    }
    if (close_packet_due) {
      close_packet_due = false;
      if (!close_packet.empty()) {
        std::memcpy(buffer.data(), close_packet.data(), close_packet.size());
        ++stats.packets_sent;
        return TxBatch{close_packet.size(), close_packet.size()};
      }
    }
    if (state != State::Handshaking && state != State::Established) {
      return TxBatch{};
    }
    if (conn == nullptr) {
      return TxBatch{};  // a server still waiting for the client's Initial
    }
    const ngtcp2_tstamp ts = to_ts(now);
    const std::size_t max_udp =
        std::min(ngtcp2_conn_get_max_tx_udp_payload_size(conn), config.max_udp_payload);
    const std::size_t quantum = ngtcp2_conn_get_send_quantum(conn) / max_udp;
    // GSO also caps a batch at one UDP datagram's size (65507 bytes): 45 full-size packets.
    const std::size_t max_pkts = std::min({std::min(buffer.size(), kMaxBatchBytes) / max_udp,
                                           kMaxBatchSegments, std::max<std::size_t>(quantum, 1)});
    TxBatch batch;
    for (std::size_t pkts = 0; pkts < max_pkts; ++pkts) {
      std::uint8_t* dest = buffer.data() + batch.bytes;
      const ngtcp2_ssize n = write_packet(dest, max_udp, ts);
      if (n < 0) {
        fail_with_liberr(static_cast<int>(n), now);
        break;
      }
      if (n == 0) {
        break;
      }
      const auto size = static_cast<std::size_t>(n);
      if (pkts == 0) {
        batch.segment_size = size;
      } else if (size > batch.segment_size) {
        // GSO needs equal segments: this one leads the next batch.
        std::memcpy(carry.data(), dest, size);
        carry_len = size;
        break;
      }
      batch.bytes += size;
      ++stats.packets_sent;
      if (size < batch.segment_size) {
        break;  // a short packet may only end a GSO batch
      }
    }
    if (batch.bytes > 0 || carry_len > 0) {
      ngtcp2_conn_update_pkt_tx_time(conn, ts);
    }
    if (batch.bytes == 0 && close_packet_due) {
      return write(buffer, now);  // the failure above produced a CONNECTION_CLOSE
    }
    return batch;
  }

  // ---- closing -----------------------------------------------------------------------

  void enter_closing(const ngtcp2_connection_close_error& ccerr, base::ErrorCode why,
                     TimePoint now) {
    if (conn == nullptr) {
      finish(why);
      return;
    }
    close_packet.resize(config.max_udp_payload);
    ngtcp2_pkt_info pi{};
    const auto n = ngtcp2_conn_write_connection_close(
        conn, &write_path.path, &pi, close_packet.data(), close_packet.size(), &ccerr, to_ts(now));
    if (n <= 0) {
      close_packet.clear();
      finish(why);
      return;
    }
    close_packet.resize(static_cast<std::size_t>(n));
    close_packet_due = true;
    state = State::Closing;
    error = why;
    events |= kEventClosed;
    close_deadline =
        now + std::chrono::nanoseconds(kClosingPtoMultiple * ngtcp2_conn_get_pto(conn));
    abandon_streams();
  }

  void enter_draining(TimePoint now) {
    ngtcp2_connection_close_error ccerr;
    ngtcp2_conn_get_connection_close_error(conn, &ccerr);
    CloseInfo info;
    info.by_peer = true;
    info.application = ccerr.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION;
    info.code = ccerr.error_code;
    if (ccerr.reason != nullptr) {
      info.reason.assign(reinterpret_cast<const char*>(ccerr.reason), ccerr.reasonlen);
    }
    base::ErrorCode why = err(Errc::ClosedByPeer);
    if (!info.application && info.code >= kCryptoErrorBase && info.code < kCryptoErrorBase + 256) {
      const auto alert = static_cast<std::uint8_t>(info.code - kCryptoErrorBase);
      why = (alert >= kAlertBadCertificate && alert <= kAlertCertificateUnknown)
                ? err(Errc::CertificateRejectedByPeer)
                : err(Errc::HandshakeFailed);
    } else if (!info.application && info.code != NGTCP2_NO_ERROR) {
      why = err(Errc::PeerProtocolError);
    }
    close_info = std::move(info);
    state = State::Draining;
    error = why;
    events |= kEventClosed;
    close_deadline =
        now + std::chrono::nanoseconds(kClosingPtoMultiple * ngtcp2_conn_get_pto(conn));
    abandon_streams();
  }

  void finish(base::ErrorCode why) {
    if (!error) {
      error = why;
    }
    state = State::Closed;
    events |= kEventClosed;
    abandon_streams();
  }

  void abandon_streams() {
    send_queue.clear();
    for (auto& [id, s] : streams) {
      s->queued = false;
    }
    events |= kEventStreamReadable | kEventStreamWritable;
  }

  // A library error from read/write/expiry: tell the peer (unless told not to) and close.
  void fail_with_liberr(int rv, TimePoint now) {
    if (rv == NGTCP2_ERR_DRAINING) {
      enter_draining(now);
      return;
    }
    if (rv == NGTCP2_ERR_DROP_CONN) {
      finish(err(Errc::PeerProtocolError));
      return;
    }
    if (rv == NGTCP2_ERR_IDLE_CLOSE) {
      finish(err(Errc::IdleTimeout));
      return;
    }
    if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
      finish(err(Errc::HandshakeTimeout));
      return;
    }
    ngtcp2_connection_close_error ccerr;
    ngtcp2_connection_close_error_default(&ccerr);
    base::ErrorCode why;
    if (rv == NGTCP2_ERR_CRYPTO) {
      const std::uint8_t alert = ngtcp2_conn_get_tls_alert(conn);
      static constexpr std::string_view kPinReason =
          "certificate does not match the pinned fingerprint";
      if (pin_mismatch) {
        why = err(Errc::PeerCertificateMismatch);
        ngtcp2_connection_close_error_set_transport_error_tls_alert(
            &ccerr, alert != 0 ? alert : kAlertBadCertificate,
            reinterpret_cast<const std::uint8_t*>(kPinReason.data()), kPinReason.size());
      } else {
        why = err(Errc::HandshakeFailed);
        ngtcp2_connection_close_error_set_transport_error_tls_alert(&ccerr, alert, nullptr, 0);
      }
    } else {
      why = ngtcp2_err_is_fatal(rv) ? err(Errc::InternalError) : err(Errc::PeerProtocolError);
      ngtcp2_connection_close_error_set_transport_error_liberr(&ccerr, rv, nullptr, 0);
    }
    close_info = CloseInfo{false, false, ccerr.error_code, {}};
    enter_closing(ccerr, why, now);
  }

  // ---- reading -----------------------------------------------------------------------

  base::ErrorCode receive(std::span<const std::uint8_t> data, TimePoint now) {
    ++stats.datagrams_received;
    if (state == State::Closing) {
      // RFC 9000 section 10.2.1: the peer may have missed our CONNECTION_CLOSE.
      if (close_resends < kMaxCloseResends && !close_packet.empty()) {
        ++close_resends;
        close_packet_due = true;
      }
      return {};
    }
    if (state == State::Draining || state == State::Closed) {
      return {};
    }
    if (conn == nullptr) {
      ngtcp2_pkt_hd hd;
      if (role != Role::Server || ngtcp2_accept(&hd, data.data(), data.size()) != 0) {
        ++stats.datagrams_dropped;
        return {};
      }
      if (auto ec = create_server(hd, now)) {
        finish(ec);
        return ec;
      }
    }
    ngtcp2_pkt_info pi{};
    const int rv = ngtcp2_conn_read_pkt(conn, &path, &pi, data.data(), data.size(), to_ts(now));
    if (rv == 0) {
      return {};
    }
    if (rv == NGTCP2_ERR_DISCARD_PKT || rv == NGTCP2_ERR_DECRYPT) {
      ++stats.datagrams_dropped;
      return {};
    }
    fail_with_liberr(rv, now);
    return error;
  }

  base::ErrorCode handle_timeout(TimePoint now) {
    if (state == State::Closing || state == State::Draining) {
      if (now >= close_deadline) {
        finish(error);
      }
      return {};
    }
    if (state == State::Closed) {
      return {};
    }
    if (conn == nullptr) {
      if (now >= created + config.handshake_timeout) {
        finish(err(Errc::HandshakeTimeout));
        return error;
      }
      return {};
    }
    const int rv = ngtcp2_conn_handle_expiry(conn, to_ts(now));
    if (rv == 0) {
      return {};
    }
    fail_with_liberr(rv, now);
    return error;
  }

  std::optional<TimePoint> next_deadline() const {
    switch (state) {
      case State::Closed:
        return std::nullopt;
      case State::Closing:
      case State::Draining:
        return close_deadline;
      default:
        break;
    }
    if (conn == nullptr) {
      return created + config.handshake_timeout;
    }
    const ngtcp2_tstamp expiry = ngtcp2_conn_get_expiry(conn);
    if (expiry == UINT64_MAX) {
      return std::nullopt;
    }
    return from_ts(expiry);
  }
};

// ---- Connection: thin forwarding -------------------------------------------------------

Connection::Connection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

base::Result<Connection> Connection::client(std::shared_ptr<const Identity> identity,
                                            Fingerprint peer, Config config, TimePoint now) {
  if (identity == nullptr) {
    return err(Errc::InternalError);
  }
  auto impl = std::make_unique<Impl>(Role::Client, std::move(identity), peer, config, now);
  if (auto ec = impl->create_client(now)) {
    return ec;
  }
  return Connection(std::move(impl));
}

base::Result<Connection> Connection::server(std::shared_ptr<const Identity> identity,
                                            Fingerprint peer, Config config, TimePoint now) {
  if (identity == nullptr) {
    return err(Errc::InternalError);
  }
  auto impl = std::make_unique<Impl>(Role::Server, std::move(identity), peer, config, now);
  if (auto ec = impl->init_tls()) {
    return ec;
  }
  return Connection(std::move(impl));
}

base::ErrorCode Connection::receive(std::span<const std::uint8_t> datagram, TimePoint now) {
  return impl_->receive(datagram, now);
}

base::Result<TxBatch> Connection::write(std::span<std::uint8_t> buffer, TimePoint now) {
  return impl_->write(buffer, now);
}

std::optional<TimePoint> Connection::next_deadline() const { return impl_->next_deadline(); }

base::ErrorCode Connection::handle_timeout(TimePoint now) { return impl_->handle_timeout(now); }

void Connection::close(std::uint64_t application_code, std::string_view reason) {
  auto& i = *impl_;
  if (i.state != State::Handshaking && i.state != State::Established) {
    return;
  }
  if (i.conn == nullptr) {
    i.close_info = CloseInfo{false, true, application_code, std::string(reason)};
    i.finish(err(Errc::ClosedLocally));
    return;
  }
  i.close_request.emplace(application_code,
                          std::string(reason.substr(0, std::min(reason.size(), kMaxReasonBytes))));
}

Role Connection::role() const { return impl_->role; }
State Connection::state() const { return impl_->state; }
base::ErrorCode Connection::error() const { return impl_->error; }
const std::optional<CloseInfo>& Connection::close_info() const { return impl_->close_info; }

std::uint32_t Connection::take_events() { return std::exchange(impl_->events, 0); }

base::Result<StreamId> Connection::open_stream() {
  auto& i = *impl_;
  if (i.state != State::Established) {
    return err(Errc::NotConnected);
  }
  StreamId id = -1;
  const int rv = ngtcp2_conn_open_bidi_stream(i.conn, &id, nullptr);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    return err(Errc::StreamLimit);
  }
  if (rv != 0) {
    return err(Errc::InternalError);
  }
  i.find_or_adopt(id);
  return id;
}

std::optional<StreamId> Connection::accept_stream() {
  auto& i = *impl_;
  while (!i.incoming.empty()) {
    const StreamId id = i.incoming.front();
    i.incoming.pop_front();
    if (i.find(id) != nullptr) {
      return id;
    }
  }
  return std::nullopt;
}

base::Result<std::size_t> Connection::write_stream(StreamId id, std::span<const std::uint8_t> data,
                                                   bool fin) {
  auto& i = *impl_;
  if (i.state != State::Established) {
    return err(Errc::NotConnected);
  }
  Stream* s = i.find(id);
  if (s == nullptr) {
    return err(Errc::UnknownStream);
  }
  if (s->write_closed || s->quic_closed) {
    return err(s->reset_code ? Errc::StreamReset : Errc::UnknownStream);
  }
  if (s->fin_requested) {
    return err(Errc::StreamFinished);
  }
  const std::size_t n = s->send.append(data, i.config.stream_send_buffer);
  s->send_end += n;
  if (fin && n == data.size()) {
    s->fin_requested = true;
  }
  i.enqueue(s);
  return n;
}

std::size_t Connection::stream_send_space(StreamId id) const {
  const Stream* s = impl_->find(id);
  if (s == nullptr || s->write_closed || s->fin_requested) {
    return 0;
  }
  const std::size_t used = s->send.size();
  return used < impl_->config.stream_send_buffer ? impl_->config.stream_send_buffer - used : 0;
}

bool Connection::stream_send_done(StreamId id) const {
  const Stream* s = impl_->find(id);
  return s == nullptr || s->write_closed || (s->fin_requested && s->fin_acked) ||
         (!s->fin_requested && s->send_acked == s->send_end);
}

base::Result<StreamRead> Connection::read_stream(StreamId id, std::span<std::uint8_t> out) {
  auto& i = *impl_;
  Stream* s = i.find(id);
  if (s == nullptr) {
    return err(Errc::UnknownStream);
  }
  if (s->reset_code) {
    if (!s->recv.empty()) {
      // The peer abandoned these bytes; give their credit back all the same.
      const auto dropped = s->recv.size();
      s->recv.pop(dropped);
      if (i.conn != nullptr && i.state == State::Established) {
        ngtcp2_conn_extend_max_offset(i.conn, dropped);
      }
    }
    s->reset_delivered = true;
    i.maybe_forget(s);
    return err(Errc::StreamReset);
  }
  const std::size_t n = s->recv.peek(out);
  s->recv.pop(n);
  if (n > 0 && i.conn != nullptr && i.state == State::Established) {
    if (!s->quic_closed) {
      ngtcp2_conn_extend_max_stream_offset(i.conn, id, n);
    }
    ngtcp2_conn_extend_max_offset(i.conn, n);
  }
  StreamRead r{n, false};
  if (s->recv.empty() && s->recv_fin) {
    r.fin = true;
    s->fin_delivered = true;
    i.maybe_forget(s);
  }
  return r;
}

std::optional<std::uint64_t> Connection::stream_reset_code(StreamId id) const {
  const Stream* s = impl_->find(id);
  return s == nullptr ? std::nullopt : s->reset_code;
}

base::ErrorCode Connection::reset_stream(StreamId id, std::uint64_t application_code) {
  auto& i = *impl_;
  Stream* s = i.find(id);
  if (s == nullptr) {
    return err(Errc::UnknownStream);
  }
  if (i.conn != nullptr && !s->quic_closed && i.state == State::Established) {
    ngtcp2_conn_shutdown_stream(i.conn, id, application_code);
  }
  s->write_closed = true;
  i.unqueue(s);
  if (!s->recv.empty()) {
    const auto dropped = s->recv.size();
    s->recv.pop(dropped);
  }
  s->reset_delivered = true;
  i.maybe_forget(s);
  return {};
}

bool Connection::has_unacked_stream_data() const {
  for (const auto& [id, s] : impl_->streams) {
    if (!s->write_closed && !s->quic_closed &&
        (s->send_acked < s->send_end || (s->fin_requested && !s->fin_acked))) {
      return true;
    }
  }
  return false;
}

base::ErrorCode Connection::send_datagram(std::span<const std::uint8_t> data) {
  auto& i = *impl_;
  if (i.state != State::Established) {
    return err(Errc::NotConnected);
  }
  const auto* remote = ngtcp2_conn_get_remote_transport_params(i.conn);
  if (remote == nullptr || remote->max_datagram_frame_size == 0 ||
      i.config.max_datagram_frame_size == 0) {
    return err(Errc::DatagramsDisabled);
  }
  if (data.size() > max_datagram_payload()) {
    return err(Errc::DatagramTooLarge);
  }
  if (i.dgram_tx.size() >= i.config.datagram_queue) {
    // Unreliable: a full queue drops the newest, like a full socket buffer would.
    ++i.stats.quic_datagrams_dropped;
    return {};
  }
  auto buf = i.fresh_buffer();
  buf.assign(data.begin(), data.end());
  i.dgram_tx.push_back(std::move(buf));
  return {};
}

std::size_t Connection::pending_datagrams() const { return impl_->dgram_tx.size(); }

std::size_t Connection::max_datagram_payload() const {
  auto& i = *impl_;
  if (i.conn == nullptr || i.state != State::Established) {
    return 0;
  }
  const auto* remote = ngtcp2_conn_get_remote_transport_params(i.conn);
  if (remote == nullptr || remote->max_datagram_frame_size == 0) {
    return 0;
  }
  // Short header (1 + DCID + up to 4-byte packet number), AEAD tag (16), DATAGRAM frame
  // type and length (up to 1 + 2): 1 + 20 + 4 + 16 + 3 = 44 bytes at most (RFC 9000
  // section 17.3, RFC 9001 section 5.3, RFC 9221 section 4). The frame limit counts
  // type and length too.
  constexpr std::size_t kOverhead = 44;
  const std::size_t path_max =
      std::min(ngtcp2_conn_get_path_max_tx_udp_payload_size(i.conn), i.config.max_udp_payload);
  const std::size_t by_path = path_max > kOverhead ? path_max - kOverhead : 0;
  const std::uint64_t frame_max = remote->max_datagram_frame_size;
  const std::size_t by_frame = frame_max > 3 ? static_cast<std::size_t>(frame_max - 3) : 0;
  return std::min(by_path, by_frame);
}

std::optional<std::size_t> Connection::receive_datagram(std::span<std::uint8_t> out) {
  auto& i = *impl_;
  if (i.dgram_rx.empty()) {
    return std::nullopt;
  }
  auto d = std::move(i.dgram_rx.front());
  i.dgram_rx.pop_front();
  const std::size_t n = std::min(out.size(), d.size());
  std::memcpy(out.data(), d.data(), n);
  i.recycle(std::move(d));
  return n;
}

Stats Connection::stats() const {
  Stats s = impl_->stats;
  if (impl_->conn != nullptr) {
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(impl_->conn, &cs);
    s.smoothed_rtt = std::chrono::nanoseconds(cs.smoothed_rtt);
    s.cwnd = cs.cwnd;
    s.bytes_in_flight = cs.bytes_in_flight;
  }
  return s;
}

std::vector<std::vector<std::uint8_t>> Connection::local_connection_ids() const {
  return impl_->issued_cids;
}

}  // namespace peertun::quic
