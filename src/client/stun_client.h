#pragma once
// One STUN Binding transaction from a given socket (the one that will later carry the
// data, so the mapping it learns is the one peers must use).
//
// Retransmission follows RFC 8489 §6.2.1 with a shorter budget: the first retry after
// kInitialRto, doubling, until the caller's deadline. The socket must not be read
// by anyone else meanwhile; datagrams that are not our response are dropped.

#include <chrono>

#include "base/error.h"
#include "io/udp_socket.h"
#include "stun/binding.h"

namespace peertun::client {

inline constexpr auto kInitialRto = std::chrono::milliseconds(250);

enum class StunErrc { Timeout = 1, ErrorResponse };
const boost::system::error_category& stun_client_category();
inline boost::system::error_code make_error_code(StunErrc e) {
  return {static_cast<int>(e), stun_client_category()};
}

// Errors: Timeout (no answer before `timeout`), ErrorResponse (the server refused),
// socket errors, operation_aborted.
io::Task<base::Result<stun::BindingResponse>> stun_binding(io::UdpSocket& socket,
                                                           base::SocketAddress server,
                                                           stun::BindingRequestOptions options,
                                                           std::chrono::milliseconds timeout);

}  // namespace peertun::client

template <>
struct boost::system::is_error_code_enum<peertun::client::StunErrc> : std::true_type {};
