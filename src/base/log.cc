#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <string>

namespace peertun::base {
namespace {

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::Trace:
      return spdlog::level::trace;
    case LogLevel::Debug:
      return spdlog::level::debug;
    case LogLevel::Info:
      return spdlog::level::info;
    case LogLevel::Warn:
      return spdlog::level::warn;
    case LogLevel::Error:
      return spdlog::level::err;
    case LogLevel::Off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// Guards creation of loggers; spdlog's registry is itself thread-safe.
std::mutex g_create_mutex;
spdlog::level::level_enum g_level = spdlog::level::warn;

}  // namespace

void set_log_level(LogLevel level) {
  std::lock_guard lock(g_create_mutex);
  g_level = to_spdlog(level);
  spdlog::set_level(g_level);
}

std::optional<LogLevel> parse_log_level(std::string_view text) {
  if (text == "trace") {
    return LogLevel::Trace;
  }
  if (text == "debug") {
    return LogLevel::Debug;
  }
  if (text == "info") {
    return LogLevel::Info;
  }
  if (text == "warn") {
    return LogLevel::Warn;
  }
  if (text == "error") {
    return LogLevel::Error;
  }
  if (text == "off") {
    return LogLevel::Off;
  }
  return std::nullopt;
}

spdlog::logger& logger(std::string_view module) {
  std::lock_guard lock(g_create_mutex);
  std::string name(module);
  if (auto existing = spdlog::get(name)) {
    return *existing;
  }
  auto created = spdlog::stderr_color_mt(name);
  created->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n %v");
  created->set_level(g_level);
  return *created;
}

}  // namespace peertun::base
