#include "wire/bytes.h"

#include <string>

namespace peertun::wire {

std::optional<std::uint8_t> ByteReader::u8() {
  if (remaining() < 1) {
    return std::nullopt;
  }
  return data_[pos_++];
}

std::optional<std::uint16_t> ByteReader::u16() {
  if (remaining() < 2) {
    return std::nullopt;
  }
  auto v = load_u16(data_.data() + pos_);
  pos_ += 2;
  return v;
}

std::optional<std::uint32_t> ByteReader::u32() {
  if (remaining() < 4) {
    return std::nullopt;
  }
  auto v = load_u32(data_.data() + pos_);
  pos_ += 4;
  return v;
}

std::optional<std::uint64_t> ByteReader::u64() {
  if (remaining() < 8) {
    return std::nullopt;
  }
  std::uint64_t hi = load_u32(data_.data() + pos_);
  std::uint64_t lo = load_u32(data_.data() + pos_ + 4);
  pos_ += 8;
  return (hi << 32) | lo;
}

std::optional<ByteView> ByteReader::bytes(std::size_t n) {
  if (remaining() < n) {
    return std::nullopt;
  }
  auto v = data_.subspan(pos_, n);
  pos_ += n;
  return v;
}

bool ByteReader::skip(std::size_t n) {
  if (remaining() < n) {
    return false;
  }
  pos_ += n;
  return true;
}

void ByteWriter::u16(std::uint16_t v) {
  std::uint8_t b[2];
  store_u16(b, v);
  out_.insert(out_.end(), b, b + 2);
}

void ByteWriter::u32(std::uint32_t v) {
  std::uint8_t b[4];
  store_u32(b, v);
  out_.insert(out_.end(), b, b + 4);
}

void ByteWriter::u64(std::uint64_t v) {
  u32(static_cast<std::uint32_t>(v >> 32));
  u32(static_cast<std::uint32_t>(v));
}

void ByteWriter::text(std::string_view v) { out_.insert(out_.end(), v.begin(), v.end()); }

void ByteWriter::patch_u16(std::size_t offset, std::uint16_t v) {
  store_u16(out_.data() + offset, v);
}

std::string to_hex(ByteView data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (auto b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0x0f]);
  }
  return out;
}

std::optional<Bytes> from_hex(std::string_view text) {
  Bytes out;
  int pending = -1;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      continue;
    } else {
      return std::nullopt;
    }
    if (pending < 0) {
      pending = v;
    } else {
      out.push_back(static_cast<std::uint8_t>((pending << 4) | v));
      pending = -1;
    }
  }
  if (pending >= 0) {
    return std::nullopt;
  }
  return out;
}

}  // namespace peertun::wire
