// Feeds arbitrary bytes to both control-message decoders. Neither may crash or throw;
// whatever decodes must re-encode to JSON that decodes to the same message and
// re-encodes to the same text (the encoding is canonical).
// Run with -dict=fuzz/control/control_message.dict to reach the typed messages sooner.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "control/codec.h"

namespace {

void require(bool ok) {
  if (!ok) {
    std::abort();
  }
}

template <class Decode>
void check(std::string_view input, Decode decode) {
  std::string detail;
  auto first = decode(input, detail);
  if (!first) {
    require(!detail.empty());
    return;
  }
  const std::string json = peertun::control::encode(*first);
  require(json.size() <= peertun::control::kMaxMessageSize);
  auto second = decode(json, detail);
  require(second.has_value());
  require(*second == *first);
  require(peertun::control::encode(*second) == json);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check(input, [](std::string_view s, std::string& d) {
    return peertun::control::decode_client_message(s, d);
  });
  check(input, [](std::string_view s, std::string& d) {
    return peertun::control::decode_relay_message(s, d);
  });
  return 0;
}
