#pragma once
// Which side of a p2p session we are. The relay assigns roles: A shares the folder and
// minted the join code (CPace initiator), B joins with the code (CPace responder).

#include <cstdint>

namespace peertun::pake {

enum class Role : std::uint8_t { A /*initiator: shares the folder*/, B /*responder: joins*/ };

[[nodiscard]] constexpr Role peer_of(Role r) { return r == Role::A ? Role::B : Role::A; }

}  // namespace peertun::pake
