#pragma once
// Human durations for flags and config: "500ms", "3s", "20s", "10m", "1h". A bare
// number is refused (the unit is never guessed).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace peertun::base {

using Duration = std::chrono::milliseconds;

// nullopt for a missing or unknown unit, a negative or non-numeric value, or a value
// over ten years (an obvious typo that would overflow arithmetic later).
[[nodiscard]] std::optional<Duration> parse_duration(std::string_view text);

// The shortest exact form: 1500ms -> "1500ms", 3000ms -> "3s", 600000ms -> "10m".
[[nodiscard]] std::string format_duration(Duration d);

}  // namespace peertun::base
