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

}  // namespace peertun::base

template <>
struct fmt::formatter<peertun::base::Secret> : fmt::formatter<std::string_view> {
  auto format(const peertun::base::Secret&, fmt::format_context& ctx) const {
    return fmt::formatter<std::string_view>::format("<redacted>", ctx);
  }
};
