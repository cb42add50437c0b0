#pragma once
// LocalChannel: a proto::Channel wired to a real share::Exporter in the same process, for
// tests of the FUSE side. Every request goes through the codec both ways (encode, frame,
// decode_request; the answer: encode, frame, decode_response), so the bytes are the ones
// a QUIC stream would carry.
//
// Models of a network: pause()/resume() hold requests back (a slow peer), fail() makes
// every pending and later call complete with an error (peer A vanished).
//
// Threading: call() and post() on the executor (as share::Mount does). pause(), resume()
// and fail() may be called from any thread: they post to the executor. The counters are
// readable from any thread.

#include <atomic>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "io/asio.h"
#include "share/exporter/exporter.h"
#include "share/proto/channel.h"
#include "wire/bytes.h"

namespace peertun::test {

class LocalChannel final : public share::proto::Channel,
                           public std::enable_shared_from_this<LocalChannel> {
 public:
  static std::shared_ptr<LocalChannel> create(io::Executor executor,
                                              std::shared_ptr<share::Exporter> exporter);

  void call(share::proto::RequestBody body, Handler done) override;
  void post(share::proto::RequestBody body) override;

  // Holds every request (not yet delivered to the exporter) until resume().
  void pause();
  void resume();
  // Peer A is gone: pending calls complete with connection_aborted now, later ones at
  // once (asynchronously), posts are dropped, answers still coming are dropped.
  void fail();
  // The next `count` calls of `op` are answered with `error` (an errno, through the
  // codec) instead of reaching the exporter: a busy peer (EAGAIN), a failing disk (EIO).
  void answer_errno(share::proto::Op op, int error, int count);

  [[nodiscard]] std::uint64_t calls() const { return calls_.load(); }
  [[nodiscard]] std::uint64_t posts() const { return posts_.load(); }
  [[nodiscard]] std::uint64_t held() const { return held_count_.load(); }
  [[nodiscard]] std::uint64_t pending() const { return pending_count_.load(); }

  LocalChannel(io::Executor executor, std::shared_ptr<share::Exporter> exporter);

 private:
  void deliver(const wire::Bytes& frame, bool answered);
  void on_answer(const share::proto::Response& response);
  void complete(share::proto::RequestId id, base::Result<share::proto::Response> result);
  void do_fail();

  io::Executor executor_;
  std::shared_ptr<share::Exporter> exporter_;
  share::proto::RequestId next_id_ = 1;
  std::unordered_map<share::proto::RequestId, Handler> pending_;
  struct Held {
    wire::Bytes frame;
    bool answered = true;
  };
  std::vector<Held> held_;
  bool paused_ = false;
  share::proto::Op inject_op_ = share::proto::Op::Hello;
  int inject_errno_ = 0;
  int inject_count_ = 0;
  bool failed_ = false;
  std::atomic<std::uint64_t> calls_{0};
  std::atomic<std::uint64_t> posts_{0};
  std::atomic<std::uint64_t> held_count_{0};
  std::atomic<std::uint64_t> pending_count_{0};
  std::atomic<std::uint64_t> injected_{0};

 public:
  [[nodiscard]] std::uint64_t injected() const { return injected_.load(); }
};

}  // namespace peertun::test
