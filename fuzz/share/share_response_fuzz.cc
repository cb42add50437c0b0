// Peer B's receive path: arbitrary bytes as they arrive on a share stream, through
// FrameReader, decode_header and decode_response (checks in frame_checks.h).

#include <cstddef>
#include <cstdint>

#include "frame_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace peertun::share::proto;
  fuzz::check_stream(peertun::wire::ByteView(data, size), true,
                     [](peertun::wire::ByteView frame) { return decode_response(frame); });
  return 0;
}
