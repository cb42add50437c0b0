#include "pake/envelope.h"

namespace peertun::pake {

base::Result<Envelope> decode_envelope(wire::ByteView payload) {
  wire::ByteReader r(payload);
  const auto version = r.u8();
  const auto type = r.u8();
  if (!version || !type) {
    return Errc::Truncated;
  }
  if (*version != kEnvelopeVersion) {
    return Errc::BadVersion;
  }
  Envelope env;
  switch (static_cast<MessageType>(*type)) {
    case MessageType::Share:
    case MessageType::Confirm: {
      env.type = static_cast<MessageType>(*type);
      const std::size_t want = env.type == MessageType::Share ? kShareBodySize : kConfirmBodySize;
      if (r.remaining() < want) {
        return Errc::Truncated;
      }
      if (r.remaining() > want) {
        return Errc::TrailingBytes;
      }
      env.body = *r.bytes(want);
      return env;
    }
    case MessageType::Sealed: {
      env.type = MessageType::Sealed;
      const auto counter = r.u64();
      if (!counter || r.remaining() < kAeadTagSize) {
        return Errc::Truncated;
      }
      env.counter = *counter;
      env.body = *r.bytes(r.remaining());
      return env;
    }
  }
  return Errc::UnknownType;
}

wire::Bytes encode_share(std::span<const std::uint8_t, kShareBodySize> y) {
  wire::ByteWriter w(kEnvelopeHeaderSize + kShareBodySize);
  w.u8(kEnvelopeVersion);
  w.u8(static_cast<std::uint8_t>(MessageType::Share));
  w.bytes(y);
  return w.take();
}

wire::Bytes encode_confirm(std::span<const std::uint8_t, kConfirmBodySize> tag) {
  wire::ByteWriter w(kEnvelopeHeaderSize + kConfirmBodySize);
  w.u8(kEnvelopeVersion);
  w.u8(static_cast<std::uint8_t>(MessageType::Confirm));
  w.bytes(tag);
  return w.take();
}

std::array<std::uint8_t, kEnvelopeHeaderSize + kCounterSize> sealed_header(std::uint64_t counter) {
  std::array<std::uint8_t, kEnvelopeHeaderSize + kCounterSize> h{};
  h[0] = kEnvelopeVersion;
  h[1] = static_cast<std::uint8_t>(MessageType::Sealed);
  for (std::size_t i = 0; i < kCounterSize; ++i) {
    h[kEnvelopeHeaderSize + i] = static_cast<std::uint8_t>(counter >> (8 * (kCounterSize - 1 - i)));
  }
  return h;
}

wire::Bytes encode_sealed(std::uint64_t counter, wire::ByteView ciphertext) {
  wire::ByteWriter w(kEnvelopeHeaderSize + kCounterSize + ciphertext.size());
  w.bytes(sealed_header(counter));
  w.bytes(ciphertext);
  return w.take();
}

}  // namespace peertun::pake
