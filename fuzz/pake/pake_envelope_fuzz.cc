// Fuzzes everything in pake that reads peer- or user-controlled bytes: the envelope
// decoder, the Handshake state machine in both roles (fed raw input and mutated genuine
// peer messages in any order), the SealedChannel after completion, and parse_join_code
// on the input as text.
//
// Input layout after the first byte: a sequence of ops, each `op (1) | len (1) | len bytes`.
//   op & 3 == 0: feed the bytes to A          op & 3 == 1: feed the bytes to B
//   op & 3 == 2: deliver B's next genuine message to A, XORed with the bytes
//   op & 3 == 3: deliver A's next genuine message to B, XORed with the bytes
// Once a side completes, its channel takes over: raw bytes go to open(), and genuine
// deliveries carry a sealed message from the other side.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string_view>

#include "base/random.h"
#include "pake/envelope.h"
#include "pake/handshake.h"
#include "pake/join_code.h"

namespace {

using namespace peertun;
using namespace peertun::pake;

struct Side {
  std::optional<Handshake> hs;
  std::optional<SealedChannel> channel;
  std::deque<wire::Bytes> outbox;  // genuine messages for the other side
};

void feed(Side& self, wire::ByteView payload) {
  if (self.channel) {
    (void)self.channel->open(payload);
    return;
  }
  auto r = self.hs->on_message(payload);
  if (r) {
    for (auto& m : *r) {
      self.outbox.push_back(std::move(m));
    }
  }
  if (self.hs->complete()) {
    self.channel.emplace(self.hs->take_channel());
    static constexpr std::uint8_t kHello[] = {'h', 'i'};
    self.outbox.push_back(self.channel->seal(kHello));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  base::init_crypto();
  const wire::ByteView input(data, size);
  (void)parse_join_code(std::string_view(reinterpret_cast<const char*>(data), size));
  (void)normalize_nameplate(std::string_view(reinterpret_cast<const char*>(data), size));
  (void)decode_envelope(input);
  if (size == 0) {
    return 0;
  }

  // The first byte picks the secret B uses, so both the matching and the wrong-code
  // paths are reachable.
  const JoinCode code_a{"2A91", base::Secret("7XKPQ419")};
  const JoinCode code_b{"2A91", base::Secret(data[0] & 1 ? "7XKPQ41A" : "7XKPQ419")};
  static constexpr std::uint8_t kSid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  auto ha = Handshake::start(Role::A, code_a, kSid);
  auto hb = Handshake::start(Role::B, code_b, kSid);
  if (!ha || !hb) {
    __builtin_trap();  // valid fixed inputs must start
  }
  Side a;
  Side b;
  a.outbox.push_back(ha->first_message());
  b.outbox.push_back(hb->first_message());
  a.hs.emplace(std::move(*ha));
  b.hs.emplace(std::move(*hb));

  std::size_t pos = 1;
  while (pos + 2 <= size) {
    const std::uint8_t op = data[pos];
    const std::size_t len = std::min<std::size_t>(data[pos + 1], size - pos - 2);
    const wire::ByteView bytes = input.subspan(pos + 2, len);
    pos += 2 + len;
    switch (op & 3) {
      case 0:
        feed(a, bytes);
        break;
      case 1:
        feed(b, bytes);
        break;
      case 2:
      case 3: {
        Side& from = (op & 3) == 2 ? b : a;
        Side& to = (op & 3) == 2 ? a : b;
        if (from.outbox.empty()) {
          break;
        }
        wire::Bytes m = std::move(from.outbox.front());
        from.outbox.pop_front();
        for (std::size_t i = 0; i < bytes.size() && i < m.size(); ++i) {
          m[i] ^= bytes[i];
        }
        feed(to, m);
        break;
      }
    }
  }
  // Keys agree whenever both completed.
  if (a.hs->complete() && b.hs->complete() && a.hs->session_secret() != b.hs->session_secret()) {
    __builtin_trap();
  }
  return 0;
}
