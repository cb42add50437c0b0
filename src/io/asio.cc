#include "io/asio.h"

#include <sys/resource.h>

#include <atomic>
#include <cstring>

#include "base/log.h"

namespace peertun::io {
namespace {
std::atomic<std::uint64_t> g_escaped{0};
}

base::IpAddress from_asio(const asio::ip::address& a) {
  if (a.is_v4()) {
    return base::IpAddress::v4(a.to_v4().to_bytes());
  }
  return base::IpAddress::v6(a.to_v6().to_bytes()).unmapped();
}

asio::ip::address to_asio(const base::IpAddress& a) {
  if (a.is_v4()) {
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), a.bytes().data(), 4);
    return asio::ip::address_v4(b);
  }
  asio::ip::address_v6::bytes_type b;
  std::memcpy(b.data(), a.bytes().data(), 16);
  return asio::ip::address_v6(b);
}

base::SocketAddress from_asio(const asio::ip::udp::endpoint& e) {
  return {from_asio(e.address()), e.port()};
}
base::SocketAddress from_asio(const asio::ip::tcp::endpoint& e) {
  return {from_asio(e.address()), e.port()};
}
asio::ip::udp::endpoint to_udp(const base::SocketAddress& a) { return {to_asio(a.ip()), a.port()}; }
asio::ip::tcp::endpoint to_tcp(const base::SocketAddress& a) { return {to_asio(a.ip()), a.port()}; }

void log_task_exception(std::exception_ptr e, const char* task_name) {
  if (!e) {
    return;
  }
  ++g_escaped;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    base::logger("io").error("task.exception task={} what={}", task_name, ex.what());
  } catch (...) {
    base::logger("io").error("task.exception task={} what=unknown", task_name);
  }
}

std::uint64_t escaped_exception_count() { return g_escaped.load(); }

Task<bool> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor, d);
  auto [ec] = co_await timer.async_wait(use_nothrow);
  co_return !ec;
}

void raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);  // best effort: the default limit still works
  }
}

}  // namespace peertun::io
