#pragma once
// What a quic::Session sends through: one stable virtual peer. The implementation decides
// where datagrams really go (DESIGN.md, "path layer": the direct pair today, the relay
// later, following NAT rebinding), so QUIC never sees an address change and needs no
// re-handshake when the path does. Datagrams travel the other way by whoever reads the
// socket calling Session::receive.
//
// Threading: called only from the Session's executor.

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/error.h"
#include "io/asio.h"

namespace peertun::quic {

class PacketPath {
 public:
  PacketPath() = default;
  PacketPath(const PacketPath&) = delete;
  PacketPath& operator=(const PacketPath&) = delete;
  virtual ~PacketPath() = default;

  // Sends `batch` as datagrams of `segment_size` bytes (the last may be shorter; at most
  // 64 segments), GSO-style. Never blocks. Returns the bytes taken (whole datagrams), or
  // would_block (resource_unavailable_try_again) when nothing fit: then wait_writable().
  // Any other error means the batch is lost (QUIC retransmits).
  virtual base::Result<std::size_t> try_send(std::span<const std::uint8_t> batch,
                                             std::size_t segment_size) = 0;

  // Completes when try_send may succeed again (or with an error when the path closed).
  virtual io::Task<base::ErrorCode> wait_writable() = 0;
};

}  // namespace peertun::quic
