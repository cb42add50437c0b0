#include "io/interfaces.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

namespace peertun::io {

std::vector<base::IpAddress> interface_addresses(bool include_loopback) {
  std::vector<base::IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    return out;
  }
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) {
      continue;
    }
    base::IpAddress ip;
    if (i->ifa_addr->sa_family == AF_INET) {
      std::array<std::uint8_t, 4> b;
      std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
      ip = base::IpAddress::v4(b);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      std::array<std::uint8_t, 16> b;
      std::memcpy(b.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
      ip = base::IpAddress::v6(b);
    } else {
      continue;
    }
    if (ip.is_link_local() || ip.is_unspecified()) {
      continue;
    }
    if (ip.is_loopback() && !include_loopback) {
      continue;
    }
    if (std::find(out.begin(), out.end(), ip) == out.end()) {
      out.push_back(ip);
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace peertun::io
