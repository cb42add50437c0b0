// The client's parsers of untrusted text: peer_info (from the peer, after the PAKE)
// and relay targets (from flags, env and config). Accepted values must round-trip.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "client/peer_info.h"
#include "client/relay_target.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace peertun::client;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto info = decode_peer_info(text)) {
    auto again = decode_peer_info(encode_peer_info(*info));
    if (!again || !(*again == *info)) {
      std::abort();
    }
    (void)best_address(*info);
  }
  if (auto target = parse_relay_target(text)) {
    auto again = parse_relay_target(target->display());
    if (!again || again->host != target->host || again->port != target->port) {
      std::abort();
    }
    auto by_url = parse_relay_target(target->url());
    if (!by_url || by_url->host != target->host || by_url->port != target->port ||
        by_url->tls != target->tls) {
      std::abort();
    }
  }
  return 0;
}
