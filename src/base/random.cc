#include "base/random.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

namespace peertun::base {

void init_crypto() {
  // sodium_init is idempotent and thread-safe; -1 means no entropy source.
  if (sodium_init() < 0) {
    std::fputs("fatal: libsodium could not initialise (no entropy source)\n", stderr);
    std::abort();
  }
}

void random_bytes(std::span<std::uint8_t> out) {
  init_crypto();
  randombytes_buf(out.data(), out.size());
}

std::uint32_t random_uniform(std::uint32_t upper_bound) {
  init_crypto();
  return randombytes_uniform(upper_bound);
}

}  // namespace peertun::base
