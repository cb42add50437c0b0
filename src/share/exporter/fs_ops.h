#pragma once
// The exporter's filesystem layer: every syscall the exporter makes on the shared tree.
// Runs on the exporter's disk threads; stateless and thread-safe (it only reads `Tree`).
//
// Confinement: callers pass a node's path relative to the root, built only from
// components that passed proto::is_valid_name, and the identity they expect there. Every
// path is resolved with openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS): a symlink anywhere on the way fails with ELOOP, an escape with
// EXDEV, and a final symlink is only ever opened as itself (O_PATH | O_NOFOLLOW). A node
// whose path is gone or now names another file answers ESTALE.
//
// Errors are errno values in boost::system::system_category.

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "share/proto/messages.h"
#include "wire/bytes.h"

namespace peertun::share::detail {

// An owned file descriptor (closed on destruction).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const { return fd_; }
  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset();

 private:
  int fd_ = -1;
};

// Which file a node is: device, inode and file type (a reused inode number of another
// type is another file).
struct Identity {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  std::uint32_t type = 0;  // st_mode & S_IFMT
  bool operator==(const Identity&) const = default;
};
[[nodiscard]] Identity identity_of(const struct stat& st);
// A non-directory with one link: its (dev, ino) met under another path may be a new file.
[[nodiscard]] inline bool is_single_link(const struct stat& st) {
  return !S_ISDIR(st.st_mode) && st.st_nlink == 1;
}

// What a Read compares with the Open: any difference means the file changed.
struct Snapshot {
  std::uint64_t size = 0;
  proto::Timestamp mtime;
  proto::Timestamp ctime;
  bool operator==(const Snapshot&) const = default;
};
[[nodiscard]] Snapshot snapshot_of(const struct stat& st);

[[nodiscard]] proto::Attr to_attr(const struct stat& st, proto::NodeId node);
// Regular files, directories and symlinks; never FIFOs, sockets or devices.
[[nodiscard]] bool is_servable(std::uint32_t mode);
// `parent` + "/" + `name`, where the root is ".".
[[nodiscard]] std::string join_path(const std::string& parent, std::string_view name);

[[nodiscard]] base::ErrorCode errno_error(int error);

// The shared tree as the disk threads see it.
struct Tree {
  int root_fd = -1;          // O_PATH | O_DIRECTORY, owned by the exporter
  bool proc_reopen = false;  // /proc is procfs: regular files are reopened through it
};

// Opens the shared root (O_PATH | O_DIRECTORY; a symlink to it is followed, once).
// Errors: ENOTDIR, and whatever open(2) says.
[[nodiscard]] base::Result<UniqueFd> open_root(const std::string& root);
// True when /proc is a procfs, so an O_PATH fd can be reopened through /proc/self/fd.
[[nodiscard]] bool proc_reopen_available();

// openat2(dirfd, path, flags | O_CLOEXEC, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
// RESOLVE_NO_MAGICLINKS), retried on EINTR/EAGAIN. ENOSYS when the kernel lacks openat2.
[[nodiscard]] base::Result<UniqueFd> open_beneath(int dirfd, const std::string& path,
                                                  std::uint64_t flags);

// A known node, resolved: an O_PATH | O_NOFOLLOW fd and its attributes.
struct NodeRef {
  UniqueFd fd;
  struct stat st{};
};
// Errors: ESTALE (gone, or another file there now), ELOOP/EXDEV (a symlink was put on the
// path), others as openat2 says.
[[nodiscard]] base::Result<NodeRef> open_node(const Tree& tree, const std::string& path,
                                              const Identity& expected);

// Attributes of the shared root itself.
[[nodiscard]] base::Result<struct stat> stat_root(const Tree& tree);

// `child_path` (= join_path(parent_path, name)) in the directory node at `parent_path`.
// Errors: those of open_node for the parent, ENOTDIR (parent is not a directory), ENOENT
// (no such name, or a special file), ELOOP.
[[nodiscard]] base::Result<struct stat> lookup(const Tree& tree, const std::string& parent_path,
                                               const Identity& parent,
                                               const std::string& child_path);

struct RawDirEntry {
  std::string name;
  std::uint64_t cookie = 0;  // getdents64's d_off: resumes after this entry
  struct stat st{};
};
struct DirPage {
  std::vector<RawDirEntry> entries;
  bool end = false;
};
// Up to `max_entries` servable entries of the directory node after `cookie` (0 = start).
// Skips ".", "..", special files and entries that vanish meanwhile. `end` is true when
// nothing servable follows. Errors: those of open_node, ENOTDIR, EINVAL (a cookie the
// filesystem refuses).
[[nodiscard]] base::Result<DirPage> read_dir(const Tree& tree, const std::string& path,
                                             const Identity& expected, std::uint64_t cookie,
                                             std::size_t max_entries);

struct OpenedFile {
  UniqueFd fd;  // O_RDONLY or O_RDWR, blocking
  struct stat st{};
};
// Opens a regular file node without ever opening anything else: the node is resolved as
// O_PATH first and refused unless S_ISREG, then reopened (through /proc/self/fd when
// available, else by path with O_NONBLOCK | O_NOCTTY | O_NOFOLLOW) and checked again.
// Errors: those of open_node, EISDIR, ELOOP (a symlink), ENOENT (a special file), EACCES,
// EROFS... as open(2) says.
[[nodiscard]] base::Result<OpenedFile> open_regular(const Tree& tree, const std::string& path,
                                                    const Identity& expected, bool write);

// Reads [offset, offset + length) of an open regular file (fewer bytes at end of file),
// but only if the file is unchanged since `opened`: fstat before and after the reads must
// both match. Errors: ESTALE (changed), EIO... as pread(2) says.
[[nodiscard]] base::Result<wire::Bytes> read_stable(int fd, const Snapshot& opened,
                                                    std::uint64_t offset, std::uint32_t length);

// The target of the symlink node. Errors: those of open_node, EINVAL (not a symlink),
// ENAMETOOLONG (longer than kMaxLinkTarget).
[[nodiscard]] base::Result<std::string> read_link(const Tree& tree, const std::string& path,
                                                  const Identity& expected);

// fstatvfs of the node's filesystem. Errors: those of open_node, as fstatvfs(3) says.
[[nodiscard]] base::Result<proto::StatFsReply> stat_fs(const Tree& tree, const std::string& path,
                                                       const Identity& expected);

}  // namespace peertun::share::detail
