#pragma once
// A string that must never reach a log line or an error message: tokens, join-code
// secrets, TURN passwords. Formatting it with fmt prints "<redacted>".

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace peertun::base {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  // Deliberately named so that every place that reveals the value is searchable.
  [[nodiscard]] const std::string& reveal() const { return value_; }
  [[nodiscard]] bool empty() const { return value_.empty(); }

  friend bool operator==(const Secret&, const Secret&) = default;

 private:
  std::string value_;
};

// Compares in time that depends only on the lengths, so a token check does not tell
// an attacker how many leading bytes were right.
[[nodiscard]] inline bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = static_cast<unsigned char>(
        diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

}  // namespace peertun::base

template <>
struct fmt::formatter<peertun::base::Secret> : fmt::formatter<std::string_view> {
  auto format(const peertun::base::Secret&, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format("<redacted>", ctx);
  }
};
