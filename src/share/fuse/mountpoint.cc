#include "share/fuse/mountpoint.h"

#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "share/fuse/mount.h"

extern char** environ;

namespace peertun::share::detail {
namespace {

spdlog::logger& log() { return base::logger("share.fuse"); }

// A stale mount may itself sit on another stale mount (two crashed runs).
constexpr int kMaxStaleLayers = 8;

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t pos = 0;
  while (pos < line.size()) {
    const std::size_t end = line.find(' ', pos);
    const std::size_t stop = end == std::string_view::npos ? line.size() : end;
    if (stop > pos) {
      fields.push_back(line.substr(pos, stop - pos));
    }
    pos = stop + 1;
  }
  return fields;
}

bool parse_unsigned(std::string_view text, unsigned& out) {
  if (text.empty() || text.size() > 9) {
    return false;
  }
  unsigned v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  out = v;
  return true;
}

bool is_octal(char c) { return c >= '0' && c <= '7'; }

}  // namespace

std::string unescape_mountinfo(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && is_octal(field[i + 1]) &&
        is_octal(field[i + 2]) && is_octal(field[i + 3])) {
      const int v = (field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

// Line format (proc(5)): id parent major:minor root mount_point options [optional...] -
// fs_type source super_options.
std::vector<MountInfoEntry> parse_mountinfo(std::string_view text) {
  std::vector<MountInfoEntry> entries;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;

    const auto fields = split_fields(line);
    if (fields.size() < 10) {
      continue;
    }
    std::size_t dash = 6;
    while (dash < fields.size() && fields[dash] != "-") {
      ++dash;
    }
    if (dash + 2 >= fields.size()) {
      continue;
    }
    const std::string_view dev = fields[2];
    const std::size_t colon = dev.find(':');
    MountInfoEntry e;
    if (colon == std::string_view::npos || !parse_unsigned(dev.substr(0, colon), e.major) ||
        !parse_unsigned(dev.substr(colon + 1), e.minor)) {
      continue;
    }
    e.mount_point = unescape_mountinfo(fields[4]);
    e.fs_type = unescape_mountinfo(fields[dash + 1]);
    e.source = unescape_mountinfo(fields[dash + 2]);
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<MountInfoEntry> read_mountinfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) {
    return {};
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_mountinfo(text.str());
}

std::optional<MountInfoEntry> find_mount(std::string_view path) {
  std::optional<MountInfoEntry> top;
  // mountinfo lists mounts in the order they were stacked: the last one is on top.
  for (auto& e : read_mountinfo()) {
    if (e.mount_point == path) {
      top = std::move(e);
    }
  }
  return top;
}

base::Result<std::string> canonical_mountpoint(std::string_view path) {
  namespace fs = std::filesystem;
  if (path.empty()) {
    return MountErrc::BadMountpoint;
  }
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(path), ec);
  if (ec) {
    return MountErrc::BadMountpoint;
  }
  p = p.lexically_normal();
  if (!p.has_filename()) {  // "dir/" normalises to "dir/" with an empty filename
    p = p.parent_path();
  }
  if (p == p.root_path()) {
    return MountErrc::BadMountpoint;  // never mount over "/"
  }
  const fs::path parent = fs::weakly_canonical(p.parent_path(), ec);
  if (ec) {
    return MountErrc::BadMountpoint;
  }
  return (parent / p.filename()).string();
}

bool mount_owner_alive(const MountInfoEntry& entry) {
  const auto at = entry.source.rfind(kOwnerSeparator);
  unsigned pid = 0;
  if (at == std::string::npos ||
      !parse_unsigned(std::string_view(entry.source).substr(at + 1), pid) || pid == 0) {
    return false;  // not ours to judge: made by an older peertun; treated as stale
  }
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM) {
    return false;
  }
  // The pid may have been reused by another program since the crash: the owner is alive
  // only if it is the same program as us (peertun; a test binary in the tests).
  auto comm_of = [](const std::string& pid_dir) {
    std::ifstream comm("/proc/" + pid_dir + "/comm");
    std::string name;
    std::getline(comm, name);
    return name;
  };
  const auto name = comm_of(std::to_string(pid));
  return !name.empty() && name == comm_of("self");
}

int clean_stale_mounts_under(std::string_view prefix) {
  int cleaned = 0;
  for (const auto& entry : read_mountinfo()) {
    // Only mount points named like ours (prefix + one name, nothing below it), and only
    // those whose peertun is gone.
    if (entry.fs_type != kFuseType || entry.mount_point.rfind(prefix, 0) != 0 ||
        entry.mount_point.size() == prefix.size() ||
        entry.mount_point.find('/', prefix.size()) != std::string::npos ||
        mount_owner_alive(entry)) {
      continue;
    }
    log().warn("mount.stale_found mountpoint={} source={}", entry.mount_point, entry.source);
    if (lazy_unmount(entry.mount_point) == 0) {
      ++cleaned;
      // Our own default mountpoints are ours to remove; rmdir leaves anything non-empty.
      ::rmdir(entry.mount_point.c_str());
    }
  }
  return cleaned;
}

int lazy_unmount(const std::string& path) {
  if (geteuid() == 0) {
    return ::umount2(path.c_str(), MNT_DETACH) == 0 ? 0 : errno;
  }
  // Unprivileged: the setuid helper does it (it checks that we own the mount).
  const char* argv[] = {"fusermount3", "-u", "-z", "-q", "--", path.c_str(), nullptr};
  pid_t pid = 0;
  // posix_spawn's argv is char* const[] for historical reasons; it does not write to it.
  const int rc = ::posix_spawnp(&pid, "fusermount3", nullptr, nullptr,
                                const_cast<char* const*>(argv), environ);
  if (rc != 0) {
    return rc;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return errno;
    }
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EPERM;
}

base::Result<PreparedMountpoint> prepare_mountpoint(std::string_view requested) {
  auto canonical = canonical_mountpoint(requested);
  if (!canonical) {
    return canonical.error();
  }
  PreparedMountpoint out;
  out.path = std::move(*canonical);
  const std::string& path = out.path;

  // mountinfo first: it never touches the filesystem, so a dead or hung FUSE server
  // there cannot block us.
  for (int layer = 0;; ++layer) {
    const auto top = find_mount(path);
    if (!top) {
      break;
    }
    if (top->fs_type != kFuseType) {
      log().error("mount.busy mountpoint={} fs_type={}", path, top->fs_type);
      return MountErrc::MountpointBusy;
    }
    if (layer == kMaxStaleLayers) {
      return MountErrc::StaleMountNotCleaned;
    }
    if (mount_owner_alive(*top)) {
      log().error("mount.in_use mountpoint={} source={}", path, top->source);
      return MountErrc::MountpointBusy;
    }
    // A peertun mount at our path whose server is gone: left over by a run that crashed
    // or was killed (its server would have unmounted it otherwise). Detach it.
    log().warn("mount.stale_found mountpoint={} source={}", path, top->source);
    if (const int err = lazy_unmount(path); err != 0) {
      log().error("mount.stale_unmount_failed mountpoint={} error={}", path, std::strerror(err));
      return MountErrc::StaleMountNotCleaned;
    }
    ++out.stale_cleaned;
  }

  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOTCONN) {
      // A dead FUSE mount that mountinfo did not show (another namespace's view).
      if (lazy_unmount(path) != 0 || ::lstat(path.c_str(), &st) != 0) {
        return MountErrc::StaleMountNotCleaned;
      }
      ++out.stale_cleaned;
    } else if (err == ENOENT) {
      if (::mkdir(path.c_str(), 0700) != 0) {
        log().error("mount.mkdir_failed mountpoint={} error={}", path, std::strerror(errno));
        return MountErrc::CannotCreateMountpoint;
      }
      out.created = true;
      return out;
    } else {
      log().error("mount.stat_failed mountpoint={} error={}", path, std::strerror(err));
      return MountErrc::BadMountpoint;
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    log().error("mount.not_a_directory mountpoint={}", path);
    return MountErrc::BadMountpoint;
  }
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    return MountErrc::BadMountpoint;
  }
  bool empty = true;
  while (const dirent* entry = ::readdir(dir)) {
    if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  ::closedir(dir);
  if (!empty) {
    // Mounting would hide the files; the user surely meant another directory.
    log().error("mount.not_empty mountpoint={}", path);
    return MountErrc::MountpointNotEmpty;
  }
  return out;
}

}  // namespace peertun::share::detail
