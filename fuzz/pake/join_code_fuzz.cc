// parse_join_code on arbitrary text: never crashes, and whatever it accepts is canonical
// (formatting and parsing again gives the same code).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "pake/join_code.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace peertun::pake;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto code = parse_join_code(text);
  if (code) {
    const std::string formatted = format_join_code(*code);
    auto again = parse_join_code(formatted);
    if (!again || !(*again == *code) || formatted.size() != 21) {
      __builtin_trap();
    }
  }
  auto np = normalize_nameplate(text);
  if (np && (np->size() != 4 || normalize_nameplate(*np).value() != *np)) {
    __builtin_trap();
  }
  return 0;
}
