#pragma once
// The Asio vocabulary every I/O module uses: one io_context per process, coroutines
// with errors as values (`co_await op(..., use_nothrow)` yields a tuple whose first
// element is the error_code).

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/socket_address.h"

namespace peertun::io {

namespace asio = boost::asio;
template <class T = void>
using Task = asio::awaitable<T>;
using Executor = asio::any_io_executor;

inline constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

base::IpAddress from_asio(const asio::ip::address& a);
asio::ip::address to_asio(const base::IpAddress& a);
base::SocketAddress from_asio(const asio::ip::udp::endpoint& e);
base::SocketAddress from_asio(const asio::ip::tcp::endpoint& e);
asio::ip::udp::endpoint to_udp(const base::SocketAddress& a);
asio::ip::tcp::endpoint to_tcp(const base::SocketAddress& a);

// Completion handler for co_spawn of long-lived tasks: an exception escaping a
// coroutine is a bug, so it is logged (module "io") and counted, never rethrown.
void log_task_exception(std::exception_ptr e, const char* task_name);
std::uint64_t escaped_exception_count();

// Raises this process's soft limit on open files to the hard limit: the relay holds a
// socket per session, and a sharing peer a descriptor per file its peer keeps open.
void raise_open_file_limit();

// Sleeps on a timer; returns false when cancelled.
Task<bool> sleep_for(std::chrono::steady_clock::duration d);

}  // namespace peertun::io
