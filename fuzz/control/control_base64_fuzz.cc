// Strict base64 (wire/base64.h, used by the control plane's Signal): any input must
// decode without crashing, and whatever decodes must re-encode to exactly the input,
// since strict decoding admits one encoding per byte string. Also checks that the size
// limit is honoured.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "wire/base64.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto decoded = peertun::wire::base64_decode(input);
  if (decoded) {
    if (peertun::wire::base64_encode(*decoded) != input) {
      std::abort();
    }
    if (decoded->size() > 0) {
      const auto limited = peertun::wire::base64_decode(input, decoded->size() - 1);
      if (limited) {
        std::abort();
      }
    }
  }
  // The input as bytes must round-trip too.
  const auto text = peertun::wire::base64_encode(peertun::wire::ByteView(data, size));
  if (text.size() != peertun::wire::base64_encoded_size(size)) {
    std::abort();
  }
  const auto back = peertun::wire::base64_decode(text, size);
  if (!back || !std::equal(back->begin(), back->end(), data, data + size) || back->size() != size) {
    std::abort();
  }
  return 0;
}
