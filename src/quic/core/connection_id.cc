#include "quic/core/connection_id.h"

#include <algorithm>

#include "base/random.h"

namespace peertun::quic {

void make_stun_safe(std::span<std::uint8_t> cid) {
  if (cid.size() >= 7 &&
      std::equal(kStunMagicCookie.begin(), kStunMagicCookie.end(), cid.begin() + 3)) {
    // Flipping one bit keeps the ID as unpredictable as before, minus the one value.
    cid[3] ^= 0x80;
  }
}

void generate_connection_id(std::span<std::uint8_t> out) {
  base::random_bytes(out);
  make_stun_safe(out);
}

bool looks_like_stun(std::span<const std::uint8_t> datagram) {
  return datagram.size() >= 8 && datagram[0] < 4 &&
         std::equal(kStunMagicCookie.begin(), kStunMagicCookie.end(), datagram.begin() + 4);
}

}  // namespace peertun::quic
