// Human-typed values from flags and config: durations and socket addresses. Anything
// accepted must survive format -> parse unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "base/duration.h"
#include "base/socket_address.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace peertun::base;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto d = parse_duration(text)) {
    if (parse_duration(format_duration(*d)) != d) {
      std::abort();
    }
  }
  if (auto a = SocketAddress::parse(text)) {
    if (SocketAddress::parse(a->to_string()) != a) {
      std::abort();
    }
  }
  if (auto ip = IpAddress::parse(text)) {
    if (IpAddress::parse(ip->to_string()) != ip) {
      std::abort();
    }
    (void)ip->is_private();
    (void)ip->is_loopback();
  }
  (void)split_host_port(text);
  return 0;
}
