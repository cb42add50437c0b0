// share::Mount against the real exporter, mounted for real: A's folder (a temp dir) is
// served by share::Exporter through LocalChannel (the codec both ways) and mounted with
// FUSE; the test thread uses the mount with plain syscalls while the io_context runs on
// a background thread (the kernel blocks a caller until the loop answers).
//
// Needs root and /dev/fuse (skipped otherwise). Every wait is bounded: syscalls on the
// mount run on a helper thread, and if one hangs the FUSE connection is aborted so the
// test fails instead of hanging. Mounts live under a temp dir and are lazily unmounted
// in TearDown whatever happened.

#include "share/fuse/mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io/asio.h"
#include "share/exporter/exporter.h"
#include "share/fuse/mountpoint.h"
#include "support/share_local_channel.h"

namespace peertun::share {
namespace {

namespace asio = io::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr auto kIoTimeout = 20s;  // a step on the io thread (start, stop)
constexpr auto kFsTimeout = 60s;  // one syscall batch on the mount (big reads, ASan)
constexpr auto kUnmountTimeout = 10s;

bool can_mount() { return ::geteuid() == 0 && ::access("/dev/fuse", R_OK | W_OK) == 0; }

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<std::size_t>(8, n - i));
  }
  return out;
}

void write_file(const fs::path& path, const std::string& content, mode_t mode = 0644) {
  fs::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

void set_mtime(const fs::path& path, std::int64_t sec, long nsec) {
  timespec times[2] = {{sec, nsec}, {sec, nsec}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
}

// Reads a whole file with `chunk`-sized read()s; nullopt (errno kept) on failure.
std::optional<std::string> read_all(const std::string& path, std::size_t chunk = 1 << 20) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return std::nullopt;
  }
  std::string out;
  std::string buf(chunk, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      errno = err;
      return std::nullopt;
    }
    if (n == 0) {
      break;
    }
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// What `ls -lR` shows of one entry, as lstat and readlink see it.
struct Info {
  mode_t mode = 0;  // type and permission bits
  off_t size = 0;
  std::int64_t mtime_sec = 0;
  long mtime_nsec = 0;
  uid_t uid = 0;
  std::string link;
  bool operator==(const Info&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Info& i) {
  return os << "{mode=" << std::oct << i.mode << std::dec << " size=" << i.size
            << " mtime=" << i.mtime_sec << "." << i.mtime_nsec << " uid=" << i.uid
            << " link=" << i.link << "}";
}

// Walks `root` without following symlinks. `uid_override` replaces st_uid (A's files
// are shown as the mounting user's).
std::map<std::string, Info> walk(const fs::path& root, std::optional<uid_t> uid_override) {
  std::map<std::string, Info> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    struct stat st{};
    if (::lstat(it->path().c_str(), &st) != 0) {
      ADD_FAILURE() << "lstat " << it->path() << ": " << std::strerror(errno);
      continue;
    }
    Info info;
    info.mode = st.st_mode;
    info.size = S_ISDIR(st.st_mode) ? 0 : st.st_size;  // directory sizes are A's business
    info.mtime_sec = st.st_mtim.tv_sec;
    info.mtime_nsec = st.st_mtim.tv_nsec;
    info.uid = uid_override ? *uid_override : st.st_uid;
    if (S_ISLNK(st.st_mode)) {
      info.link = fs::read_symlink(it->path()).string();
    }
    out[it->path().lexically_relative(root).string()] = info;
  }
  return out;
}

io::Task<void> wait_task(std::shared_ptr<Mount> mount) { co_await mount->wait_unmounted(); }

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!can_mount()) {
      GTEST_SKIP() << "needs root and /dev/fuse to mount (FUSE tests skipped)";
    }
    char tmpl[] = "/tmp/peertun-fuse-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    // A's share and B's mountpoint sit in different parents, so that a relative symlink
    // out of the share resolves to different places on A and on B.
    root_ = tmp_ / "a" / "share";
    mnt_ = tmp_ / "b" / "mnt";
    fs::create_directories(root_);
    fs::create_directories(mnt_.parent_path());
  }

  void TearDown() override {
    if (tmp_.empty()) {
      return;
    }
    if (mount_ && io_thread_.joinable()) {
      mount_->unmount();
      EXPECT_TRUE(wait_unmounted(mount_, kUnmountTimeout)) << "mount did not end at teardown";
    }
    // Whatever is still mounted under our temp dir goes (lazily: never blocks).
    for (int i = 0; i < 8; ++i) {
      bool any = false;
      for (const auto& m : detail::read_mountinfo()) {
        if (m.mount_point.starts_with(tmp_.string() + "/")) {
          ::umount2(m.mount_point.c_str(), MNT_DETACH);
          any = true;
        }
      }
      if (!any) {
        break;
      }
    }
    mount_.reset();
    stop_peer();
    bool mounted = false;
    for (const auto& m : detail::read_mountinfo()) {
      mounted = mounted || m.mount_point.starts_with(tmp_.string() + "/");
    }
    if (!mounted) {
      std::error_code ec;
      fs::remove_all(tmp_, ec);
    }
  }

  // Peer A and the io thread. Separate from SetUp so that a test can fork first.
  void start_peer() {
    work_.emplace(io_.get_executor());
    io_thread_ = std::thread([this] { io_.run(); });
    new_session();
  }

  // A fresh exporter and channel: one Hello per connection, so one mount per session.
  void new_session() {
    if (exporter_) {
      on_io([e = exporter_] {
        e->stop();
        return 0;
      });
    }
    ExporterOptions options;
    auto exporter = Exporter::create(io_.get_executor(), root_.string(), options);
    ASSERT_TRUE(exporter) << exporter.error().message();
    exporter_ = *exporter;
    channel_ = test::LocalChannel::create(io_.get_executor(), exporter_);
  }

  void stop_peer() {
    if (!io_thread_.joinable()) {
      return;
    }
    if (exporter_) {
      on_io([e = exporter_] {
        e->stop();
        return 0;
      });
    }
    work_.reset();
    io_.stop();
    io_thread_.join();
    channel_.reset();
    exporter_.reset();
  }

  // Runs `f` on the io thread and returns its result (bounded).
  template <class F>
  auto on_io(F f) -> decltype(f()) {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto result = task->get_future();
    asio::post(io_, [task] { (*task)(); });
    if (result.wait_for(kIoTimeout) != std::future_status::ready) {
      throw std::runtime_error("io thread did not answer in time");
    }
    return result.get();
  }

  // Runs `f` (syscalls on the mount) on a helper thread. If it does not return in time
  // the FUSE connection is aborted (every waiting syscall fails), then the test fails.
  template <class F>
  auto bounded(F f, std::chrono::seconds limit = kFsTimeout) -> decltype(f()) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    std::thread worker(std::move(task));
    if (result.wait_for(limit) != std::future_status::ready) {
      abort_connection();
      if (result.wait_for(10s) != std::future_status::ready) {
        worker.detach();  // cannot happen after an abort; never block the test run
        throw std::runtime_error("a syscall on the mount hung even after aborting it");
      }
      worker.join();
      throw std::runtime_error("a syscall on the mount did not return in time");
    }
    worker.join();
    return result.get();
  }

  void abort_connection() {
    if (const auto m = detail::find_mount(mnt_.string())) {
      const std::string path = "/sys/fs/fuse/connections/" + std::to_string(m->minor) + "/abort";
      std::ofstream(path) << "1\n";
    }
  }

  MountOptions options() const {
    MountOptions o;
    o.mountpoint = mnt_.string();
    o.fsname = "peertun:test";
    return o;
  }

  base::Result<std::shared_ptr<Mount>> start_mount(MountOptions o) {
    io::Executor executor = io_.get_executor();
    std::shared_ptr<proto::Channel> channel = channel_;
    auto started =
        asio::co_spawn(io_, Mount::start(executor, channel, std::move(o)), asio::use_future);
    if (started.wait_for(kIoTimeout) != std::future_status::ready) {
      throw std::runtime_error("Mount::start did not complete in time");
    }
    return started.get();
  }

  void mount() {
    auto m = start_mount(options());
    ASSERT_TRUE(m) << m.error().message();
    mount_ = *m;
  }

  bool wait_unmounted(std::shared_ptr<Mount> m, std::chrono::seconds limit) {
    auto done = asio::co_spawn(io_, wait_task(std::move(m)), asio::use_future);
    return done.wait_for(limit) == std::future_status::ready;
  }

  std::size_t exporter_nodes() {
    return on_io([e = exporter_] { return e->known_nodes(); });
  }
  std::size_t exporter_handles() {
    return on_io([e = exporter_] { return e->open_handles(); });
  }

  // Polls `pred` every 10 ms for up to `limit`.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  std::string m(const std::string& rel) const { return (mnt_ / rel).string(); }

  fs::path tmp_;
  fs::path root_;
  fs::path mnt_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread io_thread_;
  std::shared_ptr<Exporter> exporter_;
  std::shared_ptr<test::LocalChannel> channel_;
  std::shared_ptr<Mount> mount_;
};

TEST_F(MountTest, ServesTheTreeWithItsNamesSizesModesTimesAndLinks) {
  const std::string big = random_bytes((3U << 20) + 12345, 1);
  write_file(root_ / "empty.txt", "", 0644);
  write_file(root_ / "empty-private", "", 0600);
  write_file(root_ / "big.bin", big, 0644);
  write_file(root_ / "with space.txt", "hello world\n", 0640);
  write_file(root_ / "ünïcødé 名前.txt", "unicode\n", 0444);
  write_file(root_ / "run.sh", "#!/bin/sh\necho hi\n", 0755);
  write_file(root_ / "nested" / "a" / "b" / "c" / "deep.txt", "deep\n", 0644);
  write_file(root_ / "someone-else", "not ours on A\n", 0644);
  ASSERT_EQ(::chown((root_ / "someone-else").c_str(), 12345, 12345), 0);
  write_file(tmp_ / "a" / "outside.txt", "A's file outside the share\n", 0644);
  fs::create_symlink("nested/a/b/c/deep.txt", root_ / "link-in");
  fs::create_symlink("nested/a", root_ / "link-dir");
  fs::create_symlink("../outside.txt", root_ / "link-out");
  fs::create_symlink("/nonexistent-peertun-target/x", root_ / "link-abs");
  set_mtime(root_ / "big.bin", 1600000000, 123456789);
  set_mtime(root_ / "with space.txt", 1234567890, 1);
  set_mtime(root_ / "link-in", 1500000000, 999999999);

  start_peer();
  mount();
  EXPECT_EQ(mount_->mountpoint(), mnt_.string());
  const auto entry = detail::find_mount(mnt_.string());
  ASSERT_TRUE(entry);
  EXPECT_EQ(entry.value().fs_type, "fuse.peertun");
  // The source carries our pid, so a later run can tell a live mount from a stale one.
  EXPECT_EQ(entry.value().source, "peertun:test#" + std::to_string(::getpid()));
  EXPECT_TRUE(detail::mount_owner_alive(entry.value()));

  // Names, types, modes, sizes, mtimes (to the nanosecond), link targets; every file
  // is the mounting user's.
  const auto expected = walk(root_, ::getuid());
  const auto seen = bounded([&] { return walk(mnt_, std::nullopt); });
  EXPECT_EQ(seen, expected);

  bounded([&] {
    // Contents, byte for byte.
    for (const char* name : {"empty.txt", "empty-private", "big.bin", "with space.txt",
                             "ünïcødé 名前.txt", "run.sh", "nested/a/b/c/deep.txt"}) {
      const auto content = read_all(m(name));
      ASSERT_TRUE(content) << name << ": " << std::strerror(errno);
      EXPECT_EQ(*content, slurp(root_ / name)) << name;
    }
    // Small odd-sized reads of the big file give the same bytes.
    const auto chunked = read_all(m("big.bin"), 4096 + 17);
    ASSERT_TRUE(chunked);
    EXPECT_TRUE(*chunked == big);

    // A symlink inside the tree is followed through the mount.
    const auto via_link = read_all(m("link-in"));
    ASSERT_TRUE(via_link);
    EXPECT_EQ(*via_link, "deep\n");
    const auto via_dir_link = read_all(m("link-dir/b/c/deep.txt"));
    ASSERT_TRUE(via_dir_link);
    EXPECT_EQ(*via_dir_link, "deep\n");

    // A symlink out of the tree is a link; following it resolves on B, never on A.
    struct stat st{};
    ASSERT_EQ(::lstat(m("link-out").c_str(), &st), 0);
    EXPECT_TRUE(S_ISLNK(st.st_mode));
    EXPECT_EQ(fs::read_symlink(m("link-out")).string(), "../outside.txt");
    errno = 0;
    EXPECT_EQ(::stat(m("link-out").c_str(), &st), -1);
    EXPECT_EQ(errno, ENOENT);
    EXPECT_FALSE(read_all(m("link-abs")));

    // Owner mapping: A's uid 12345 shows as ours.
    ASSERT_EQ(::stat(m("someone-else").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, ::getuid());
    EXPECT_EQ(st.st_gid, ::getgid());

    // Missing names: ENOENT (and a second time from the kernel's negative cache).
    EXPECT_EQ(::stat(m("missing").c_str(), &st), -1);
    EXPECT_EQ(errno, ENOENT);
    EXPECT_EQ(::stat(m("missing").c_str(), &st), -1);
    EXPECT_EQ(::stat(m(std::string(300, 'x')).c_str(), &st), -1);
    EXPECT_EQ(errno, ENAMETOOLONG);

    // statfs is A's filesystem.
    struct statvfs on_b{};
    struct statvfs on_a{};
    ASSERT_EQ(::statvfs(mnt_.c_str(), &on_b), 0);
    ASSERT_EQ(::statvfs(root_.c_str(), &on_a), 0);
    EXPECT_EQ(on_b.f_blocks, on_a.f_blocks);
    EXPECT_EQ(on_b.f_frsize, on_a.f_frsize);
    EXPECT_EQ(on_b.f_namemax, 255U);
    EXPECT_NE(on_b.f_flag & ST_RDONLY, 0U);
  });
}

TEST_F(MountTest, WalkOfTwoThousandFilesMatchesAndLookupsBalance) {
  // Directories bigger and smaller than one ReadDir batch (256) and one kernel page.
  int n = 0;
  for (const auto& [dir, count] : std::vector<std::pair<std::string, int>>{
           {"d1000", 1000}, {"d500", 500}, {"sub/d300", 300}, {"sub/deeper/d200", 200}}) {
    for (int i = 0; i < count; ++i, ++n) {
      write_file(root_ / dir / ("file-" + std::to_string(i) + ".dat"),
                 std::string(static_cast<std::size_t>(n % 37), 'x'), i % 3 == 0 ? 0600 : 0644);
    }
  }
  ASSERT_EQ(n, 2000);
  start_peer();
  mount();
  const std::size_t baseline = exporter_nodes();

  // Names only (readdir without stat, like `ls -f`): after its first page the kernel
  // asks plain READDIR, whose entries A must forget at once.
  const auto names = [](const fs::path& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      return out;
    }
    while (const dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        out.emplace_back(e->d_name);
      }
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
  };
  const auto listed = bounded([&] { return names(mnt_ / "d1000"); });
  EXPECT_EQ(listed.size(), 1000U);
  EXPECT_EQ(listed, names(root_ / "d1000"));

  const auto expected = walk(root_, ::getuid());
  ASSERT_EQ(expected.size(), 2000U + 6U);  // files + d1000 d500 sub sub/d300 sub/deeper ...d200
  const auto seen = bounded([&] { return walk(mnt_, std::nullopt); });
  EXPECT_EQ(seen, expected);
  // Listing again (from the kernel's caches and A) gives the same.
  EXPECT_EQ(bounded([&] { return walk(mnt_, std::nullopt); }), expected);
  EXPECT_GT(exporter_nodes(), baseline);

  // The lookup-count rule end to end: once the kernel drops its inodes it forgets them,
  // and A's node table is back where it started.
  std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
  EXPECT_TRUE(eventually([&] { return exporter_nodes() == baseline; }))
      << "exporter still knows " << exporter_nodes() << " nodes, baseline " << baseline;

  // After a walk, unmounting tells A to forget what the kernel still held.
  bounded([&] { return walk(mnt_ / "d500", std::nullopt); });
  mount_->unmount();
  ASSERT_TRUE(wait_unmounted(mount_, kUnmountTimeout));
  EXPECT_TRUE(eventually([&] { return exporter_nodes() == baseline; }))
      << "exporter still knows " << exporter_nodes() << " nodes, baseline " << baseline;
  EXPECT_EQ(exporter_handles(), 0U);
}

TEST_F(MountTest, ReadsReachOneMebibyte) {
  const std::string data = random_bytes(16U << 20, 2);
  write_file(root_ / "large.bin", data);
  start_peer();
  mount();
  const auto content = bounded([&] { return read_all(m("large.bin")); });
  ASSERT_TRUE(content);
  EXPECT_TRUE(content.value() == data);
  const MountStats stats = mount_->stats();
  std::cout << "[ info     ] max READ " << stats.max_read_request << " bytes, max_write "
            << stats.max_write << ", INIT max_readahead " << stats.max_readahead
            << ", read_ahead_kb " << stats.readahead_kb << ", " << stats.reads << " READs for "
            << data.size() << " bytes\n";
  EXPECT_EQ(stats.max_write, proto::kMaxRead);
  EXPECT_EQ(stats.readahead_kb, 8192U);
  EXPECT_EQ(stats.max_read_request, proto::kMaxRead);
  EXPECT_EQ(stats.bytes_read, data.size());
}

TEST_F(MountTest, ConcurrentReadersOfDifferentAndTheSameFiles) {
  std::vector<std::string> data;
  for (int i = 0; i < 3; ++i) {
    data.push_back(random_bytes((4U << 20) + static_cast<std::size_t>(i) * 4099,
                                10 + static_cast<std::uint64_t>(i)));
    write_file(root_ / ("f" + std::to_string(i)), data.back());
  }
  start_peer();
  mount();
  bounded([&] {
    // Readers 0 and 1 read different files; 2 and 3 the same one, with other sizes.
    const std::vector<std::pair<int, std::size_t>> plan = {
        {0, 1 << 20}, {1, 64 << 10}, {2, 1 << 20}, {2, 8192 + 3}};
    std::vector<std::future<std::optional<std::string>>> readers;
    readers.reserve(plan.size());
    for (const auto& [file, chunk] : plan) {
      readers.push_back(std::async(std::launch::async, [this, file, chunk] {
        return read_all(m("f" + std::to_string(file)), chunk);
      }));
    }
    for (std::size_t i = 0; i < plan.size(); ++i) {
      const auto content = readers[i].get();
      ASSERT_TRUE(content) << "reader " << i << ": " << std::strerror(errno);
      EXPECT_TRUE(*content == data[static_cast<std::size_t>(plan[i].first)]) << "reader " << i;
    }
  });
  EXPECT_EQ(mount_->stats().failed_eio, 0U);
}

TEST_F(MountTest, IsReadOnly) {
  write_file(root_ / "file.txt", "content\n");
  fs::create_directories(root_ / "dir");
  start_peer();
  mount();
  bounded([&] {
    errno = 0;
    EXPECT_EQ(::open(m("file.txt").c_str(), O_WRONLY), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::open(m("file.txt").c_str(), O_RDWR), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::open(m("new.txt").c_str(), O_WRONLY | O_CREAT, 0644), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::mkdir(m("newdir").c_str(), 0755), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::unlink(m("file.txt").c_str()), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::rename(m("file.txt").c_str(), m("dir/file.txt").c_str()), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::chmod(m("file.txt").c_str(), 0777), -1);
    EXPECT_EQ(errno, EROFS);
    EXPECT_EQ(::truncate(m("file.txt").c_str(), 0), -1);
    EXPECT_EQ(errno, EROFS);
    const auto content = read_all(m("file.txt"));
    ASSERT_TRUE(content);
    EXPECT_EQ(*content, "content\n");
  });
  EXPECT_EQ(slurp(root_ / "file.txt"), "content\n");
}

// Peer A vanishes while a read waits for it: the reader gets EIO within 2 s, and the
// mount goes away on its own (bounded).
TEST_F(MountTest, ChannelFailureMidReadGivesEioThenUnmounts) {
  write_file(root_ / "file.bin", random_bytes(4U << 20, 3));
  start_peer();
  mount();
  const int fd = bounded([&] { return ::open(m("file.bin").c_str(), O_RDONLY | O_CLOEXEC); });
  ASSERT_GE(fd, 0);
  channel_->pause();  // A stops answering: the read below waits for it
  auto reader = std::async(std::launch::async, [fd] {
    std::string buf(1 << 20, '\0');
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    const int err = errno;
    return std::make_pair(n, err);
  });
  ASSERT_TRUE(eventually([&] { return channel_->held() > 0; })) << "the READ never reached A";
  EXPECT_EQ(reader.wait_for(200ms), std::future_status::timeout) << "the read did not wait";

  const auto failed_at = std::chrono::steady_clock::now();
  channel_->fail();
  ASSERT_EQ(reader.wait_for(2s), std::future_status::ready) << "the reader hangs";
  const auto [n, err] = reader.get();
  EXPECT_LT(std::chrono::steady_clock::now() - failed_at, 2s);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EIO);

  // Later requests fail at once too, and then the mount is gone.
  ASSERT_TRUE(wait_unmounted(mount_, kUnmountTimeout)) << "the mount did not go away";
  EXPECT_EQ(mount_->end_reason(), MountEnd::ChannelFailed);
  EXPECT_FALSE(detail::find_mount(mnt_.string()));
  EXPECT_FALSE(fs::exists(mnt_)) << "the mountpoint we created was not removed";
  bounded([fd] { return ::close(fd); });
  EXPECT_GE(mount_->stats().failed_eio, 1U);
}

// unmount() while a reader waits on a slow peer: the reader gets EIO, nothing hangs.
TEST_F(MountTest, UnmountWhileAReaderWaitsOnASlowPeer) {
  write_file(root_ / "file.bin", random_bytes(2U << 20, 4));
  start_peer();
  mount();
  const int fd = bounded([&] { return ::open(m("file.bin").c_str(), O_RDONLY | O_CLOEXEC); });
  ASSERT_GE(fd, 0);
  channel_->pause();
  auto reader = std::async(std::launch::async, [fd] {
    std::string buf(256 << 10, '\0');
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    const int err = errno;
    return std::make_pair(n, err);
  });
  ASSERT_TRUE(eventually([&] { return channel_->held() > 0; }));

  const auto asked_at = std::chrono::steady_clock::now();
  mount_->unmount();
  ASSERT_EQ(reader.wait_for(2s), std::future_status::ready) << "the reader hangs";
  const auto [n, err] = reader.get();
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EIO);
  ASSERT_TRUE(wait_unmounted(mount_, kUnmountTimeout));
  EXPECT_LT(std::chrono::steady_clock::now() - asked_at, 2s);
  EXPECT_EQ(mount_->end_reason(), MountEnd::Unmounted);
  EXPECT_FALSE(detail::find_mount(mnt_.string()));
  bounded([fd] { return ::close(fd); });

  // The slow peer answers at last: nothing breaks, and A ends balanced (the mount
  // released the open file and forgot its nodes at unmount).
  channel_->resume();
  EXPECT_TRUE(eventually([&] { return exporter_handles() == 0; }));
  EXPECT_TRUE(eventually([&] { return exporter_nodes() == 1; }));
}

// Every wait has a bound: a peer that never answers (a hung disk on A) gives the caller
// EIO after answer_deadline, and the mount stays usable; the late answer harms nothing.
TEST_F(MountTest, ARequestAUnansweredPastTheDeadlineGetsEio) {
  write_file(root_ / "file.bin", random_bytes(1U << 20, 5));
  start_peer();
  auto opts = options();
  opts.answer_deadline = 1s;
  auto started = start_mount(opts);
  ASSERT_TRUE(started) << started.error().message();
  mount_ = *started;
  const int fd = bounded([&] { return ::open(m("file.bin").c_str(), O_RDONLY | O_CLOEXEC); });
  ASSERT_GE(fd, 0);
  channel_->pause();
  const auto asked_at = std::chrono::steady_clock::now();
  auto reader = std::async(std::launch::async, [fd] {
    std::string buf(64 << 10, '\0');
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    return std::make_pair(n, errno);
  });
  ASSERT_EQ(reader.wait_for(10s), std::future_status::ready) << "the reader hangs";
  const auto [n, err] = reader.get();
  EXPECT_EQ(n, -1);
  EXPECT_EQ(err, EIO);
  EXPECT_GE(std::chrono::steady_clock::now() - asked_at, 900ms);
  channel_->resume();
  EXPECT_FALSE(mount_->unmounted());
  std::string buf(16, '\0');
  EXPECT_EQ(bounded([&] { return ::pread(fd, buf.data(), buf.size(), 0); }), 16);
  bounded([fd] { return ::close(fd); });
}

// A slow peer never blocks the kernel queue: requests of several processes wait for A
// at the same time, and all complete once A answers.
TEST_F(MountTest, ManyRequestsWaitForASlowPeerAtOnce) {
  for (int i = 0; i < 6; ++i) {
    write_file(root_ / ("f" + std::to_string(i)),
               std::string(1000 + static_cast<std::size_t>(i), 'a'));
  }
  start_peer();
  mount();
  channel_->pause();
  std::vector<std::future<std::optional<std::string>>> readers;
  readers.reserve(6);
  for (int i = 0; i < 6; ++i) {
    readers.push_back(
        std::async(std::launch::async, [this, i] { return read_all(m("f" + std::to_string(i))); }));
  }
  EXPECT_TRUE(eventually([&] { return channel_->held() >= 6; }))
      << "only " << channel_->held() << " requests reached A while it was slow";
  EXPECT_GE(mount_->stats().in_flight, 6U);
  channel_->resume();
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(readers[static_cast<std::size_t>(i)].wait_for(kFsTimeout), std::future_status::ready);
    const auto content = readers[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(content) << i;
    EXPECT_EQ(content.value().size(), 1000U + static_cast<std::size_t>(i));
  }
}

// A busy peer answers EAGAIN: the mount asks again, the reader never sees it.
TEST_F(MountTest, BusyPeerIsAskedAgain) {
  const std::string data = random_bytes(3U << 20, 7);
  write_file(root_ / "file.bin", data);
  start_peer();
  mount();
  channel_->answer_errno(proto::Op::Read, EAGAIN, 5);
  const auto content = bounded([&] { return read_all(m("file.bin")); });
  ASSERT_TRUE(content) << std::strerror(errno);
  EXPECT_TRUE(content.value() == data);
  EXPECT_EQ(channel_->injected(), 5U);

  // Other errnos pass through to the caller as they are.
  channel_->answer_errno(proto::Op::Lookup, EACCES, 1);
  const int err = bounded([&] {
    struct stat st{};
    return ::stat(m("not-yet-looked-up").c_str(), &st) == 0 ? 0 : errno;
  });
  EXPECT_EQ(err, EACCES);
}

TEST_F(MountTest, OneMountPerSession) {
  start_peer();
  mount();
  MountOptions o = options();
  o.mountpoint = (tmp_ / "b" / "second").string();
  const auto second = start_mount(o);  // A refuses a second Hello on one connection
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error(), MountErrc::HelloRejected);
  EXPECT_FALSE(fs::exists(tmp_ / "b" / "second"));
}

TEST_F(MountTest, StartFailsWithoutAnAnswerToHello) {
  start_peer();
  MountOptions o = options();
  o.hello_timeout = 200ms;
  channel_->pause();
  const auto timed_out = start_mount(o);
  ASSERT_FALSE(timed_out);
  EXPECT_EQ(timed_out.error(), MountErrc::HelloFailed);
  channel_->fail();
  const auto failed = start_mount(o);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error(), MountErrc::HelloFailed);
  EXPECT_FALSE(fs::exists(mnt_));
}

// Someone else unmounts (umount, fusermount3 -u): the mount notices and ends.
TEST_F(MountTest, EndsWhenUnmountedElsewhere) {
  write_file(root_ / "file.txt", "x");
  start_peer();
  mount();
  ASSERT_EQ(bounded([&] { return ::umount2(mnt_.c_str(), 0); }), 0) << std::strerror(errno);
  ASSERT_TRUE(wait_unmounted(mount_, kUnmountTimeout));
  EXPECT_EQ(mount_->end_reason(), MountEnd::KernelUnmounted);
  EXPECT_FALSE(fs::exists(mnt_));
}

TEST_F(MountTest, CreatesAndRemovesItsMountpointButKeepsAnExistingOne) {
  write_file(root_ / "file.txt", "x");
  start_peer();
  ASSERT_FALSE(fs::exists(mnt_));
  mount();
  EXPECT_TRUE(detail::find_mount(mnt_.string()));
  mount_->unmount();
  ASSERT_TRUE(wait_unmounted(mount_, kUnmountTimeout));
  EXPECT_FALSE(fs::exists(mnt_)) << "created by the mount: removed at unmount";

  fs::create_directory(mnt_);
  new_session();
  mount();
  EXPECT_TRUE(bounded([&] { return fs::exists(mnt_ / "file.txt"); }));
  mount_->unmount();
  ASSERT_TRUE(wait_unmounted(mount_, kUnmountTimeout));
  EXPECT_TRUE(fs::is_directory(mnt_)) << "existed before: kept";
  EXPECT_TRUE(fs::is_empty(mnt_));
}

TEST_F(MountTest, RefusesANonEmptyDirectory) {
  write_file(mnt_ / "precious.txt", "do not hide me");
  start_peer();
  const auto m = start_mount(options());
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error(), MountErrc::MountpointNotEmpty);
  EXPECT_FALSE(detail::find_mount(mnt_.string()));
  EXPECT_EQ(slurp(mnt_ / "precious.txt"), "do not hide me");

  // And a plain file is not a mountpoint.
  new_session();
  MountOptions o = options();
  o.mountpoint = (mnt_ / "precious.txt").string();
  const auto on_file = start_mount(o);
  ASSERT_FALSE(on_file);
  EXPECT_EQ(on_file.error(), MountErrc::BadMountpoint);
}

// A run that crashed left its mount behind (the server died: ENOTCONN). The next
// Mount::start at the same path detects it, unmounts it and mounts.
TEST_F(MountTest, CleansAStaleMountLeftByACrashedRun) {
  write_file(root_ / "file.txt", "still here\n");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  // Fork before this process has any thread.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    asio::io_context io;
    auto exporter = Exporter::create(io.get_executor(), root_.string(), ExporterOptions{});
    if (!exporter) {
      ::_exit(2);
    }
    auto channel = test::LocalChannel::create(io.get_executor(), *exporter);
    io::Executor executor = io.get_executor();
    std::shared_ptr<proto::Channel> ch = channel;
    std::shared_ptr<Mount> mounted;
    asio::co_spawn(io, Mount::start(executor, ch, options()),
                   [&](std::exception_ptr, const base::Result<std::shared_ptr<Mount>>& r) {
                     if (!r) {
                       ::_exit(3);
                     }
                     mounted = *r;
                     const char byte = 1;
                     if (::write(ready[1], &byte, 1) != 1) {
                       ::_exit(4);
                     }
                   });
    auto guard = asio::make_work_guard(io);
    io.run();
    ::_exit(5);
  }
  ::close(ready[1]);
  pollfd pfd{ready[0], POLLIN, 0};
  const int polled = ::poll(&pfd, 1, 20000);
  char byte = 0;
  const bool child_mounted = polled == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  ::kill(child, SIGKILL);  // the crash
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(child_mounted) << "the child could not mount";

  const auto stale = detail::find_mount(mnt_.string());
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale.value().fs_type, "fuse.peertun");
  start_peer();
  const int stat_errno = bounded([&] {
    struct stat st{};
    return ::stat(mnt_.c_str(), &st) == 0 ? 0 : errno;
  });
  EXPECT_EQ(stat_errno, ENOTCONN);

  mount();
  int ours = 0;
  for (const auto& e : detail::read_mountinfo()) {
    ours += e.mount_point == mnt_.string() ? 1 : 0;
  }
  EXPECT_EQ(ours, 1) << "the stale mount is still stacked underneath";
  const auto content = bounded([&] { return read_all(m("file.txt")); });
  ASSERT_TRUE(content);
  EXPECT_EQ(content.value(), "still here\n");
}

// A file changes on A while it is open on B: a read of what the kernel has not cached
// gets ESTALE (not torn data); reopening gives the new content and size.
TEST_F(MountTest, FileChangedOnAGivesEstaleThenTheNewContentAfterReopen) {
  const std::string before = random_bytes(4U << 20, 5);
  const std::string after = random_bytes(5U << 20, 6);
  write_file(root_ / "changing.bin", before);
  set_mtime(root_ / "changing.bin", 1600000000, 0);
  start_peer();
  mount();
  bounded([&] {
    const int fd = ::open(m("changing.bin").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    std::string buf(4096, '\0');
    ASSERT_EQ(::pread(fd, buf.data(), buf.size(), 0), 4096);
    EXPECT_EQ(buf, before.substr(0, 4096));

    write_file(root_ / "changing.bin", after);  // same inode, new size and mtime
    errno = 0;
    EXPECT_EQ(::pread(fd, buf.data(), buf.size(), 3 << 20), -1);
    EXPECT_EQ(errno, ESTALE);
    ::close(fd);

    const auto content = read_all(m("changing.bin"));
    ASSERT_TRUE(content) << std::strerror(errno);
    EXPECT_EQ(content->size(), after.size());
    EXPECT_TRUE(*content == after);
  });
}

TEST(MountInfo, ParsesAndUnescapesLines) {
  const std::string text =
      "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw\n"
      "98 29 0:52 / /tmp/with\\040space/mnt rw,nosuid,nodev,relatime shared:50 - "
      "fuse.peertun peertun:abc ro,user_id=0,group_id=0\n"
      "garbage line\n"
      "99 29 0:53 / /tmp/back\\134slash rw - fuse.sshfs host:/x rw\n";
  const auto entries = detail::parse_mountinfo(text);
  ASSERT_EQ(entries.size(), 3U);
  EXPECT_EQ(entries[0].mount_point, "/proc");
  EXPECT_EQ(entries[1].mount_point, "/tmp/with space/mnt");
  EXPECT_EQ(entries[1].fs_type, "fuse.peertun");
  EXPECT_EQ(entries[1].source, "peertun:abc");
  EXPECT_EQ(entries[1].major, 0U);
  EXPECT_EQ(entries[1].minor, 52U);
  EXPECT_EQ(entries[2].mount_point, "/tmp/back\\slash");
  EXPECT_EQ(detail::unescape_mountinfo("a\\011b\\012c\\0"), "a\tb\nc\\0");
}

TEST(MountInfo, TheOwnerIsAliveOnlyIfItsPidRunsThisProgram) {
  detail::MountInfoEntry entry;
  entry.fs_type = "fuse.peertun";
  entry.source = "peertun:ABCD#" + std::to_string(::getpid());
  EXPECT_TRUE(detail::mount_owner_alive(entry));
  entry.source = "peertun:ABCD";  // no owner recorded: an older peertun's, stale
  EXPECT_FALSE(detail::mount_owner_alive(entry));
  entry.source = "peertun:ABCD#1";  // alive, but init, not this program
  EXPECT_FALSE(detail::mount_owner_alive(entry));
  entry.source = "peertun:ABCD#999999999";  // above pid_max: gone
  EXPECT_FALSE(detail::mount_owner_alive(entry));
  entry.source = "peertun:ABCD#12x";
  EXPECT_FALSE(detail::mount_owner_alive(entry));
}

TEST(MountInfo, CanonicalMountpointResolvesTheParentOnly) {
  EXPECT_EQ(*detail::canonical_mountpoint("/tmp/../tmp/./x/"), "/tmp/x");
  EXPECT_FALSE(detail::canonical_mountpoint(""));
  EXPECT_FALSE(detail::canonical_mountpoint("/"));
  EXPECT_EQ(default_mountpoint("2A91"), "/tmp/p2p-2A91");
}

}  // namespace
}  // namespace peertun::share
