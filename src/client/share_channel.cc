#include "client/share_channel.h"

#include <algorithm>
#include <limits>

#include "base/log.h"

namespace peertun::client {
namespace {

namespace proto = share::proto;

spdlog::logger& log() { return base::logger("client.share"); }

const char* share_message(int ev) noexcept {
  switch (static_cast<ShareErrc>(ev)) {
    case ShareErrc::ChannelClosed:
      return "the share channel is closed";
    case ShareErrc::ProtocolError:
      return "the peer broke the share protocol";
  }
  return "unknown share transport error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.client.share", &share_message);

// One stream read: big enough for a whole Read answer in few calls.
constexpr std::size_t kReadChunk = std::size_t{256} * 1024;
// What a request other than Read is expected to bring back, for picking a lane.
constexpr std::uint64_t kSmallAnswerWeight = 4096;

void arm_forever(io::asio::steady_timer& timer) {
  timer.expires_at(io::asio::steady_timer::time_point::max());
}

}  // namespace

const boost::system::error_category& share_transport_category() { return kCategory; }

// ---- Peer B ----

QuicShareChannel::QuicShareChannel(io::Executor executor, std::shared_ptr<quic::Session> session,
                                   std::function<void(base::ErrorCode)> on_failure)
    : executor_(std::move(executor)),
      session_(std::move(session)),
      on_failure_(std::move(on_failure)),
      lanes_(kShareLanes) {
  for (auto& lane : lanes_) {
    lane.wake = std::make_unique<io::asio::steady_timer>(executor_);
    arm_forever(*lane.wake);
  }
}

std::shared_ptr<QuicShareChannel> QuicShareChannel::start(
    io::Executor executor, std::shared_ptr<quic::Session> session,
    std::function<void(base::ErrorCode)> on_failure) {
  auto channel =
      std::make_shared<QuicShareChannel>(executor, std::move(session), std::move(on_failure));
  for (std::size_t i = 0; i < channel->lanes_.size(); ++i) {
    io::asio::co_spawn(executor, run_lane(channel, i),
                       [](std::exception_ptr e) { io::log_task_exception(e, "share.lane"); });
  }
  return channel;
}

void QuicShareChannel::call(proto::RequestBody body, Handler done) {
  if (failed_) {
    io::asio::post(executor_, [done = std::move(done), why = *failed_] { done(why); });
    return;
  }
  const auto id = next_id_++;
  const std::uint64_t weight = std::holds_alternative<proto::ReadRequest>(body)
                                   ? std::get<proto::ReadRequest>(body).length
                                   : kSmallAnswerWeight;
  proto::Request request;
  request.id = id;
  request.body = std::move(body);
  const auto lane = pick_lane();
  pending_.emplace(id, Pending{std::move(done), lane, weight});
  lanes_[lane].outstanding += weight;
  ++requests_sent_;
  enqueue(lane, proto::encode(request));
}

void QuicShareChannel::post(proto::RequestBody body) {
  if (failed_) {
    return;
  }
  proto::Request request;
  request.id = next_id_++;
  request.body = std::move(body);
  enqueue(pick_lane(), proto::encode(request));
}

void QuicShareChannel::close() { fail(ShareErrc::ChannelClosed, false); }

std::size_t QuicShareChannel::pick_lane() const {
  std::size_t best = 0;
  for (std::size_t i = 1; i < lanes_.size(); ++i) {
    if (lanes_[i].outstanding < lanes_[best].outstanding) {
      best = i;
    }
  }
  return best;
}

void QuicShareChannel::enqueue(std::size_t lane, wire::Bytes frame) {
  lanes_[lane].queue.push_back(std::move(frame));
  lanes_[lane].wake->cancel();
}

void QuicShareChannel::dispatch(proto::Response response) {
  auto it = pending_.find(response.id);
  if (it == pending_.end()) {
    log().warn("share.unexpected_answer id={}", response.id);
    fail(ShareErrc::ProtocolError, true);
    return;
  }
  auto pending = std::move(it->second);
  pending_.erase(it);
  auto& lane = lanes_[pending.lane];
  lane.outstanding -= std::min(lane.outstanding, pending.weight);
  pending.done(std::move(response));
}

void QuicShareChannel::fail(base::ErrorCode why, bool notify) {
  if (failed_) {
    return;
  }
  failed_ = why;
  log().info("share.channel_closed reason=\"{}\" pending={}", why.message(), pending_.size());
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    io::asio::post(executor_, [done = std::move(p.done), why] { done(why); });
  }
  for (auto& lane : lanes_) {
    lane.queue.clear();
    lane.wake->cancel();
  }
  if (notify && on_failure_) {
    io::asio::post(executor_, [callback = std::move(on_failure_), why] { callback(why); });
  }
}

io::Task<void> QuicShareChannel::run_lane(std::shared_ptr<QuicShareChannel> self,
                                          std::size_t lane) {
  auto opened = co_await self->session_->open_stream();
  if (!opened) {
    self->fail(opened.error(), true);
    co_return;
  }
  self->lanes_[lane].stream = *opened;
  io::asio::co_spawn(self->executor_, read_lane(self, lane),
                     [](std::exception_ptr e) { io::log_task_exception(e, "share.lane_read"); });
  for (;;) {
    if (self->failed_) {
      co_return;
    }
    auto& queue = self->lanes_[lane].queue;
    if (queue.empty()) {
      arm_forever(*self->lanes_[lane].wake);
      co_await self->lanes_[lane].wake->async_wait(io::use_nothrow);
      continue;
    }
    const auto frame = std::move(queue.front());
    queue.pop_front();
    if (auto ec = co_await self->session_->write_all(*opened, frame, false)) {
      self->fail(ec, true);
      co_return;
    }
  }
}

io::Task<void> QuicShareChannel::read_lane(std::shared_ptr<QuicShareChannel> self,
                                           std::size_t lane) {
  const auto stream = *self->lanes_[lane].stream;
  std::vector<std::uint8_t> buffer(kReadChunk);
  proto::FrameReader frames;
  while (!self->failed_) {
    auto got = co_await self->session_->read(stream, buffer);
    if (!got) {
      self->fail(got.error(), true);
      co_return;
    }
    frames.feed(std::span<const std::uint8_t>(buffer.data(), got->bytes));
    for (;;) {
      auto frame = frames.next();
      if (!frame) {
        log().warn("share.bad_frame error=\"{}\"", frame.error().message());
        self->fail(ShareErrc::ProtocolError, true);
        co_return;
      }
      if (!*frame) {
        break;
      }
      auto response = proto::decode_response(**frame);
      if (!response) {
        log().warn("share.bad_answer error=\"{}\"", response.error().message());
        self->fail(ShareErrc::ProtocolError, true);
        co_return;
      }
      self->dispatch(std::move(*response));
      if (self->failed_) {
        co_return;
      }
    }
    if (got->fin) {
      self->fail(ShareErrc::ChannelClosed, true);
      co_return;
    }
  }
}

// ---- Peer A ----

namespace {

// What A owes B over the whole connection, shared by the streams' servers.
struct ServeState {
  explicit ServeState(const io::Executor& executor) : budget_freed(executor) {
    arm_forever(budget_freed);
  }
  // Requests at the exporter plus answers not yet handed to QUIC, on every stream: the
  // connection's budget, so more streams do not buy a peer more of A's memory.
  std::size_t owed = 0;
  std::size_t streams = 0;  // streams being served
  bool protocol_error = false;
  // Cancelled whenever `owed` drops: every reader waiting for budget wakes and rechecks.
  io::asio::steady_timer budget_freed;

  void freed() { budget_freed.cancel(); }
};

// One stream of peer B's: requests in, answers out in completion order.
struct StreamServer {
  std::shared_ptr<quic::Session> session;
  std::shared_ptr<share::Exporter> exporter;
  std::shared_ptr<ServeState> state;
  quic::StreamId stream = 0;
  std::deque<wire::Bytes> answers;
  std::size_t in_flight = 0;
  bool ended = false;         // the stream or the connection failed: drop everything
  bool reading_done = false;  // B finished the stream: write what is owed, then FIN
  io::asio::steady_timer wake_writer;

  StreamServer(io::Executor executor, std::shared_ptr<quic::Session> s,
               std::shared_ptr<share::Exporter> e, std::shared_ptr<ServeState> st,
               quic::StreamId id)
      : session(std::move(s)),
        exporter(std::move(e)),
        state(std::move(st)),
        stream(id),
        wake_writer(executor) {
    arm_forever(wake_writer);
  }

  [[nodiscard]] bool over_budget() const {
    return in_flight + answers.size() >= kShareLaneInFlight ||
           state->owed >= kShareConnectionInFlight;
  }
  void asked() {
    ++in_flight;
    ++state->owed;
  }
  void answer(const proto::Response& response) {
    if (ended) {
      --state->owed;
      state->freed();
      return;
    }
    answers.push_back(proto::encode(response));
    wake_writer.cancel();
  }
  wire::Bytes take_answer() {
    auto frame = std::move(answers.front());
    answers.pop_front();
    --state->owed;
    state->freed();
    return frame;
  }
  void end() {
    if (!ended) {
      ended = true;
      state->owed -= answers.size();
      answers.clear();
      state->freed();
    }
    wake_writer.cancel();
  }
};

io::Task<void> write_answers(std::shared_ptr<StreamServer> server) {
  while (!server->ended) {
    if (server->answers.empty()) {
      if (server->reading_done && server->in_flight == 0) {
        // Everything B asked on this stream is answered: finish our side too, so B (and
        // QUIC's stream accounting) can let the stream go.
        const std::span<const std::uint8_t> nothing;
        if (auto ec = co_await server->session->write_all(server->stream, nothing, true)) {
          log().debug("share.fin_failed stream={} error=\"{}\"", server->stream, ec.message());
        }
        co_return;
      }
      arm_forever(server->wake_writer);
      co_await server->wake_writer.async_wait(io::use_nothrow);
      continue;
    }
    const auto frame = server->take_answer();
    // QUIC's send buffer for this stream is kShareStreamSendBuffer: when B does not read,
    // this waits there, and the answers behind it count against the budget.
    if (auto ec = co_await server->session->write_all(server->stream, frame, false)) {
      log().debug("share.write_failed stream={} error=\"{}\"", server->stream, ec.message());
      server->end();
      co_return;
    }
  }
}

// B broke the framing: nothing more from it can be trusted, so the whole connection ends.
io::Task<void> end_for_protocol_error(std::shared_ptr<StreamServer> server,
                                      std::shared_ptr<ServeState> state, std::string what) {
  log().warn("share.protocol_error stream={} what=\"{}\"", server->stream, what);
  state->protocol_error = true;
  server->end();
  co_await server->session->close(kShareProtocolErrorCode, "share protocol error",
                                  std::chrono::seconds(1));
}

io::Task<void> serve_stream(std::shared_ptr<StreamServer> server,
                            std::shared_ptr<ServeState> state) {
  auto executor = co_await io::asio::this_coro::executor;
  io::asio::co_spawn(executor, write_answers(server),
                     [](std::exception_ptr e) { io::log_task_exception(e, "share.answers"); });
  std::vector<std::uint8_t> buffer(kReadChunk);
  proto::FrameReader frames;
  bool fin = false;
  while (!server->ended) {
    // Requests already buffered are taken one by one up to the bound: a peer that keeps
    // asking without reading answers stops being served, then stops being read.
    while (!server->over_budget()) {
      auto frame = frames.next();
      if (!frame) {
        co_await end_for_protocol_error(server, state, frame.error().message());
        co_return;
      }
      if (!*frame) {
        break;
      }
      auto header = proto::decode_header(**frame);
      if (!header || header->answer) {
        std::string what = header ? "an answer where a request belongs" : header.error().message();
        co_await end_for_protocol_error(server, state, std::move(what));
        co_return;
      }
      auto request = proto::decode_request(**frame);
      if (!request) {
        // The frame is intact, only its body is not: answer this one and go on (but never
        // a Forget: B expects no answer to it and would take one for a broken stream).
        if (header->op != static_cast<std::uint8_t>(proto::Op::Forget)) {
          server->answer(proto::error_response(header->id, static_cast<proto::Op>(header->op),
                                               proto::errno_for(request.error())));
        }
        continue;
      }
      if (std::holds_alternative<proto::ForgetRequest>(request->body)) {
        server->exporter->handle(std::move(*request), [](const proto::Response&) {});
        continue;
      }
      server->asked();
      server->exporter->handle(std::move(*request), [server](proto::Response response) {
        --server->in_flight;
        server->answer(response);
      });
    }
    if (server->over_budget()) {
      arm_forever(state->budget_freed);
      co_await state->budget_freed.async_wait(io::use_nothrow);
      continue;
    }
    if (fin) {
      server->reading_done = true;  // answers still owed are written, then our FIN
      server->wake_writer.cancel();
      co_return;
    }
    auto got = co_await server->session->read(server->stream, buffer);
    if (!got) {
      server->end();
      co_return;
    }
    frames.feed(std::span<const std::uint8_t>(buffer.data(), got->bytes));
    fin = got->fin;
  }
}

}  // namespace

io::Task<base::ErrorCode> serve_share(std::shared_ptr<quic::Session> session,
                                      std::shared_ptr<share::Exporter> exporter) {
  auto executor = co_await io::asio::this_coro::executor;
  auto state = std::make_shared<ServeState>(executor);
  for (;;) {
    auto stream = co_await session->accept_stream();
    if (!stream) {
      if (state->protocol_error) {
        co_return ShareErrc::ProtocolError;
      }
      co_return stream.error();
    }
    if (state->streams >= kMaxShareStreams) {
      // Never read: QUIC's flow control then bounds what B can put on it.
      log().warn("share.stream_ignored stream={} serving={}", *stream, state->streams);
      continue;
    }
    log().debug("share.stream_accepted stream={}", *stream);
    ++state->streams;
    auto server = std::make_shared<StreamServer>(executor, session, exporter, state, *stream);
    io::asio::co_spawn(executor, serve_stream(server, state), [state](std::exception_ptr e) {
      --state->streams;
      io::log_task_exception(e, "share.stream");
    });
  }
}

}  // namespace peertun::client
