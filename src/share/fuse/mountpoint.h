#pragma once
// Mountpoint housekeeping for share::Mount (internal to src/share/fuse): reading
// /proc/self/mountinfo, finding and cleaning a stale peertun mount, creating or checking
// the directory. Blocking syscalls: called at start-up and teardown only.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace peertun::share::detail {

// The filesystem type our mounts show in mountinfo ("fuse." + subtype).
inline constexpr std::string_view kFuseType = "fuse.peertun";
// A mount's source is "<fsname>#<pid of the peertun serving it>".
inline constexpr char kOwnerSeparator = '#';

struct MountInfoEntry {
  unsigned major =
      0;  // st_dev of the mount: the FUSE connection is /sys/fs/fuse/connections/<minor>
  unsigned minor = 0;
  std::string mount_point;  // unescaped (mountinfo writes ' ' as \040 and so on)
  std::string fs_type;
  std::string source;
};

// Whether the peertun process that made `entry` still runs (its pid, from the source,
// is alive and is a peertun). A mount whose owner is gone is stale. Never touches the
// mount itself, so a hung server cannot block the check.
[[nodiscard]] bool mount_owner_alive(const MountInfoEntry& entry);

// Parses /proc/<pid>/mountinfo text (proc(5)); malformed lines are skipped.
[[nodiscard]] std::vector<MountInfoEntry> parse_mountinfo(std::string_view text);
// Undoes mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash).
[[nodiscard]] std::string unescape_mountinfo(std::string_view field);
// The mounts of this process's namespace; empty when /proc is unreadable.
[[nodiscard]] std::vector<MountInfoEntry> read_mountinfo();
// The topmost mount at `path` (an absolute, canonical path), if any.
[[nodiscard]] std::optional<MountInfoEntry> find_mount(std::string_view path);

// `path` made absolute with its parent resolved (symlinks, "..") but the last component
// kept as given, so that a stale mount there is never touched (stat on it gives ENOTCONN).
[[nodiscard]] base::Result<std::string> canonical_mountpoint(std::string_view path);

struct PreparedMountpoint {
  std::string path;       // canonical
  bool created = false;   // we made the directory: remove it at unmount
  int stale_cleaned = 0;  // stale peertun mounts unmounted there
};
// Cleans stale peertun mounts at `path`, then creates it (0700) or checks that it is an
// empty directory. Errors: MountErrc::{BadMountpoint, MountpointBusy, MountpointNotEmpty,
// CannotCreateMountpoint, StaleMountNotCleaned}.
[[nodiscard]] base::Result<PreparedMountpoint> prepare_mountpoint(std::string_view path);

// Detaches every stale peertun mount (owner gone) whose mount point starts with
// `prefix`, and removes its directory when empty. Returns how many were detached.
int clean_stale_mounts_under(std::string_view prefix);

// Detaches the mount at `path` lazily: umount2(MNT_DETACH) as root, `fusermount3 -u -z`
// otherwise. Returns 0 or an errno.
int lazy_unmount(const std::string& path);

}  // namespace peertun::share::detail
