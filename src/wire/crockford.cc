#include "wire/crockford.h"

namespace peertun::wire {
namespace {

constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int symbol_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'z') {
    c = static_cast<char>(c - 'a' + 'A');
  }
  switch (c) {
    case 'O':
      return 0;
    case 'I':
    case 'L':
      return 1;
    case 'U':
      return -1;
    default:
      break;
  }
  for (int i = 10; i < 32; ++i) {
    if (kAlphabet[i] == c) {
      return i;
    }
  }
  return -1;
}

}  // namespace

std::string crockford_encode(std::uint64_t value, int chars) {
  std::string out(static_cast<std::size_t>(chars), '0');
  for (int i = chars - 1; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = kAlphabet[value & 0x1f];
    value >>= 5;
  }
  return out;
}

std::optional<std::uint64_t> crockford_decode(std::string_view text) {
  if (text.empty() || text.size() > 12) {
    return std::nullopt;
  }
  std::uint64_t value = 0;
  for (char c : text) {
    int v = symbol_value(c);
    if (v < 0) {
      return std::nullopt;
    }
    value = (value << 5) | static_cast<std::uint64_t>(v);
  }
  return value;
}

}  // namespace peertun::wire
