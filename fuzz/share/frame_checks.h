#pragma once
// What both share fuzz targets check: the input is a byte stream as it arrives on a
// QUIC stream. It is cut into frames twice (all at once, and in small uneven chunks),
// which must agree; every frame goes through decode_header and `decode`; whatever
// decodes must re-encode to the very same bytes (the encoding is canonical) and decode
// back to an equal value. Failures trap.

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "share/proto/codec.h"

namespace peertun::share::proto::fuzz {

inline void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

// The frames a reader cuts from `in`, fed in chunks of the given sizes (cycled), and
// whether it ended in FrameTooLarge.
struct Cut {
  std::vector<wire::Bytes> frames;
  bool failed = false;
};

inline Cut cut(wire::ByteView in, const std::vector<std::size_t>& chunks) {
  Cut out;
  FrameReader reader;
  std::size_t pos = 0;
  std::size_t fed = 0;
  for (std::size_t i = 0; pos < in.size(); ++i) {
    const std::size_t n = std::min(chunks[i % chunks.size()], in.size() - pos);
    reader.feed(in.subspan(pos, n));
    pos += n;
    fed += n;
    for (;;) {
      auto frame = reader.next();
      if (!frame) {
        check(frame.error() == Errc::FrameTooLarge);
        check(reader.next().error() == Errc::FrameTooLarge);  // sticky
        out.failed = true;
        return out;
      }
      if (!*frame) {
        break;
      }
      const wire::ByteView f = **frame;
      check(f.size() >= 6 && f.size() <= kMaxFrame);
      out.frames.emplace_back(f.begin(), f.end());
      fed -= 4 + f.size();
    }
    check(reader.buffered() == fed);
  }
  return out;
}

// Checks one frame (without its length prefix) against `decode`.
template <class Decode>
void check_frame(wire::ByteView frame, bool want_answer, Decode decode) {
  const auto header = decode_header(frame);
  const auto message = decode(frame);
  if (!header) {
    check(!message && message.error() == header.error());
    check(header.error() == Errc::Malformed || header.error() == Errc::BadFrame);
    return;
  }
  if (header->answer != want_answer) {
    check(!message && message.error() == Errc::BadFrame);
    return;
  }
  if (!message) {
    const auto e = message.error();
    check(e == Errc::UnknownOp || e == Errc::Malformed || e == Errc::BadName ||
          e == Errc::BadFrame);
    check(errno_for(e) == (e == Errc::UnknownOp ? ENOSYS : EINVAL));
    const bool known = header->op >= 1 && header->op <= 10;
    check((e == Errc::UnknownOp) == !known);
    // What the exporter sends back for it is a well-formed answer with the same header.
    const auto answer =
        encode(error_response(header->id, static_cast<Op>(header->op), errno_for(e)));
    const auto back = decode_header(wire::ByteView(answer).subspan(4));
    check(back && back->answer && back->op == header->op && back->id == header->id);
    return;
  }
  check(message->id == header->id);
  const wire::Bytes again = encode(*message);
  check(again.size() == 4 + frame.size());
  check(wire::load_u32(again.data()) == frame.size());
  check(std::equal(frame.begin(), frame.end(), again.begin() + 4));
  const auto twice = decode(wire::ByteView(again).subspan(4));
  check(twice && *twice == *message);
}

template <class Decode>
void check_stream(wire::ByteView in, bool want_answer, Decode decode) {
  const Cut whole = cut(in, {in.size() + 1});
  const Cut pieces = cut(in, {1, 2, 3, 5, 8, 13, 300, 4096});
  check(whole.frames == pieces.frames && whole.failed == pieces.failed);
  for (const auto& frame : whole.frames) {
    check_frame(frame, want_answer, decode);
  }
  // The decoders also meet bytes that were never framed.
  check_frame(in, want_answer, decode);
}

}  // namespace peertun::share::proto::fuzz
