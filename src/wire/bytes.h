#pragma once
// Byte readers and writers for wire formats. Network byte order throughout.
//
// ByteReader never reads past its span: every read that would overrun returns
// nullopt (or false) and leaves the reader where it was, so a parser of
// untrusted input checks one value per field and cannot crash.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace peertun::wire {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

class ByteReader {
 public:
  explicit ByteReader(ByteView data) : data_(data) {}

  [[nodiscard]] std::size_t remaining() const { return data_.size() - pos_; }
  [[nodiscard]] std::size_t position() const { return pos_; }
  [[nodiscard]] bool empty() const { return remaining() == 0; }

  [[nodiscard]] std::optional<std::uint8_t> u8();
  [[nodiscard]] std::optional<std::uint16_t> u16();
  [[nodiscard]] std::optional<std::uint32_t> u32();
  [[nodiscard]] std::optional<std::uint64_t> u64();
  // A view into the underlying buffer (no copy); valid as long as that buffer.
  [[nodiscard]] std::optional<ByteView> bytes(std::size_t n);
  [[nodiscard]] bool skip(std::size_t n);

 private:
  ByteView data_;
  std::size_t pos_ = 0;
};

class ByteWriter {
 public:
  ByteWriter() = default;
  explicit ByteWriter(std::size_t reserve) { out_.reserve(reserve); }

  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v);
  void u32(std::uint32_t v);
  void u64(std::uint64_t v);
  void bytes(ByteView v) { out_.insert(out_.end(), v.begin(), v.end()); }
  void text(std::string_view v);
  void zeros(std::size_t n) { out_.insert(out_.end(), n, std::uint8_t{0}); }

  // Overwrites two bytes at `offset` (which must already be written): for length
  // fields filled in after the body.
  void patch_u16(std::size_t offset, std::uint16_t v);

  [[nodiscard]] std::size_t size() const { return out_.size(); }
  [[nodiscard]] const Bytes& data() const { return out_; }
  [[nodiscard]] Bytes take() { return std::move(out_); }

 private:
  Bytes out_;
};

// Big-endian loads/stores on raw spans whose size the caller already checked.
[[nodiscard]] inline std::uint16_t load_u16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}
[[nodiscard]] inline std::uint32_t load_u32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}
inline void store_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void store_u32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

// Lower-case hex, for logs and tests.
[[nodiscard]] std::string to_hex(ByteView data);
// Accepts upper or lower case and ignores whitespace; nullopt on anything else.
[[nodiscard]] std::optional<Bytes> from_hex(std::string_view text);

}  // namespace peertun::wire
