// Peer A's receive path: arbitrary bytes as they arrive on a share stream, through
// FrameReader, decode_header and decode_request (checks in frame_checks.h).

#include <cstddef>
#include <cstdint>

#include "frame_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace peertun::share::proto;
  fuzz::check_stream(peertun::wire::ByteView(data, size), false,
                     [](peertun::wire::ByteView frame) { return decode_request(frame); });
  return 0;
}
