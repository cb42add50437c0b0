#pragma once
// share::Mount: peer B's side of the folder share. Mounts a FUSE filesystem (libfuse3
// low-level API, driven from the process's io_context) whose every kernel request
// becomes a share-protocol request on a proto::Channel; the kernel is answered when
// the peer's answer arrives, so a slow peer never blocks the kernel queue and many
// requests are in flight at once.
//
// What the kernel sees: A's tree, read-only (MountOptions::writable is for `--rw`,
// later), every file owned by the mounting user (like sshfs idmap=user) with A's mode
// bits, sizes and times; inode numbers are A's node ids (the root is node 1 on both
// sides). Attributes, names and data are cached by the kernel (timeouts below); a file
// whose size or mtime changed on A is re-read from A at its next open (close-to-open,
// as NFS). Reads reach 1 MiB per request (proto::kMaxRead) with a large read-ahead.
//
// Errors the kernel passes to readers: A's errno answers as they are (ENOENT, EACCES,
// ...); ESTALE from a read of a file that changed on A since it was opened (reopen it
// for the new content); EIO when the channel failed or the mount is going away.
//
// Threading: everything runs on `executor` (one thread). unmount(), channel_failed(),
// unmounted(), end_reason(), stats() and mountpoint() may be called from any thread.
// The kernel blocks a caller until this loop answers, so never touch the mountpoint
// from the executor's own thread.
//
// Lifetime: while mounted the Mount keeps itself alive; it ends after unmount(), after
// someone else unmounted it (fusermount3 -u, umount), or `failed_linger` after the
// channel failed. Dropping the last shared_ptr does not unmount. Call unmount() and let
// wait_unmounted() complete before the io_context stops.
//
// libfuse is private to this module (src/share/fuse/*.cc); this header has no fuse types.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "base/error.h"
#include "io/asio.h"
#include "share/proto/channel.h"

namespace peertun::share {

enum class MountErrc {
  HelloFailed = 1,         // no answer to Hello: the channel failed or hello_timeout passed
  HelloRejected,           // A answered Hello with an errno
  VersionMismatch,         // A speaks no version this build knows
  BadMountpoint,           // not a directory, a symlink, or cannot be inspected
  MountpointNotEmpty,      // a plain directory with files in it: refused, never hidden
  MountpointBusy,          // another filesystem (not a peertun mount) is mounted there
  CannotCreateMountpoint,  // mkdir failed (missing parent, permission)
  StaleMountNotCleaned,    // a dead peertun mount is there and could not be unmounted
  FuseUnavailable,         // /dev/fuse missing or libfuse could not create a session
  MountFailed,             // the mount itself failed, or the kernel sent no INIT in time
};
[[nodiscard]] const boost::system::error_category& mount_category() noexcept;
[[nodiscard]] inline boost::system::error_code make_error_code(MountErrc e) noexcept {
  return {static_cast<int>(e), mount_category()};
}

struct MountOptions {
  // Where to mount; created (0700) when missing and removed again at unmount, kept when
  // it existed (it must then be an empty directory). A dead peertun mount left there
  // by a crashed run is unmounted first.
  std::string mountpoint;
  // `--rw` (a later step): asks A for a writable share. Mounted read-only for now.
  bool writable = false;
  // Shown as the source in /proc/mounts and `df` (e.g. "peertun:<nameplate>"). World
  // readable: never put a join-code secret here.
  std::string fsname = "peertun";

  // Kernel cache lifetimes. Nothing tells B when A's folder changes, so these bound how
  // stale a name or an `ls -l` can be; each miss costs a round trip to A (tens of ms
  // over the internet), so zero would make every stat() a network call. NFS revalidates
  // attributes after 3..60 s, sshfs after 20 s; we pick a few seconds, and open()
  // revalidates the file regardless (close-to-open), so data is never older than the
  // open that reads it.
  std::chrono::milliseconds entry_timeout{std::chrono::seconds(5)};  // name -> node
  std::chrono::milliseconds attr_timeout{std::chrono::seconds(2)};   // node -> stat
  // A name A said does not exist (shells and tools probe many).
  std::chrono::milliseconds negative_timeout{std::chrono::seconds(1)};

  // Read-ahead per open file, in bytes (set on the mount's BDI; needs root, else the
  // kernel's default 128 KiB stays). Several 1 MiB reads in flight hide the round trip:
  // throughput ~ readahead / RTT.
  std::uint32_t readahead = 8U << 20;
  // Background requests (read-ahead) the kernel keeps in flight at once: with 1 MiB
  // READs, 32 MiB, half of what our exporter accepts in flight (it answers EAGAIN
  // beyond, which the mount retries).
  std::uint16_t max_background = 32;

  std::chrono::milliseconds hello_timeout{std::chrono::seconds(10)};
  // How long a kernel request may wait for A's answer before its caller gets EIO (every
  // wait has a bound: a hung disk on A must not hang B's processes). A live peer answers
  // in round trips; a minute covers a slow disk and a long path.
  std::chrono::milliseconds answer_deadline{std::chrono::seconds(60)};
  // After the channel failed: how long every request is answered EIO (readers see EIO,
  // not ENOTCONN) before the mount goes away.
  std::chrono::milliseconds failed_linger{std::chrono::seconds(1)};
};

// Detaches the peertun mounts below `prefix` (e.g. "/tmp/p2p-") whose serving process is
// gone (crashed, killed), and removes their empty directories: a crashed run's default
// mountpoint has a code no later run will use again. Live mounts are left alone.
// Returns how many were cleaned.
int clean_stale_mounts(std::string_view prefix);

// "/tmp/p2p-<name>": the default mountpoint (DESIGN.md: /tmp/p2p-<join code>). The path
// is visible to every user in /proc/mounts: a join code is fine there only because the
// relay burns it when B joins, before anything is mounted.
[[nodiscard]] std::string default_mountpoint(std::string_view name);

// Why a mount ended.
enum class MountEnd {
  Mounted,          // not ended yet
  Unmounted,        // unmount() was called
  KernelUnmounted,  // someone else unmounted it (fusermount3 -u, umount) or aborted it
  ChannelFailed,    // the channel failed (peer gone): requests got EIO, then unmounted
};

// Counters for logs and tests; a snapshot, readable from any thread.
struct MountStats {
  std::uint64_t requests = 0;          // kernel requests handled
  std::uint64_t peer_calls = 0;        // requests sent to A
  std::uint64_t in_flight = 0;         // kernel requests waiting for A right now
  std::uint64_t failed_eio = 0;        // answered EIO because the channel failed/unmount
  std::uint64_t reads = 0;             // READ requests
  std::uint64_t bytes_read = 0;        // bytes answered to READs
  std::uint32_t max_read_request = 0;  // largest READ the kernel asked for
  std::uint64_t forgets_sent = 0;      // lookups forgotten at A (Forget entries)
  std::uint64_t known_nodes = 0;       // nodes the kernel holds (the root included)
  std::uint64_t open_files = 0;        // A handles held for the kernel
  // Negotiated at INIT.
  std::uint32_t max_write = 0;      // what max_pages derives from (largest READ possible)
  std::uint32_t max_readahead = 0;  // the kernel's offer, accepted
  std::uint32_t readahead_kb = 0;   // the BDI's read_ahead_kb after we set it (0: unknown)
};

class Mount {
 public:
  // Says Hello to A (checks the version), prepares the mountpoint (creates it, or
  // cleans a stale peertun mount there), mounts, starts serving and waits for the
  // kernel's INIT. Errors: MountErrc.
  [[nodiscard]] static io::Task<base::Result<std::shared_ptr<Mount>>> start(
      io::Executor executor, std::shared_ptr<proto::Channel> channel, MountOptions options);

  Mount() = default;
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  virtual ~Mount() = default;

  // Clean unmount (Ctrl-C, SIGTERM, the app's decision): requests waiting for A are
  // answered EIO at once, and so is every request for a short drain (250 ms, so readers
  // see EIO rather than a closed connection); then the mount is detached (lazily:
  // processes still inside get ENOTCONN), A is told to forget our nodes and handles,
  // and the mountpoint is removed if start() created it. Idempotent; returns at once
  // (see wait_unmounted()).
  virtual void unmount() = 0;

  // The channel is gone (the app learnt it first; call errors are detected too): every
  // pending and later request is answered EIO, then after `failed_linger` the mount is
  // unmounted as by unmount().
  virtual void channel_failed() = 0;

  // Completes when the mount has ended (at once if it has). On the executor.
  [[nodiscard]] virtual io::Task<void> wait_unmounted() = 0;

  [[nodiscard]] virtual bool unmounted() const = 0;
  [[nodiscard]] virtual MountEnd end_reason() const = 0;
  [[nodiscard]] virtual const std::string& mountpoint() const = 0;  // absolute, canonical
  [[nodiscard]] virtual MountStats stats() const = 0;
};

}  // namespace peertun::share

template <>
struct boost::system::is_error_code_enum<peertun::share::MountErrc> : std::true_type {};
