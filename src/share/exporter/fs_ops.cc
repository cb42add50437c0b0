#include "share/exporter/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <limits>

namespace peertun::share::detail {
namespace {

constexpr std::uint64_t kResolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
// openat2 answers EAGAIN when a concurrent rename or mount made it unsure that a
// resolution stayed beneath the root; retrying is the documented remedy. Bounded, so a
// local user renaming in a loop cannot keep a disk thread busy forever.
constexpr int kResolveAttempts = 16;
// getdents64 buffer: a few hundred entries per call.
constexpr std::size_t kDirBufferBytes = 32 * 1024;
// struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[].
constexpr std::size_t kDirentOffOffset = 8;
constexpr std::size_t kDirentReclenOffset = 16;
constexpr std::size_t kDirentTypeOffset = 18;
constexpr std::size_t kDirentNameOffset = 19;

std::uint32_t clamp32(std::uint64_t v) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(v, UINT32_MAX));
}

proto::Timestamp to_timestamp(const struct timespec& ts) {
  return {.seconds = static_cast<std::int64_t>(ts.tv_sec),
          .nanoseconds = static_cast<std::uint32_t>(std::clamp<long>(ts.tv_nsec, 0, 999'999'999))};
}

base::ErrorCode last_error() { return errno_error(errno); }

base::Result<struct stat> fstat_fd(int fd) {
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    return last_error();
  }
  return st;
}

// The one special-file check for directory entries that carry a type: skips FIFOs,
// sockets and devices without a stat.
bool dirent_type_may_serve(unsigned char type) {
  return type == DT_REG || type == DT_DIR || type == DT_LNK || type == DT_UNKNOWN;
}

// Reopens the O_PATH fd `path_fd` as a real file through its /proc/self/fd magic link:
// the exact inode that was checked is opened, so nothing swapped in meanwhile can be.
base::Result<UniqueFd> reopen_through_proc(int path_fd, int flags) {
  std::array<char, 64> link{};
  const int n = std::snprintf(link.data(), link.size(), "/proc/self/fd/%d", path_fd);
  if (n <= 0 || static_cast<std::size_t>(n) >= link.size()) {
    return errno_error(EIO);
  }
  for (;;) {
    const int fd = ::open(link.data(), flags | O_CLOEXEC);
    if (fd >= 0) {
      return UniqueFd(fd);
    }
    if (errno != EINTR) {
      return last_error();
    }
  }
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    reset();
    fd_ = other.release();
  }
  return *this;
}

void UniqueFd::reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Identity identity_of(const struct stat& st) {
  return {.dev = static_cast<std::uint64_t>(st.st_dev),
          .ino = static_cast<std::uint64_t>(st.st_ino),
          .type = static_cast<std::uint32_t>(st.st_mode & S_IFMT)};
}

Snapshot snapshot_of(const struct stat& st) {
  return {.size = static_cast<std::uint64_t>(st.st_size),
          .mtime = to_timestamp(st.st_mtim),
          .ctime = to_timestamp(st.st_ctim)};
}

proto::Attr to_attr(const struct stat& st, proto::NodeId node) {
  proto::Attr a;
  a.node = node;
  a.mode = static_cast<std::uint32_t>(st.st_mode);
  a.nlink = clamp32(static_cast<std::uint64_t>(st.st_nlink));
  a.uid = static_cast<std::uint32_t>(st.st_uid);
  a.gid = static_cast<std::uint32_t>(st.st_gid);
  a.size = static_cast<std::uint64_t>(std::max<off_t>(st.st_size, 0));
  a.blocks = static_cast<std::uint64_t>(std::max<blkcnt_t>(st.st_blocks, 0));
  a.block_size = clamp32(static_cast<std::uint64_t>(std::max<blksize_t>(st.st_blksize, 0)));
  a.atime = to_timestamp(st.st_atim);
  a.mtime = to_timestamp(st.st_mtim);
  a.ctime = to_timestamp(st.st_ctim);
  return a;
}

bool is_servable(std::uint32_t mode) { return S_ISREG(mode) || S_ISDIR(mode) || S_ISLNK(mode); }

std::string join_path(const std::string& parent, std::string_view name) {
  if (parent == ".") {
    return std::string(name);
  }
  std::string path;
  path.reserve(parent.size() + 1 + name.size());
  path.append(parent).append("/").append(name);
  return path;
}

base::ErrorCode errno_error(int error) { return {error, boost::system::system_category()}; }

base::Result<UniqueFd> open_root(const std::string& root) {
  const int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return last_error();
  }
  UniqueFd owned(fd);
  auto st = fstat_fd(owned.get());
  if (!st) {
    return st.error();
  }
  if (!S_ISDIR(st->st_mode)) {
    return errno_error(ENOTDIR);
  }
  return owned;
}

bool proc_reopen_available() {
  struct statfs fs{};
  return ::statfs("/proc/self/fd", &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
}

base::Result<UniqueFd> open_beneath(int dirfd, const std::string& path, std::uint64_t flags) {
  struct open_how how{};
  how.flags = flags | O_CLOEXEC;
  how.mode = 0;
  how.resolve = kResolve;
  for (int attempt = 1;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how));
    if (fd >= 0) {
      return UniqueFd(static_cast<int>(fd));
    }
    const int error = errno;
    if ((error != EINTR && error != EAGAIN) || attempt >= kResolveAttempts) {
      return errno_error(error);
    }
  }
}

base::Result<NodeRef> open_node(const Tree& tree, const std::string& path,
                                const Identity& expected) {
  auto fd = open_beneath(tree.root_fd, path, O_PATH | O_NOFOLLOW);
  if (!fd) {
    // The name, or a directory on its path, is gone or is no directory any more.
    const int error = fd.error().value();
    return errno_error(error == ENOENT || error == ENOTDIR ? ESTALE : error);
  }
  auto st = fstat_fd(fd->get());
  if (!st) {
    return st.error();
  }
  if (identity_of(*st) != expected) {
    return errno_error(ESTALE);
  }
  return NodeRef{std::move(*fd), *st};
}

base::Result<struct stat> stat_root(const Tree& tree) { return fstat_fd(tree.root_fd); }

base::Result<struct stat> lookup(const Tree& tree, const std::string& parent_path,
                                 const Identity& parent, const std::string& child_path) {
  auto dir = open_node(tree, parent_path, parent);
  if (!dir) {
    return dir.error();
  }
  if (!S_ISDIR(dir->st.st_mode)) {
    return errno_error(ENOTDIR);
  }
  // Relative to the parent just checked, not by the full path again: the parent may be
  // renamed and replaced in between, and the child must come from the checked one.
  const auto slash = child_path.rfind('/');
  const std::string name = slash == std::string::npos ? child_path : child_path.substr(slash + 1);
  auto child = open_beneath(dir->fd.get(), name, O_PATH | O_NOFOLLOW);
  if (!child) {
    return child.error();
  }
  auto st = fstat_fd(child->get());
  if (!st) {
    return st.error();
  }
  if (!is_servable(st->st_mode)) {
    return errno_error(ENOENT);  // special files do not exist as far as B can tell
  }
  return *st;
}

base::Result<DirPage> read_dir(const Tree& tree, const std::string& path, const Identity& expected,
                               std::uint64_t cookie, std::size_t max_entries) {
  if (cookie > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
    return errno_error(EINVAL);
  }
  auto node = open_node(tree, path, expected);
  if (!node) {
    return node.error();
  }
  if (!S_ISDIR(node->st.st_mode)) {
    return errno_error(ENOTDIR);
  }
  // "." of the verified O_PATH fd is that very directory: no second path walk.
  const int raw = ::openat(node->fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
  if (raw < 0) {
    return last_error();
  }
  UniqueFd dir(raw);
  auto dir_st = fstat_fd(dir.get());
  if (!dir_st) {
    return dir_st.error();
  }
  if (identity_of(*dir_st) != expected) {
    return errno_error(ESTALE);
  }
  if (::lseek(dir.get(), static_cast<off_t>(cookie), SEEK_SET) < 0) {
    return last_error();
  }

  DirPage page;
  // 8-byte aligned, as getdents64 writes 8-byte fields.
  std::vector<std::uint64_t> storage(kDirBufferBytes / sizeof(std::uint64_t));
  auto* buffer = reinterpret_cast<char*>(storage.data());
  for (;;) {
    const ssize_t got = ::getdents64(dir.get(), buffer, kDirBufferBytes);
    if (got < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_error();
    }
    if (got == 0) {
      page.end = true;
      return page;
    }
    const auto size = static_cast<std::size_t>(got);
    std::size_t pos = 0;
    while (pos < size) {
      if (size - pos < kDirentNameOffset + 1) {
        return errno_error(EIO);
      }
      std::int64_t off = 0;
      std::uint16_t reclen = 0;
      std::memcpy(&off, buffer + pos + kDirentOffOffset, sizeof(off));
      std::memcpy(&reclen, buffer + pos + kDirentReclenOffset, sizeof(reclen));
      const auto type = static_cast<unsigned char>(buffer[pos + kDirentTypeOffset]);
      if (reclen <= kDirentNameOffset || reclen > size - pos) {
        return errno_error(EIO);  // the kernel's records never look like this
      }
      const char* name_start = buffer + pos + kDirentNameOffset;
      const std::string_view name(name_start, ::strnlen(name_start, reclen - kDirentNameOffset));
      pos += reclen;
      if (!proto::is_valid_name(name) || !dirent_type_may_serve(type)) {
        continue;
      }
      if (page.entries.size() == max_entries) {
        // One more servable-looking entry follows: the listing is not at its end.
        page.end = false;
        return page;
      }
      RawDirEntry entry;
      entry.name = std::string(name);
      // One component relative to the verified directory fd, never following a symlink.
      if (::fstatat(dir.get(), entry.name.c_str(), &entry.st, AT_SYMLINK_NOFOLLOW) != 0) {
        continue;  // removed since getdents64, or unreadable: not listed
      }
      if (!is_servable(entry.st.st_mode)) {
        continue;
      }
      entry.cookie = static_cast<std::uint64_t>(off);
      page.entries.push_back(std::move(entry));
    }
  }
}

base::Result<OpenedFile> open_regular(const Tree& tree, const std::string& path,
                                      const Identity& expected, bool write) {
  auto node = open_node(tree, path, expected);
  if (!node) {
    return node.error();
  }
  const auto mode = node->st.st_mode;
  if (S_ISDIR(mode)) {
    return errno_error(EISDIR);
  }
  if (S_ISLNK(mode)) {
    return errno_error(ELOOP);
  }
  if (!S_ISREG(mode)) {
    return errno_error(ENOENT);
  }
  // O_NONBLOCK and O_NOCTTY: should anything but a regular file be reached after all, its
  // open neither blocks (FIFO) nor takes a terminal.
  const int flags = (write ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_NOCTTY;
  auto fd = tree.proc_reopen
                ? reopen_through_proc(node->fd.get(), flags)
                : open_beneath(tree.root_fd, path, static_cast<std::uint64_t>(flags | O_NOFOLLOW));
  if (!fd) {
    const int error = fd.error().value();
    return errno_error(error == ENOENT || error == ENOTDIR ? ESTALE : error);
  }
  auto st = fstat_fd(fd->get());
  if (!st) {
    return st.error();
  }
  if (!S_ISREG(st->st_mode) || identity_of(*st) != expected) {
    return errno_error(ESTALE);
  }
  // Regular files ignore O_NONBLOCK on most filesystems; clear it for those that do not.
  const int status = ::fcntl(fd->get(), F_GETFL);
  if (status < 0 || ::fcntl(fd->get(), F_SETFL, status & ~O_NONBLOCK) != 0) {
    return last_error();
  }
  return OpenedFile{std::move(*fd), *st};
}

base::Result<wire::Bytes> read_stable(int fd, const Snapshot& opened, std::uint64_t offset,
                                      std::uint32_t length) {
  if (offset > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
    return errno_error(EINVAL);
  }
  auto before = fstat_fd(fd);
  if (!before) {
    return before.error();
  }
  if (snapshot_of(*before) != opened) {
    return errno_error(ESTALE);
  }
  // The file is exactly `opened.size` bytes (else the checks answer ESTALE), so that bounds
  // the buffer; offset + want cannot overflow off_t because offset <= size.
  const std::uint64_t want =
      offset < opened.size ? std::min<std::uint64_t>(length, opened.size - offset) : 0;
  wire::Bytes data(static_cast<std::size_t>(want));
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n =
        ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_error();
    }
    if (n == 0) {
      break;  // end of file
    }
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  auto after = fstat_fd(fd);
  if (!after) {
    return after.error();
  }
  if (snapshot_of(*after) != opened) {
    return errno_error(ESTALE);
  }
  return data;
}

base::Result<std::string> read_link(const Tree& tree, const std::string& path,
                                    const Identity& expected) {
  auto node = open_node(tree, path, expected);
  if (!node) {
    return node.error();
  }
  if (!S_ISLNK(node->st.st_mode)) {
    return errno_error(EINVAL);
  }
  std::array<char, proto::kMaxLinkTarget + 1> target{};
  const ssize_t n = ::readlinkat(node->fd.get(), "", target.data(), target.size());
  if (n < 0) {
    return last_error();
  }
  const auto len = static_cast<std::size_t>(n);
  if (len == 0 || len > proto::kMaxLinkTarget) {
    return errno_error(ENAMETOOLONG);
  }
  return std::string(target.data(), len);
}

base::Result<proto::StatFsReply> stat_fs(const Tree& tree, const std::string& path,
                                         const Identity& expected) {
  auto node = open_node(tree, path, expected);
  if (!node) {
    return node.error();
  }
  struct statvfs sv{};
  if (::fstatvfs(node->fd.get(), &sv) != 0) {
    return last_error();
  }
  proto::StatFsReply reply;
  reply.blocks = sv.f_blocks;
  reply.blocks_free = sv.f_bfree;
  reply.blocks_available = sv.f_bavail;
  reply.files = sv.f_files;
  reply.files_free = sv.f_ffree;
  reply.block_size = clamp32(sv.f_bsize);
  reply.fragment_size = clamp32(sv.f_frsize);
  reply.name_max = clamp32(sv.f_namemax);
  return reply;
}

}  // namespace peertun::share::detail
