#include "share/fuse/mount.h"

// The low-level API of libfuse 3.14 (Debian 12). Only this file includes libfuse.
#define FUSE_USE_VERSION 314
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "base/log.h"
#include "share/fuse/mountpoint.h"

namespace peertun::share {
namespace {

namespace asio = io::asio;
using proto::NodeId;

spdlog::logger& log() { return base::logger("share.fuse"); }

static_assert(proto::kRootNode == FUSE_ROOT_ID, "kernel inode numbers are A's node ids");

// The kernel sends INIT as soon as the mount exists; not getting it means the mount is
// broken.
constexpr std::chrono::seconds kInitTimeout{5};
// Entries asked of A per ReadDir. The kernel lists a directory a page (~25 entries with
// attributes) at a time; the rest of a batch waits in the directory handle, so a big
// directory costs one round trip per batch rather than per page.
constexpr std::uint32_t kReadDirBatch = 256;
// Kernel requests handled per turn of the io_context before other work (peer answers,
// timers) gets a turn.
constexpr int kMaxRequestsPerTurn = 64;
// libfuse rejects error values of 1000 and above (ERANGE); errno values are below 150.
constexpr std::uint32_t kMaxReplyErrno = 999;
constexpr std::uint32_t kPageSize = 4096;
// A answers EAGAIN when it has too much in flight for us. Retried after 10, 20, 40, 80,
// 160, 160 ... ms: about 3 s in all, then the kernel gets EIO.
constexpr int kMaxBusyRetries = 24;
constexpr std::chrono::milliseconds kBusyRetryDelay{5};
constexpr int kBusyBackoffSteps = 5;
// unmount(): how long requests are answered EIO before the connection closes. A reader
// whose READ was failed retries the page with a synchronous READ at once; answered EIO,
// it returns EIO (after the close it would get ECONNABORTED).
constexpr std::chrono::milliseconds kUnmountDrain{250};

const char* message(int ev) noexcept {
  switch (static_cast<MountErrc>(ev)) {
    case MountErrc::HelloFailed:
      return "the peer did not answer the share handshake (Hello)";
    case MountErrc::HelloRejected:
      return "the peer refused the share handshake (Hello)";
    case MountErrc::VersionMismatch:
      return "the peer speaks a share protocol version this build does not know";
    case MountErrc::BadMountpoint:
      return "the mountpoint is not a directory (or is a symlink, or cannot be inspected)";
    case MountErrc::MountpointNotEmpty:
      return "the mountpoint is a directory with files in it; choose an empty or new "
             "directory with --mount";
    case MountErrc::MountpointBusy:
      return "another filesystem is mounted at the mountpoint";
    case MountErrc::CannotCreateMountpoint:
      return "cannot create the mountpoint directory";
    case MountErrc::StaleMountNotCleaned:
      return "a stale peertun mount is at the mountpoint and could not be unmounted";
    case MountErrc::FuseUnavailable:
      return "FUSE is not available (is /dev/fuse there and is fuse3 installed?)";
    case MountErrc::MountFailed:
      return "mounting the FUSE filesystem failed";
  }
  return "unknown mount error";
}
constexpr base::SimpleErrorCategory kCategory("share.fuse", &message);

double seconds(std::chrono::milliseconds d) { return std::chrono::duration<double>(d).count(); }

int to_errno(std::uint32_t error) {
  return error > 0 && error <= kMaxReplyErrno ? static_cast<int>(error) : EIO;
}

// Node ids a Lookup or ReadDir may name: the root is never a child, 0 is "no node".
bool is_child_node(NodeId node) { return node != 0 && node != proto::kRootNode; }

// What identifies the content of a file for caching: A answers ESTALE for reads of a
// file whose size, mtime or ctime changed; size and mtime are what tools change.
struct FileVersion {
  std::uint64_t size = 0;
  proto::Timestamp mtime;
  bool operator==(const FileVersion&) const = default;
};
FileVersion version_of(const proto::Attr& a) { return {a.size, a.mtime}; }

// "fsname=..." is one -o option: commas and backslashes in it are escaped for fuse_opt.
std::string escape_option(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == ',' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

class MountImpl;
MountImpl& impl_of(fuse_req_t req);

// ---- libfuse callbacks: trampolines into MountImpl (defined below) ----
void op_init(void* userdata, fuse_conn_info* conn);
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name);
void op_forget(fuse_req_t req, fuse_ino_t ino, std::uint64_t nlookup);
void op_forget_multi(fuse_req_t req, std::size_t count, fuse_forget_data* forgets);
void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_readlink(fuse_req_t req, fuse_ino_t ino);
void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_read(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi);
void op_release(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi);
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off,
                    fuse_file_info* fi);
void op_releasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi);
void op_statfs(fuse_req_t req, fuse_ino_t ino);

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.readlink = op_readlink;
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.statfs = op_statfs;
  // Everything else (writes, xattrs, locks, flush) is answered ENOSYS by libfuse; the
  // kernel remembers that and stops asking. Writes never get here: the mount is `ro`.
  return ops;
}
const fuse_lowlevel_ops kOps = make_ops();

class MountImpl final : public Mount, public std::enable_shared_from_this<MountImpl> {
 public:
  MountImpl(io::Executor executor, std::shared_ptr<proto::Channel> channel, MountOptions options,
            detail::PreparedMountpoint mountpoint, std::uint32_t max_read)
      : executor_(std::move(executor)),
        channel_(std::move(channel)),
        options_(std::move(options)),
        mountpoint_(std::move(mountpoint)),
        max_read_(max_read),
        uid_(::getuid()),
        gid_(::getgid()),
        fd_(executor_),
        drain_timer_(executor_),
        init_timer_(executor_),
        closed_timer_(executor_, asio::steady_timer::time_point::max()) {
    nodes_.emplace(proto::kRootNode, NodeState{});
    known_nodes_ = nodes_.size();
  }

  ~MountImpl() override {
    // A session is left only if start() failed half-way or the io_context was destroyed
    // while mounted (the serving loop's frame holds the last reference): unmount then.
    // The fd is released first so that only libfuse closes it.
    if (se_ != nullptr) {
      if (fd_.is_open()) {
        fd_.release();
      }
      fuse_session_unmount(se_);
      fuse_session_destroy(se_);
    }
    std::free(buf_.mem);
  }

  // ---- Mount ----

  void unmount() override {
    asio::dispatch(executor_, [self = shared_from_this()] {
      self->begin_drain(MountEnd::Unmounted, kUnmountDrain);
    });
  }

  void channel_failed() override {
    asio::dispatch(executor_, [self = shared_from_this()] { self->fail_channel(); });
  }

  io::Task<void> wait_unmounted() override {
    const auto self = shared_from_this();
    while (self->state_ != State::Closed) {
      co_await self->closed_timer_.async_wait(io::use_nothrow);
    }
  }

  [[nodiscard]] bool unmounted() const override { return ended_.load() != MountEnd::Mounted; }
  [[nodiscard]] MountEnd end_reason() const override { return ended_.load(); }
  [[nodiscard]] const std::string& mountpoint() const override { return mountpoint_.path; }

  [[nodiscard]] MountStats stats() const override {
    MountStats s;
    constexpr auto r = std::memory_order_relaxed;
    s.requests = requests_.load(r);
    s.peer_calls = peer_calls_.load(r);
    s.in_flight = in_flight_.load(r);
    s.failed_eio = failed_eio_.load(r);
    s.reads = reads_.load(r);
    s.bytes_read = bytes_read_.load(r);
    s.max_read_request = max_read_request_.load(r);
    s.forgets_sent = forgets_sent_.load(r);
    s.known_nodes = known_nodes_.load(r);
    s.open_files = open_files_.load(r);
    s.max_write = max_write_.load(r);
    s.max_readahead = max_readahead_.load(r);
    s.readahead_kb = readahead_kb_.load(r);
    return s;
  }

  // ---- start-up (Mount::start) ----

  // Creates the session and mounts. Errors: FuseUnavailable, MountFailed.
  [[nodiscard]] base::Result<void> mount_fuse() {
    // ro: read-only until `--rw`. default_permissions: the kernel checks the mode bits
    // we show, so A never sees a request the local user could not make. noatime: reads
    // must not turn into attribute traffic. subtype: "fuse.peertun" in mountinfo is
    // how a stale mount of ours is recognised.
    // The source ends in "#<pid>": whether the mount's server still lives is then one
    // kill(pid, 0) away, without touching the mount (see detail::mount_owner_alive).
    const std::string mount_options =
        "ro,default_permissions,noatime,subtype=peertun,fsname=" +
        escape_option(options_.fsname + detail::kOwnerSeparator + std::to_string(::getpid()));
    std::string arg0 = "peertun";
    std::string arg1 = "-o";
    std::string arg2 = mount_options;
    char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
    fuse_args args{};
    args.argc = 3;
    args.argv = argv;
    se_ = fuse_session_new(&args, &kOps, sizeof(kOps), this);
    fuse_opt_free_args(&args);
    if (se_ == nullptr) {
      log().error("mount.session_failed mountpoint={}", mountpoint_.path);
      return MountErrc::FuseUnavailable;
    }
    if (fuse_session_mount(se_, mountpoint_.path.c_str()) != 0) {
      log().error("mount.failed mountpoint={}", mountpoint_.path);
      fuse_session_destroy(se_);
      se_ = nullptr;
      return MountErrc::MountFailed;
    }
    const int fd = fuse_session_fd(se_);
    // Non-blocking: fuse_session_receive_buf then answers -EAGAIN when the queue is
    // empty, and the loop goes back to waiting on the reactor.
    const int flags = ::fcntl(fd, F_GETFL);
    boost::system::error_code ec;
    if (flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0) {
      // Asio also returns `ec` (deprecated form); the out-parameter is what we read.
      fd_.assign(fd, ec);  // NOLINT(bugprone-unused-return-value)
    } else {
      ec = boost::system::error_code(errno, boost::system::system_category());
    }
    if (ec) {
      log().error("mount.fd_setup_failed mountpoint={}", mountpoint_.path);
      fuse_session_unmount(se_);
      fuse_session_destroy(se_);
      se_ = nullptr;
      return MountErrc::MountFailed;
    }
    return {};
  }

  // start() failed after the mountpoint was prepared: undo what we did to it.
  void abandon() {
    if (mountpoint_.created) {
      ::rmdir(mountpoint_.path.c_str());
    }
  }

  // The serving loop: waits for the /dev/fuse fd, drains it, repeats until closed.
  static io::Task<void> serve(std::shared_ptr<MountImpl> self) {
    while (self->state_ != State::Closed) {
      const Received received = self->receive_requests();
      if (received == Received::Ended || self->state_ == State::Closed) {
        co_return;
      }
      if (received == Received::More) {
        // Requests are still queued: let other handlers run, then continue without
        // waiting (the reactor would not report the fd readable again).
        co_await asio::post(self->executor_, asio::use_awaitable);
        continue;
      }
      auto [ec] =
          co_await self->fd_.async_wait(asio::posix::stream_descriptor::wait_read, io::use_nothrow);
      if (self->state_ == State::Closed) {
        co_return;
      }
      if (ec) {
        log().error("mount.wait_failed mountpoint={} error={}", self->mountpoint_.path,
                    ec.message());
        self->close(MountEnd::KernelUnmounted);
        co_return;
      }
    }
  }

  // True once the kernel's INIT was answered (bounded by kInitTimeout).
  static io::Task<bool> wait_init(std::shared_ptr<MountImpl> self) {
    if (!self->init_done_ && self->state_ == State::Serving) {
      self->init_timer_.expires_after(kInitTimeout);
      co_await self->init_timer_.async_wait(io::use_nothrow);
    }
    co_return self->init_done_ && self->state_ == State::Serving;
  }

  // Stops serving: every request waiting for A is answered EIO now, and so is every
  // new one for `grace`; then the mount closes. The grace lets readers whose READ was
  // failed see EIO on their retry, not a closed connection.
  void begin_drain(MountEnd reason, std::chrono::milliseconds grace) {
    if (state_ != State::Serving) {
      return;  // already draining (the first reason and deadline stand) or closed
    }
    state_ = State::Draining;
    drain_reason_ = reason;
    fail_pending();
    for (auto& [id, dir] : dirs_) {
      drop_dir_buffer(dir);
    }
    drain_timer_.expires_after(grace);
    drain_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (!ec) {
        if (const auto self = weak.lock()) {
          self->close(self->drain_reason_);
        }
      }
    });
  }

  void close(MountEnd reason) {
    if (state_ == State::Closed) {
      return;
    }
    if (in_process_) {
      // Never tear the session down under libfuse's feet.
      asio::post(executor_, [self = shared_from_this(), reason] { self->close(reason); });
      return;
    }
    state_ = State::Closed;
    drain_timer_.cancel();
    init_timer_.cancel();

    // No kernel request stays unanswered: whoever waits for A gets EIO now.
    fail_pending();
    for (auto& [id, dir] : dirs_) {
      drop_dir_buffer(dir);
    }
    dirs_.clear();
    if (channel_ok_) {
      // The kernel's lookup counts drop to zero at unmount without forgets: tell A, so
      // that its node table and open files end balanced.
      for (const auto& [node, state] : nodes_) {
        if (node != proto::kRootNode && state.lookups > 0) {
          forget_at_peer(node, state.lookups);
        }
      }
      for (const proto::HandleId handle : handles_) {
        release_at_peer(handle);
      }
      flush_forgets();
    }
    nodes_.clear();
    handles_.clear();
    forgets_.clear();
    known_nodes_ = 0;
    open_files_ = 0;

    // Stop watching the fd without closing it: fuse_session_unmount closes it first (so
    // that the unmount cannot wait on us), then detaches the mount lazily (umount2
    // MNT_DETACH as root, `fusermount3 -u -z` otherwise), so a busy mount never blocks
    // us; processes still inside it get ENOTCONN. After ENODEV (unmounted elsewhere)
    // it finds the connection gone and only closes the fd.
    if (fd_.is_open()) {
      fd_.release();
    }
    if (se_ != nullptr) {
      fuse_session_unmount(se_);
      fuse_session_destroy(se_);
      se_ = nullptr;
    }
    std::free(buf_.mem);
    buf_ = fuse_buf{};
    if (mountpoint_.created && ::rmdir(mountpoint_.path.c_str()) != 0) {
      log().warn("mount.rmdir_failed mountpoint={} error={}", mountpoint_.path,
                 std::strerror(errno));
    }
    ended_ = reason;
    log().info("mount.ended mountpoint={} reason={} requests={} failed_eio={}", mountpoint_.path,
               end_name(reason), requests_.load(), failed_eio_.load());
    closed_timer_.cancel();
  }

  // ---- libfuse operations (on the executor, inside fuse_session_process_buf) ----

  void on_init(fuse_conn_info* conn) {
    const unsigned want = FUSE_CAP_ASYNC_READ |       // several READs of one file in flight
                          FUSE_CAP_READDIRPLUS |      // ls -l in one go
                          FUSE_CAP_PARALLEL_DIROPS |  // lookups in one directory in parallel
                          FUSE_CAP_AUTO_INVAL_DATA |  // new mtime/size drops cached pages
                          FUSE_CAP_CACHE_SYMLINKS;    // link targets in the page cache
    conn->want |= want & conn->capable;
    // Every listing batch with attributes, not only the first (READDIRPLUS_AUTO): A sends
    // them anyway, and without them each later open costs a LOOKUP round trip to A
    // (bench/share.py: 1,000 small files 0.93 s -> 0.76 s on loopback).
    conn->want &= ~static_cast<unsigned>(FUSE_CAP_READDIRPLUS_AUTO);
    // Requests are read into one reused memory buffer (buf_), never spliced.
    conn->want &=
        ~static_cast<unsigned>(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
    // libfuse 3.14 derives the kernel's max_pages from max_write ((max_write - 1) /
    // page + 1, capped at 256 pages): that bounds every READ the kernel sends, so it
    // is set to A's max_read (a page multiple, 1 MiB with our exporter).
    conn->max_write = max_read_;
    // The kernel offers its current per-BDI read-ahead (128 KiB by default) and never
    // takes more here; apply_readahead() raises the BDI's own limit after INIT.
    conn->max_readahead = std::min(conn->max_readahead, options_.readahead);
    conn->max_background = options_.max_background;
    conn->congestion_threshold = options_.max_background * 3U / 4U;
    max_write_ = conn->max_write;
    max_readahead_ = conn->max_readahead;
    init_done_ = true;
    log().debug("fuse.init proto={}.{} want={:#x} max_write={} max_readahead={}", conn->proto_major,
                conn->proto_minor, conn->want, conn->max_write, conn->max_readahead);
  }

  void on_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
    const std::string_view n(name);
    if (!proto::is_valid_name(n)) {
      fuse_reply_err(req, n.size() > proto::kMaxName ? ENAMETOOLONG : ENOENT);
      return;
    }
    proto::LookupRequest lookup;
    lookup.parent = parent;
    lookup.name = std::string(n);
    send(req, std::move(lookup),
         [this](fuse_req_t r, proto::Response& answer) { answer_lookup(r, answer); });
  }

  void on_forget(fuse_req_t req, fuse_ino_t ino, std::uint64_t nlookup) {
    forget_node(ino, nlookup);
    fuse_reply_none(req);
  }

  void on_forget_multi(fuse_req_t req, std::size_t count, fuse_forget_data* forgets) {
    for (std::size_t i = 0; i < count; ++i) {
      forget_node(forgets[i].ino, forgets[i].nlookup);
    }
    fuse_reply_none(req);
  }

  void on_getattr(fuse_req_t req, fuse_ino_t ino) {
    proto::GetAttrRequest getattr;
    getattr.node = ino;
    send(req, getattr, [this, ino](fuse_req_t r, proto::Response& answer) {
      if (r == nullptr) {
        return;
      }
      const auto* attr = std::get_if<proto::AttrReply>(&answer.body);
      if (answer.error != 0 || attr == nullptr) {
        fuse_reply_err(r, answer.error != 0 ? to_errno(answer.error) : EIO);
        return;
      }
      struct stat st = to_stat(attr->attr);
      st.st_ino = ino;
      note_shown(ino, attr->attr);
      fuse_reply_attr(r, &st, seconds(options_.attr_timeout));
    });
  }

  void on_readlink(fuse_req_t req, fuse_ino_t ino) {
    proto::ReadLinkRequest readlink;
    readlink.node = ino;
    send(req, readlink, [](fuse_req_t r, proto::Response& answer) {
      if (r == nullptr) {
        return;
      }
      const auto* link = std::get_if<proto::ReadLinkReply>(&answer.body);
      if (answer.error != 0 || link == nullptr) {
        fuse_reply_err(r, answer.error != 0 ? to_errno(answer.error) : EIO);
        return;
      }
      // The target is shown as A has it; the kernel resolves it here, on B, so a link
      // pointing out of the share never reaches A's files.
      fuse_reply_readlink(r, link->target.c_str());
    });
  }

  void on_open(fuse_req_t req, fuse_ino_t ino, const fuse_file_info* fi) {
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC) != 0) {
      fuse_reply_err(req, EROFS);  // the kernel refuses first (ro mount); defence in depth
      return;
    }
    proto::OpenRequest open;
    open.node = ino;
    send(req, open, [this, ino](fuse_req_t r, proto::Response& answer) {
      const auto* opened = std::get_if<proto::OpenReply>(&answer.body);
      if (answer.error != 0 || opened == nullptr) {
        if (r != nullptr) {
          fuse_reply_err(r, answer.error != 0 ? to_errno(answer.error) : EIO);
        }
        return;
      }
      if (r == nullptr) {  // answered EIO already: the kernel will never release it
        release_at_peer(opened->handle);
        return;
      }
      NodeState& node = nodes_[ino];
      const FileVersion version = version_of(opened->attr);
      fuse_file_info out{};
      out.fh = opened->handle;
      // Close-to-open consistency: the kernel keeps the pages it cached only if the
      // file is the version it cached them from; otherwise it drops them at open.
      out.keep_cache = node.cached == version ? 1U : 0U;
      out.noflush = 1;                      // nothing to flush on a read-only share
      if (fuse_reply_open(r, &out) != 0) {  // interrupted: no release will come
        release_at_peer(opened->handle);
        return;
      }
      node.cached = version;
      handles_.insert(opened->handle);
      open_files_ = handles_.size();
      known_nodes_ = nodes_.size();
      if (node.shown != version) {
        // The kernel's attributes (size!) predate this version: mark them stale so the
        // next read or stat fetches them again. Attributes only (offset -1): no page
        // locks are taken, so this is safe on the thread that answers READs.
        node.shown = version;
        fuse_lowlevel_notify_inval_inode(se_, ino, -1, 0);
      }
    });
  }

  void on_read(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off,
               const fuse_file_info* fi) {
    reads_.fetch_add(1, std::memory_order_relaxed);
    const auto size32 = static_cast<std::uint32_t>(std::min<std::size_t>(size, UINT32_MAX));
    if (size32 > max_read_request_.load(std::memory_order_relaxed)) {
      max_read_request_ = size32;
    }
    if (size == 0) {
      fuse_reply_buf(req, nullptr, 0);
      return;
    }
    if (size > max_read_ || off < 0) {
      // Cannot happen: max_pages was negotiated from max_read_. A short answer would
      // read as zeros, so refuse instead.
      log().warn("fuse.read_too_large size={} max_read={}", size, max_read_);
      fuse_reply_err(req, EIO);
      return;
    }
    proto::ReadRequest read;
    read.handle = fi->fh;
    read.offset = static_cast<std::uint64_t>(off);
    read.length = size32;
    send(req, read, [this, ino, size](fuse_req_t r, proto::Response& answer) {
      if (r == nullptr) {
        return;
      }
      if (answer.error == ESTALE) {
        on_read_stale(ino);
      }
      const auto* data = std::get_if<proto::ReadReply>(&answer.body);
      if (answer.error != 0 || data == nullptr) {
        fuse_reply_err(r, answer.error != 0 ? to_errno(answer.error) : EIO);
        return;
      }
      const std::size_t n = std::min(data->data.size(), size);
      bytes_read_.fetch_add(n, std::memory_order_relaxed);
      // Raw bytes for a C API: uint8_t and char alias.
      fuse_reply_buf(r, reinterpret_cast<const char*>(data->data.data()), n);
    });
  }

  // ESTALE: the file changed on A since it was opened. The reader gets ESTALE (it
  // tells what happened, as NFS does; EIO would suggest a broken disk); the pages the
  // kernel holds are the old version, so the next open drops them (keep_cache off) and
  // refetches the attributes. We do not call fuse_lowlevel_notify_inval_inode on the
  // pages here: invalidating waits for pages locked by READs in flight, which only
  // this thread can answer, so it could deadlock.
  void on_read_stale(fuse_ino_t ino) {
    if (auto it = nodes_.find(ino); it != nodes_.end()) {
      it->second.cached.reset();
      it->second.shown.reset();
    }
  }

  void on_release(fuse_req_t req, const fuse_file_info* fi) {
    handles_.erase(fi->fh);
    open_files_ = handles_.size();
    release_at_peer(fi->fh);
    fuse_reply_err(req, 0);  // nobody waits for A's answer to a release
  }

  void on_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
    if (state_ != State::Serving) {
      reply_eio(req);
      return;
    }
    // A directory handle is local: A lists by node and cookie and has no opendir.
    const std::uint64_t id = next_dir_id_++;
    DirHandle dir;
    dir.node = ino;
    dirs_.emplace(id, std::move(dir));
    fi->fh = id;
    if (fuse_reply_open(req, fi) != 0) {
      dirs_.erase(id);
    }
  }

  void on_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off,
                  const fuse_file_info* fi, bool plus) {
    const auto it = dirs_.find(fi->fh);
    if (it == dirs_.end() || off < 0) {
      fuse_reply_err(req, EBADF);
      return;
    }
    DirHandle& dir = it->second;
    const auto cookie = static_cast<std::uint64_t>(off);
    if (dir.can_serve(cookie)) {
      serve_dir(req, dir, size, plus);
      return;
    }
    // A seek (rewinddir, or the kernel resuming before entries it could not use):
    // what the handle holds is not what comes next.
    drop_dir_buffer(dir);
    proto::ReadDirRequest list;
    list.node = ino;
    list.cookie = cookie;
    list.max_entries = kReadDirBatch;
    const std::uint64_t fh = fi->fh;
    send(req, list, [this, fh, cookie, size, plus](fuse_req_t r, proto::Response& answer) {
      auto* listing = std::get_if<proto::ReadDirReply>(&answer.body);
      if (answer.error != 0 || listing == nullptr) {
        if (r != nullptr) {
          fuse_reply_err(r, answer.error != 0 ? to_errno(answer.error) : EIO);
        }
        return;
      }
      const auto dir_it = dirs_.find(fh);
      if (r == nullptr || dir_it == dirs_.end()) {
        // Every listed entry added a lookup at A that the kernel will never own.
        for (const auto& entry : listing->entries) {
          forget_at_peer(entry.attr.node, 1);
        }
        if (r != nullptr) {
          fuse_reply_err(r, EBADF);
        }
        return;
      }
      DirHandle& d = dir_it->second;
      drop_dir_buffer(d);
      d.valid = true;
      d.position = cookie;
      d.end = listing->end || listing->entries.empty();
      d.entries = std::move(listing->entries);
      d.next = 0;
      serve_dir(r, d, size, plus);
    });
  }

  void on_releasedir(fuse_req_t req, const fuse_file_info* fi) {
    if (const auto it = dirs_.find(fi->fh); it != dirs_.end()) {
      drop_dir_buffer(it->second);
      dirs_.erase(it);
    }
    fuse_reply_err(req, 0);
  }

  void on_statfs(fuse_req_t req, fuse_ino_t ino) {
    proto::StatFsRequest statfs;
    statfs.node = ino;
    send(req, statfs, [](fuse_req_t r, proto::Response& answer) {
      if (r == nullptr) {
        return;
      }
      const auto* fs = std::get_if<proto::StatFsReply>(&answer.body);
      if (answer.error != 0 || fs == nullptr) {
        fuse_reply_err(r, answer.error != 0 ? to_errno(answer.error) : EIO);
        return;
      }
      struct statvfs st{};
      st.f_bsize = fs->block_size;
      st.f_frsize = fs->fragment_size != 0 ? fs->fragment_size : fs->block_size;
      st.f_blocks = fs->blocks;
      st.f_bfree = fs->blocks_free;
      st.f_bavail = fs->blocks_available;
      st.f_files = fs->files;
      st.f_ffree = fs->files_free;
      st.f_favail = fs->files_free;
      st.f_namemax = fs->name_max;
      fuse_reply_statfs(r, &st);
    });
  }

 private:
  enum class State {
    Serving,   // requests go to A
    Draining,  // unmounting or the channel failed: every request is answered EIO
    Closed,    // unmounted, session destroyed
  };
  enum class Received { Empty, More, Ended };  // what receive_requests() left

  // What the kernel holds of a node.
  struct NodeState {
    std::uint64_t lookups = 0;          // kernel lookups not yet forgotten
    std::optional<FileVersion> cached;  // version whose pages the kernel may hold
    std::optional<FileVersion> shown;   // version of the attributes the kernel holds
  };

  // An open directory: a batch from A being handed to the kernel page by page.
  struct DirHandle {
    NodeId node = 0;
    std::vector<proto::DirEntry> entries;  // fetched, entries[next..] not yet given
    std::size_t next = 0;
    std::uint64_t position = 0;  // the cookie after which entries[next] comes
    bool end = false;            // A has nothing after `entries`
    bool valid = false;          // the fields above describe a fetched listing
    [[nodiscard]] bool can_serve(std::uint64_t cookie) const {
      return valid && cookie == position && (next < entries.size() || end);
    }
  };

  // Runs with the kernel request (nullptr when it was already answered EIO: then only
  // A's side effects are undone) and A's answer (error or body).
  using Answer = std::function<void(fuse_req_t, proto::Response&)>;

  static const char* end_name(MountEnd e) {
    switch (e) {
      case MountEnd::Mounted:
        return "mounted";
      case MountEnd::Unmounted:
        return "unmounted";
      case MountEnd::KernelUnmounted:
        return "kernel_unmounted";
      case MountEnd::ChannelFailed:
        return "channel_failed";
    }
    return "unknown";
  }

  // Reads and handles the kernel's queued requests, at most kMaxRequestsPerTurn.
  Received receive_requests() {
    for (int i = 0; i < kMaxRequestsPerTurn; ++i) {
      const int res = fuse_session_receive_buf(se_, &buf_);
      if (res == -EINTR) {
        continue;
      }
      if (res == -EAGAIN) {
        return Received::Empty;
      }
      if (res <= 0 || fuse_session_exited(se_) != 0) {
        // 0: libfuse saw ENODEV, i.e. the filesystem was unmounted (fusermount3 -u,
        // umount) or its connection aborted; anything else is a broken device.
        if (res < 0) {
          log().error("fuse.receive_failed mountpoint={} error={}", mountpoint_.path,
                      std::strerror(-res));
        }
        close(MountEnd::KernelUnmounted);
        return Received::Ended;
      }
      requests_.fetch_add(1, std::memory_order_relaxed);
      const bool was_init = init_done_;
      in_process_ = true;
      fuse_session_process_buf(se_, &buf_);
      in_process_ = false;
      if (!was_init && init_done_) {
        apply_readahead();
        init_timer_.cancel();
      }
      if (state_ == State::Closed) {
        return Received::Ended;
      }
    }
    return Received::More;
  }

  // The kernel caps read-ahead at its BDI's read_ahead_kb (128 KiB by default, and
  // INIT can only lower it); as root we raise it to options_.readahead so several
  // 1 MiB READs are in flight. The BDI of a FUSE mount is named after its st_dev,
  // found in mountinfo (a stat() on the mount would wait for this very thread).
  void apply_readahead() {
    const auto mount = detail::find_mount(mountpoint_.path);
    if (!mount || mount->fs_type != detail::kFuseType) {
      return;
    }
    const std::string path = "/sys/class/bdi/" + std::to_string(mount->major) + ":" +
                             std::to_string(mount->minor) + "/read_ahead_kb";
    if (::geteuid() == 0) {
      const std::string value = std::to_string(options_.readahead / 1024) + "\n";
      const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd >= 0) {
        if (::write(fd, value.data(), value.size()) < 0) {
          log().debug("mount.readahead_failed path={} error={}", path, std::strerror(errno));
        }
        ::close(fd);
      }
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char text[32] = {};
      const ssize_t n = ::read(fd, text, sizeof(text) - 1);
      ::close(fd);
      if (n > 0) {
        readahead_kb_ = static_cast<std::uint32_t>(std::strtoul(text, nullptr, 10));
      }
    }
    log().info("mount.ready mountpoint={} max_read={} readahead_kb={}", mountpoint_.path,
               max_write_.load(), readahead_kb_.load());
  }

  void send(fuse_req_t req, proto::RequestBody body, Answer answer) {
    if (state_ != State::Serving) {
      reply_eio(req);
      return;
    }
    const std::uint64_t token = next_token_++;
    pending_.emplace(token, req);
    in_flight_ = pending_.size();
    call_peer(token, std::move(body), std::make_shared<const Answer>(std::move(answer)), 0);
    // Every wait has a bound: a peer whose disk hangs (an NFS mount inside the share)
    // must not keep B's callers in uninterruptible sleep. A late answer then finds no
    // kernel request and takes the same path as one after EIO (a late Lookup is
    // forgotten at A again).
    auto deadline = std::make_unique<asio::steady_timer>(executor_, options_.answer_deadline);
    deadline->async_wait([weak = weak_from_this(), token](boost::system::error_code ec) {
      const auto self = weak.lock();
      if (ec || !self) {
        return;  // answered in time (cancelled), or the mount is gone
      }
      self->deadlines_.erase(token);
      if (const auto it = self->pending_.find(token); it != self->pending_.end()) {
        log().warn("fuse.request_timeout after_ms={}", self->options_.answer_deadline.count());
        fuse_req_t waiting = it->second;
        self->pending_.erase(it);
        self->in_flight_ = self->pending_.size();
        self->reply_eio(waiting);
      }
    });
    deadlines_.emplace(token, std::move(deadline));
  }

  void call_peer(std::uint64_t token, proto::RequestBody body, std::shared_ptr<const Answer> answer,
                 int attempt) {
    peer_calls_.fetch_add(1, std::memory_order_relaxed);
    proto::RequestBody copy = body;  // kept for a retry after EAGAIN
    channel_->call(std::move(copy),
                   [weak = weak_from_this(), token, body = std::move(body),
                    answer = std::move(answer), attempt](base::Result<proto::Response> result) {
                     if (const auto self = weak.lock()) {
                       self->complete(token, std::move(result), body, answer, attempt);
                     }
                   });
  }

  void complete(std::uint64_t token, base::Result<proto::Response> result,
                const proto::RequestBody& body, const std::shared_ptr<const Answer>& answer,
                int attempt) {
    const auto it = pending_.find(token);
    if (result && result->error == EAGAIN && it != pending_.end() && state_ == State::Serving &&
        attempt < kMaxBusyRetries) {
      // A is busy (too much in flight): a reader of a regular file must not see EAGAIN,
      // so ask again a little later.
      retry_later(token, body, answer, attempt + 1);
      return;
    }
    fuse_req_t req = nullptr;
    if (it != pending_.end()) {
      req = it->second;
      pending_.erase(it);
      in_flight_ = pending_.size();
    }
    if (const auto d = deadlines_.find(token); d != deadlines_.end()) {
      d->second->cancel();  // its handler sees operation_aborted and does nothing
      deadlines_.erase(d);
    }
    if (!result) {
      if (req != nullptr) {
        reply_eio(req);
      }
      log().debug("fuse.channel_error error={}", result.error().message());
      fail_channel();
      return;
    }
    (*answer)(req, *result);
  }

  void retry_later(std::uint64_t token, proto::RequestBody body,
                   std::shared_ptr<const Answer> answer, int attempt) {
    const auto timer = std::make_shared<asio::steady_timer>(
        executor_, kBusyRetryDelay * (1 << std::min(attempt, kBusyBackoffSteps)));
    timer->async_wait([weak = weak_from_this(), timer, token, body = std::move(body),
                       answer = std::move(answer), attempt](boost::system::error_code) {
      const auto self = weak.lock();
      if (self && self->state_ == State::Serving && self->pending_.contains(token)) {
        self->call_peer(token, body, answer, attempt);
      }
    });
  }

  void answer_lookup(fuse_req_t req, proto::Response& answer) {
    const auto* entry = std::get_if<proto::EntryReply>(&answer.body);
    if (answer.error == 0 && (entry == nullptr || !is_child_node(entry->attr.node))) {
      if (req != nullptr) {
        fuse_reply_err(req, EIO);  // A broke the protocol
      }
      return;
    }
    if (req == nullptr) {
      if (answer.error == 0) {
        forget_at_peer(entry->attr.node, 1);
      }
      return;
    }
    if (answer.error == ENOENT) {
      // A negative entry: the kernel remembers the name is missing for a while.
      fuse_entry_param negative{};
      negative.entry_timeout = seconds(options_.negative_timeout);
      fuse_reply_entry(req, &negative);
      return;
    }
    if (answer.error != 0) {
      fuse_reply_err(req, to_errno(answer.error));
      return;
    }
    const fuse_entry_param e = entry_param(entry->attr);
    if (fuse_reply_entry(req, &e) == 0) {
      remember(entry->attr, 1);
    } else {
      forget_at_peer(entry->attr.node, 1);  // interrupted: the kernel did not take it
    }
  }

  // Fills one readdir answer of at most `size` bytes from the handle's batch.
  void serve_dir(fuse_req_t req, DirHandle& dir, std::size_t size, bool plus) {
    if (dir_buffer_.size() < size) {
      dir_buffer_.resize(size);  // grows to the kernel's page size once, then reused
    }
    std::size_t used = 0;
    std::size_t i = dir.next;
    for (; i < dir.entries.size(); ++i) {
      const proto::DirEntry& entry = dir.entries[i];
      char* at = dir_buffer_.data() + used;
      const auto cookie = static_cast<off_t>(entry.cookie);
      std::size_t need = 0;
      if (plus) {
        const fuse_entry_param e = entry_param(entry.attr);
        need = fuse_add_direntry_plus(req, at, size - used, entry.name.c_str(), &e, cookie);
      } else {
        struct stat st{};
        st.st_ino = entry.attr.node;
        st.st_mode = entry.attr.mode;
        need = fuse_add_direntry(req, at, size - used, entry.name.c_str(), &st, cookie);
      }
      if (need > size - used) {
        break;
      }
      used += need;
    }
    const bool delivered = fuse_reply_buf(req, dir_buffer_.data(), used) == 0;
    // Lookup counts: a READDIRPLUS entry the kernel received is one lookup the kernel
    // now owns (it forgets it later, even for entries it could not use); a plain
    // READDIR entry, or an answer that was lost, owns none, so A forgets it now.
    for (std::size_t j = dir.next; j < i; ++j) {
      const proto::Attr& attr = dir.entries[j].attr;
      if (plus && delivered && is_child_node(attr.node)) {
        remember(attr, 1);
      } else {
        forget_at_peer(attr.node, 1);
      }
    }
    if (i > dir.next) {
      dir.position = dir.entries[i - 1].cookie;
    }
    dir.next = i;
    if (dir.next == dir.entries.size()) {
      dir.entries.clear();
      dir.next = 0;
    }
  }

  // Entries fetched but never handed to the kernel: A counted a lookup for each.
  void drop_dir_buffer(DirHandle& dir) {
    for (std::size_t j = dir.next; j < dir.entries.size(); ++j) {
      forget_at_peer(dir.entries[j].attr.node, 1);
    }
    dir.entries.clear();
    dir.next = 0;
    dir.valid = false;
  }

  // Generation 0 always: ReadDir entries carry none, and the kernel takes a generation
  // that differs between a lookup and a READDIRPLUS entry for node-id reuse and marks
  // the inode bad. A never reuses node ids, so the generation is not needed.
  [[nodiscard]] fuse_entry_param entry_param(const proto::Attr& attr) const {
    fuse_entry_param e{};
    e.ino = attr.node;
    e.generation = 0;
    e.attr = to_stat(attr);
    e.attr_timeout = seconds(options_.attr_timeout);
    e.entry_timeout = seconds(options_.entry_timeout);
    return e;
  }

  [[nodiscard]] struct stat to_stat(const proto::Attr& a) const {
    struct stat st{};
    st.st_ino = a.node;
    st.st_mode = a.mode;  // type and permission bits as on A
    st.st_nlink = a.nlink;
    // Files show as the mounting user's (sshfs idmap=user): A's uids mean nothing here.
    st.st_uid = uid_;
    st.st_gid = gid_;
    st.st_size = static_cast<off_t>(std::min<std::uint64_t>(a.size, LLONG_MAX));
    st.st_blocks = static_cast<blkcnt_t>(std::min<std::uint64_t>(a.blocks, LLONG_MAX));
    st.st_blksize = static_cast<blksize_t>(a.block_size);
    st.st_atim.tv_sec = a.atime.seconds;
    st.st_atim.tv_nsec = a.atime.nanoseconds;
    st.st_mtim.tv_sec = a.mtime.seconds;
    st.st_mtim.tv_nsec = a.mtime.nanoseconds;
    st.st_ctim.tv_sec = a.ctime.seconds;
    st.st_ctim.tv_nsec = a.ctime.nanoseconds;
    return st;
  }

  // The kernel took `lookups` lookups of the node.
  void remember(const proto::Attr& attr, std::uint64_t lookups) {
    NodeState& node = nodes_[attr.node];
    node.lookups += lookups;
    node.shown = version_of(attr);
    known_nodes_ = nodes_.size();
  }

  void note_shown(fuse_ino_t ino, const proto::Attr& attr) {
    if (const auto it = nodes_.find(ino); it != nodes_.end()) {
      it->second.shown = version_of(attr);
    }
  }

  void forget_node(fuse_ino_t ino, std::uint64_t lookups) {
    if (const auto it = nodes_.find(ino); it != nodes_.end() && ino != proto::kRootNode) {
      it->second.lookups -= std::min(lookups, it->second.lookups);
      if (it->second.lookups == 0) {
        nodes_.erase(it);  // its pages went with the kernel's inode
        known_nodes_ = nodes_.size();
      }
    }
    forget_at_peer(ino, lookups);
  }

  // Forgets are batched: one Forget per turn of the io_context (or per kMaxForgets).
  void forget_at_peer(NodeId node, std::uint64_t lookups) {
    if (!channel_ok_ || node == 0 || lookups == 0) {
      return;
    }
    forgets_.emplace_back(node, lookups);
    if (forgets_.size() >= proto::kMaxForgets) {
      flush_forgets();
      return;
    }
    if (!flush_posted_) {
      flush_posted_ = true;
      asio::post(executor_, [weak = weak_from_this()] {
        if (const auto self = weak.lock()) {
          self->flush_posted_ = false;
          self->flush_forgets();
        }
      });
    }
  }

  void flush_forgets() {
    if (forgets_.empty() || !channel_ok_) {
      forgets_.clear();
      return;
    }
    proto::ForgetRequest forget;
    forget.nodes = std::move(forgets_);
    forgets_.clear();
    forgets_sent_.fetch_add(forget.nodes.size(), std::memory_order_relaxed);
    channel_->post(std::move(forget));
  }

  void release_at_peer(proto::HandleId handle) {
    if (!channel_ok_) {
      return;
    }
    proto::ReleaseRequest release;
    release.handle = handle;
    peer_calls_.fetch_add(1, std::memory_order_relaxed);
    channel_->call(release, [weak = weak_from_this()](const base::Result<proto::Response>& result) {
      if (!result) {
        if (const auto self = weak.lock()) {
          self->fail_channel();
        }
      }
    });
  }

  void reply_eio(fuse_req_t req) {
    failed_eio_.fetch_add(1, std::memory_order_relaxed);
    fuse_reply_err(req, EIO);
  }

  void fail_pending() {
    for (auto& [token, timer] : deadlines_) {
      timer->cancel();
    }
    deadlines_.clear();
    auto pending = std::move(pending_);
    pending_.clear();
    in_flight_ = 0;
    for (const auto& [token, req] : pending) {
      reply_eio(req);
    }
  }

  void fail_channel() {
    if (channel_ok_) {
      log().warn("mount.channel_failed mountpoint={} pending={}", mountpoint_.path,
                 pending_.size());
    }
    channel_ok_ = false;
    forgets_.clear();
    // Keep answering EIO for a moment (readers see EIO rather than ENOTCONN), then go.
    begin_drain(MountEnd::ChannelFailed, options_.failed_linger);
  }

  const io::Executor executor_;
  const std::shared_ptr<proto::Channel> channel_;
  const MountOptions options_;
  const detail::PreparedMountpoint mountpoint_;
  const std::uint32_t max_read_;  // A's max_read, a page multiple
  const uid_t uid_;
  const gid_t gid_;

  // All below on the executor only, except the atomics.
  fuse_session* se_ = nullptr;
  fuse_buf buf_{};  // the one request buffer (libfuse allocates it once)
  asio::posix::stream_descriptor fd_;
  asio::steady_timer drain_timer_;
  asio::steady_timer init_timer_;
  asio::steady_timer closed_timer_;  // cancelled when closed: wakes wait_unmounted()
  State state_ = State::Serving;
  MountEnd drain_reason_ = MountEnd::Unmounted;
  bool channel_ok_ = true;
  bool init_done_ = false;
  bool in_process_ = false;  // inside fuse_session_process_buf
  bool flush_posted_ = false;

  std::uint64_t next_token_ = 1;
  std::unordered_map<std::uint64_t, fuse_req_t> pending_;  // kernel requests waiting for A
  // Their answer deadlines (MountOptions::answer_deadline), cancelled when A answers.
  std::unordered_map<std::uint64_t, std::unique_ptr<asio::steady_timer>> deadlines_;
  std::unordered_map<NodeId, NodeState> nodes_;
  std::unordered_set<proto::HandleId> handles_;
  std::uint64_t next_dir_id_ = 1;
  std::unordered_map<std::uint64_t, DirHandle> dirs_;
  std::vector<char> dir_buffer_;
  std::vector<std::pair<NodeId, std::uint64_t>> forgets_;

  std::atomic<MountEnd> ended_{MountEnd::Mounted};
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> peer_calls_{0};
  std::atomic<std::uint64_t> in_flight_{0};
  std::atomic<std::uint64_t> failed_eio_{0};
  std::atomic<std::uint64_t> reads_{0};
  std::atomic<std::uint64_t> bytes_read_{0};
  std::atomic<std::uint32_t> max_read_request_{0};
  std::atomic<std::uint64_t> forgets_sent_{0};
  std::atomic<std::uint64_t> known_nodes_{0};
  std::atomic<std::uint64_t> open_files_{0};
  std::atomic<std::uint32_t> max_write_{0};
  std::atomic<std::uint32_t> max_readahead_{0};
  std::atomic<std::uint32_t> readahead_kb_{0};
};

MountImpl& impl_of(fuse_req_t req) { return *static_cast<MountImpl*>(fuse_req_userdata(req)); }

void op_init(void* userdata, fuse_conn_info* conn) {
  static_cast<MountImpl*>(userdata)->on_init(conn);
}
void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  impl_of(req).on_lookup(req, parent, name);
}
void op_forget(fuse_req_t req, fuse_ino_t ino, std::uint64_t nlookup) {
  impl_of(req).on_forget(req, ino, nlookup);
}
void op_forget_multi(fuse_req_t req, std::size_t count, fuse_forget_data* forgets) {
  impl_of(req).on_forget_multi(req, count, forgets);
}
void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* /*fi*/) {
  impl_of(req).on_getattr(req, ino);
}
void op_readlink(fuse_req_t req, fuse_ino_t ino) { impl_of(req).on_readlink(req, ino); }
void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  impl_of(req).on_open(req, ino, fi);
}
void op_read(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi) {
  impl_of(req).on_read(req, ino, size, off, fi);
}
void op_release(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  impl_of(req).on_release(req, fi);
}
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  impl_of(req).on_opendir(req, ino, fi);
}
void op_readdir(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off, fuse_file_info* fi) {
  impl_of(req).on_readdir(req, ino, size, off, fi, false);
}
void op_readdirplus(fuse_req_t req, fuse_ino_t ino, std::size_t size, off_t off,
                    fuse_file_info* fi) {
  impl_of(req).on_readdir(req, ino, size, off, fi, true);
}
void op_releasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  impl_of(req).on_releasedir(req, fi);
}
void op_statfs(fuse_req_t req, fuse_ino_t ino) { impl_of(req).on_statfs(req, ino); }

// Hello with a bound. Returns A's max_read rounded down to a page (the kernel's READs
// come in whole pages). Errors: HelloFailed, HelloRejected, VersionMismatch.
io::Task<base::Result<std::uint32_t>> say_hello(io::Executor executor,
                                                std::shared_ptr<proto::Channel> channel,
                                                bool want_write,
                                                std::chrono::milliseconds timeout) {
  struct State {
    explicit State(const io::Executor& e) : timer(e) {}
    std::optional<base::Result<proto::Response>> answer;
    asio::steady_timer timer;
  };
  const auto state = std::make_shared<State>(executor);
  state->timer.expires_after(timeout);
  proto::HelloRequest hello;
  hello.min_version = proto::kVersion;
  hello.max_version = proto::kVersion;
  hello.want_write = want_write;
  channel->call(hello, [state](base::Result<proto::Response> answer) {
    state->answer = std::move(answer);
    state->timer.cancel();
  });
  if (!state->answer) {  // the answer never comes inside call(), but be exact
    co_await state->timer.async_wait(io::use_nothrow);
  }
  const std::optional<base::Result<proto::Response>> result = std::move(state->answer);
  if (!result.has_value()) {
    log().error("mount.hello_failed error=timeout");
    co_return MountErrc::HelloFailed;
  }
  if (!result->has_value()) {
    log().error("mount.hello_failed error={}", result->error().message());
    co_return MountErrc::HelloFailed;
  }
  const proto::Response& answer = result->value();
  const auto* reply = std::get_if<proto::HelloReply>(&answer.body);
  if (answer.error == EPROTONOSUPPORT) {
    log().error("mount.version_mismatch ours={}", proto::kVersion);
    co_return MountErrc::VersionMismatch;
  }
  if (answer.error != 0 || reply == nullptr) {
    log().error("mount.hello_rejected errno={}", answer.error);  // EPROTO: a second Hello
    co_return MountErrc::HelloRejected;
  }
  if (reply->version != proto::kVersion) {
    log().error("mount.version_mismatch ours={} theirs={}", proto::kVersion, reply->version);
    co_return MountErrc::VersionMismatch;
  }
  const std::uint32_t max_read = std::min(reply->max_read, proto::kMaxRead) / kPageSize * kPageSize;
  if (max_read == 0) {
    log().error("mount.hello_rejected max_read={}", reply->max_read);
    co_return MountErrc::HelloRejected;
  }
  if (want_write && !reply->writable) {
    log().warn("mount.read_only reason=peer_shares_read_only");
  }
  co_return max_read;
}

}  // namespace

const boost::system::error_category& mount_category() noexcept { return kCategory; }

std::string default_mountpoint(std::string_view name) { return "/tmp/p2p-" + std::string(name); }

int clean_stale_mounts(std::string_view prefix) { return detail::clean_stale_mounts_under(prefix); }

io::Task<base::Result<std::shared_ptr<Mount>>> Mount::start(io::Executor executor,
                                                            std::shared_ptr<proto::Channel> channel,
                                                            MountOptions options) {
  const auto hello = co_await say_hello(executor, channel, options.writable, options.hello_timeout);
  if (!hello) {
    co_return hello.error();
  }
  auto prepared = detail::prepare_mountpoint(options.mountpoint);
  if (!prepared) {
    co_return prepared.error();
  }
  if (prepared->stale_cleaned > 0) {
    log().warn("mount.stale_cleaned mountpoint={} count={}", prepared->path,
               prepared->stale_cleaned);
  }
  auto self = std::make_shared<MountImpl>(executor, std::move(channel), std::move(options),
                                          std::move(*prepared), *hello);
  if (auto mounted = self->mount_fuse(); !mounted) {
    self->abandon();
    co_return mounted.error();
  }
  asio::co_spawn(executor, MountImpl::serve(self), [](std::exception_ptr e) {
    io::log_task_exception(std::move(e), "share.fuse.serve");
  });
  if (!co_await MountImpl::wait_init(self)) {
    log().error("mount.no_init mountpoint={}", self->mountpoint());
    self->close(MountEnd::Unmounted);
    co_return MountErrc::MountFailed;
  }
  co_return std::shared_ptr<Mount>(std::move(self));
}

}  // namespace peertun::share
