#pragma once
// Pushing one file over one QUIC stream of the direct path (`peertun p2p DIR --send FILE`
// and `peertun p2p-join CODE --receive DIR`): a way to move bytes end to end before the
// folder share exists, and the data path's acceptance test (docs/protocol/quic.md,
// "File push").
//
// Wire, on one bidirectional stream opened by the sender:
//   sender:   "PTF1" | u16 name length | name (UTF-8, 1..255 bytes) | u64 size | size bytes | FIN
//   receiver: "PTOK" | 32-byte SHA-256 of what it stored | FIN   (or a stream reset)
// Integers big-endian. The receiver stores under DIR only (a bare file name: no '/',
// no NUL, not "." or ".."), never over an existing file, and removes a partial file.
//
// Threading: the coroutines run on the client's io_context thread (parameters are values).
// The disk work of each transfer (reading or writing, SHA-256, fsync, the sender's open)
// runs on a worker thread of its own, at most 4 chunks of 256 KiB ahead of the network,
// and comes back posted to the io_context: a slow disk (or a long fsync) never stalls
// QUIC's timers and acknowledgements. Only metadata calls run inline: the receiver's open
// (so that a refusal leaves at once) and removing a partial file after a failure.

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/error.h"
#include "io/asio.h"
#include "quic/driver/session.h"

namespace peertun::client {

enum class TransferErrc {
  CannotRead = 1,  // the file to send cannot be opened or read
  BadHeader,       // the peer's header is malformed
  BadName,         // a name that is not a bare file name
  Exists,          // the receiver already has a file of that name
  CannotWrite,     // the receiver cannot create or write the file
  Truncated,       // the stream ended before `size` bytes
  TooLong,         // more bytes than announced
  Refused,         // the receiver reset the stream
  DigestMismatch,  // the receiver stored different bytes than were sent
};
const boost::system::error_category& transfer_category();
inline boost::system::error_code make_error_code(TransferErrc e) {
  return {static_cast<int>(e), transfer_category()};
}

inline constexpr std::size_t kMaxTransferName = 255;

struct TransferResult {
  std::string name;
  std::uint64_t bytes = 0;
  std::array<std::uint8_t, 32> sha256{};
  std::chrono::steady_clock::duration elapsed{};
  [[nodiscard]] std::string sha256_hex() const;
};

// Opens a stream, sends `path` and waits for the receiver's digest. Errors: TransferErrc
// values, and the session's errors.
io::Task<base::Result<TransferResult>> send_file(std::shared_ptr<quic::Session> session,
                                                 std::string path);

// Accepts the sender's stream and stores the file under `dir`.
io::Task<base::Result<TransferResult>> receive_file(std::shared_ptr<quic::Session> session,
                                                    std::string dir);

}  // namespace peertun::client

template <>
struct boost::system::is_error_code_enum<peertun::client::TransferErrc> : std::true_type {};
