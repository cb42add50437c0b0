#include "share/exporter/exporter.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "share/exporter/fs_ops.h"

namespace peertun::share {
namespace {

namespace fs = std::filesystem;
using proto::HandleId;
using proto::NodeId;
using proto::Response;

// Every wait in these tests is bounded by this.
constexpr auto kBound = std::chrono::seconds(10);

void write_file(const fs::path& path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) {
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  }
  return s;
}

std::string to_string(const wire::Bytes& data) { return {data.begin(), data.end()}; }

// Binds a Unix socket at `path` (which leaves a socket file behind).
void make_socket_file(const fs::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  ASSERT_LT(p.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
  ::close(fd);
  ASSERT_EQ(rc, 0) << std::strerror(errno);
}

// Should the exporter ever open a FIFO for reading in blocking mode, this opens the
// writing end now and then, which releases such a reader: a broken exporter then fails
// the test instead of hanging it.
class FifoUnblocker {
 public:
  explicit FifoUnblocker(fs::path fifo) : fifo_(std::move(fifo)), thread_([this] { run(); }) {}
  FifoUnblocker(const FifoUnblocker&) = delete;
  FifoUnblocker& operator=(const FifoUnblocker&) = delete;
  ~FifoUnblocker() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::seconds(2), [this] { return done_; })) {
      const int fd = ::open(fifo_.c_str(), O_WRONLY | O_NONBLOCK);
      if (fd >= 0) {
        ::close(fd);
      }
    }
  }

  fs::path fifo_;
  std::mutex mutex_;  // guards done_
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

template <class T>
T body_of(const Response& r) {
  if (const auto* p = std::get_if<T>(&r.body)) {
    return *p;
  }
  ADD_FAILURE() << "unexpected answer: op " << static_cast<int>(r.op) << " errno " << r.error
                << " (" << std::strerror(static_cast<int>(r.error)) << ")";
  return T{};
}

bool is_refusal(const Response& r) {
  return r.error == ELOOP || r.error == EXDEV || r.error == ESTALE || r.error == ENOTDIR;
}

class ExporterTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "peertun-exporter-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    base_ = tmpl;
    share_ = base_ / "share";
    outside_ = base_ / "outside";
    fs::create_directory(share_);
    fs::create_directory(outside_);
    write_file(outside_ / "secret", "outside secret");
  }

  void TearDown() override {
    if (exporter_) {
      exporter_->stop();
      exporter_.reset();
    }
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  void start(ExporterOptions options = {}) {
    auto created = Exporter::create(io_.get_executor(), share_.string(), options);
    ASSERT_TRUE(created) << created.error().message();
    exporter_ = *created;
  }

  void start_with_hello(ExporterOptions options = {}, bool want_write = false) {
    start(options);
    const auto r = call(proto::HelloRequest{.want_write = want_write});
    ASSERT_EQ(r.error, 0U);
  }

  void run() {
    io_.restart();
    io_.run_for(kBound);
  }

  // Sends requests and runs the io_context until every one is answered (bounded).
  std::vector<Response> call_all(std::vector<proto::RequestBody> bodies) {
    auto answers = std::make_shared<std::vector<Response>>();
    std::vector<proto::RequestId> ids;
    for (auto& body : bodies) {
      const proto::RequestId id = next_id_++;
      ids.push_back(id);
      exporter_->handle(proto::Request{.id = id, .body = std::move(body)},
                        [answers](Response r) { answers->push_back(std::move(r)); });
    }
    run();
    EXPECT_EQ(answers->size(), ids.size()) << "answers missing or duplicated";
    // In request order.
    std::map<proto::RequestId, Response> by_id;
    for (auto& a : *answers) {
      EXPECT_TRUE(by_id.emplace(a.id, a).second) << "answered twice: " << a.id;
    }
    std::vector<Response> ordered;
    for (const auto id : ids) {
      const auto it = by_id.find(id);
      ordered.push_back(it == by_id.end() ? proto::error_response(id, proto::Op::Hello, -1)
                                          : it->second);
    }
    return ordered;
  }

  Response call(proto::RequestBody body) {
    std::vector<proto::RequestBody> one;
    one.push_back(std::move(body));
    return call_all(std::move(one)).at(0);
  }

  // Sends a request that must never be answered.
  void send_unanswered(proto::RequestBody body) {
    auto calls = std::make_shared<int>(0);
    exporter_->handle(proto::Request{.id = next_id_++, .body = std::move(body)},
                      [calls](Response) { ++*calls; });
    run();
    EXPECT_EQ(*calls, 0);
  }

  proto::EntryReply lookup_entry(NodeId parent, const std::string& name) {
    const auto r = call(proto::LookupRequest{.parent = parent, .name = name});
    EXPECT_EQ(r.error, 0U) << name << ": " << std::strerror(static_cast<int>(r.error));
    return body_of<proto::EntryReply>(r);
  }
  NodeId lookup(NodeId parent, const std::string& name) {
    return lookup_entry(parent, name).attr.node;
  }
  // Looks up a relative path component by component.
  NodeId lookup_path(const std::string& path) {
    NodeId node = proto::kRootNode;
    for (const auto& part : fs::path(path)) {
      node = lookup(node, part.string());
    }
    return node;
  }

  HandleId open(NodeId node) {
    return body_of<proto::OpenReply>(call(proto::OpenRequest{.node = node})).handle;
  }

  Response read(HandleId handle, std::uint64_t offset, std::uint32_t length) {
    return call(proto::ReadRequest{.handle = handle, .offset = offset, .length = length});
  }

  std::string read_ok(HandleId handle, std::uint64_t offset, std::uint32_t length) {
    return to_string(body_of<proto::ReadReply>(read(handle, offset, length)).data);
  }

  // Lists a directory with pages of `max_entries`; counts the calls.
  std::vector<proto::DirEntry> list(NodeId dir, std::uint32_t max_entries, int* calls = nullptr) {
    std::vector<proto::DirEntry> all;
    std::uint64_t cookie = 0;
    for (int i = 0; i < 100'000; ++i) {
      if (calls != nullptr) {
        ++*calls;
      }
      const auto r =
          call(proto::ReadDirRequest{.node = dir, .cookie = cookie, .max_entries = max_entries});
      if (r.error != 0) {
        ADD_FAILURE() << "ReadDir: " << std::strerror(static_cast<int>(r.error));
        break;
      }
      const auto page = body_of<proto::ReadDirReply>(r);
      EXPECT_LE(page.entries.size(), max_entries);
      for (const auto& e : page.entries) {
        all.push_back(e);
      }
      if (page.end) {
        break;
      }
      if (page.entries.empty()) {
        ADD_FAILURE() << "empty page without end";
        break;
      }
      cookie = page.entries.back().cookie;
    }
    return all;
  }

  static std::set<std::string> names_of(const std::vector<proto::DirEntry>& entries) {
    std::set<std::string> names;
    for (const auto& e : entries) {
      EXPECT_TRUE(names.insert(e.name).second) << "listed twice: " << e.name;
    }
    return names;
  }

  io::asio::io_context io_;
  fs::path base_;
  fs::path share_;
  fs::path outside_;
  std::shared_ptr<Exporter> exporter_;
  proto::RequestId next_id_ = 1;
};

// ---- create() ----

TEST_F(ExporterTest, CreateFailsForMissingRoot) {
  auto e = Exporter::create(io_.get_executor(), (base_ / "missing").string(), {});
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(), make_error_code(ExporterErrc::CannotOpenRoot));
  auto empty = Exporter::create(io_.get_executor(), "", {});
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error(), make_error_code(ExporterErrc::CannotOpenRoot));
}

TEST_F(ExporterTest, CreateFailsForRootThatIsAFile) {
  write_file(base_ / "file", "x");
  auto e = Exporter::create(io_.get_executor(), (base_ / "file").string(), {});
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error(), make_error_code(ExporterErrc::NotADirectory));
  EXPECT_FALSE(e.error().message().empty());
}

TEST_F(ExporterTest, CreateFollowsASymlinkToTheRootOnce) {
  write_file(share_ / "f", "via link");
  fs::create_directory_symlink(share_, base_ / "root-link");
  auto e = Exporter::create(io_.get_executor(), (base_ / "root-link").string(), {});
  ASSERT_TRUE(e);
  exporter_ = *e;
  ASSERT_EQ(call(proto::HelloRequest{}).error, 0U);
  EXPECT_EQ(read_ok(open(lookup(proto::kRootNode, "f")), 0, 100), "via link");
}

// ---- Hello ----

TEST_F(ExporterTest, EverythingBeforeHelloIsEproto) {
  write_file(share_ / "f", "x");
  start();
  EXPECT_EQ(call(proto::GetAttrRequest{.node = proto::kRootNode}).error,
            static_cast<std::uint32_t>(EPROTO));
  EXPECT_EQ(call(proto::LookupRequest{.parent = proto::kRootNode, .name = "f"}).error,
            static_cast<std::uint32_t>(EPROTO));
  EXPECT_EQ(call(proto::ReadDirRequest{.node = 1, .max_entries = 10}).error,
            static_cast<std::uint32_t>(EPROTO));
  EXPECT_EQ(call(proto::ReadRequest{.handle = 1, .length = 1}).error,
            static_cast<std::uint32_t>(EPROTO));
  send_unanswered(proto::ForgetRequest{.nodes = {{proto::kRootNode, 1}}});
  EXPECT_EQ(exporter_->known_nodes(), 1U);
  // Hello then works.
  const auto hello = call(proto::HelloRequest{});
  ASSERT_EQ(hello.error, 0U);
  EXPECT_EQ(hello.op, proto::Op::Hello);
  EXPECT_EQ(call(proto::GetAttrRequest{.node = proto::kRootNode}).error, 0U);
}

TEST_F(ExporterTest, HelloNegotiatesTheVersion) {
  start();
  const auto wide = call(proto::HelloRequest{.min_version = 1, .max_version = 9});
  ASSERT_EQ(wide.error, 0U);
  const auto hello = body_of<proto::HelloReply>(wide);
  EXPECT_EQ(hello.version, proto::kVersion);
  EXPECT_FALSE(hello.writable);
  EXPECT_EQ(hello.max_read, proto::kMaxRead);
  EXPECT_EQ(hello.root.node, proto::kRootNode);
  EXPECT_TRUE(S_ISDIR(hello.root.mode));
  struct stat st{};
  ASSERT_EQ(::stat(share_.c_str(), &st), 0);
  EXPECT_EQ(hello.root.uid, st.st_uid);
  EXPECT_EQ(hello.root.mtime.seconds, st.st_mtim.tv_sec);

  EXPECT_EQ(call(proto::HelloRequest{.min_version = 2, .max_version = 3}).error,
            static_cast<std::uint32_t>(EPROTONOSUPPORT));
  EXPECT_EQ(call(proto::HelloRequest{.min_version = 0, .max_version = 0}).error,
            static_cast<std::uint32_t>(EPROTONOSUPPORT));
  EXPECT_EQ(call(proto::HelloRequest{.min_version = 3, .max_version = 1}).error,
            static_cast<std::uint32_t>(EINVAL));
  // One Hello per connection: a second one is refused, the first one stands.
  EXPECT_EQ(call(proto::HelloRequest{}).error, static_cast<std::uint32_t>(EPROTO));
  exporter_->stop();
  start();
  EXPECT_EQ(body_of<proto::HelloReply>(call(proto::HelloRequest{.min_version = 0})).version, 1);
}

TEST_F(ExporterTest, RequestsPipelinedBehindHelloAreServed) {
  start();
  // Sent back to back, as a client that does not wait for Hello's answer would.
  std::vector<proto::Response> answers;
  exporter_->handle(proto::Request{.id = 1, .body = proto::HelloRequest{}},
                    [&answers](proto::Response r) { answers.push_back(std::move(r)); });
  exporter_->handle(
      proto::Request{.id = 2, .body = proto::GetAttrRequest{.node = proto::kRootNode}},
      [&answers](proto::Response r) { answers.push_back(std::move(r)); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (answers.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(answers.size(), 2U);
  for (const auto& a : answers) {
    EXPECT_EQ(a.error, 0U) << static_cast<int>(a.op);
  }
}

TEST_F(ExporterTest, WritableNeedsBothSides) {
  start();
  EXPECT_FALSE(body_of<proto::HelloReply>(call(proto::HelloRequest{.want_write = true})).writable);
  exporter_->stop();
  ExporterOptions rw;
  rw.writable = true;
  start(rw);
  EXPECT_FALSE(body_of<proto::HelloReply>(call(proto::HelloRequest{.want_write = false})).writable);
  exporter_->stop();
  start(rw);
  EXPECT_TRUE(body_of<proto::HelloReply>(call(proto::HelloRequest{.want_write = true})).writable);
}

// ---- the tree ----

TEST_F(ExporterTest, ServesNestedFoldersEmptyFilesSpacesAndUtf8Names) {
  const std::string utf8 = "na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac.txt";  // "naïve 日本.txt"
  write_file(share_ / "empty", "");
  fs::create_directories(share_ / "a" / "b" / "c");
  write_file(share_ / "a" / "b" / "c" / "deep.txt", "deep");
  write_file(share_ / "with space.txt", "spaced");
  write_file(share_ / utf8, "unicode");
  start_with_hello();

  EXPECT_EQ(names_of(list(proto::kRootNode, 100)),
            (std::set<std::string>{"empty", "a", "with space.txt", utf8}));
  const auto a = lookup_entry(proto::kRootNode, "a");
  EXPECT_TRUE(S_ISDIR(a.attr.mode));
  EXPECT_NE(a.attr.node, proto::kRootNode);
  const NodeId deep = lookup_path("a/b/c/deep.txt");
  const auto attr = body_of<proto::AttrReply>(call(proto::GetAttrRequest{.node = deep})).attr;
  EXPECT_TRUE(S_ISREG(attr.mode));
  EXPECT_EQ(attr.size, 4U);
  EXPECT_EQ(attr.node, deep);
  EXPECT_EQ(read_ok(open(deep), 0, 100), "deep");
  EXPECT_EQ(read_ok(open(lookup(proto::kRootNode, "with space.txt")), 0, 100), "spaced");
  EXPECT_EQ(read_ok(open(lookup(proto::kRootNode, utf8)), 0, 100), "unicode");
  const HandleId empty = open(lookup(proto::kRootNode, "empty"));
  EXPECT_EQ(read_ok(empty, 0, 4096), "");
  EXPECT_EQ(names_of(list(lookup_path("a/b"), 1)), std::set<std::string>{"c"});

  EXPECT_EQ(call(proto::LookupRequest{.parent = proto::kRootNode, .name = "nope"}).error,
            static_cast<std::uint32_t>(ENOENT));
  EXPECT_EQ(call(proto::LookupRequest{.parent = deep, .name = "x"}).error,
            static_cast<std::uint32_t>(ENOTDIR));
  EXPECT_EQ(call(proto::ReadDirRequest{.node = deep, .max_entries = 5}).error,
            static_cast<std::uint32_t>(ENOTDIR));
  EXPECT_EQ(call(proto::OpenRequest{.node = a.attr.node}).error,
            static_cast<std::uint32_t>(EISDIR));
}

TEST_F(ExporterTest, GetAttrAndStatFs) {
  start_with_hello();
  const auto root = body_of<proto::AttrReply>(call(proto::GetAttrRequest{.node = 1})).attr;
  EXPECT_EQ(root.node, proto::kRootNode);
  EXPECT_TRUE(S_ISDIR(root.mode));
  const auto fs_reply = body_of<proto::StatFsReply>(call(proto::StatFsRequest{.node = 1}));
  EXPECT_GT(fs_reply.block_size, 0U);
  EXPECT_GT(fs_reply.blocks, 0U);
  EXPECT_EQ(fs_reply.name_max, 255U);
}

TEST_F(ExporterTest, CraftedNamesAreRefused) {
  start_with_hello();
  for (const std::string& name :
       {std::string(".."), std::string("."), std::string(), std::string("a/b"), std::string("/etc"),
        std::string("../outside"), std::string("x\0y", 3), std::string(256, 'x')}) {
    EXPECT_EQ(call(proto::LookupRequest{.parent = proto::kRootNode, .name = name}).error,
              static_cast<std::uint32_t>(EINVAL))
        << name;
  }
}

// ---- reads ----

TEST_F(ExporterTest, ReadsAtOffsetsLengthsAndEndOfFile) {
  const std::string content = pattern(10'000);
  write_file(share_ / "f", content);
  start_with_hello();
  const HandleId h = open(lookup(proto::kRootNode, "f"));
  EXPECT_EQ(read_ok(h, 0, 100), content.substr(0, 100));
  EXPECT_EQ(read_ok(h, 1234, 4000), content.substr(1234, 4000));
  EXPECT_EQ(read_ok(h, 9990, 100), content.substr(9990));
  EXPECT_EQ(read_ok(h, 10'000, 10), "");
  EXPECT_EQ(read_ok(h, 20'000, 1), "");
  EXPECT_EQ(read_ok(h, 0, proto::kMaxRead), content);
  const auto int64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(read_ok(h, int64_max, proto::kMaxRead), "");

  const auto einval = static_cast<std::uint32_t>(EINVAL);
  EXPECT_EQ(read(h, 0, 0).error, einval);
  EXPECT_EQ(read(h, 0, proto::kMaxRead + 1).error, einval);
  EXPECT_EQ(read(h, 0, std::numeric_limits<std::uint32_t>::max()).error, einval);
  EXPECT_EQ(read(h, int64_max + 1, 1).error, einval);  // 2^63, "negative"
  EXPECT_EQ(read(h, std::numeric_limits<std::uint64_t>::max(), 1).error, einval);
}

TEST_F(ExporterTest, ReadsALargeFileInFullSizeChunks) {
  const std::string content = pattern(3 * proto::kMaxRead + 12'345);
  write_file(share_ / "big", content);
  start_with_hello();
  const HandleId h = open(lookup(proto::kRootNode, "big"));
  std::string got;
  for (std::uint64_t offset = 0;; offset += proto::kMaxRead) {
    const std::string chunk = read_ok(h, offset, proto::kMaxRead);
    got += chunk;
    if (chunk.size() < proto::kMaxRead) {
      break;
    }
  }
  EXPECT_EQ(got.size(), content.size());
  EXPECT_TRUE(got == content);
}

TEST_F(ExporterTest, UnknownHandlesAndNodes) {
  write_file(share_ / "f", "x");
  start_with_hello();
  const auto ebadf = static_cast<std::uint32_t>(EBADF);
  const auto estale = static_cast<std::uint32_t>(ESTALE);
  EXPECT_EQ(read(999, 0, 1).error, ebadf);
  EXPECT_EQ(call(proto::ReleaseRequest{.handle = 999}).error, ebadf);
  EXPECT_EQ(call(proto::ReleaseRequest{.handle = 0}).error, ebadf);
  for (const NodeId n : {NodeId{0}, NodeId{2}, NodeId{999}, ~NodeId{0}}) {
    EXPECT_EQ(call(proto::GetAttrRequest{.node = n}).error, estale);
    EXPECT_EQ(call(proto::LookupRequest{.parent = n, .name = "f"}).error, estale);
    EXPECT_EQ(call(proto::ReadDirRequest{.node = n, .max_entries = 1}).error, estale);
    EXPECT_EQ(call(proto::OpenRequest{.node = n}).error, estale);
    EXPECT_EQ(call(proto::ReadLinkRequest{.node = n}).error, estale);
    EXPECT_EQ(call(proto::StatFsRequest{.node = n}).error, estale);
  }
  // A released handle is unknown afterwards.
  const HandleId h = open(lookup(proto::kRootNode, "f"));
  EXPECT_EQ(exporter_->open_handles(), 1U);
  EXPECT_EQ(call(proto::ReleaseRequest{.handle = h}).error, 0U);
  EXPECT_EQ(exporter_->open_handles(), 0U);
  EXPECT_EQ(read(h, 0, 1).error, ebadf);
  EXPECT_EQ(call(proto::ReleaseRequest{.handle = h}).error, ebadf);
}

TEST_F(ExporterTest, FileChangedBetweenOpenAndReadIsStaleAndAReopenWorks) {
  write_file(share_ / "f", "version one");
  start_with_hello();
  const NodeId node = lookup(proto::kRootNode, "f");
  const HandleId h = open(node);
  EXPECT_EQ(read_ok(h, 0, 100), "version one");

  // Size changes.
  {
    std::ofstream out(share_ / "f", std::ios::app);
    out << ", appended";
  }
  EXPECT_EQ(read(h, 0, 100).error, static_cast<std::uint32_t>(ESTALE));
  EXPECT_EQ(read(h, 50, 100).error, static_cast<std::uint32_t>(ESTALE));  // even past the end
  const HandleId h2 = open(node);
  EXPECT_EQ(read_ok(h2, 0, 100), "version one, appended");

  // Same size, new mtime (set explicitly: no dependence on the clock's granularity).
  write_file(share_ / "f", "VERSION ONE, APPENDED");
  const struct timespec times[2] = {{.tv_sec = 1'000'000, .tv_nsec = 0},
                                    {.tv_sec = 1'000'000, .tv_nsec = 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (share_ / "f").c_str(), times, 0), 0);
  EXPECT_EQ(read(h2, 0, 100).error, static_cast<std::uint32_t>(ESTALE));
  const HandleId h3 = open(node);
  EXPECT_EQ(read_ok(h3, 0, 100), "VERSION ONE, APPENDED");

  // Only the ctime (chmod).
  ASSERT_EQ(::chmod((share_ / "f").c_str(), 0600), 0);
  EXPECT_EQ(read(h3, 0, 100).error, static_cast<std::uint32_t>(ESTALE));
  EXPECT_EQ(read_ok(open(node), 0, 7), "VERSION");
}

TEST_F(ExporterTest, DeletedOrReplacedFileNodeIsStale) {
  write_file(share_ / "gone", "x");
  write_file(share_ / "replaced", "old");
  start_with_hello();
  const NodeId gone = lookup(proto::kRootNode, "gone");
  const NodeId replaced = lookup(proto::kRootNode, "replaced");
  ASSERT_TRUE(fs::remove(share_ / "gone"));
  write_file(share_ / "replaced.new", "new");
  fs::rename(share_ / "replaced.new", share_ / "replaced");

  const auto estale = static_cast<std::uint32_t>(ESTALE);
  EXPECT_EQ(call(proto::GetAttrRequest{.node = gone}).error, estale);
  EXPECT_EQ(call(proto::OpenRequest{.node = gone}).error, estale);
  EXPECT_EQ(call(proto::GetAttrRequest{.node = replaced}).error, estale);
  EXPECT_EQ(call(proto::OpenRequest{.node = replaced}).error, estale);
  // Looking it up again gives the new file under a new node.
  const NodeId fresh = lookup(proto::kRootNode, "replaced");
  EXPECT_NE(fresh, replaced);
  EXPECT_EQ(read_ok(open(fresh), 0, 10), "new");
}

// ---- symlinks, special files, hard links ----

TEST_F(ExporterTest, SymlinksInsideTheTreeAreServedAsSymlinks) {
  write_file(share_ / "target.txt", "target");
  fs::create_directory(share_ / "dir");
  write_file(share_ / "dir" / "inner", "inner");
  fs::create_symlink("target.txt", share_ / "link");
  fs::create_directory_symlink("dir", share_ / "dirlink");
  start_with_hello();

  const auto link = lookup_entry(proto::kRootNode, "link");
  EXPECT_TRUE(S_ISLNK(link.attr.mode));
  EXPECT_EQ(link.attr.size, std::string("target.txt").size());
  EXPECT_EQ(
      body_of<proto::ReadLinkReply>(call(proto::ReadLinkRequest{.node = link.attr.node})).target,
      "target.txt");
  // A never follows it: B's kernel does, through ReadLink and a Lookup of the target.
  EXPECT_EQ(call(proto::OpenRequest{.node = link.attr.node}).error,
            static_cast<std::uint32_t>(ELOOP));
  const NodeId dirlink = lookup(proto::kRootNode, "dirlink");
  EXPECT_EQ(call(proto::LookupRequest{.parent = dirlink, .name = "inner"}).error,
            static_cast<std::uint32_t>(ENOTDIR));
  EXPECT_EQ(call(proto::ReadDirRequest{.node = dirlink, .max_entries = 10}).error,
            static_cast<std::uint32_t>(ENOTDIR));
  // ReadLink of something else.
  EXPECT_EQ(call(proto::ReadLinkRequest{.node = lookup(proto::kRootNode, "target.txt")}).error,
            static_cast<std::uint32_t>(EINVAL));
  // ReadDir gives symlink attributes too.
  for (const auto& e : list(proto::kRootNode, 10)) {
    if (e.name == "link" || e.name == "dirlink") {
      EXPECT_TRUE(S_ISLNK(e.attr.mode)) << e.name;
    }
  }
}

TEST_F(ExporterTest, SymlinksPointingOutsideAreNeverFollowed) {
  fs::create_symlink(outside_ / "secret", share_ / "abs");
  fs::create_symlink("../outside/secret", share_ / "rel");
  fs::create_directory_symlink(outside_, share_ / "outdir");
  fs::create_directory_symlink("..", share_ / "up");
  start_with_hello();

  for (const std::string name : {"abs", "rel"}) {
    const auto e = lookup_entry(proto::kRootNode, name);
    EXPECT_TRUE(S_ISLNK(e.attr.mode));
    const auto open_r = call(proto::OpenRequest{.node = e.attr.node});
    EXPECT_NE(open_r.error, 0U) << name;
    EXPECT_EQ(call(proto::ReadDirRequest{.node = e.attr.node, .max_entries = 1}).error,
              static_cast<std::uint32_t>(ENOTDIR));
  }
  EXPECT_EQ(
      body_of<proto::ReadLinkReply>(call(proto::ReadLinkRequest{.node = lookup(1, "abs")})).target,
      (outside_ / "secret").string());
  for (const std::string name : {"outdir", "up"}) {
    const NodeId dir = lookup(proto::kRootNode, name);
    const auto r = call(proto::LookupRequest{.parent = dir, .name = "secret"});
    EXPECT_NE(r.error, 0U) << name;
    EXPECT_FALSE(std::holds_alternative<proto::EntryReply>(r.body));
    EXPECT_NE(call(proto::ReadDirRequest{.node = dir, .max_entries = 10}).error, 0U);
  }
}

TEST_F(ExporterTest, SymlinkSwappedInForALookedUpDirectoryIsRefused) {
  fs::create_directories(share_ / "d" / "sub");
  write_file(share_ / "d" / "sub" / "file", "inside");
  fs::create_directories(outside_ / "sub");
  write_file(outside_ / "sub" / "file", "OUTSIDE");
  start_with_hello();
  const NodeId d = lookup(proto::kRootNode, "d");
  const NodeId sub = lookup(d, "sub");
  const NodeId file = lookup(sub, "file");
  const HandleId before = open(file);

  fs::rename(share_ / "d", share_ / "d_old");
  fs::create_directory_symlink(outside_, share_ / "d");

  std::vector<proto::RequestBody> hostile;
  for (const NodeId n : {d, sub, file}) {
    hostile.emplace_back(proto::GetAttrRequest{.node = n});
    hostile.emplace_back(proto::OpenRequest{.node = n});
    hostile.emplace_back(proto::ReadDirRequest{.node = n, .max_entries = 10});
    hostile.emplace_back(proto::StatFsRequest{.node = n});
    hostile.emplace_back(proto::ReadLinkRequest{.node = n});
  }
  hostile.emplace_back(proto::LookupRequest{.parent = d, .name = "sub"});
  hostile.emplace_back(proto::LookupRequest{.parent = sub, .name = "file"});
  for (const auto& r : call_all(std::move(hostile))) {
    EXPECT_TRUE(is_refusal(r)) << "op " << static_cast<int>(r.op) << " errno " << r.error;
  }
  EXPECT_EQ(call(proto::LookupRequest{.parent = sub, .name = "file"}).error,
            static_cast<std::uint32_t>(ELOOP));
  // The handle opened before the swap still reads the file it opened, inside the tree.
  EXPECT_EQ(read_ok(before, 0, 100), "inside");
  // The new "d" is a symlink like any other.
  EXPECT_TRUE(S_ISLNK(lookup_entry(proto::kRootNode, "d").attr.mode));
}

TEST_F(ExporterTest, FifosAndSocketsAreHiddenAndNeverOpened) {
  ASSERT_EQ(::mkfifo((share_ / "fifo").c_str(), 0644), 0);
  make_socket_file(share_ / "sock");
  write_file(share_ / "plain", "plain");
  write_file(share_ / "swapped", "regular for now");
  const FifoUnblocker unblock_fifo(share_ / "fifo");
  const FifoUnblocker unblock_swapped(share_ / "swapped");
  start_with_hello();

  EXPECT_EQ(names_of(list(proto::kRootNode, 10)), (std::set<std::string>{"plain", "swapped"}));
  EXPECT_EQ(call(proto::LookupRequest{.parent = 1, .name = "fifo"}).error,
            static_cast<std::uint32_t>(ENOENT));
  EXPECT_EQ(call(proto::LookupRequest{.parent = 1, .name = "sock"}).error,
            static_cast<std::uint32_t>(ENOENT));

  // A local user swaps a FIFO in for a file B already looked up.
  const NodeId node = lookup(proto::kRootNode, "swapped");
  ASSERT_TRUE(fs::remove(share_ / "swapped"));
  ASSERT_EQ(::mkfifo((share_ / "swapped").c_str(), 0644), 0);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(call(proto::OpenRequest{.node = node}).error, static_cast<std::uint32_t>(ESTALE));
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
  EXPECT_EQ(exporter_->open_handles(), 0U);
}

// Below the node table: even handed a FIFO's own identity, the open refuses at once.
TEST(ExporterFsTest, OpenRegularRefusesSpecialFilesWithoutBlocking) {
  std::string tmpl = testing::TempDir() + "peertun-exporter-fs-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = tmpl;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  {
    const FifoUnblocker unblock(dir / "fifo");
    auto root = detail::open_root(dir.string());
    ASSERT_TRUE(root);
    struct stat st{};
    ASSERT_EQ(::lstat((dir / "fifo").c_str(), &st), 0);
    for (const bool proc : {true, false}) {
      const detail::Tree tree{.root_fd = root->get(), .proc_reopen = proc};
      const auto started = std::chrono::steady_clock::now();
      auto opened = detail::open_regular(tree, "fifo", detail::identity_of(st), false);
      ASSERT_FALSE(opened);
      EXPECT_EQ(opened.error().value(), ENOENT);
      EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(1));
      auto escaped = detail::open_node(tree, "../" + dir.filename().string(), {});
      ASSERT_FALSE(escaped);
      EXPECT_EQ(escaped.error().value(), EXDEV);
    }
  }
  fs::remove_all(dir);
}

TEST_F(ExporterTest, HardLinksShareOneNode) {
  write_file(share_ / "h1", "shared bytes");
  fs::create_hard_link(share_ / "h1", share_ / "h2");
  start_with_hello();
  const NodeId a = lookup(proto::kRootNode, "h1");
  const NodeId b = lookup(proto::kRootNode, "h2");
  EXPECT_EQ(a, b);
  EXPECT_EQ(exporter_->known_nodes(), 2U);
  // The node follows its latest name.
  ASSERT_TRUE(fs::remove(share_ / "h1"));
  EXPECT_EQ(read_ok(open(a), 0, 100), "shared bytes");
  send_unanswered(proto::ForgetRequest{.nodes = {{a, 2}}});
  EXPECT_EQ(exporter_->known_nodes(), 1U);
}

TEST_F(ExporterTest, ASingleLinkFileUnderAnotherNameIsANewNode) {
  // A filesystem may give a new file the inode number of a deleted one; B must never see
  // the deleted name's node serve the new file. The same (dev, ino) with one link under
  // another path is therefore a new node (which also covers a rename).
  write_file(share_ / "old", "old bytes");
  start_with_hello();
  const NodeId old_node = lookup(proto::kRootNode, "old");
  fs::rename(share_ / "old", share_ / "new");
  const NodeId new_node = lookup(proto::kRootNode, "new");
  EXPECT_NE(new_node, old_node);
  EXPECT_EQ(read_ok(open(new_node), 0, 100), "old bytes");
  // The old node still names the old path, which is gone.
  EXPECT_EQ(call(proto::GetAttrRequest{.node = old_node}).error,
            static_cast<std::uint32_t>(ESTALE));
  // Both are forgotten independently; the newer node owns the identity.
  send_unanswered(proto::ForgetRequest{.nodes = {{old_node, 1}}});
  EXPECT_EQ(lookup(proto::kRootNode, "new"), new_node);
  send_unanswered(proto::ForgetRequest{.nodes = {{new_node, 2}}});
  EXPECT_EQ(exporter_->known_nodes(), 1U);
}

// ---- ReadDir ----

TEST_F(ExporterTest, ReadDirCookiesAcrossSeveralCalls) {
  std::set<std::string> expected;
  for (int i = 0; i < 10; ++i) {
    const std::string name = "file" + std::to_string(i);
    write_file(share_ / name, name);
    expected.insert(name);
  }
  start_with_hello();
  int calls = 0;
  const auto entries = list(proto::kRootNode, 3, &calls);
  EXPECT_EQ(entries.size(), 10U);
  EXPECT_EQ(names_of(entries), expected);
  EXPECT_GE(calls, 4);
  EXPECT_LE(calls, 5);
  // Each entry counted as a lookup; attributes carry the node.
  EXPECT_EQ(exporter_->known_nodes(), 11U);
  for (const auto& e : entries) {
    EXPECT_TRUE(S_ISREG(e.attr.mode));
    EXPECT_EQ(e.attr.size, e.name.size());
    EXPECT_EQ(read_ok(open(e.attr.node), 0, 100), e.name);
  }
  // Resuming from any entry's cookie gives exactly what followed it.
  const auto rest =
      call(proto::ReadDirRequest{.node = 1, .cookie = entries[4].cookie, .max_entries = 1024});
  const auto page = body_of<proto::ReadDirReply>(rest);
  EXPECT_TRUE(page.end);
  ASSERT_EQ(page.entries.size(), 5U);
  EXPECT_EQ(page.entries[0].name, entries[5].name);
}

TEST_F(ExporterTest, ReadDirListsTenThousandFilesEachOnce) {
  constexpr int kFiles = 10'000;
  for (int i = 0; i < kFiles; ++i) {
    const fs::path p = share_ / ("f" + std::to_string(i));
    const int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  start_with_hello();
  int calls = 0;
  const auto entries = list(proto::kRootNode, 1024, &calls);
  EXPECT_EQ(entries.size(), static_cast<std::size_t>(kFiles));
  const auto names = names_of(entries);
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kFiles));
  EXPECT_TRUE(names.contains("f0"));
  EXPECT_TRUE(names.contains("f9999"));
  EXPECT_GE(calls, 10);
  EXPECT_EQ(exporter_->known_nodes(), static_cast<std::size_t>(kFiles) + 1);
  // Forget them all, in batches of kMaxForgets.
  proto::ForgetRequest forget;
  for (const auto& e : entries) {
    forget.nodes.emplace_back(e.attr.node, 1);
    if (forget.nodes.size() == proto::kMaxForgets) {
      send_unanswered(forget);
      forget.nodes.clear();
    }
  }
  send_unanswered(forget);
  EXPECT_EQ(exporter_->known_nodes(), 1U);
}

TEST_F(ExporterTest, ReadDirRefusesBadCounts) {
  start_with_hello();
  const auto einval = static_cast<std::uint32_t>(EINVAL);
  EXPECT_EQ(call(proto::ReadDirRequest{.node = 1, .max_entries = 0}).error, einval);
  EXPECT_EQ(call(proto::ReadDirRequest{.node = 1, .max_entries = 1025}).error, einval);
  EXPECT_EQ(
      call(proto::ReadDirRequest{.node = 1, .cookie = std::uint64_t{1} << 63U, .max_entries = 1})
          .error,
      einval);
  EXPECT_EQ(
      call(proto::ReadDirRequest{.node = 1, .cookie = ~std::uint64_t{0}, .max_entries = 1}).error,
      einval);
  const auto empty =
      body_of<proto::ReadDirReply>(call(proto::ReadDirRequest{.node = 1, .max_entries = 1024}));
  EXPECT_TRUE(empty.entries.empty());
  EXPECT_TRUE(empty.end);
}

// ---- counts and limits ----

TEST_F(ExporterTest, ForgetCountsLookupsAndNeverDropsTheRoot) {
  write_file(share_ / "x", "x");
  start_with_hello();
  EXPECT_EQ(exporter_->known_nodes(), 1U);
  const NodeId x = lookup(proto::kRootNode, "x");
  EXPECT_EQ(lookup(proto::kRootNode, "x"), x);
  EXPECT_EQ(lookup(proto::kRootNode, "x"), x);
  EXPECT_EQ(exporter_->known_nodes(), 2U);
  send_unanswered(proto::ForgetRequest{.nodes = {{x, 2}}});
  EXPECT_EQ(exporter_->known_nodes(), 2U);
  EXPECT_EQ(call(proto::GetAttrRequest{.node = x}).error, 0U);
  send_unanswered(proto::ForgetRequest{.nodes = {{x, 1}}});
  EXPECT_EQ(exporter_->known_nodes(), 1U);
  EXPECT_EQ(call(proto::GetAttrRequest{.node = x}).error, static_cast<std::uint32_t>(ESTALE));
  // Too many forgets, unknown nodes and the root are harmless.
  send_unanswered(proto::ForgetRequest{
      .nodes = {{proto::kRootNode, ~std::uint64_t{0}}, {x, 5}, {12345, 1}, {0, 0}}});
  EXPECT_EQ(exporter_->known_nodes(), 1U);
  EXPECT_EQ(call(proto::GetAttrRequest{.node = proto::kRootNode}).error, 0U);
  // A forgotten name gets a fresh node when looked up again.
  EXPECT_NE(lookup(proto::kRootNode, "x"), x);
}

TEST_F(ExporterTest, MaxHandles) {
  write_file(share_ / "f", "f");
  ExporterOptions options;
  options.max_handles = 2;
  start_with_hello(options);
  const NodeId f = lookup(proto::kRootNode, "f");
  const HandleId h1 = open(f);
  open(f);
  EXPECT_EQ(call(proto::OpenRequest{.node = f}).error, static_cast<std::uint32_t>(EMFILE));
  EXPECT_EQ(exporter_->open_handles(), 2U);
  EXPECT_EQ(call(proto::ReleaseRequest{.handle = h1}).error, 0U);
  EXPECT_EQ(read_ok(open(f), 0, 1), "f");
  // Opens in flight together count too.
  std::vector<proto::RequestBody> burst(5, proto::OpenRequest{.node = f});
  for (const auto& r : call_all(std::move(burst))) {
    EXPECT_EQ(r.error, static_cast<std::uint32_t>(EMFILE));
  }
  EXPECT_EQ(exporter_->open_handles(), 2U);
}

TEST_F(ExporterTest, MaxNodes) {
  for (const char* name : {"a", "b", "c"}) {
    write_file(share_ / name, name);
  }
  ExporterOptions options;
  options.max_nodes = 2;
  start_with_hello(options);
  const NodeId a = lookup(proto::kRootNode, "a");
  lookup(proto::kRootNode, "b");
  EXPECT_EQ(call(proto::LookupRequest{.parent = 1, .name = "c"}).error,
            static_cast<std::uint32_t>(ENOMEM));
  EXPECT_EQ(lookup(proto::kRootNode, "a"), a);  // known nodes still work
  EXPECT_EQ(exporter_->known_nodes(), 3U);
  send_unanswered(proto::ForgetRequest{.nodes = {{a, 2}}});
  lookup(proto::kRootNode, "c");
  // A ReadDir answers the entries up to the first that does not fit (ENOMEM when that is
  // the first one): "a" has no node now and the table is full.
  const auto r = call(proto::ReadDirRequest{.node = 1, .max_entries = 10});
  if (r.error == 0) {
    const auto page = body_of<proto::ReadDirReply>(r);
    EXPECT_FALSE(page.end);
    EXPECT_GE(page.entries.size(), 1U);
    EXPECT_LE(page.entries.size(), 2U);
    for (const auto& e : page.entries) {
      EXPECT_NE(e.name, "a");
    }
  } else {
    EXPECT_EQ(r.error, static_cast<std::uint32_t>(ENOMEM));
  }
  EXPECT_EQ(exporter_->known_nodes(), 3U);
}

TEST_F(ExporterTest, ReadOnlyShareRefusesWriteOpens) {
  write_file(share_ / "f", "unchanged");
  start_with_hello({}, /*want_write=*/true);
  const NodeId f = lookup(proto::kRootNode, "f");
  EXPECT_EQ(call(proto::OpenRequest{.node = f, .write = true}).error,
            static_cast<std::uint32_t>(EROFS));
  EXPECT_EQ(call(proto::OpenRequest{.node = 1, .write = true}).error,
            static_cast<std::uint32_t>(EROFS));
  EXPECT_EQ(exporter_->open_handles(), 0U);
  EXPECT_EQ(read_ok(open(f), 0, 100), "unchanged");
}

TEST_F(ExporterTest, WritableShareOpensForWriting) {
  write_file(share_ / "f", "data");
  ExporterOptions options;
  options.writable = true;
  start_with_hello(options, /*want_write=*/true);
  const NodeId f = lookup(proto::kRootNode, "f");
  const auto r = call(proto::OpenRequest{.node = f, .write = true});
  ASSERT_EQ(r.error, 0U);
  EXPECT_EQ(read_ok(body_of<proto::OpenReply>(r).handle, 0, 10), "data");
  EXPECT_EQ(call(proto::OpenRequest{.node = 1, .write = true}).error,
            static_cast<std::uint32_t>(EISDIR));
}

TEST_F(ExporterTest, PipelinedFloodGetsEagainInsteadOfUnboundedWork) {
  write_file(share_ / "f", "f");
  start_with_hello();
  std::vector<proto::RequestBody> flood(3000, proto::GetAttrRequest{.node = 1});
  std::size_t ok = 0;
  std::size_t busy = 0;
  for (const auto& r : call_all(std::move(flood))) {
    if (r.error == 0) {
      ++ok;
    } else if (r.error == static_cast<std::uint32_t>(EAGAIN)) {
      ++busy;
    }
  }
  EXPECT_EQ(ok + busy, 3000U);
  EXPECT_GE(ok, 1000U);
  EXPECT_GT(busy, 0U);
  // Once drained, everything is served again.
  EXPECT_EQ(call(proto::GetAttrRequest{.node = 1}).error, 0U);
}

// ---- concurrency and lifetime ----

TEST_F(ExporterTest, ManyRequestsInFlightAreEachAnsweredOnce) {
  const std::string content = pattern(100 * 1000);
  write_file(share_ / "data", content);
  for (int i = 0; i < 100; ++i) {
    write_file(share_ / ("n" + std::to_string(i)), std::to_string(i));
  }
  start_with_hello();
  const HandleId h = open(lookup(proto::kRootNode, "data"));
  std::vector<proto::RequestBody> bodies;
  for (int i = 0; i < 100; ++i) {
    bodies.emplace_back(proto::ReadRequest{
        .handle = h, .offset = static_cast<std::uint64_t>(i) * 1000, .length = 1000});
    bodies.emplace_back(proto::LookupRequest{.parent = 1, .name = "n" + std::to_string(i)});
  }
  const auto answers = call_all(std::move(bodies));
  ASSERT_EQ(answers.size(), 200U);
  for (std::size_t i = 0; i < 100; ++i) {
    const auto& read_answer = answers[2 * i];
    ASSERT_EQ(read_answer.error, 0U);
    EXPECT_EQ(read_answer.op, proto::Op::Read);
    EXPECT_TRUE(to_string(body_of<proto::ReadReply>(read_answer).data) ==
                content.substr(i * 1000, 1000));
    const auto& lookup_answer = answers[2 * i + 1];
    ASSERT_EQ(lookup_answer.error, 0U);
    EXPECT_EQ(lookup_answer.op, proto::Op::Lookup);
    EXPECT_EQ(body_of<proto::EntryReply>(lookup_answer).attr.size, std::to_string(i).size());
  }
  EXPECT_EQ(exporter_->known_nodes(), 102U);
}

TEST_F(ExporterTest, NothingIsAnsweredAfterStop) {
  write_file(share_ / "f", pattern(10'000));
  start_with_hello();
  const NodeId f = lookup(proto::kRootNode, "f");
  const HandleId h = open(f);
  auto calls = std::make_shared<int>(0);
  // In flight when stop() comes.
  for (int i = 0; i < 50; ++i) {
    exporter_->handle(
        proto::Request{.id = next_id_++, .body = proto::ReadRequest{.handle = h, .length = 100}},
        [calls](Response) { ++*calls; });
    exporter_->handle(proto::Request{.id = next_id_++, .body = proto::GetAttrRequest{.node = f}},
                      [calls](Response) { ++*calls; });
  }
  exporter_->stop();
  EXPECT_EQ(exporter_->open_handles(), 0U);
  // After stop().
  exporter_->handle(proto::Request{.id = next_id_++, .body = proto::HelloRequest{}},
                    [calls](Response) { ++*calls; });
  exporter_->handle(proto::Request{.id = next_id_++, .body = proto::ReadRequest{.handle = h}},
                    [calls](Response) { ++*calls; });
  exporter_->stop();  // twice is fine
  run();
  EXPECT_EQ(*calls, 0);
}

TEST_F(ExporterTest, DestructionWithoutStopIsSafe) {
  write_file(share_ / "f", "f");
  start_with_hello();
  const HandleId h = open(lookup(proto::kRootNode, "f"));
  auto calls = std::make_shared<int>(0);
  for (int i = 0; i < 20; ++i) {
    exporter_->handle(
        proto::Request{.id = next_id_++, .body = proto::ReadRequest{.handle = h, .length = 1}},
        [calls](Response) { ++*calls; });
  }
  const std::weak_ptr<Exporter> weak = exporter_;
  exporter_.reset();  // in-flight work keeps it alive until it is answered
  run();
  EXPECT_EQ(*calls, 20);
  EXPECT_TRUE(weak.expired());

  // Dropped while idle, with handles open.
  start_with_hello();
  open(lookup(proto::kRootNode, "f"));
  exporter_.reset();
  run();
}

}  // namespace
}  // namespace peertun::share
