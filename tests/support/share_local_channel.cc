#include "support/share_local_channel.h"

#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <optional>
#include <utility>

#include "share/proto/codec.h"

namespace peertun::test {
namespace {

namespace proto = share::proto;

// One whole frame (with its length prefix) back to the frame without it, through the
// stream reader, as the QUIC side would cut it.
base::Result<wire::Bytes> unframe(const wire::Bytes& bytes) {
  proto::FrameReader reader;
  reader.feed(bytes);
  auto next = reader.next();
  if (!next) {
    return next.error();
  }
  const std::optional<wire::ByteView> frame = next.value();
  if (!frame.has_value() || reader.buffered() != 0) {
    return proto::Errc::Malformed;
  }
  return wire::Bytes(frame->begin(), frame->end());
}

}  // namespace

std::shared_ptr<LocalChannel> LocalChannel::create(io::Executor executor,
                                                   std::shared_ptr<share::Exporter> exporter) {
  return std::make_shared<LocalChannel>(std::move(executor), std::move(exporter));
}

LocalChannel::LocalChannel(io::Executor executor, std::shared_ptr<share::Exporter> exporter)
    : executor_(std::move(executor)), exporter_(std::move(exporter)) {}

void LocalChannel::call(proto::RequestBody body, Handler done) {
  ++calls_;
  const proto::RequestId id = next_id_++;
  if (failed_) {
    io::asio::post(executor_, [done = std::move(done)] {
      done(base::ErrorCode(io::asio::error::connection_aborted));
    });
    return;
  }
  pending_.emplace(id, std::move(done));
  pending_count_ = pending_.size();
  proto::Request request;
  request.id = id;
  request.body = std::move(body);
  wire::Bytes frame = proto::encode(request);
  if (paused_) {
    held_.push_back(Held{std::move(frame), true});
    held_count_ = held_.size();
    return;
  }
  deliver(frame, true);
}

void LocalChannel::post(proto::RequestBody body) {
  ++posts_;
  if (failed_) {
    return;
  }
  proto::Request request;
  request.id = next_id_++;
  request.body = std::move(body);
  wire::Bytes frame = proto::encode(request);
  if (paused_) {
    held_.push_back(Held{std::move(frame), false});
    held_count_ = held_.size();
    return;
  }
  deliver(frame, false);
}

void LocalChannel::deliver(const wire::Bytes& bytes, bool answered) {
  auto frame = unframe(bytes);
  base::Result<proto::Request> request =
      frame ? proto::decode_request(*frame) : base::Result<proto::Request>(frame.error());
  if (!request) {
    // Our own encoder produced something the decoder refuses: a codec bug, surfaced as
    // a failed call (the test sees EIO).
    if (answered && frame) {
      if (const auto header = proto::decode_header(*frame)) {
        io::asio::post(executor_, [self = shared_from_this(), id = header->id,
                                   error = request.error()] { self->complete(id, error); });
      }
    }
    return;
  }
  if (answered && inject_count_ > 0 && proto::op_of(request->body) == inject_op_) {
    --inject_count_;
    ++injected_;
    proto::Response answer = proto::error_response(request->id, inject_op_, inject_errno_);
    io::asio::post(executor_, [self = shared_from_this(), answer = std::move(answer)] {
      self->on_answer(answer);
    });
    return;
  }
  exporter_->handle(std::move(*request),
                    [weak = weak_from_this()](const proto::Response& response) {
                      if (const auto self = weak.lock()) {
                        self->on_answer(response);
                      }
                    });
}

void LocalChannel::on_answer(const proto::Response& response) {
  // The exporter runs `done` on the executor, posted: never inside call().
  const proto::RequestId id = response.id;
  auto frame = unframe(proto::encode(response));
  if (!frame) {
    complete(id, frame.error());
    return;
  }
  complete(id, proto::decode_response(*frame));
}

void LocalChannel::complete(proto::RequestId id, base::Result<proto::Response> result) {
  const auto it = pending_.find(id);
  if (it == pending_.end()) {
    return;  // failed already: the answer of a vanished peer is dropped
  }
  Handler done = std::move(it->second);
  pending_.erase(it);
  pending_count_ = pending_.size();
  done(std::move(result));
}

void LocalChannel::pause() {
  io::asio::post(executor_, [self = shared_from_this()] { self->paused_ = true; });
}

void LocalChannel::resume() {
  io::asio::post(executor_, [self = shared_from_this()] {
    self->paused_ = false;
    auto held = std::move(self->held_);
    self->held_.clear();
    self->held_count_ = 0;
    if (self->failed_) {
      return;
    }
    for (auto& h : held) {
      self->deliver(h.frame, h.answered);
    }
  });
}

void LocalChannel::answer_errno(proto::Op op, int error, int count) {
  io::asio::post(executor_, [self = shared_from_this(), op, error, count] {
    self->inject_op_ = op;
    self->inject_errno_ = error;
    self->inject_count_ = count;
  });
}

void LocalChannel::fail() {
  io::asio::post(executor_, [self = shared_from_this()] { self->do_fail(); });
}

void LocalChannel::do_fail() {
  failed_ = true;
  held_.clear();
  held_count_ = 0;
  auto pending = std::move(pending_);
  pending_.clear();
  pending_count_ = 0;
  for (auto& [id, done] : pending) {
    done(base::ErrorCode(io::asio::error::connection_aborted));
  }
}

}  // namespace peertun::test
