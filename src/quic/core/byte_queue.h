#pragma once
// A FIFO of bytes in fixed 64 KiB chunks drawn from a per-connection pool, used for stream
// send and receive buffers. Bytes never move once written, so ngtcp2 may keep pointers to
// unacknowledged stream data (it does not copy it); chunks go back to the pool when
// popped, so steady-state transfer allocates nothing.
//
// Not thread-safe; owned by one Connection.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

namespace peertun::quic {

class ChunkPool {
 public:
  static constexpr std::size_t kChunkSize = 64 * 1024;
  using Chunk = std::uint8_t*;

  ChunkPool() = default;
  ChunkPool(const ChunkPool&) = delete;
  ChunkPool& operator=(const ChunkPool&) = delete;

  Chunk get();
  void put(Chunk chunk);

 private:
  std::vector<std::unique_ptr<std::uint8_t[]>> owned_;
  std::vector<Chunk> free_;
};

class ByteQueue {
 public:
  explicit ByteQueue(ChunkPool& pool) : pool_(&pool) {}
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;
  ~ByteQueue();

  [[nodiscard]] std::size_t size() const { return size_; }
  [[nodiscard]] bool empty() const { return size_ == 0; }

  // Copies as much of `data` as fits under `limit` total bytes; returns how much.
  std::size_t append(std::span<const std::uint8_t> data, std::size_t limit);

  // Copies up to out.size() bytes from the front without removing them.
  [[nodiscard]] std::size_t peek(std::span<std::uint8_t> out) const;

  // Removes n <= size() bytes from the front.
  void pop(std::size_t n);

  // Describes the bytes [from, size()) as up to `out.size()` contiguous pieces; returns
  // how many pieces were written. The pointers stay valid until those bytes are popped.
  std::size_t gather(std::size_t from, std::span<std::span<const std::uint8_t>> out) const;

 private:
  ChunkPool* pool_;
  std::deque<ChunkPool::Chunk> chunks_;
  std::size_t head_ = 0;  // offset of the first byte in chunks_.front()
  std::size_t size_ = 0;
};

}  // namespace peertun::quic
