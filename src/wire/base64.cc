#include "wire/base64.h"

#include <array>
#include <cstdint>

namespace peertun::wire {
namespace {

// RFC 4648 §4, Table 1.
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kPad = '=';
constexpr std::uint8_t kInvalid = 0xff;

constexpr std::array<std::uint8_t, 256> make_decode_table() {
  std::array<std::uint8_t, 256> table{};
  for (auto& v : table) {
    v = kInvalid;
  }
  for (std::size_t i = 0; i < 64; ++i) {
    table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  }
  return table;
}

constexpr std::array<std::uint8_t, 256> kDecode = make_decode_table();

std::uint8_t symbol(char c) { return kDecode[static_cast<unsigned char>(c)]; }

}  // namespace

std::string base64_encode(ByteView data) {
  std::string out;
  out.reserve(base64_encoded_size(data.size()));
  std::size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    const std::uint32_t group = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                                std::uint32_t{data[i + 2]};
    out.push_back(kAlphabet[(group >> 18) & 0x3f]);
    out.push_back(kAlphabet[(group >> 12) & 0x3f]);
    out.push_back(kAlphabet[(group >> 6) & 0x3f]);
    out.push_back(kAlphabet[group & 0x3f]);
  }
  const std::size_t rest = data.size() - i;
  if (rest == 1) {
    const std::uint32_t group = std::uint32_t{data[i]} << 16;
    out.push_back(kAlphabet[(group >> 18) & 0x3f]);
    out.push_back(kAlphabet[(group >> 12) & 0x3f]);
    out.push_back(kPad);
    out.push_back(kPad);
  } else if (rest == 2) {
    const std::uint32_t group = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8);
    out.push_back(kAlphabet[(group >> 18) & 0x3f]);
    out.push_back(kAlphabet[(group >> 12) & 0x3f]);
    out.push_back(kAlphabet[(group >> 6) & 0x3f]);
    out.push_back(kPad);
  }
  return out;
}

std::optional<Bytes> base64_decode(std::string_view text, std::size_t max_decoded) {
  if (text.size() % 4 != 0) {
    return std::nullopt;
  }
  if (text.empty()) {
    return Bytes{};
  }
  // Only the final quantum may carry padding: "xx==" (one byte) or "xxx=" (two).
  std::size_t pad = 0;
  if (text[text.size() - 1] == kPad) {
    pad = text[text.size() - 2] == kPad ? 2 : 1;
  }
  // No overflow: text.size() / 4 * 3 <= text.size().
  const std::size_t decoded_size = text.size() / 4 * 3 - pad;
  if (decoded_size > max_decoded) {
    return std::nullopt;
  }
  const std::size_t full = text.size() - (pad == 0 ? 0 : 4);
  Bytes out;
  out.reserve(decoded_size);
  for (std::size_t i = 0; i < full; i += 4) {
    const std::uint8_t a = symbol(text[i]);
    const std::uint8_t b = symbol(text[i + 1]);
    const std::uint8_t c = symbol(text[i + 2]);
    const std::uint8_t d = symbol(text[i + 3]);
    // A '=' inside the data is not in the table, so it is rejected here too.
    if (a == kInvalid || b == kInvalid || c == kInvalid || d == kInvalid) {
      return std::nullopt;
    }
    const std::uint32_t group = (std::uint32_t{a} << 18) | (std::uint32_t{b} << 12) |
                                (std::uint32_t{c} << 6) | std::uint32_t{d};
    out.push_back(static_cast<std::uint8_t>(group >> 16));
    out.push_back(static_cast<std::uint8_t>(group >> 8));
    out.push_back(static_cast<std::uint8_t>(group));
  }
  if (pad != 0) {
    const std::string_view last = text.substr(full);
    const std::uint8_t a = symbol(last[0]);
    const std::uint8_t b = symbol(last[1]);
    if (a == kInvalid || b == kInvalid) {
      return std::nullopt;
    }
    if (pad == 2) {
      // RFC 4648 §3.5: the 4 bits of b below the one output byte must be zero.
      if ((b & 0x0f) != 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<std::uint8_t>((a << 2) | (b >> 4)));
    } else {
      const std::uint8_t c = symbol(last[2]);
      // The 2 bits of c below the two output bytes must be zero.
      if (c == kInvalid || (c & 0x03) != 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<std::uint8_t>((a << 2) | (b >> 4)));
      out.push_back(static_cast<std::uint8_t>(((b & 0x0f) << 4) | (c >> 2)));
    }
  }
  return out;
}

}  // namespace peertun::wire
