// The folder share over a real QUIC connection on 127.0.0.1: peer B's QuicShareChannel
// against peer A's serve_share() with a real exporter on a temporary folder, and a
// hostile B that writes raw frames instead of mounting.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "client/share_channel.h"
#include "share/proto/codec.h"
#include "support/quic_loopback.h"

namespace peertun::client {
namespace {

using namespace std::chrono_literals;
namespace proto = share::proto;

void logged(std::exception_ptr e) { io::log_task_exception(e, "share.test"); }

class TempTree {
 public:
  TempTree() {
    std::string pattern = (std::filesystem::temp_directory_path() / "peertun-share-XXXXXX");
    root_ = ::mkdtemp(pattern.data());
    std::mt19937 rng(42);
    content_.resize(5 * 1024 * 1024 + 123);
    for (auto& b : content_) {
      b = static_cast<std::uint8_t>(rng());
    }
    std::ofstream(root_ / "big", std::ios::binary)
        .write(reinterpret_cast<const char*>(content_.data()),
               static_cast<std::streamsize>(content_.size()));
  }
  ~TempTree() { std::filesystem::remove_all(root_); }
  [[nodiscard]] std::string root() const { return root_.string(); }
  [[nodiscard]] const std::vector<std::uint8_t>& content() const { return content_; }

 private:
  std::filesystem::path root_;
  std::vector<std::uint8_t> content_;
};

// A real exporter that also counts the requests it was given (to see backpressure).
class CountingExporter final : public share::Exporter {
 public:
  explicit CountingExporter(std::shared_ptr<share::Exporter> inner) : inner_(std::move(inner)) {}
  void handle(proto::Request request, Done done) override {
    ++handled;
    inner_->handle(std::move(request), std::move(done));
  }
  void stop() override { inner_->stop(); }
  [[nodiscard]] std::size_t open_handles() const override { return inner_->open_handles(); }
  [[nodiscard]] std::size_t known_nodes() const override { return inner_->known_nodes(); }
  std::size_t handled = 0;

 private:
  std::shared_ptr<share::Exporter> inner_;
};

struct Served {
  bool done = false;
  base::ErrorCode result;
};

io::Task<void> serve(std::shared_ptr<quic::Session> session,
                     std::shared_ptr<share::Exporter> exporter, std::shared_ptr<Served> out) {
  if (auto ec = co_await session->handshake()) {
    out->result = ec;
    out->done = true;
    co_return;
  }
  out->result = co_await serve_share(session, exporter);
  out->done = true;
}

// One request through the channel, awaited.
io::Task<base::Result<proto::Response>> ask(std::shared_ptr<QuicShareChannel> channel,
                                            proto::RequestBody body) {
  auto executor = co_await io::asio::this_coro::executor;
  auto timer = std::make_shared<io::asio::steady_timer>(executor);
  timer->expires_at(io::asio::steady_timer::time_point::max());
  auto answer = std::make_shared<std::optional<base::Result<proto::Response>>>();
  channel->call(std::move(body), [timer, answer](base::Result<proto::Response> r) {
    *answer = std::move(r);
    timer->cancel();
  });
  co_await timer->async_wait(io::use_nothrow);
  co_return std::move(answer->value());
}

struct Fixture {
  Fixture() {
    auto created = share::Exporter::create(net.ctx.get_executor(), tree.root(), {});
    EXPECT_TRUE(created) << created.error().message();
    if (created) {
      exporter = std::make_shared<CountingExporter>(*created);
      io::asio::co_spawn(net.ctx, serve(net.a.session, exporter, served), logged);
    }
  }
  ~Fixture() {
    if (exporter) {
      exporter->stop();
    }
  }
  static quic::Config share_config() {
    quic::Config config;
    config.stream_send_buffer = kShareStreamSendBuffer;  // as a sharing A runs
    return config;
  }
  TempTree tree;
  test::QuicLoopback net{share_config()};
  std::shared_ptr<CountingExporter> exporter;
  std::shared_ptr<Served> served = std::make_shared<Served>();
};

struct ReadAll {
  bool done = false;
  std::string failure;
  std::vector<std::uint8_t> bytes;
  std::uint64_t failures_reported = 0;
};

io::Task<void> open_and_read(std::shared_ptr<quic::Session> session, std::shared_ptr<ReadAll> out,
                             std::size_t size) {
  if (auto ec = co_await session->handshake()) {
    out->failure = "handshake: " + ec.message();
    out->done = true;
    co_return;
  }
  auto executor = co_await io::asio::this_coro::executor;
  auto channel = QuicShareChannel::start(executor, session,
                                         [out](base::ErrorCode) { ++out->failures_reported; });
  auto hello = co_await ask(channel, proto::HelloRequest{});
  if (!hello || hello->error != 0) {
    out->failure = "hello failed";
    out->done = true;
    co_return;
  }
  proto::LookupRequest lookup;
  lookup.parent = proto::kRootNode;
  lookup.name = "big";
  auto entry = co_await ask(channel, lookup);
  if (!entry || entry->error != 0) {
    out->failure = "lookup failed";
    out->done = true;
    co_return;
  }
  proto::OpenRequest open;
  open.node = std::get<proto::EntryReply>(entry->body).attr.node;
  auto opened = co_await ask(channel, open);
  if (!opened || opened->error != 0) {
    out->failure = "open failed";
    out->done = true;
    co_return;
  }
  const auto handle = std::get<proto::OpenReply>(opened->body).handle;
  // Every read in flight at once, like the kernel's read-ahead.
  out->bytes.resize(size);
  auto outstanding = std::make_shared<std::size_t>(0);
  auto timer = std::make_shared<io::asio::steady_timer>(executor);
  timer->expires_at(io::asio::steady_timer::time_point::max());
  for (std::uint64_t offset = 0; offset < size; offset += proto::kMaxRead) {
    proto::ReadRequest read;
    read.handle = handle;
    read.offset = offset;
    read.length = proto::kMaxRead;
    ++*outstanding;
    channel->call(read, [out, offset, outstanding, timer](base::Result<proto::Response> r) {
      if (!r || r->error != 0) {
        out->failure = "read failed at " + std::to_string(offset);
      } else {
        const auto& data = std::get<proto::ReadReply>(r->body).data;
        std::copy(data.begin(), data.end(),
                  out->bytes.begin() + static_cast<std::ptrdiff_t>(offset));
      }
      if (--*outstanding == 0) {
        timer->cancel();
      }
    });
  }
  co_await timer->async_wait(io::use_nothrow);
  channel->close();
  out->done = true;
}

TEST(ShareTransportTest, PipelinedReadsOverQuicReturnTheFile) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  ASSERT_TRUE(f.exporter);
  auto result = std::make_shared<ReadAll>();
  io::asio::co_spawn(f.net.ctx, open_and_read(f.net.b.session, result, f.tree.content().size()),
                     logged);
  f.net.run(result->done, 60s);
  ASSERT_TRUE(result->done);
  EXPECT_EQ(result->failure, "");
  EXPECT_TRUE(result->bytes == f.tree.content());
  EXPECT_EQ(result->failures_reported, 0u) << "close() is not a failure";
}

// ---- A hostile peer B: raw frames on its own stream ----

struct Raw {
  bool done = false;
  std::string failure;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> answers;  // (id, errno)
};

wire::Bytes frame_of(const proto::Request& request) { return proto::encode(request); }

void put_u32(wire::Bytes& out, std::size_t at, std::uint32_t v) { wire::store_u32(&out[at], v); }

// Reads answers until `count` arrived (or the stream ends), recording id and errno.
io::Task<void> read_answers(std::shared_ptr<quic::Session> session, quic::StreamId stream,
                            std::shared_ptr<Raw> out, std::size_t count) {
  std::vector<std::uint8_t> buffer(256 * 1024);
  proto::FrameReader frames;
  while (out->answers.size() < count) {
    auto got = co_await session->read(stream, buffer);
    if (!got) {
      out->failure = "read: " + got.error().message();
      co_return;
    }
    frames.feed(std::span<const std::uint8_t>(buffer.data(), got->bytes));
    for (;;) {
      auto frame = frames.next();
      if (!frame || !*frame) {
        break;
      }
      auto header = proto::decode_header(**frame);
      if (!header || !header->answer || (*frame)->size() < 10) {
        out->failure = "bad answer";
        co_return;
      }
      out->answers.emplace_back(header->id, wire::load_u32((*frame)->data() + 6));
    }
    if (got->fin) {
      co_return;
    }
  }
}

io::Task<void> hostile_requests(std::shared_ptr<quic::Session> session, std::shared_ptr<Raw> out) {
  if (auto ec = co_await session->handshake()) {
    out->failure = "handshake: " + ec.message();
    out->done = true;
    co_return;
  }
  auto stream = co_await session->open_stream();
  if (!stream) {
    out->failure = "open_stream";
    out->done = true;
    co_return;
  }
  wire::Bytes all;
  auto add = [&all](const wire::Bytes& f) { all.insert(all.end(), f.begin(), f.end()); };
  // 1: a lookup before Hello.
  proto::LookupRequest early;
  early.parent = proto::kRootNode;
  early.name = "big";
  add(frame_of({1, early}));
  // 2: Hello.
  add(frame_of({2, proto::HelloRequest{}}));
  // 3: an operation this version does not know (frame: length 10, op 99, no body).
  add(wire::Bytes{0, 0, 0, 6, 99, 0, 0, 0, 0, 3});
  // 4: a lookup of ".." (encoded as "ab", then patched: the encoder refuses nothing, the
  // decoder must refuse it).
  proto::LookupRequest up;
  up.parent = proto::kRootNode;
  up.name = "ab";
  auto dotdot = frame_of({4, up});
  dotdot[dotdot.size() - 2] = '.';
  dotdot[dotdot.size() - 1] = '.';
  add(dotdot);
  // 5: a read of 4 GiB - 1 bytes from an unknown handle (the length is out of range).
  proto::ReadRequest huge;
  huge.handle = 77;
  huge.length = 1;
  auto huge_frame = frame_of({5, huge});
  put_u32(huge_frame, huge_frame.size() - 4, 0xffffffffU);
  add(huge_frame);
  // 6: a read at offset 2^63 of an unknown handle.
  proto::ReadRequest far;
  far.handle = 77;
  far.offset = 1ULL << 63;
  far.length = 10;
  add(frame_of({6, far}));
  // 7: a name that is an absolute path.
  proto::LookupRequest absolute;
  absolute.parent = proto::kRootNode;
  absolute.name = "xetc";
  auto abs_frame = frame_of({7, absolute});
  abs_frame[abs_frame.size() - 4] = '/';
  add(abs_frame);
  if (auto ec = co_await session->write_all(*stream, all, false)) {
    out->failure = "write: " + ec.message();
    out->done = true;
    co_return;
  }
  co_await read_answers(session, *stream, out, 7);
  out->done = true;
}

TEST(ShareTransportTest, HostileRequestsGetErrnoAnswersAndTheStreamGoesOn) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  auto out = std::make_shared<Raw>();
  io::asio::co_spawn(f.net.ctx, hostile_requests(f.net.b.session, out), logged);
  f.net.run(out->done, 30s);
  ASSERT_TRUE(out->done);
  ASSERT_EQ(out->failure, "");
  std::map<std::uint32_t, std::uint32_t> by_id(out->answers.begin(), out->answers.end());
  ASSERT_EQ(by_id.size(), 7u);
  EXPECT_EQ(by_id[1], static_cast<std::uint32_t>(EPROTO));
  EXPECT_EQ(by_id[2], 0u);
  EXPECT_EQ(by_id[3], static_cast<std::uint32_t>(ENOSYS));
  EXPECT_EQ(by_id[4], static_cast<std::uint32_t>(EINVAL));
  EXPECT_EQ(by_id[5], static_cast<std::uint32_t>(EINVAL));
  EXPECT_NE(by_id[6], 0u);  // EINVAL or EBADF: never data
  EXPECT_EQ(by_id[7], static_cast<std::uint32_t>(EINVAL));
}

io::Task<void> broken_framing(std::shared_ptr<quic::Session> session, std::shared_ptr<Raw> out) {
  if (auto ec = co_await session->handshake()) {
    out->failure = "handshake: " + ec.message();
    out->done = true;
    co_return;
  }
  auto stream = co_await session->open_stream();
  const wire::Bytes garbage{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 1};
  co_await session->write_all(*stream, garbage, false);
  std::vector<std::uint8_t> buffer(1024);
  auto got = co_await session->read(*stream, buffer);
  out->failure = got ? "the stream stayed usable" : got.error().message();
  out->done = true;
}

TEST(ShareTransportTest, BrokenFramingClosesTheConnectionWithTheShareCode) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  auto out = std::make_shared<Raw>();
  io::asio::co_spawn(f.net.ctx, broken_framing(f.net.b.session, out), logged);
  f.net.run_until(out->done, 30s);
  f.net.run_until(f.served->done, 10s);
  f.net.stop();
  ASSERT_TRUE(out->done);
  ASSERT_TRUE(f.served->done);
  EXPECT_EQ(f.served->result, make_error_code(ShareErrc::ProtocolError));
  const auto& close = f.net.b.session->connection().close_info();
  ASSERT_TRUE(close);
  EXPECT_TRUE(close->by_peer);
  EXPECT_EQ(close->code, kShareProtocolErrorCode);
}

struct Flood {
  bool sent = false;
  bool done = false;
  std::string failure;
  std::size_t answers = 0;
  std::uint64_t data_bytes = 0;
};

// Hello, Lookup("big") and Open on `stream`; the handle, or nullopt.
io::Task<std::optional<proto::HandleId>> open_big(std::shared_ptr<quic::Session> session,
                                                  quic::StreamId stream) {
  proto::LookupRequest lookup;
  lookup.parent = proto::kRootNode;
  lookup.name = "big";
  wire::Bytes setup = frame_of({1, proto::HelloRequest{}});
  const auto lookup_frame = frame_of({2, lookup});
  setup.insert(setup.end(), lookup_frame.begin(), lookup_frame.end());
  co_await session->write_all(stream, setup, false);
  std::vector<std::uint8_t> buffer(64 * 1024);
  proto::FrameReader frames;
  std::optional<proto::HandleId> handle;
  for (int reads = 0; !handle && reads < 100; ++reads) {
    auto got = co_await session->read(stream, buffer);
    if (!got) {
      co_return std::nullopt;
    }
    frames.feed(std::span<const std::uint8_t>(buffer.data(), got->bytes));
    for (auto frame = frames.next(); frame && *frame; frame = frames.next()) {
      auto answer = proto::decode_response(**frame);
      if (answer && answer->op == proto::Op::Lookup && answer->error == 0) {
        proto::OpenRequest open;
        open.node = std::get<proto::EntryReply>(answer->body).attr.node;
        co_await session->write_all(stream, frame_of({3, open}), false);
      } else if (answer && answer->op == proto::Op::Open && answer->error == 0) {
        handle = std::get<proto::OpenReply>(answer->body).handle;
      }
    }
  }
  co_return handle;
}

// Asks for many reads without reading answers until told to.
io::Task<void> flood(std::shared_ptr<quic::Session> session, std::shared_ptr<Flood> out,
                     std::shared_ptr<io::asio::steady_timer> go, std::size_t reads) {
  if (auto ec = co_await session->handshake()) {
    out->failure = "handshake: " + ec.message();
    out->done = true;
    co_return;
  }
  auto stream = co_await session->open_stream();
  const auto handle = stream ? co_await open_big(session, *stream) : std::nullopt;
  if (!handle) {
    out->failure = "setup";
    out->done = true;
    co_return;
  }
  wire::Bytes requests;
  for (std::size_t i = 0; i < reads; ++i) {
    proto::ReadRequest read;
    read.handle = *handle;
    read.offset = 0;
    read.length = proto::kMaxRead;
    auto f = frame_of({static_cast<proto::RequestId>(100 + i), read});
    requests.insert(requests.end(), f.begin(), f.end());
  }
  co_await session->write_all(*stream, requests, false);
  out->sent = true;
  co_await go->async_wait(io::use_nothrow);  // the test looks at A meanwhile
  std::vector<std::uint8_t> buffer(1 << 20);
  proto::FrameReader frames;
  while (out->answers < reads) {
    auto got = co_await session->read(*stream, buffer);
    if (!got) {
      out->failure = "read: " + got.error().message();
      break;
    }
    frames.feed(std::span<const std::uint8_t>(buffer.data(), got->bytes));
    for (auto frame = frames.next(); frame && *frame; frame = frames.next()) {
      auto answer = proto::decode_response(**frame);
      if (answer && answer->op == proto::Op::Read && answer->error == 0) {
        ++out->answers;
        out->data_bytes += std::get<proto::ReadReply>(answer->body).data.size();
      }
    }
  }
  out->done = true;
}

TEST(ShareTransportTest, APeerThatNeverReadsAnswersIsNotReadEither) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  constexpr std::size_t kReads = 300;  // 300 MiB of answers if A kept going
  auto out = std::make_shared<Flood>();
  auto go = std::make_shared<io::asio::steady_timer>(f.net.ctx);
  go->expires_at(io::asio::steady_timer::time_point::max());
  io::asio::co_spawn(f.net.ctx, flood(f.net.b.session, out, go, kReads), logged);
  f.net.run_until(out->sent, 30s);
  ASSERT_TRUE(out->sent) << out->failure;
  // Give A every chance to overrun its bound (a bounded wait for something that must
  // not happen).
  const bool never = false;
  f.net.run_until(never, 2s);
  // What A holds for this stream: requests at the exporter or answered but unwritten
  // (kShareLaneInFlight), answers in QUIC's send buffer, and what B's initial stream
  // window let through; plus Hello, Lookup and Open.
  const std::size_t in_send_buffer = kShareStreamSendBuffer / proto::kMaxRead;
  const std::size_t in_window = quic::Config{}.initial_stream_window / proto::kMaxRead + 1;
  EXPECT_LE(f.exporter->handled, kShareLaneInFlight + in_send_buffer + in_window + 3);
  EXPECT_LT(f.exporter->handled, kReads / 4);
  go->cancel();
  f.net.run(out->done, 120s);
  ASSERT_TRUE(out->done);
  EXPECT_EQ(out->failure, "");
  EXPECT_EQ(out->answers, kReads);
  EXPECT_EQ(out->data_bytes, kReads * std::uint64_t{proto::kMaxRead});
}

struct ManyStreams {
  bool sent = false;
  std::string failure;
};

// Many streams, each asking for many 1 MiB reads, none ever read.
io::Task<void> flood_many(std::shared_ptr<quic::Session> session, std::shared_ptr<ManyStreams> out,
                          std::size_t streams, std::size_t reads_per_stream) {
  if (auto ec = co_await session->handshake()) {
    out->failure = "handshake: " + ec.message();
    co_return;
  }
  auto first = co_await session->open_stream();
  const auto handle = first ? co_await open_big(session, *first) : std::nullopt;
  if (!handle) {
    out->failure = "setup";
    co_return;
  }
  for (std::size_t s = 0; s < streams; ++s) {
    auto stream = co_await session->open_stream();
    if (!stream) {
      out->failure = "open_stream";
      co_return;
    }
    wire::Bytes requests;
    for (std::size_t i = 0; i < reads_per_stream; ++i) {
      proto::ReadRequest read;
      read.handle = *handle;
      read.length = proto::kMaxRead;
      const auto f = frame_of({static_cast<proto::RequestId>(100 + i), read});
      requests.insert(requests.end(), f.begin(), f.end());
    }
    co_await session->write_all(*stream, requests, false);
  }
  out->sent = true;
}

TEST(ShareTransportTest, MoreStreamsDoNotBuyAPeerMoreOfAsMemory) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  constexpr std::size_t kStreams = 3 * kMaxShareStreams;
  constexpr std::size_t kReadsPerStream = 100;
  auto out = std::make_shared<ManyStreams>();
  io::asio::co_spawn(f.net.ctx, flood_many(f.net.b.session, out, kStreams, kReadsPerStream),
                     logged);
  f.net.run_until(out->sent, 60s);
  ASSERT_TRUE(out->sent) << out->failure;
  const bool never = false;
  f.net.run_until(never, 2s);
  // A serves kMaxShareStreams streams; on them it owes at most the connection's budget
  // plus what QUIC holds per stream (its send buffer and B's initial window).
  const std::size_t per_stream = kShareStreamSendBuffer / proto::kMaxRead +
                                 quic::Config{}.initial_stream_window / proto::kMaxRead + 1;
  EXPECT_LE(f.exporter->handled, kShareConnectionInFlight + kMaxShareStreams * per_stream + 3);
  f.net.stop();
}

io::Task<void> fin_after_answers(std::shared_ptr<quic::Session> session, std::shared_ptr<Raw> out) {
  if (auto ec = co_await session->handshake()) {
    out->failure = "handshake: " + ec.message();
    out->done = true;
    co_return;
  }
  auto stream = co_await session->open_stream();
  proto::StatFsRequest statfs;
  statfs.node = proto::kRootNode;
  wire::Bytes both = frame_of({1, proto::HelloRequest{}});
  const auto second = frame_of({2, statfs});
  both.insert(both.end(), second.begin(), second.end());
  co_await session->write_all(*stream, both, true);  // and B is done with this stream
  co_await read_answers(session, *stream, out, 3);   // 2 answers, then A's FIN ends it
  out->done = true;
}

TEST(ShareTransportTest, AFinishesItsSideOnceItAnsweredEverythingAfterBsFin) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  auto out = std::make_shared<Raw>();
  io::asio::co_spawn(f.net.ctx, fin_after_answers(f.net.b.session, out), logged);
  f.net.run(out->done, 30s);
  ASSERT_TRUE(out->done) << "A never finished its side of the stream";
  EXPECT_EQ(out->failure, "");
  ASSERT_EQ(out->answers.size(), 2u);
  EXPECT_EQ(out->answers[0].second, 0u);
  EXPECT_EQ(out->answers[1].second, 0u);
}

io::Task<void> pending_when_peer_leaves(std::shared_ptr<quic::Session> b,
                                        std::shared_ptr<quic::Session> a,
                                        std::shared_ptr<ReadAll> out) {
  if (auto ec = co_await b->handshake()) {
    out->failure = "handshake";
    out->done = true;
    co_return;
  }
  auto executor = co_await io::asio::this_coro::executor;
  auto channel =
      QuicShareChannel::start(executor, b, [out](base::ErrorCode) { ++out->failures_reported; });
  auto hello = co_await ask(channel, proto::HelloRequest{});
  if (!hello || hello->error != 0) {
    out->failure = "hello";
    out->done = true;
    co_return;
  }
  // A goes away while a request is in flight: the request fails, and so do later ones.
  co_await a->close(0, "bye", std::chrono::seconds(1));
  proto::StatFsRequest statfs;
  statfs.node = proto::kRootNode;
  auto late = co_await ask(channel, statfs);
  out->failure = late ? "answered after the peer left" : "";
  out->done = true;
}

TEST(ShareTransportTest, RequestsFailPromptlyWhenThePeerLeaves) {
  Fixture f;
  ASSERT_TRUE(f.net.ok());
  auto out = std::make_shared<ReadAll>();
  io::asio::co_spawn(f.net.ctx, pending_when_peer_leaves(f.net.b.session, f.net.a.session, out),
                     logged);
  f.net.run(out->done, 30s);
  ASSERT_TRUE(out->done);
  EXPECT_EQ(out->failure, "");
  EXPECT_EQ(out->failures_reported, 1u);
}

}  // namespace
}  // namespace peertun::client
