// TlsStream over real loopback TCP: handshakes, verification outcomes, data both ways,
// close_notify, the deadline, and destruction with operations pending; against a raw
// GnuTLS peer, TLS 1.3 KeyUpdate and TLS 1.2 renegotiation. The certificates are made
// here with GnuTLS (no files from outside the test).
#include "io/tls_stream.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <thread>

namespace peertun::io {
namespace {

using namespace std::chrono_literals;

// A self-signed certificate for "localhost" and 127.0.0.1, written as PEM files.
struct TestCert {
  std::string cert_file;
  std::string key_file;
};

std::string export_pem(gnutls_datum_t d) {
  std::string s(reinterpret_cast<const char*>(d.data), d.size);
  gnutls_free(d.data);
  return s;
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

TestCert make_cert(const std::string& name, std::time_t not_before, std::time_t not_after) {
  gnutls_x509_privkey_t key = nullptr;
  gnutls_x509_crt_t crt = nullptr;
  EXPECT_EQ(gnutls_x509_privkey_init(&key), 0);
  EXPECT_EQ(gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
            0);
  EXPECT_EQ(gnutls_x509_crt_init(&crt), 0);
  gnutls_x509_crt_set_version(crt, 3);
  const unsigned char serial[] = {0x01, 0x23};
  gnutls_x509_crt_set_serial(crt, serial, sizeof serial);
  gnutls_x509_crt_set_activation_time(crt, not_before);
  gnutls_x509_crt_set_expiration_time(crt, not_after);
  const std::string dn = "CN=" + name;
  EXPECT_EQ(gnutls_x509_crt_set_dn(crt, dn.c_str(), nullptr), 0);
  gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9, GNUTLS_FSAN_SET);
  const unsigned char loopback[] = {127, 0, 0, 1};
  gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, loopback, 4, GNUTLS_FSAN_APPEND);
  gnutls_x509_crt_set_key(crt, key);
  gnutls_x509_crt_set_basic_constraints(crt, 1, -1);
  gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_CERT_SIGN);
  EXPECT_EQ(gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0), 0);
  gnutls_datum_t cert_pem{};
  gnutls_datum_t key_pem{};
  EXPECT_EQ(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cert_pem), 0);
  EXPECT_EQ(gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &key_pem), 0);
  gnutls_x509_crt_deinit(crt);
  gnutls_x509_privkey_deinit(key);
  static int counter = 0;
  const std::string base = ::testing::TempDir() + "tls_stream_test_" + std::to_string(::getpid()) +
                           "_" + std::to_string(++counter);
  TestCert out{base + ".pem", base + ".key"};
  write_file(out.cert_file, export_pem(cert_pem));
  write_file(out.key_file, export_pem(key_pem));
  return out;
}

TestCert valid_cert() {
  const std::time_t now = std::time(nullptr);
  return make_cert("peertun test", now - 3600, now + 86400);
}

std::shared_ptr<const TlsContext> server_context(const TestCert& cert) {
  std::string detail;
  auto ctx = TlsContext::server(cert.cert_file, cert.key_file, detail);
  EXPECT_TRUE(ctx) << detail;
  return ctx ? *ctx : nullptr;
}

std::shared_ptr<const TlsContext> client_context(TlsClientTrust trust) {
  std::string detail;
  auto ctx = TlsContext::client(trust, detail);
  EXPECT_TRUE(ctx) << detail;
  return ctx ? *ctx : nullptr;
}

// A connected loopback TCP pair on one io_context.
struct Pair {
  asio::io_context io;
  asio::ip::tcp::socket server{io};
  asio::ip::tcp::socket client{io};
  Pair() {
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    client.connect(acceptor.local_endpoint());
    server = acceptor.accept();
  }
  // Runs until `done()` or a generous bound.
  template <class Done>
  void run_until(Done done) {
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      if (io.stopped()) {
        io.restart();  // it ran out of work between steps
      }
      io.run_one_for(100ms);
    }
    ASSERT_TRUE(done()) << "timed out";
  }
};

// A TLS server driven directly by GnuTLS on the blocking socket `fd`, meant for its own
// thread, for what TlsStream never does itself (ask for a KeyUpdate, renegotiate). What
// it sends is held until it next waits for input or flush() is called, so that
// post-handshake messages and the data after them reach the stream in one TCP segment.
class RawServer {
 public:
  RawServer(int fd, const TestCert& cert, const char* priority) : fd_(fd) {
    gnutls_certificate_allocate_credentials(&credentials_);
    gnutls_certificate_set_x509_key_file(credentials_, cert.cert_file.c_str(),
                                         cert.key_file.c_str(), GNUTLS_X509_FMT_PEM);
    gnutls_init(&session_, GNUTLS_SERVER);
    gnutls_priority_set_direct(session_, priority, nullptr);
    gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, credentials_);
    gnutls_handshake_set_timeout(session_, 0);
    gnutls_transport_set_ptr(session_, this);
    gnutls_transport_set_push_function(session_, &RawServer::push);
    gnutls_transport_set_pull_function(session_, &RawServer::pull);
    gnutls_transport_set_pull_timeout_function(session_, &RawServer::pull_timeout);
  }
  ~RawServer() {
    gnutls_deinit(session_);
    gnutls_certificate_free_credentials(credentials_);
  }
  RawServer(const RawServer&) = delete;
  RawServer& operator=(const RawServer&) = delete;

  gnutls_session_t session() { return session_; }

  int handshake() {
    int rc = 0;
    do {
      rc = gnutls_handshake(session_);
    } while (rc < 0 && gnutls_error_is_fatal(rc) == 0);
    return rc;
  }
  bool send(const std::string& text) {
    return gnutls_record_send(session_, text.data(), text.size()) ==
           static_cast<ssize_t>(text.size());
  }
  // The next record's data, or "" at the end or on an error. GnuTLS says "again" after
  // a post-handshake message even on a blocking socket.
  std::string receive() {
    char buffer[256];
    ssize_t n = 0;
    do {
      n = gnutls_record_recv(session_, buffer, sizeof buffer);
    } while (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
  }
  void flush() {
    std::size_t done = 0;
    while (done < held_.size()) {
      const ssize_t n = ::send(fd_, held_.data() + done, held_.size() - done, MSG_NOSIGNAL);
      if (n <= 0) {
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    held_.clear();
  }
  // The key our peer's records are decrypted with: it changes when the peer sends a
  // KeyUpdate.
  std::string read_key() {
    gnutls_datum_t key{};
    if (gnutls_record_get_state(session_, 1, nullptr, nullptr, &key, nullptr) < 0) {
      return {};
    }
    return std::string(reinterpret_cast<const char*>(key.data), key.size);
  }

 private:
  static ssize_t push(gnutls_transport_ptr_t ptr, const void* data, std::size_t size) {
    auto* self = static_cast<RawServer*>(ptr);
    self->held_.append(static_cast<const char*>(data), size);
    return static_cast<ssize_t>(size);
  }
  static ssize_t pull(gnutls_transport_ptr_t ptr, void* data, std::size_t size) {
    auto* self = static_cast<RawServer*>(ptr);
    self->flush();
    const ssize_t n = ::recv(self->fd_, data, size, 0);
    if (n < 0) {
      gnutls_transport_set_errno(self->session_, errno);
    }
    return n;
  }
  static int pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms) {
    auto* self = static_cast<RawServer*>(ptr);
    self->flush();
    pollfd p{self->fd_, POLLIN, 0};
    return ::poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : static_cast<int>(ms));
  }

  int fd_;
  std::string held_;
  gnutls_certificate_credentials_t credentials_ = nullptr;
  gnutls_session_t session_ = nullptr;
};

struct Outcome {
  std::optional<base::ErrorCode> server;
  std::optional<base::ErrorCode> client;
};

// Both handshakes at once; returns their results.
Outcome handshake(Pair& p, TlsStream& server, TlsStream& client) {
  Outcome o;
  server.async_handshake([&](base::ErrorCode ec) { o.server = ec; });
  client.async_handshake([&](base::ErrorCode ec) { o.client = ec; });
  p.run_until([&] { return o.server && o.client; });
  return o;
}

// One read on `stream`, run to completion: its error and what it read.
std::pair<base::ErrorCode, std::string> read_some(Pair& p, TlsStream& stream) {
  std::string buffer(256, '\0');
  std::optional<base::ErrorCode> result;
  std::size_t n = 0;
  stream.async_read_some(asio::buffer(buffer), [&](base::ErrorCode ec, std::size_t k) {
    result = ec;
    n = k;
  });
  p.run_until([&] { return result.has_value(); });
  buffer.resize(n);
  return {result.value_or(asio::error::timed_out), buffer};
}

base::ErrorCode write_all(Pair& p, TlsStream& stream, const std::string& text) {
  std::optional<base::ErrorCode> result;
  asio::async_write(stream, asio::buffer(text),
                    [&](base::ErrorCode ec, std::size_t) { result = ec; });
  p.run_until([&] { return result.has_value(); });
  return result.value_or(asio::error::timed_out);
}

class TlsStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cert_ = new TestCert(valid_cert()); }
  static void TearDownTestSuite() {
    std::remove(cert_->cert_file.c_str());
    std::remove(cert_->key_file.c_str());
    delete cert_;
  }
  static TestCert* cert_;
};
TestCert* TlsStreamTest::cert_ = nullptr;

TEST_F(TlsStreamTest, HandshakeThenDataBothWaysThenCloseNotify) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "localhost");
  auto o = handshake(p, server, client);
  ASSERT_FALSE(*o.server) << o.server->message();
  ASSERT_FALSE(*o.client) << o.client->message();

  // Larger than several TLS records, to cross record and read boundaries.
  std::string big(100000, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) {
    big[i] = static_cast<char>('a' + i % 26);
  }
  std::string got(big.size(), '\0');
  std::optional<base::ErrorCode> wrote, read;
  asio::async_write(client, asio::buffer(big),
                    [&](base::ErrorCode ec, std::size_t) { wrote = ec; });
  asio::async_read(server, asio::buffer(got), [&](base::ErrorCode ec, std::size_t) { read = ec; });
  p.run_until([&] { return wrote && read; });
  EXPECT_FALSE(*wrote);
  EXPECT_FALSE(*read);
  EXPECT_TRUE(got == big);  // not EXPECT_EQ: 100 kB in a failure message helps nobody

  std::string reply = "pong";
  std::string reply_got(4, '\0');
  wrote.reset();
  read.reset();
  asio::async_write(server, asio::buffer(reply),
                    [&](base::ErrorCode ec, std::size_t) { wrote = ec; });
  asio::async_read(client, asio::buffer(reply_got),
                   [&](base::ErrorCode ec, std::size_t) { read = ec; });
  p.run_until([&] { return wrote && read; });
  EXPECT_EQ(reply_got, "pong");

  // close_notify from the client: the server's next read ends with eof.
  std::optional<base::ErrorCode> shut, last;
  char one = 0;
  client.async_shutdown([&](base::ErrorCode ec) { shut = ec; });
  server.async_read_some(asio::buffer(&one, 1),
                         [&](base::ErrorCode ec, std::size_t) { last = ec; });
  p.run_until([&] { return shut && last; });
  EXPECT_FALSE(*shut);
  EXPECT_EQ(*last, asio::error::eof);
}

TEST_F(TlsStreamTest, ClientWithoutTheCaSaysUntrusted) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  TlsStream client(std::move(p.client), client_context({}), "localhost");
  auto o = handshake(p, server, client);
  EXPECT_EQ(*o.client, TlsErrc::CertificateUntrusted) << o.client->message();
  EXPECT_TRUE(*o.server);
}

TEST_F(TlsStreamTest, IpLiteralIsCheckedAgainstIpAddresses) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "127.0.0.1");
  auto o = handshake(p, server, client);
  EXPECT_FALSE(*o.client) << o.client->message();
}

TEST_F(TlsStreamTest, OtherNameSaysWrongHost) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "relay.example");
  auto o = handshake(p, server, client);
  EXPECT_EQ(*o.client, TlsErrc::CertificateWrongHost) << o.client->message();
}

TEST_F(TlsStreamTest, ExpiredCertificateSaysExpired) {
  const std::time_t now = std::time(nullptr);
  const TestCert old = make_cert("old", now - 10 * 86400, now - 86400);
  Pair p;
  TlsStream server(std::move(p.server), server_context(old));
  TlsStream client(std::move(p.client), client_context({old.cert_file, ""}), "localhost");
  auto o = handshake(p, server, client);
  EXPECT_EQ(*o.client, TlsErrc::CertificateExpired) << o.client->message();
  std::remove(old.cert_file.c_str());
  std::remove(old.key_file.c_str());
}

TEST_F(TlsStreamTest, PinReplacesTheCaAndAWrongPinIsRefused) {
  auto server_ctx = server_context(*cert_);
  ASSERT_TRUE(is_valid_pin(server_ctx->pin())) << server_ctx->pin();
  {
    Pair p;
    TlsStream server(std::move(p.server), server_ctx);
    // No CA and a name that does not match: the pin alone decides.
    TlsStream client(std::move(p.client), client_context({"", server_ctx->pin()}), "elsewhere");
    auto o = handshake(p, server, client);
    EXPECT_FALSE(*o.client) << o.client->message();
  }
  {
    Pair p;
    TlsStream server(std::move(p.server), server_ctx);
    TlsStream client(std::move(p.client), client_context({"", "sha256:" + std::string(64, 'a')}),
                     "localhost");
    auto o = handshake(p, server, client);
    EXPECT_EQ(*o.client, TlsErrc::PinMismatch);
  }
}

TEST_F(TlsStreamTest, PlainBytesFailTheServerHandshake) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  std::optional<base::ErrorCode> result;
  server.async_handshake([&](base::ErrorCode ec) { result = ec; });
  asio::write(p.client, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  p.run_until([&] { return result.has_value(); });
  EXPECT_EQ(*result, TlsErrc::HandshakeFailed) << result->message();
  EXPECT_STRNE(server.last_error_text(), "none");
}

TEST_F(TlsStreamTest, StalledHandshakeEndsAtTheDeadline) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  server.expires_after(200ms);
  std::optional<base::ErrorCode> result;
  server.async_handshake([&](base::ErrorCode ec) { result = ec; });
  p.run_until([&] { return result.has_value(); });
  EXPECT_EQ(*result, asio::error::timed_out);
}

TEST_F(TlsStreamTest, PeerClosingMidHandshakeIsEof) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  std::optional<base::ErrorCode> result;
  server.async_handshake([&](base::ErrorCode ec) { result = ec; });
  p.client.close();
  p.run_until([&] { return result.has_value(); });
  EXPECT_EQ(*result, asio::error::eof);
}

TEST_F(TlsStreamTest, DestroyingTheStreamWithAReadPendingAbortsIt) {
  Pair p;
  auto server = std::make_unique<TlsStream>(std::move(p.server), server_context(*cert_));
  TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "localhost");
  auto o = handshake(p, *server, client);
  ASSERT_FALSE(*o.server);
  std::optional<base::ErrorCode> result;
  char byte = 0;
  server->async_read_some(asio::buffer(&byte, 1),
                          [&](base::ErrorCode ec, std::size_t) { result = ec; });
  p.io.poll();
  server.reset();
  p.run_until([&] { return result.has_value(); });
  EXPECT_TRUE(*result);
}

TEST_F(TlsStreamTest, PlainModePassesBytesThrough) {
  Pair p;
  TlsStream server(std::move(p.server));
  TlsStream client(std::move(p.client));
  EXPECT_FALSE(server.is_tls());
  auto o = handshake(p, server, client);
  EXPECT_FALSE(*o.server);
  std::string got(5, '\0');
  std::optional<base::ErrorCode> read;
  asio::write(client.next_layer(), asio::buffer(std::string("hello")));
  asio::async_read(server, asio::buffer(got), [&](base::ErrorCode ec, std::size_t) { read = ec; });
  p.run_until([&] { return read.has_value(); });
  EXPECT_EQ(got, "hello");
}

// A server that asks for a KeyUpdate (RFC 8446 section 4.6.3) and sends data right
// behind it, in one TCP segment. GnuTLS reports the KeyUpdate as "again" although the
// data is already here: the read must not wait for the socket (it stalled until the
// deadline). Our answering KeyUpdate must go out before our next data (corking lost it).
TEST_F(TlsStreamTest, KeyUpdateWithDataInOneSegmentIsReadAndAnswered) {
  Pair p;
  const int fd = p.server.native_handle();
  std::atomic<bool> server_done{false};
  bool handshake_ok = false;
  bool update_sent[2] = {};
  std::string pong[2];
  bool peer_updated[2] = {};
  // Declared before `client`, so the client's socket closes (ending a stuck server)
  // before the thread is joined.
  std::jthread server_thread([&] {
    RawServer raw(fd, *cert_, "NORMAL:-VERS-ALL:+VERS-TLS1.3");
    handshake_ok = raw.handshake() == 0;
    for (int round = 0; handshake_ok && round < 2; ++round) {
      if (raw.receive() != "ping") {
        break;
      }
      if (round > 0) {
        std::this_thread::sleep_for(1100ms);  // GnuTLS takes one KeyUpdate a second
      }
      const std::string key_before = raw.read_key();
      update_sent[round] = gnutls_session_key_update(raw.session(), GNUTLS_KU_PEER) == 0;
      raw.send("hello");
      raw.flush();
      pong[round] = raw.receive();
      peer_updated[round] = raw.read_key() != key_before;
    }
    server_done = true;
  });
  TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "localhost");
  std::optional<base::ErrorCode> shaken;
  client.async_handshake([&](base::ErrorCode ec) { shaken = ec; });
  p.run_until([&] { return shaken.has_value(); });
  ASSERT_FALSE(*shaken) << shaken->message();
  for (int round = 0; round < 2; ++round) {
    ASSERT_FALSE(write_all(p, client, "ping"));
    const auto [ec, got] = read_some(p, client);
    ASSERT_FALSE(ec) << ec.message();
    EXPECT_EQ(got, "hello");
    ASSERT_FALSE(write_all(p, client, "pong"));
  }
  p.run_until([&] { return server_done.load(); });
  server_thread.join();
  EXPECT_TRUE(handshake_ok);
  for (int round = 0; round < 2; ++round) {
    EXPECT_TRUE(update_sent[round]) << round;
    EXPECT_EQ(pong[round], "pong") << round;
    EXPECT_TRUE(peer_updated[round]) << "round " << round << ": no KeyUpdate came back";
  }
}

// TLS 1.2: a HelloRequest is answered with a no_renegotiation warning (RFC 5246
// section 7.2.2) and the stream goes on.
TEST_F(TlsStreamTest, RenegotiationIsRefusedWithAWarningAndTheStreamGoesOn) {
  Pair p;
  const int fd = p.server.native_handle();
  std::atomic<bool> server_done{false};
  int rehandshake = 0;
  int alert = -1;
  std::jthread server_thread([&] {
    RawServer raw(fd, *cert_, "NORMAL:-VERS-ALL:+VERS-TLS1.2");
    if (raw.handshake() == 0 && raw.receive() == "ping") {
      gnutls_rehandshake(raw.session());  // HelloRequest
      rehandshake = gnutls_handshake(raw.session());
      alert = static_cast<int>(gnutls_alert_get(raw.session()));
      raw.send("after");
      raw.flush();
    }
    server_done = true;
  });
  TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "localhost");
  std::optional<base::ErrorCode> shaken;
  client.async_handshake([&](base::ErrorCode ec) { shaken = ec; });
  p.run_until([&] { return shaken.has_value(); });
  ASSERT_FALSE(*shaken) << shaken->message();
  ASSERT_FALSE(write_all(p, client, "ping"));
  const auto [ec, got] = read_some(p, client);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(got, "after");
  p.run_until([&] { return server_done.load(); });
  server_thread.join();
  EXPECT_EQ(rehandshake, GNUTLS_E_WARNING_ALERT_RECEIVED) << gnutls_strerror(rehandshake);
  EXPECT_EQ(alert, GNUTLS_A_NO_RENEGOTIATION);
}

TEST_F(TlsStreamTest, ReadsAndWritesNeedASuccessfulHandshake) {
  Pair p;
  TlsStream server(std::move(p.server), server_context(*cert_));
  TlsStream client(std::move(p.client), client_context({"", "sha256:" + std::string(64, 'a')}),
                   "localhost");
  EXPECT_EQ(read_some(p, client).first, TlsErrc::HandshakeFailed);
  EXPECT_EQ(write_all(p, client, "x"), TlsErrc::HandshakeFailed);
  auto o = handshake(p, server, client);
  ASSERT_EQ(*o.client, TlsErrc::PinMismatch);
  // The refusal is final: another handshake reports it again.
  std::optional<base::ErrorCode> again;
  client.async_handshake([&](base::ErrorCode ec) { again = ec; });
  p.run_until([&] { return again.has_value(); });
  EXPECT_EQ(*again, TlsErrc::PinMismatch);
  EXPECT_EQ(read_some(p, client).first, TlsErrc::HandshakeFailed);
  EXPECT_EQ(write_all(p, client, "x"), TlsErrc::HandshakeFailed);
}

TEST_F(TlsStreamTest, ABusyRejectionLeavesThePendingOperationAlone) {
  {
    Pair p;
    TlsStream server(std::move(p.server), server_context(*cert_));
    TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}), "localhost");
    auto o = handshake(p, server, client);
    ASSERT_FALSE(*o.server);
    char first_byte = 0;
    std::optional<base::ErrorCode> first;
    server.async_read_some(asio::buffer(&first_byte, 1),
                           [&](base::ErrorCode ec, std::size_t) { first = ec; });
    for (int i = 0; i < 2; ++i) {  // the second Busy shows the first did not clear the flag
      EXPECT_EQ(read_some(p, server).first, TlsErrc::Busy) << i;
    }
    EXPECT_FALSE(first.has_value());
    ASSERT_FALSE(write_all(p, client, "z"));
    p.run_until([&] { return first.has_value(); });
    EXPECT_FALSE(*first);
    EXPECT_EQ(first_byte, 'z');
  }
  {
    Pair p;  // the client side says nothing: the server's handshake stays pending
    TlsStream server(std::move(p.server), server_context(*cert_));
    std::optional<base::ErrorCode> first;
    server.async_handshake([&](base::ErrorCode ec) { first = ec; });
    for (int i = 0; i < 2; ++i) {
      std::optional<base::ErrorCode> other;
      server.async_handshake([&](base::ErrorCode ec) { other = ec; });
      p.run_until([&] { return other.has_value(); });
      EXPECT_EQ(*other, TlsErrc::Busy) << i;
    }
    EXPECT_FALSE(first.has_value());
  }
}

TEST_F(TlsStreamTest, ClientVerifyingWithCasNeedsAServerName) {
  {
    Pair p;
    TlsStream server(std::move(p.server), server_context(*cert_));
    TlsStream client(std::move(p.client), client_context({cert_->cert_file, ""}));
    std::optional<base::ErrorCode> result;
    client.async_handshake([&](base::ErrorCode ec) { result = ec; });
    p.run_until([&] { return result.has_value(); });
    EXPECT_EQ(*result, TlsErrc::HandshakeFailed);
    EXPECT_NE(std::string(client.last_error_text()).find("server name"), std::string::npos)
        << client.last_error_text();
  }
  {
    // A pin needs no name.
    auto server_ctx = server_context(*cert_);
    Pair p;
    TlsStream server(std::move(p.server), server_ctx);
    TlsStream client(std::move(p.client), client_context({"", server_ctx->pin()}));
    auto o = handshake(p, server, client);
    EXPECT_FALSE(*o.client) << o.client->message();
  }
}

TEST_F(TlsStreamTest, SharedNextLayerOutlivesTheStream) {
  Pair p;
  auto stream = std::make_unique<TlsStream>(std::move(p.client),
                                            client_context({cert_->cert_file, ""}), "localhost");
  auto socket = stream->shared_next_layer();
  EXPECT_TRUE(socket->is_open());
  stream.reset();
  EXPECT_FALSE(socket->is_open());  // closed with the stream, and still safe to ask
}

TEST(TlsContextTest, BadFilesAreNamed) {
  std::string detail;
  EXPECT_EQ(TlsContext::server("/nonexistent/cert.pem", "/nonexistent/key.pem", detail).error(),
            TlsErrc::BadCredentials);
  EXPECT_NE(detail.find("/nonexistent/cert.pem"), std::string::npos) << detail;
  EXPECT_NE(detail.find(std::strerror(ENOENT)), std::string::npos) << detail;

  const TestCert a = valid_cert();
  const TestCert b = valid_cert();
  detail.clear();
  EXPECT_FALSE(TlsContext::server(a.cert_file, b.key_file, detail));
  EXPECT_NE(detail.find("does not belong"), std::string::npos) << detail;
  detail.clear();
  EXPECT_FALSE(TlsContext::server(a.key_file, a.key_file, detail));
  EXPECT_NE(detail.find("holds no PEM certificate"), std::string::npos) << detail;
  detail.clear();
  EXPECT_FALSE(TlsContext::server(a.cert_file, a.cert_file, detail));
  EXPECT_NE(detail.find("holds no unencrypted PEM private key"), std::string::npos) << detail;
  detail.clear();
  EXPECT_FALSE(TlsContext::client({a.key_file, ""}, detail));
  EXPECT_NE(detail.find(a.key_file), std::string::npos) << detail;
  detail.clear();
  EXPECT_FALSE(TlsContext::client({"", "sha256:zz"}, detail));
  detail.clear();
  EXPECT_EQ(TlsContext::client({a.cert_file, "sha256:" + std::string(64, 'a')}, detail).error(),
            TlsErrc::BadCredentials);
  EXPECT_NE(detail.find("exclude each other"), std::string::npos) << detail;
  detail.clear();
  EXPECT_TRUE(is_usable_ca_file(a.cert_file, detail)) << detail;
  EXPECT_FALSE(is_usable_ca_file(a.key_file, detail));
  EXPECT_NE(detail.find("holds no PEM certificate"), std::string::npos) << detail;
  detail.clear();
  EXPECT_FALSE(is_usable_ca_file("/nonexistent/ca.pem", detail));
  EXPECT_NE(detail.find("/nonexistent/ca.pem"), std::string::npos) << detail;
  for (const auto& f : {a.cert_file, a.key_file, b.cert_file, b.key_file}) {
    std::remove(f.c_str());
  }
}

TEST(TlsPinTest, Syntax) {
  EXPECT_TRUE(is_valid_pin("sha256:" + std::string(64, 'a')));
  EXPECT_TRUE(is_valid_pin("sha256:" + std::string(64, 'F')));
  EXPECT_FALSE(is_valid_pin("sha256:" + std::string(63, 'a')));
  EXPECT_FALSE(is_valid_pin("sha256:" + std::string(65, 'a')));
  EXPECT_FALSE(is_valid_pin("sha1:" + std::string(64, 'a')));
  EXPECT_FALSE(is_valid_pin("sha256:" + std::string(63, 'a') + "g"));
  EXPECT_FALSE(is_valid_pin(""));
}

}  // namespace
}  // namespace peertun::io
