#include "client/file_transfer.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
// The fixed part of the header: magic, name length.
constexpr std::size_t kHeaderPrefix = 6;

bool is_bare_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxTransferName && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
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

}  // namespace

const boost::system::error_category& transfer_category() { return kCategory; }

std::string TransferResult::sha256_hex() const { return wire::to_hex(sha256); }

io::Task<base::Result<TransferResult>> send_file(std::shared_ptr<quic::Session> session,
                                                 std::string path) {
  const auto started = std::chrono::steady_clock::now();
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st{};
  if (fd.get() < 0 || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    co_return TransferErrc::CannotRead;
  }
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
  const auto size_field = static_cast<std::uint64_t>(st.st_size);
  for (std::size_t i = 0; i < 8; ++i) {
    header_bytes[kHeaderPrefix + name_len + i] =
        static_cast<std::uint8_t>(size_field >> (56U - 8U * i));
  }
  if (auto ec = co_await session->write_all(*stream, header_bytes, false)) {
    co_return ec;
  }
  crypto_hash_sha256_state hash;
  crypto_hash_sha256_init(&hash);
  std::vector<std::uint8_t> chunk(kChunk);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  while (result.bytes < size) {
    const auto want =
        static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, size - result.bytes));
    const ssize_t n = ::read(fd.get(), chunk.data(), want);
    if (n <= 0) {
      co_return TransferErrc::CannotRead;  // shrank or failed while being sent
    }
    const auto len = static_cast<std::size_t>(n);
    crypto_hash_sha256_update(&hash, chunk.data(), len);
    result.bytes += len;
    if (auto ec = co_await session->write_all(
            *stream, std::span<const std::uint8_t>(chunk.data(), len), result.bytes == size)) {
      co_return ec;
    }
  }
  if (size == 0) {
    if (auto ec = co_await session->write_all(*stream, {}, true)) {
      co_return ec;
    }
  }
  crypto_hash_sha256_final(&hash, result.sha256.data());
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
  const auto started = std::chrono::steady_clock::now();
  auto refuse = [session, id = *stream](TransferErrc why) -> io::Task<base::ErrorCode> {
    std::array<std::uint8_t, 4> no{};
    std::copy(kNoMagic.begin(), kNoMagic.end(), no.begin());
    co_await session->write_all(id, no, true);
    co_return make_error_code(why);
  };
  std::array<std::uint8_t, kHeaderPrefix> prefix{};
  auto got = co_await read_exact(session, *stream, prefix);
  if (!got) {
    co_return got.error();
  }
  if (*got != prefix.size() ||
      !std::equal(kHeaderMagic.begin(), kHeaderMagic.end(), prefix.begin())) {
    co_return co_await refuse(TransferErrc::BadHeader);
  }
  const std::size_t name_len = (std::size_t{prefix[4]} << 8U) | prefix[5];
  if (name_len == 0 || name_len > kMaxTransferName) {
    co_return co_await refuse(TransferErrc::BadName);
  }
  std::vector<std::uint8_t> rest(name_len + 8);
  got = co_await read_exact(session, *stream, rest);
  if (!got) {
    co_return got.error();
  }
  if (*got != rest.size()) {
    co_return co_await refuse(TransferErrc::BadHeader);
  }
  TransferResult result;
  result.name.assign(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(name_len));
  if (!is_bare_name(result.name)) {
    co_return co_await refuse(TransferErrc::BadName);
  }
  std::uint64_t size = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    size = (size << 8U) | rest[name_len + i];
  }
  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) {
    co_return co_await refuse(TransferErrc::CannotWrite);
  }
  // O_EXCL: never over an existing file; O_NOFOLLOW: never through a planted symlink.
  Fd out(::openat(dir_fd.get(), result.name.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (out.get() < 0) {
    const int err = errno;
    co_return co_await refuse(err == EEXIST ? TransferErrc::Exists : TransferErrc::CannotWrite);
  }
  // Whatever goes wrong from here, no partial file stays behind.
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
  } remove_partial{dir_fd.get(), result.name, keep};

  crypto_hash_sha256_state hash;
  crypto_hash_sha256_init(&hash);
  std::vector<std::uint8_t> chunk(kChunk);
  bool fin = false;
  while (!fin) {
    auto r = co_await session->read(*stream, chunk);
    if (!r) {
      co_return r.error();
    }
    fin = r->fin;
    if (r->bytes > size - result.bytes) {
      co_return co_await refuse(TransferErrc::TooLong);
    }
    // Disk writes stay on this thread: a page-cache write of 256 KiB is far shorter than
    // the QUIC timers' granularity. The folder share (issue 5) moves disk work off it.
    std::size_t done = 0;
    while (done < r->bytes) {
      const ssize_t n = ::write(out.get(), chunk.data() + done, r->bytes - done);
      if (n <= 0) {
        co_return co_await refuse(TransferErrc::CannotWrite);
      }
      done += static_cast<std::size_t>(n);
    }
    crypto_hash_sha256_update(&hash, chunk.data(), r->bytes);
    result.bytes += r->bytes;
  }
  if (result.bytes != size) {
    co_return co_await refuse(TransferErrc::Truncated);
  }
  if (::fsync(out.get()) != 0) {
    co_return co_await refuse(TransferErrc::CannotWrite);
  }
  crypto_hash_sha256_final(&hash, result.sha256.data());
  std::array<std::uint8_t, 4 + 32> ok{};
  std::copy(kOkMagic.begin(), kOkMagic.end(), ok.begin());
  std::copy(result.sha256.begin(), result.sha256.end(), ok.begin() + 4);
  if (auto ec = co_await session->write_all(*stream, ok, true)) {
    co_return ec;
  }
  keep = true;
  result.elapsed = std::chrono::steady_clock::now() - started;
  log().info("transfer.received name_bytes={} bytes={}", result.name.size(), result.bytes);
  co_return result;
}

}  // namespace peertun::client
