#pragma once
// Client side of a STUN Binding transaction (RFC 8489 §6.1, §6.3.3) with the RFC 5780
// behaviour-discovery extras. Builds the request bytes and reads the answer; sending,
// retransmission and matching the transaction id are the caller's (traversal's) job.
// Sans-I/O, any thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "stun/message.h"

namespace peertun::stun {

struct BindingRequestOptions {
  // RFC 5780 §7.2. CHANGE-REQUEST is only sent when one of the flags is set.
  bool change_ip = false;
  bool change_port = false;
  // RFC 5780 §7.5: ask the server to answer to this port of our address.
  std::optional<std::uint16_t> response_port{};
  // RFC 5780 §7.6: bytes of PADDING (0 = none); the server mirrors it in its answer.
  std::size_t padding = 0;
  // RFC 8489 §14.14; empty = no SOFTWARE attribute.
  std::string software{};
  // RFC 8489 §14.7.
  bool fingerprint = true;
};

[[nodiscard]] Bytes make_binding_request(const TransactionId& txid,
                                         const BindingRequestOptions& options = {});

struct BindingResponse {
  // True for a success response; then mapped_address is set. False for an error
  // response; then error_code/error_reason are set.
  bool success = false;
  // XOR-MAPPED-ADDRESS (RFC 8489 §14.2), or MAPPED-ADDRESS (§14.1) from old servers.
  base::SocketAddress mapped_address;
  std::optional<base::SocketAddress> response_origin;  // RFC 5780 §7.3
  std::optional<base::SocketAddress> other_address;    // RFC 5780 §7.4
  std::uint16_t error_code = 0;
  std::string error_reason;
  // RFC 8489 §14.13, from 420 responses.
  std::vector<std::uint16_t> unknown_attributes;
};

// Reads a Binding success or error response. Does not check the transaction id or
// FINGERPRINT (the caller matches its own transaction and decides on integrity).
// Errors: UnexpectedMessage (not a Binding response), MissingAttribute (success without
// a mapped address, error without ERROR-CODE), and the decoders' errors for malformed
// attributes. An unparseable optional attribute (RESPONSE-ORIGIN, OTHER-ADDRESS) is left
// unset rather than failing the whole response.
[[nodiscard]] base::Result<BindingResponse> parse_binding_response(const MessageView& message);

}  // namespace peertun::stun
