#pragma once
// Cryptographically secure randomness (libsodium's randombytes), for nonces,
// nameplates, join-code secrets and transaction ids.

#include <cstddef>
#include <cstdint>
#include <span>

namespace peertun::base {

// Initialises libsodium once; safe to call from any thread, any number of times.
// Aborts the process if the system has no usable entropy source.
void init_crypto();

void random_bytes(std::span<std::uint8_t> out);

// Uniform in [0, upper_bound); upper_bound > 0.
std::uint32_t random_uniform(std::uint32_t upper_bound);

}  // namespace peertun::base
