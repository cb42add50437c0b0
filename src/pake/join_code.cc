#include "pake/join_code.h"

#include <array>
#include <cstdint>

#include "base/random.h"
#include "wire/crockford.h"

namespace peertun::pake {
namespace {

// "pt-p2p" with separators removed and case folded: what a prefixed code starts with once
// parse_join_code has dropped whitespace and dashes.
constexpr std::string_view kCompactPrefix = "PTP2P";
constexpr std::size_t kCodeSymbols = kNameplateSymbols + kSecretSymbols;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

bool is_symbol(char c) { return wire::crockford_decode(std::string_view(&c, 1)).has_value(); }

// Decodes symbols already checked by is_symbol and re-encodes them canonically.
std::string canonical(std::string_view symbols) {
  const auto value = wire::crockford_decode(symbols);
  return wire::crockford_encode(value.value_or(0), static_cast<int>(symbols.size()));
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) {
    text.remove_prefix(1);
  }
  while (!text.empty() && is_space(text.back())) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

base::Result<std::string> normalize_nameplate(std::string_view text) {
  text = trim(text);
  if (text.empty()) {
    return Errc::Empty;
  }
  for (char c : text) {
    if (!is_symbol(c)) {
      return Errc::BadSymbol;
    }
  }
  if (text.size() != static_cast<std::size_t>(kNameplateSymbols)) {
    return Errc::BadLength;
  }
  return canonical(text);
}

base::Result<JoinCode> generate_join_code(std::string_view nameplate) {
  auto canonical_nameplate = normalize_nameplate(nameplate);
  if (!canonical_nameplate) {
    return canonical_nameplate.error();
  }
  std::array<std::uint8_t, 5> raw{};  // 40 bits = 8 symbols of 5 bits
  base::random_bytes(raw);
  std::uint64_t value = 0;
  for (std::uint8_t b : raw) {
    value = (value << 8) | b;
  }
  return JoinCode{std::move(*canonical_nameplate),
                  base::Secret(wire::crockford_encode(value, kSecretSymbols))};
}

std::string format_join_code(const JoinCode& code) {
  const std::string& s = code.secret.reveal();
  std::string out;
  out.reserve(kJoinCodePrefix.size() + kCodeSymbols + 2);
  out.append(kJoinCodePrefix);
  out.append(code.nameplate);
  out.push_back('-');
  out.append(std::string_view(s).substr(0, 4));
  out.push_back('-');
  out.append(std::string_view(s).substr(std::min<std::size_t>(4, s.size())));
  return out;
}

base::Result<JoinCode> parse_join_code(std::string_view text) {
  // Keep only symbols: whitespace and dashes are layout, anything else is a typo.
  std::string compact;
  compact.reserve(std::min<std::size_t>(text.size(), 64));
  for (char c : text) {
    if (is_space(c) || c == '-') {
      continue;
    }
    if (!is_symbol(c)) {
      return Errc::BadSymbol;
    }
    compact.push_back(upper(c));
  }
  if (compact.empty()) {
    return Errc::Empty;
  }
  const bool prefixed = compact.starts_with(kCompactPrefix);
  std::string_view symbols = compact;
  if (symbols.size() == kCompactPrefix.size() + kCodeSymbols) {
    // Exactly a prefix plus a code: the prefix must be ours.
    if (!prefixed) {
      return Errc::BadPrefix;
    }
    symbols.remove_prefix(kCompactPrefix.size());
  } else if (symbols.size() != kCodeSymbols) {
    return Errc::BadLength;
  }
  return JoinCode{canonical(symbols.substr(0, kNameplateSymbols)),
                  base::Secret(canonical(symbols.substr(kNameplateSymbols)))};
}

}  // namespace peertun::pake
