#pragma once
// How the FUSE side reaches an exporter: one request in, one answer out, asynchronously.
// The client implements it over QUIC streams; tests connect it to an in-process exporter.

#include <functional>

#include "base/error.h"
#include "share/proto/messages.h"

namespace peertun::share::proto {

class Channel {
 public:
  // The answer (which may carry an errno), or a channel failure (the peer is gone, the
  // stream broke, the channel was closed): the FUSE side answers EIO then.
  using Handler = std::function<void(base::Result<Response>)>;

  virtual ~Channel() = default;
  // Sends `body` with a fresh request id. `done` runs exactly once, later (never inside
  // call()), on the executor the channel was created for.
  virtual void call(RequestBody body, Handler done) = 0;
  // Sends a request that is never answered (Forget). Dropped if the channel failed.
  virtual void post(RequestBody body) = 0;
};

}  // namespace peertun::share::proto
