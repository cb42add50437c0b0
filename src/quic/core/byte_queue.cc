#include "quic/core/byte_queue.h"

#include <algorithm>
#include <cstring>

namespace peertun::quic {

ChunkPool::Chunk ChunkPool::get() {
  if (!free_.empty()) {
    auto c = free_.back();
    free_.pop_back();
    return c;
  }
  owned_.push_back(std::make_unique<std::uint8_t[]>(kChunkSize));
  return owned_.back().get();
}

void ChunkPool::put(Chunk chunk) { free_.push_back(chunk); }

ByteQueue::~ByteQueue() {
  for (auto c : chunks_) {
    pool_->put(c);
  }
}

std::size_t ByteQueue::append(std::span<const std::uint8_t> data, std::size_t limit) {
  const std::size_t room = limit > size_ ? limit - size_ : 0;
  const std::size_t n = std::min(room, data.size());
  std::size_t done = 0;
  while (done < n) {
    // Invariant: the tail chunk's fill is (head_ + size_) mod chunk size, with a full
    // tail counted as a new chunk to open.
    const std::size_t end = head_ + size_;
    const std::size_t fill = end % ChunkPool::kChunkSize;
    if (fill == 0 && end / ChunkPool::kChunkSize == chunks_.size()) {
      chunks_.push_back(pool_->get());
    }
    const std::size_t take = std::min(n - done, ChunkPool::kChunkSize - fill);
    std::memcpy(chunks_.back() + fill, data.data() + done, take);
    done += take;
    size_ += take;
  }
  return n;
}

std::size_t ByteQueue::peek(std::span<std::uint8_t> out) const {
  const std::size_t n = std::min(out.size(), size_);
  std::size_t done = 0;
  std::size_t pos = head_;
  std::size_t chunk = 0;
  while (done < n) {
    const std::size_t take = std::min(n - done, ChunkPool::kChunkSize - pos);
    std::memcpy(out.data() + done, chunks_[chunk] + pos, take);
    done += take;
    pos = 0;
    ++chunk;
  }
  return n;
}

void ByteQueue::pop(std::size_t n) {
  n = std::min(n, size_);
  head_ += n;
  size_ -= n;
  while (head_ >= ChunkPool::kChunkSize) {
    pool_->put(chunks_.front());
    chunks_.pop_front();
    head_ -= ChunkPool::kChunkSize;
  }
  if (size_ == 0 && !chunks_.empty()) {
    // Nothing left: recycle the partly used chunk so the next append starts fresh.
    pool_->put(chunks_.front());
    chunks_.pop_front();
    head_ = 0;
  }
}

std::size_t ByteQueue::gather(std::size_t from,
                              std::span<std::span<const std::uint8_t>> out) const {
  std::size_t count = 0;
  std::size_t abs = head_ + from;
  std::size_t left = from < size_ ? size_ - from : 0;
  while (left > 0 && count < out.size()) {
    const std::size_t chunk = abs / ChunkPool::kChunkSize;
    const std::size_t pos = abs % ChunkPool::kChunkSize;
    const std::size_t take = std::min(left, ChunkPool::kChunkSize - pos);
    out[count++] = {chunks_[chunk] + pos, take};
    abs += take;
    left -= take;
  }
  return count;
}

}  // namespace peertun::quic
