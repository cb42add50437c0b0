#include "client/file_transfer.h"

#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cerrno>
#include <deque>
#include <functional>
#include <vector>

#include "base/log.h"
#include "wire/bytes.h"

namespace peertun::client {
namespace {

spdlog::logger& log() { return base::logger("client.transfer"); }

const char* transfer_message(int ev) noexcept {
  switch (static_cast<TransferErrc>(ev)) {
    case TransferErrc::CannotRead:
      return "cannot read the file to send";
    case TransferErrc::BadHeader:
      return "the sender's header is malformed";
    case TransferErrc::BadName:
      return "the sender's file name is not a bare file name";
    case TransferErrc::Exists:
      return "a file of that name already exists in the receive folder";
    case TransferErrc::CannotWrite:
      return "cannot create or write the file in the receive folder";
    case TransferErrc::Truncated:
      return "the transfer ended before all bytes arrived";
    case TransferErrc::TooLong:
      return "the sender sent more bytes than it announced";
    case TransferErrc::Refused:
      return "the receiver refused the file";
    case TransferErrc::DigestMismatch:
      return "the receiver stored different bytes than were sent (SHA-256 differs)";
  }
  return "unknown transfer error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.client.transfer", &transfer_message);

constexpr std::array<std::uint8_t, 4> kHeaderMagic = {'P', 'T', 'F', '1'};
constexpr std::array<std::uint8_t, 4> kOkMagic = {'P', 'T', 'O', 'K'};
constexpr std::array<std::uint8_t, 4> kNoMagic = {'P', 'T', 'N', 'O'};
// Big enough that a write or read is one syscall's worth and many QUIC packets.
constexpr std::size_t kChunk = std::size_t{256} * 1024;
// Chunks on their way to or from the disk at once: the network side fills (or sends) one
// while the disk thread writes (or reads ahead) the others. 1 MiB per transfer.
constexpr std::size_t kDiskDepth = 4;
// The fixed part of the header: magic, name length.
constexpr std::size_t kHeaderPrefix = 6;

bool is_bare_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxTransferName && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

// The file of one transfer and what the disk thread keeps for it. Shared by the transfer
// coroutine and the jobs it queued: whichever lets go last closes the descriptors, so a
// job still running when the transfer gives up never touches a closed (or reused) one.
// A buffer belongs to the disk thread from the submit() of the job that uses it until
// that job's result is taken with next(); the hash is the disk thread's until the last
// result is taken.
struct DiskFile {
  int dir = -1;
  int fd = -1;
  std::uint64_t size = 0;  // sender: the file's size when opened
  gnutls_hash_hd_t hash = nullptr;
  std::array<std::vector<std::uint8_t>, kDiskDepth> buffers;  // empty until allocate()

  // 1 MiB: only once the transfer is going ahead, so a refusal leaves at once.
  void allocate() {
    for (auto& b : buffers) {
      b.resize(kChunk);
    }
  }
  DiskFile() = default;
  DiskFile(const DiskFile&) = delete;
  DiskFile& operator=(const DiskFile&) = delete;
  ~DiskFile() {
    if (hash != nullptr) {
      gnutls_hash_deinit(hash, nullptr);
    }
    if (fd >= 0) {
      ::close(fd);
    }
    if (dir >= 0) {
      ::close(dir);
    }
  }
};

// SHA-256 through GnuTLS (nettle, with the CPU's SHA extensions): about 2 GB/s here, five
// times libsodium's portable code, which cost 2.6 CPU-seconds per GiB on each side.
std::int64_t start_hash(DiskFile& file) {
  return gnutls_hash_init(&file.hash, GNUTLS_DIG_SHA256) < 0 ? -ENOMEM : 0;
}

// Disk thread: writes all of `bytes` and adds them to the hash. Returns the count or -errno.
std::int64_t write_chunk(DiskFile& file, std::span<const std::uint8_t> bytes) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(file.fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n < 0 ? -errno : -EIO;
    }
    done += static_cast<std::size_t>(n);
  }
  gnutls_hash(file.hash, bytes.data(), bytes.size());
  return static_cast<std::int64_t>(bytes.size());
}

// Disk thread: reads exactly `want` bytes into buffer `index` and adds them to the hash.
// A file that ends early (it shrank while being sent) is -EIO.
std::int64_t read_chunk(DiskFile& file, std::size_t index, std::size_t want) {
  auto& buffer = file.buffers[index];
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = ::read(file.fd, buffer.data() + got, want - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return n < 0 ? -errno : -EIO;
    }
    got += static_cast<std::size_t>(n);
  }
  gnutls_hash(file.hash, buffer.data(), want);
  return static_cast<std::int64_t>(want);
}

// Runs one transfer's disk jobs on a thread of its own, in the order they were submitted,
// and hands their results back, in the same order, on the network executor. A result is
// >= 0 or -errno. The worker holds only a weak reference: the transfer coroutine owns it.
class DiskWorker : public std::enable_shared_from_this<DiskWorker> {
 public:
  // Runs on the disk thread; touches only what it captured (a DiskFile, values).
  using Job = std::function<std::int64_t()>;

  explicit DiskWorker(io::Executor executor)
      : executor_(std::move(executor)),
        strand_(io::asio::make_strand(pool_)),
        wake_(executor_, io::asio::steady_timer::time_point::max()) {}
  DiskWorker(const DiskWorker&) = delete;
  DiskWorker& operator=(const DiskWorker&) = delete;
  // Drops the jobs not started yet and waits for the running one (one chunk, or an fsync
  // the transfer was waiting for anyway).
  ~DiskWorker() {
    pool_.stop();
    pool_.join();
  }

  void submit(Job job) {
    ++pending_;
    // Keeps the executor's run() going until the result is posted back.
    auto tracked = io::asio::prefer(executor_, io::asio::execution::outstanding_work.tracked);
    io::asio::post(strand_, [job = std::move(job), weak = weak_from_this(),
                             tracked = std::move(tracked)]() mutable {
      const std::int64_t result = job();
      io::asio::post(tracked, [weak = std::move(weak), result] {
        if (auto self = weak.lock()) {
          self->results_.push_back(result);
          self->wake_.cancel();
        }
      });
    });
  }

  // Jobs submitted whose result was not taken yet.
  [[nodiscard]] std::size_t pending() const { return pending_; }

  // The oldest pending job's result, once it is done. -EINVAL when nothing is pending.
  io::Task<std::int64_t> next() {
    auto self = shared_from_this();
    if (pending_ == 0) {
      co_return -EINVAL;
    }
    while (results_.empty()) {
      co_await wake_.async_wait(io::use_nothrow);  // cancelled = a result arrived
    }
    const std::int64_t result = results_.front();
    results_.pop_front();
    --pending_;
    co_return result;
  }

 private:
  io::Executor executor_;
  io::asio::thread_pool pool_{1};
  // One thread already runs the jobs in order; the strand makes the order a guarantee.
  io::asio::strand<io::asio::thread_pool::executor_type> strand_;
  // Network executor only, like everything below.
  io::asio::steady_timer wake_;
  std::deque<std::int64_t> results_;
  std::size_t pending_ = 0;
};

// Reads exactly out.size() bytes unless the stream ends first; returns how many arrived.
io::Task<base::Result<std::size_t>> read_exact(std::shared_ptr<quic::Session> session,
                                               quic::StreamId id, std::span<std::uint8_t> out) {
  std::size_t got = 0;
  while (got < out.size()) {
    auto r = co_await session->read(id, out.subspan(got));
    if (!r) {
      co_return r.error();
    }
    got += r->bytes;
    if (r->fin) {
      break;
    }
  }
  co_return got;
}

// The sender's write failed. A receiver that refused the file (it may refuse at the
// header, and close, while we are still writing) has its "PTNO" in the stream already,
// and that says more than the write error.
io::Task<base::ErrorCode> refusal_or(std::shared_ptr<quic::Session> session, quic::StreamId id,
                                     base::ErrorCode write_error) {
  std::array<std::uint8_t, 4 + 32> reply{};
  auto got = co_await read_exact(session, id, reply);
  if (got && *got >= 4 && std::equal(kNoMagic.begin(), kNoMagic.end(), reply.begin())) {
    co_return make_error_code(TransferErrc::Refused);
  }
  co_return write_error;
}

// The receiver's refusal ("PTNO" and FIN); returns `why` for the caller to report.
io::Task<base::ErrorCode> refuse(std::shared_ptr<quic::Session> session, quic::StreamId id,
                                 TransferErrc why) {
  std::array<std::uint8_t, 4> no{};
  std::copy(kNoMagic.begin(), kNoMagic.end(), no.begin());
  co_await session->write_all(id, no, true);
  co_return make_error_code(why);
}

}  // namespace

const boost::system::error_category& transfer_category() { return kCategory; }

std::string TransferResult::sha256_hex() const { return wire::to_hex(sha256); }

io::Task<base::Result<TransferResult>> send_file(std::shared_ptr<quic::Session> session,
                                                 std::string path) {
  const auto started = std::chrono::steady_clock::now();
  auto disk = std::make_shared<DiskWorker>(co_await io::asio::this_coro::executor);
  auto file = std::make_shared<DiskFile>();
  disk->submit([file, path]() -> std::int64_t {
    file->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    struct stat st{};
    if (file->fd < 0 || ::fstat(file->fd, &st) != 0) {
      return -errno;
    }
    if (!S_ISREG(st.st_mode)) {
      return -EINVAL;
    }
    file->size = static_cast<std::uint64_t>(st.st_size);
    // Read front to back once: a disk's readahead may grow.
    (void)::posix_fadvise(file->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return start_hash(*file);
  });
  if (co_await disk->next() < 0) {
    co_return TransferErrc::CannotRead;
  }
  file->allocate();
  const std::uint64_t size = file->size;
  TransferResult result;
  const auto slash = path.find_last_of('/');
  result.name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (!is_bare_name(result.name)) {
    co_return TransferErrc::BadName;
  }
  auto stream = co_await session->open_stream();
  if (!stream) {
    co_return stream.error();
  }
  // Filled by index: GCC 12 misreads vector inserts here (-Wstringop-overflow).
  const auto name_len = result.name.size();
  std::vector<std::uint8_t> header_bytes(kHeaderPrefix + name_len + 8);
  for (std::size_t i = 0; i < kHeaderMagic.size(); ++i) {
    header_bytes[i] = kHeaderMagic[i];
  }
  header_bytes[4] = static_cast<std::uint8_t>(name_len >> 8U);
  header_bytes[5] = static_cast<std::uint8_t>(name_len);
  for (std::size_t i = 0; i < name_len; ++i) {
    header_bytes[kHeaderPrefix + i] = static_cast<std::uint8_t>(result.name[i]);
  }
  for (std::size_t i = 0; i < 8; ++i) {
    header_bytes[kHeaderPrefix + name_len + i] = static_cast<std::uint8_t>(size >> (56U - 8U * i));
  }
  if (auto ec = co_await session->write_all(*stream, header_bytes, false)) {
    co_return co_await refusal_or(session, *stream, ec);
  }
  // The disk thread reads (and hashes) up to kDiskDepth chunks ahead; buffer i carries
  // chunks i, i + kDiskDepth, ... so results come back in buffer order.
  std::uint64_t queued = 0;
  auto read_ahead = [&](std::size_t index) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - queued));
    queued += want;
    disk->submit([file, index, want] { return read_chunk(*file, index, want); });
  };
  for (std::size_t i = 0; i < kDiskDepth && queued < size; ++i) {
    read_ahead(i);
  }
  for (std::size_t index = 0; result.bytes < size; index = (index + 1) % kDiskDepth) {
    const std::int64_t got = co_await disk->next();
    if (got <= 0) {
      co_return TransferErrc::CannotRead;  // shrank or failed while being sent
    }
    const auto len = static_cast<std::size_t>(got);
    result.bytes += len;
    // The stream copies what it takes, so the buffer is free again once this returns.
    if (auto ec = co_await session->write_all(
            *stream, std::span<const std::uint8_t>(file->buffers[index].data(), len),
            result.bytes == size)) {
      co_return co_await refusal_or(session, *stream, ec);
    }
    if (queued < size) {
      read_ahead(index);
    }
  }
  if (size == 0) {
    const std::span<const std::uint8_t> nothing;  // named: GCC 12 and braced coroutine args
    if (auto ec = co_await session->write_all(*stream, nothing, true)) {
      co_return co_await refusal_or(session, *stream, ec);
    }
  }
  // Every read's result was taken: the disk thread is done with the hash.
  gnutls_hash_output(file->hash, result.sha256.data());
  std::array<std::uint8_t, 4 + 32> reply{};
  auto got = co_await read_exact(session, *stream, reply);
  if (!got) {
    co_return got.error();
  }
  if (*got >= 4 && std::equal(kNoMagic.begin(), kNoMagic.end(), reply.begin())) {
    co_return TransferErrc::Refused;
  }
  if (*got != reply.size() || !std::equal(kOkMagic.begin(), kOkMagic.end(), reply.begin())) {
    co_return TransferErrc::BadHeader;
  }
  if (!std::equal(result.sha256.begin(), result.sha256.end(), reply.begin() + 4)) {
    co_return TransferErrc::DigestMismatch;
  }
  result.elapsed = std::chrono::steady_clock::now() - started;
  co_return result;
}

io::Task<base::Result<TransferResult>> receive_file(std::shared_ptr<quic::Session> session,
                                                    std::string dir) {
  auto stream = co_await session->accept_stream();
  if (!stream) {
    co_return stream.error();
  }
  const quic::StreamId id = *stream;
  const auto started = std::chrono::steady_clock::now();
  std::array<std::uint8_t, kHeaderPrefix> prefix{};
  auto got = co_await read_exact(session, id, prefix);
  if (!got) {
    co_return got.error();
  }
  if (*got != prefix.size() ||
      !std::equal(kHeaderMagic.begin(), kHeaderMagic.end(), prefix.begin())) {
    co_return co_await refuse(session, id, TransferErrc::BadHeader);
  }
  const std::size_t name_len = (std::size_t{prefix[4]} << 8U) | prefix[5];
  if (name_len == 0 || name_len > kMaxTransferName) {
    co_return co_await refuse(session, id, TransferErrc::BadName);
  }
  std::vector<std::uint8_t> rest(name_len + 8);
  got = co_await read_exact(session, id, rest);
  if (!got) {
    co_return got.error();
  }
  if (*got != rest.size()) {
    co_return co_await refuse(session, id, TransferErrc::BadHeader);
  }
  TransferResult result;
  result.name.assign(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(name_len));
  if (!is_bare_name(result.name)) {
    co_return co_await refuse(session, id, TransferErrc::BadName);
  }
  std::uint64_t size = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    size = (size << 8U) | rest[name_len + i];
  }
  auto file = std::make_shared<DiskFile>();
  // Opened here, not on the disk thread: two metadata calls, and a refusal (the file
  // exists) leaves in the same turn as the header arrived. One disk-thread round trip
  // later, the sender often gave up before acknowledging it, and the receiver's close
  // then raced kPeerGoneGrace (p2p_session.cc).
  file->dir = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (file->dir < 0) {
    co_return co_await refuse(session, id, TransferErrc::CannotWrite);
  }
  // O_EXCL: never over an existing file; O_NOFOLLOW: never through a planted symlink.
  file->fd = ::openat(file->dir, result.name.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (file->fd < 0) {
    const int err = errno;
    co_return co_await refuse(session, id,
                              err == EEXIST ? TransferErrc::Exists : TransferErrc::CannotWrite);
  }
  // Whatever goes wrong from here, no partial file stays behind. Inline, not on the disk
  // thread: it must be done when this coroutine ends, even if the process ends with it.
  bool keep = false;
  struct RemoveUnlessKept {
    int dir;
    const std::string& name;
    const bool& keep;
    ~RemoveUnlessKept() {
      if (!keep) {
        ::unlinkat(dir, name.c_str(), 0);
      }
    }
  } remove_partial{file->dir, result.name, keep};
  if (start_hash(*file) < 0) {
    co_return co_await refuse(session, id, TransferErrc::CannotWrite);
  }
  file->allocate();
  auto disk = std::make_shared<DiskWorker>(co_await io::asio::this_coro::executor);

  // Chunks are gathered to kChunk bytes (fewer, larger writes) in buffer `index`, then go
  // to the disk thread, which writes and hashes them in order; buffer i carries chunks i,
  // i + kDiskDepth, ... so when all are out, the oldest result frees the next buffer.
  std::size_t index = 0;
  std::size_t filled = 0;
  bool fin = false;
  while (!fin) {
    if (filled == 0 && disk->pending() == kDiskDepth && co_await disk->next() < 0) {
      co_return co_await refuse(session, id, TransferErrc::CannotWrite);
    }
    auto& buffer = file->buffers[index];
    auto r = co_await session->read(id, std::span(buffer).subspan(filled));
    if (!r) {
      co_return r.error();
    }
    fin = r->fin;
    if (r->bytes > size - result.bytes) {
      co_return co_await refuse(session, id, TransferErrc::TooLong);
    }
    result.bytes += r->bytes;
    filled += r->bytes;
    if (filled == buffer.size() || (fin && filled > 0)) {
      disk->submit([file, index, filled] {
        return write_chunk(*file,
                           std::span<const std::uint8_t>(file->buffers[index].data(), filled));
      });
      index = (index + 1) % kDiskDepth;
      filled = 0;
    }
  }
  if (result.bytes != size) {
    co_return co_await refuse(session, id, TransferErrc::Truncated);
  }
  bool write_failed = false;
  while (disk->pending() > 0) {
    write_failed = co_await disk->next() < 0 || write_failed;
  }
  if (write_failed) {
    co_return co_await refuse(session, id, TransferErrc::CannotWrite);
  }
  disk->submit([file]() -> std::int64_t { return ::fsync(file->fd) == 0 ? 0 : -errno; });
  if (co_await disk->next() < 0) {
    co_return co_await refuse(session, id, TransferErrc::CannotWrite);
  }
  // Every write's result was taken: the disk thread is done with the hash.
  gnutls_hash_output(file->hash, result.sha256.data());
  std::array<std::uint8_t, 4 + 32> ok{};
  std::copy(kOkMagic.begin(), kOkMagic.end(), ok.begin());
  std::copy(result.sha256.begin(), result.sha256.end(), ok.begin() + 4);
  if (auto ec = co_await session->write_all(id, ok, true)) {
    co_return ec;
  }
  keep = true;
  result.elapsed = std::chrono::steady_clock::now() - started;
  log().info("transfer.received name_bytes={} bytes={}", result.name.size(), result.bytes);
  co_return result;
}

}  // namespace peertun::client
