#pragma once
// share::Exporter: peer A's side of the folder share. Answers the share protocol's
// requests (share/proto/messages.h) for one peer, serving only what lies inside the
// shared root: names are single components, every path is resolved beneath the root
// without following any symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), symlinks
// are served as symlinks, and other special files (FIFOs, sockets, devices) are never
// listed, looked up or opened. Read-only unless ExporterOptions::writable, enforced here.
//
// Threading: handle() is called on `executor` (the client's io_context thread); disk
// work runs on the exporter's own thread pool and `done` is posted back to `executor`.
// Requests are independent: answers may complete in any order.
//
// Lifetime: create() returns a shared_ptr that in-flight work keeps alive. stop()
// drops answers still in flight (their `done` never runs) and joins the pool.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "base/error.h"
#include "io/asio.h"
#include "share/proto/messages.h"

namespace peertun::share {

struct ExporterOptions {
  bool writable = false;             // `--rw` on A (write requests need it; EROFS otherwise)
  std::size_t threads = 4;           // disk threads
  std::size_t max_handles = 1024;    // open files per peer (EMFILE beyond)
  std::size_t max_nodes = 1U << 20;  // nodes B may hold at once (ENOMEM beyond)
};

enum class ExporterErrc {
  NotADirectory = 1,  // the shared root is not a directory
  CannotOpenRoot,     // the shared root cannot be opened (missing, permission)
};
[[nodiscard]] const boost::system::error_category& exporter_category() noexcept;
[[nodiscard]] inline boost::system::error_code make_error_code(ExporterErrc e) noexcept {
  return {static_cast<int>(e), exporter_category()};
}

class Exporter : public std::enable_shared_from_this<Exporter> {
 public:
  using Done = std::function<void(proto::Response)>;

  // Opens `root` (a directory; symlinks to one are followed here, once, by the user's
  // choice of what to share). Errors: ExporterErrc.
  [[nodiscard]] static base::Result<std::shared_ptr<Exporter>> create(io::Executor executor,
                                                                      std::string root,
                                                                      ExporterOptions options);
  virtual ~Exporter() = default;

  // Answers `request` through `done` (exactly once, on the executor), except Forget,
  // which is never answered. Never throws; hostile requests get errno answers:
  // EPROTO before Hello, ESTALE for unknown nodes, EBADF for unknown handles, EINVAL for
  // bad offsets/lengths/counts, ENOTDIR/EISDIR/ENOENT as the filesystem says, EROFS for
  // writes to a read-only share, ESTALE for a read of a file that changed since Open.
  virtual void handle(proto::Request request, Done done) = 0;

  // Ends the session: drops pending answers, closes every handle, joins the pool.
  virtual void stop() = 0;

  // For logs and tests.
  [[nodiscard]] virtual std::size_t open_handles() const = 0;
  [[nodiscard]] virtual std::size_t known_nodes() const = 0;
};

}  // namespace peertun::share

template <>
struct boost::system::is_error_code_enum<peertun::share::ExporterErrc> : std::true_type {};
