#pragma once
// The host's own addresses, for host candidates.

#include <vector>

#include "base/socket_address.h"

namespace peertun::io {

// Every address of every interface that is up, IPv4 and IPv6, except loopback and
// link-local ones (which a peer elsewhere can never reach) unless `include_loopback`.
std::vector<base::IpAddress> interface_addresses(bool include_loopback = false);

}  // namespace peertun::io
