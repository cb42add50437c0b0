#include "share/exporter/exporter.h"

#include <fcntl.h>
#include <linux/limits.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cerrno>
#include <limits>
#include <new>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "base/log.h"
#include "share/exporter/fs_ops.h"
#include "share/exporter/node_table.h"

namespace peertun::share {
namespace {

namespace asio = io::asio;
using detail::Identity;
using detail::UniqueFd;

spdlog::logger& log() { return base::logger("share.exporter"); }

const char* exporter_message(int ev) noexcept {
  switch (static_cast<ExporterErrc>(ev)) {
    case ExporterErrc::NotADirectory:
      return "the shared root is not a directory";
    case ExporterErrc::CannotOpenRoot:
      return "the shared root cannot be opened (missing, no permission, or no openat2)";
  }
  return "unknown exporter error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.share.exporter", &exporter_message);

// ReadDir's max_entries range (share/proto/messages.h).
constexpr std::uint32_t kMaxDirEntries = 1024;
// One DirEntry's encoding is at most a name (kMaxName bytes and a length prefix), a cookie
// (8) and an Attr (well under 128 bytes: 4 u64, 5 u32, 3 timestamps of 12): 512 is
// generous, and a full page of them still fits a frame with room for the headers.
constexpr std::size_t kDirEntryWireBound = 512;
static_assert(proto::kMaxName + 2 + 8 + 128 <= kDirEntryWireBound);
static_assert(kMaxDirEntries * kDirEntryWireBound + 4096 <= proto::kMaxFrame,
              "a full ReadDir page must fit in one frame");

// Requests being worked on at once (disk queue plus answers not yet delivered). A peer
// that pipelines more gets EAGAIN: each one costs memory, and a Read up to kMaxRead.
constexpr std::size_t kMaxInFlight = 1024;
// Bytes that Reads in flight may ask for at once (EAGAIN beyond): 64 full-size Reads.
constexpr std::uint64_t kMaxReadBytesInFlight = std::uint64_t{64} * proto::kMaxRead;
constexpr std::size_t kMaxThreads = 64;
constexpr std::uint64_t kMaxOffset = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());

// An answer body or an errno.
using Outcome = base::Result<proto::ReplyBody>;

int errno_of(const base::ErrorCode& ec) {
  const bool is_errno = ec.category() == boost::system::system_category() ||
                        ec.category() == boost::system::generic_category();
  return is_errno && ec.value() > 0 ? ec.value() : EIO;
}

// An open file B holds through a handle. Shared with Reads in flight, so the fd is closed
// only after the last of them (on a disk thread).
struct OpenFile {
  UniqueFd fd;
  detail::Snapshot snapshot;
  proto::NodeId node = 0;
  std::size_t path_len = 0;
};

class FolderExporter final : public Exporter {
 public:
  FolderExporter(io::Executor executor, UniqueFd root, Identity root_identity, bool proc_reopen,
                 ExporterOptions options)
      : executor_(std::move(executor)),
        options_(options),
        root_(std::move(root)),
        tree_{.root_fd = root_.get(), .proc_reopen = proc_reopen},
        pool_(std::clamp<std::size_t>(options.threads, 1, kMaxThreads)),
        nodes_(root_identity, options.max_nodes) {}

  FolderExporter(const FolderExporter&) = delete;
  FolderExporter& operator=(const FolderExporter&) = delete;

  // Runs where the last reference goes: the executor, or the owner's thread, never a disk
  // thread (those hand their reference on to the executor, see submit()).
  ~FolderExporter() override { stop(); }

  void handle(proto::Request request, Done done) override;
  void stop() override;
  [[nodiscard]] std::size_t open_handles() const override { return handles_.size(); }
  [[nodiscard]] std::size_t known_nodes() const override { return nodes_.size(); }

 private:
  // Where an answer goes.
  struct Reply {
    proto::RequestId id = 0;
    proto::Op op = proto::Op::Hello;
    Done done;
  };

  void dispatch(Reply& reply, const proto::HelloRequest& r);
  void dispatch(Reply& reply, const proto::LookupRequest& r);
  void dispatch(Reply& reply, const proto::GetAttrRequest& r);
  void dispatch(Reply& reply, const proto::ReadDirRequest& r);
  void dispatch(Reply& reply, const proto::OpenRequest& r);
  void dispatch(Reply& reply, const proto::ReadRequest& r);
  void dispatch(Reply& reply, const proto::ReadLinkRequest& r);
  void dispatch(Reply& reply, const proto::StatFsRequest& r);
  void dispatch(Reply& reply, const proto::ReleaseRequest& r);
  void dispatch(Reply& reply, const proto::ForgetRequest& r);

  // Runs `work(tree)` (returning base::Result<T>) on a disk thread, then
  // `finish(*this, result)` (returning Outcome) on the executor, and answers.
  template <class Work, class Finish>
  void submit(Reply& reply, Work work, Finish finish);
  // Answers without disk work (still through the executor, never inside handle()).
  void answer_now(Reply& reply, Outcome outcome);
  // The node B names, or nullptr after answering ESTALE (a node B never got, or forgot).
  const detail::NodeTable::Node* known_node(Reply& reply, proto::NodeId id);
  void deliver(Reply& reply, Outcome outcome);
  // Logs a full node table: warn the first time, debug after (a peer cannot flood warns).
  void note_node_limit();

  std::shared_ptr<FolderExporter> shared_self() {
    return std::static_pointer_cast<FolderExporter>(shared_from_this());
  }

  const io::Executor executor_;
  const ExporterOptions options_;
  // Closed by stop() after the pool is joined, so no disk thread uses a closed fd.
  UniqueFd root_;
  const detail::Tree tree_;
  asio::thread_pool pool_;
  // Set once by stop() (executor); read by disk threads to skip work nobody will get.
  std::atomic<bool> stopped_{false};

  // Everything below lives on the executor only (no lock): handle(), the completions
  // posted back by submit() and stop() run there; disk threads get copies of what they
  // need (paths, identities, shared OpenFiles) and never touch these.
  bool hello_done_ = false;
  bool writable_ = false;
  detail::NodeTable nodes_;
  std::unordered_map<proto::HandleId, std::shared_ptr<OpenFile>> handles_;
  proto::HandleId next_handle_ = 1;
  std::size_t pending_opens_ = 0;  // Opens on the disk threads: count against max_handles
  std::size_t in_flight_ = 0;
  std::uint64_t read_bytes_in_flight_ = 0;
  bool node_limit_warned_ = false;
};

void FolderExporter::handle(proto::Request request, Done done) {
  if (stopped_.load()) {
    return;
  }
  if (request.body.valueless_by_exception()) {
    return;  // not a request at all; nothing to answer it as
  }
  Reply reply{.id = request.id, .op = proto::op_of(request.body), .done = std::move(done)};
  try {
    if (reply.op == proto::Op::Forget) {
      if (hello_done_) {
        dispatch(reply, std::get<proto::ForgetRequest>(request.body));
      }
      return;
    }
    if (reply.op != proto::Op::Hello && !hello_done_) {
      answer_now(reply, detail::errno_error(EPROTO));
      return;
    }
    // Release only frees resources (and there are at most max_handles of them).
    if (in_flight_ >= kMaxInFlight && reply.op != proto::Op::Release) {
      log().debug("share.busy in_flight={}", in_flight_);
      answer_now(reply, detail::errno_error(EAGAIN));
      return;
    }
    std::visit([this, &reply](const auto& body) { dispatch(reply, body); }, request.body);
  } catch (const std::bad_alloc&) {
    answer_now(reply, detail::errno_error(ENOMEM));
  } catch (const std::exception& e) {
    log().warn("share.handle_failed op={} what={}", static_cast<int>(reply.op), e.what());
    answer_now(reply, detail::errno_error(EIO));
  }
}

void FolderExporter::stop() {
  if (stopped_.exchange(true)) {
    return;
  }
  // Disk threads see stopped_ and skip their syscalls; completions they post find
  // stopped_ set and drop their answers. join() waits for a syscall already running.
  // The last close(2)s run on a disk thread too, before the join.
  const std::size_t closed = handles_.size();
  try {
    asio::post(pool_, [files = std::move(handles_)]() mutable { files.clear(); });
  } catch (const std::exception&) {
    // No memory for the task: the files close on this thread instead.
  }
  handles_.clear();
  pool_.join();
  nodes_.clear();
  root_.reset();
  log().info("share.exporter_stopped handles_closed={}", closed);
}

template <class Work, class Finish>
void FolderExporter::submit(Reply& reply, Work work, Finish finish) {
  ++in_flight_;
  // Keeps the executor's run() going until the answer is posted back.
  auto tracked = asio::prefer(executor_, asio::execution::outstanding_work.tracked);
  asio::post(pool_, [self = shared_self(), tracked = std::move(tracked), reply = std::move(reply),
                     work = std::move(work), finish = std::move(finish)]() mutable {
    using Value = std::invoke_result_t<Work&, const detail::Tree&>;
    Value result = detail::errno_error(ECANCELED);
    if (!self->stopped_.load()) {
      try {
        result = work(self->tree_);
      } catch (const std::bad_alloc&) {
        result = detail::errno_error(ENOMEM);
      } catch (const std::exception&) {
        result = detail::errno_error(EIO);
      }
    }
    // `self` moves into the completion: the last reference is never dropped on a disk
    // thread (whose pool the destructor would have to join).
    asio::post(tracked, [self = std::move(self), reply = std::move(reply),
                         result = std::move(result), finish = std::move(finish)]() mutable {
      --self->in_flight_;
      if (self->stopped_.load()) {
        return;
      }
      Outcome outcome = detail::errno_error(EIO);
      try {
        outcome = finish(*self, std::move(result));
      } catch (const std::bad_alloc&) {
        outcome = detail::errno_error(ENOMEM);
      } catch (const std::exception& e) {
        log().warn("share.finish_failed op={} what={}", static_cast<int>(reply.op), e.what());
        outcome = detail::errno_error(EIO);
      }
      self->deliver(reply, std::move(outcome));
    });
  });
}

void FolderExporter::answer_now(Reply& reply, Outcome outcome) {
  asio::post(executor_, [self = shared_self(), reply = std::move(reply),
                         outcome = std::move(outcome)]() mutable {
    if (!self->stopped_.load()) {
      self->deliver(reply, std::move(outcome));
    }
  });
}

void FolderExporter::deliver(Reply& reply, Outcome outcome) {
  if (!reply.done) {
    return;
  }
  proto::Response response;
  if (outcome) {
    response.id = reply.id;
    response.op = reply.op;
    response.error = 0;
    response.body = std::move(*outcome);
  } else {
    response = proto::error_response(reply.id, reply.op, errno_of(outcome.error()));
  }
  auto done = std::move(reply.done);
  done(std::move(response));
}

void FolderExporter::note_node_limit() {
  if (!node_limit_warned_) {
    node_limit_warned_ = true;
    log().warn("share.node_limit max_nodes={}", options_.max_nodes);
  } else {
    log().debug("share.node_limit max_nodes={}", options_.max_nodes);
  }
}

const detail::NodeTable::Node* FolderExporter::known_node(Reply& reply, proto::NodeId id) {
  const auto* node = nodes_.find(id);
  if (node == nullptr) {
    answer_now(reply, detail::errno_error(ESTALE));
  }
  return node;
}

void FolderExporter::dispatch(Reply& reply, const proto::HelloRequest& r) {
  if (r.min_version > r.max_version) {
    answer_now(reply, detail::errno_error(EINVAL));
    return;
  }
  // This build speaks versions 1..kVersion.
  const std::uint16_t version = std::min(proto::kVersion, r.max_version);
  if (version < 1 || version < r.min_version) {
    log().info("share.hello_refused min={} max={}", r.min_version, r.max_version);
    answer_now(reply, detail::errno_error(EPROTONOSUPPORT));
    return;
  }
  if (hello_done_) {
    answer_now(reply, detail::errno_error(EPROTO));  // docs/protocol/share.md: one Hello
    return;
  }
  // Accepted here, not when the root's attributes come back: B may pipeline requests
  // right behind its Hello, and those must not see EPROTO.
  hello_done_ = true;
  writable_ = options_.writable && r.want_write;
  submit(
      reply, [](const detail::Tree& tree) { return detail::stat_root(tree); },
      [version](FolderExporter& self, base::Result<struct stat> st) -> Outcome {
        if (!st) {
          return st.error();
        }
        log().info("share.hello version={} writable={}", version, self.writable_);
        proto::HelloReply hello;
        hello.version = version;
        hello.writable = self.writable_;
        hello.max_read = proto::kMaxRead;
        hello.root = detail::to_attr(*st, proto::kRootNode);
        return proto::ReplyBody{std::move(hello)};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::LookupRequest& r) {
  const auto* parent = known_node(reply, r.parent);
  if (parent == nullptr) {
    return;
  }
  if (!proto::is_valid_name(r.name)) {
    answer_now(reply, detail::errno_error(EINVAL));
    return;
  }
  std::string child = detail::join_path(parent->path, r.name);
  if (child.size() >= PATH_MAX) {
    answer_now(reply, detail::errno_error(ENAMETOOLONG));
    return;
  }
  submit(
      reply,
      [parent_path = parent->path, parent_identity = parent->identity,
       child](const detail::Tree& tree) {
        return detail::lookup(tree, parent_path, parent_identity, child);
      },
      [child](FolderExporter& self, base::Result<struct stat> st) mutable -> Outcome {
        if (!st) {
          return st.error();
        }
        const auto id = self.nodes_.add_lookup(detail::identity_of(*st), std::move(child),
                                               detail::is_single_link(*st));
        if (!id) {
          self.note_node_limit();
          return detail::errno_error(ENOMEM);
        }
        return proto::ReplyBody{proto::EntryReply{.attr = detail::to_attr(*st, *id)}};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::GetAttrRequest& r) {
  const auto* node = known_node(reply, r.node);
  if (node == nullptr) {
    return;
  }
  submit(
      reply,
      [path = node->path, identity = node->identity](const detail::Tree& tree) {
        return detail::open_node(tree, path, identity);
      },
      [id = r.node](FolderExporter&, base::Result<detail::NodeRef> ref) -> Outcome {
        if (!ref) {
          return ref.error();
        }
        return proto::ReplyBody{proto::AttrReply{.attr = detail::to_attr(ref->st, id)}};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::ReadDirRequest& r) {
  if (r.max_entries == 0 || r.max_entries > kMaxDirEntries || r.cookie > kMaxOffset) {
    answer_now(reply, detail::errno_error(EINVAL));
    return;
  }
  const auto* node = known_node(reply, r.node);
  if (node == nullptr) {
    return;
  }
  submit(
      reply,
      [path = node->path, identity = node->identity, cookie = r.cookie, max = r.max_entries](
          const detail::Tree& tree) { return detail::read_dir(tree, path, identity, cookie, max); },
      [dir_path = node->path](FolderExporter& self, base::Result<detail::DirPage> page) -> Outcome {
        if (!page) {
          return page.error();
        }
        proto::ReadDirReply answer;
        answer.end = page->end;
        answer.entries.reserve(page->entries.size());
        for (auto& raw : page->entries) {
          const auto id = self.nodes_.add_lookup(detail::identity_of(raw.st),
                                                 detail::join_path(dir_path, raw.name),
                                                 detail::is_single_link(raw.st));
          if (!id) {
            // Node table full: answer what fits; the last cookie resumes after it.
            self.note_node_limit();
            answer.end = false;
            break;
          }
          answer.entries.push_back(proto::DirEntry{.name = std::move(raw.name),
                                                   .cookie = raw.cookie,
                                                   .attr = detail::to_attr(raw.st, *id)});
        }
        if (answer.entries.empty() && !page->entries.empty()) {
          return detail::errno_error(ENOMEM);
        }
        return proto::ReplyBody{std::move(answer)};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::OpenRequest& r) {
  const auto* node = known_node(reply, r.node);
  if (node == nullptr) {
    return;
  }
  if (r.write && !writable_) {
    answer_now(reply, detail::errno_error(EROFS));
    return;
  }
  if (handles_.size() + pending_opens_ >= options_.max_handles) {
    log().debug("share.handle_limit max_handles={}", options_.max_handles);
    answer_now(reply, detail::errno_error(EMFILE));
    return;
  }
  ++pending_opens_;
  submit(
      reply,
      [path = node->path, identity = node->identity, write = r.write](const detail::Tree& tree) {
        return detail::open_regular(tree, path, identity, write);
      },
      [id = r.node, path_len = node->path.size()](
          FolderExporter& self, base::Result<detail::OpenedFile> opened) -> Outcome {
        --self.pending_opens_;
        if (!opened) {
          return opened.error();
        }
        auto file = std::make_shared<OpenFile>();
        file->snapshot = detail::snapshot_of(opened->st);
        file->node = id;
        file->path_len = path_len;
        file->fd = std::move(opened->fd);
        const proto::HandleId handle = self.next_handle_++;
        self.handles_.emplace(handle, std::move(file));
        return proto::ReplyBody{
            proto::OpenReply{.handle = handle, .attr = detail::to_attr(opened->st, id)}};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::ReadRequest& r) {
  if (r.offset > kMaxOffset || r.length == 0 || r.length > proto::kMaxRead) {
    answer_now(reply, detail::errno_error(EINVAL));
    return;
  }
  const auto it = handles_.find(r.handle);
  if (it == handles_.end()) {
    answer_now(reply, detail::errno_error(EBADF));
    return;
  }
  if (read_bytes_in_flight_ + r.length > kMaxReadBytesInFlight) {
    log().debug("share.busy read_bytes_in_flight={}", read_bytes_in_flight_);
    answer_now(reply, detail::errno_error(EAGAIN));
    return;
  }
  read_bytes_in_flight_ += r.length;
  submit(
      reply,
      [file = it->second, offset = r.offset, length = r.length](const detail::Tree&) {
        return detail::read_stable(file->fd.get(), file->snapshot, offset, length);
      },
      [length = r.length, node = it->second->node, path_len = it->second->path_len](
          FolderExporter& self, base::Result<wire::Bytes> data) -> Outcome {
        self.read_bytes_in_flight_ -= length;
        if (!data) {
          if (data.error().value() == ESTALE) {
            log().debug("share.read_changed path_len={} node={}", path_len, node);
          }
          return data.error();
        }
        return proto::ReplyBody{proto::ReadReply{.data = std::move(*data)}};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::ReadLinkRequest& r) {
  const auto* node = known_node(reply, r.node);
  if (node == nullptr) {
    return;
  }
  submit(
      reply,
      [path = node->path, identity = node->identity](const detail::Tree& tree) {
        return detail::read_link(tree, path, identity);
      },
      [](FolderExporter&, base::Result<std::string> target) -> Outcome {
        if (!target) {
          return target.error();
        }
        return proto::ReplyBody{proto::ReadLinkReply{.target = std::move(*target)}};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::StatFsRequest& r) {
  const auto* node = known_node(reply, r.node);
  if (node == nullptr) {
    return;
  }
  submit(
      reply,
      [path = node->path, identity = node->identity](const detail::Tree& tree) {
        return detail::stat_fs(tree, path, identity);
      },
      [](FolderExporter&, base::Result<proto::StatFsReply> fs) -> Outcome {
        if (!fs) {
          return fs.error();
        }
        return proto::ReplyBody{*fs};
      });
}

void FolderExporter::dispatch(Reply& reply, const proto::ReleaseRequest& r) {
  const auto it = handles_.find(r.handle);
  if (it == handles_.end()) {
    answer_now(reply, detail::errno_error(EBADF));
    return;
  }
  auto file = std::move(it->second);
  handles_.erase(it);
  // close(2) can wait on the disk (network filesystems flush): done on a disk thread.
  submit(
      reply,
      [file = std::move(file)](const detail::Tree&) mutable -> base::Result<proto::EmptyReply> {
        file.reset();
        return proto::EmptyReply{};
      },
      [](FolderExporter&, base::Result<proto::EmptyReply> done) -> Outcome {
        if (!done) {
          return done.error();
        }
        return proto::ReplyBody{proto::EmptyReply{}};
      });
}

void FolderExporter::dispatch(Reply&, const proto::ForgetRequest& r) {
  for (const auto& [node, count] : r.nodes) {
    nodes_.forget(node, count);
  }
}

}  // namespace

const boost::system::error_category& exporter_category() noexcept { return kCategory; }

base::Result<std::shared_ptr<Exporter>> Exporter::create(io::Executor executor, std::string root,
                                                         ExporterOptions options) {
  if (root.empty() || root.find('\0') != std::string::npos) {
    return ExporterErrc::CannotOpenRoot;
  }
  auto fd = detail::open_root(root);
  if (!fd) {
    const int error = fd.error().value();
    log().error("share.root_unusable errno={} what={}", error, fd.error().message());
    if (error == ENOTDIR) {
      return ExporterErrc::NotADirectory;
    }
    return ExporterErrc::CannotOpenRoot;
  }
  // Confinement rests on openat2: without it (kernel < 5.6, or a seccomp filter that
  // refuses it) nothing is served at all.
  auto probe = detail::open_beneath(fd->get(), ".", O_PATH | O_DIRECTORY);
  if (!probe) {
    log().error("share.openat2_unavailable errno={} what={}", probe.error().value(),
                probe.error().message());
    return ExporterErrc::CannotOpenRoot;
  }
  struct stat st{};
  if (::fstat(fd->get(), &st) != 0) {
    return ExporterErrc::CannotOpenRoot;
  }
  const bool proc_reopen = detail::proc_reopen_available();
  log().info("share.exporter_started writable={} threads={} proc_reopen={}", options.writable,
             options.threads, proc_reopen);
  return std::shared_ptr<Exporter>(std::make_shared<FolderExporter>(
      std::move(executor), std::move(*fd), detail::identity_of(st), proc_reopen, options));
}

}  // namespace peertun::share
