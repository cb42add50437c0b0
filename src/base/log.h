#pragma once
// Logging facade: one spdlog logger per module, writing to stderr.
// Lines are an event name plus key=value fields: "punch.succeeded peer=B rtt_ms=23".
// Levels: error = someone must act; warn = degraded (and counted); info = once per
// session lifecycle step; debug = per control message; trace = per packet.
// Never pass tokens, join-code secrets, keys or TURN passwords: wrap them in Secret.

#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <string_view>

namespace peertun::base {

enum class LogLevel { Trace, Debug, Info, Warn, Error, Off };

// Sets the level for every module logger, present and future. Thread-safe.
void set_log_level(LogLevel level);

// Parses "trace", "debug", "info", "warn", "error", "off"; nullopt otherwise.
std::optional<LogLevel> parse_log_level(std::string_view text);

// The logger for a module (created on first use; the pointer stays valid for the
// process lifetime).
spdlog::logger& logger(std::string_view module);

}  // namespace peertun::base
