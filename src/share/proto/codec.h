#pragma once
// The folder-share protocol's wire encoding (docs/protocol/share.md). Sans-I/O: bytes in,
// values out; never throws, never reads past its input, allocates at most what the
// frame's own length allows.
//
// Every message is one frame, big-endian:
//   u32 length (of what follows, 6..kMaxFrame) | u8 op | u8 flags | u32 request id |
//   [answers only: u32 errno] | body
// flags bit 0 = answer; other bits are zero. Frames of both directions may be pipelined
// on any QUIC stream; answers may come in any order and are matched by request id.
//
// Error handling for a receiver of untrusted frames:
//   - FrameReader::next() fails (FrameTooLarge, BadFrame): the stream is unusable; reset it.
//   - decode_request() fails but decode_header() succeeded: answer that request id with
//     errno_for(error) (ENOSYS for UnknownOp, EINVAL otherwise) and go on.

#include <cstdint>
#include <optional>
#include <type_traits>

#include "base/error.h"
#include "share/proto/messages.h"
#include "wire/bytes.h"

namespace peertun::share::proto {

enum class Errc {
  FrameTooLarge = 1,  // a length prefix above kMaxFrame (or below the header's size)
  BadFrame,           // header flags with unknown bits, or a request where an answer belongs
  UnknownOp,          // an op code this version does not know
  Malformed,          // the body is truncated, has trailing bytes, or a field is out of range
  BadName,            // a name that is not one path component, or a bad link target
};
[[nodiscard]] const boost::system::error_category& share_proto_category() noexcept;
[[nodiscard]] inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), share_proto_category()};
}
// The errno an exporter answers a request with that failed to decode as `error`.
[[nodiscard]] int errno_for(const boost::system::error_code& error);

// Whole frames, including the length prefix.
[[nodiscard]] wire::Bytes encode(const Request& request);
[[nodiscard]] wire::Bytes encode(const Response& response);

// The fixed part of a frame (without the length prefix).
struct FrameHeader {
  std::uint8_t op = 0;  // raw: may be an op this version does not know
  bool answer = false;
  RequestId id = 0;
};
// `frame` is one frame without its length prefix (as FrameReader::next returns it).
// Errors: Malformed (shorter than the header), BadFrame.
[[nodiscard]] base::Result<FrameHeader> decode_header(wire::ByteView frame);
// Errors: those of decode_header, UnknownOp, Malformed, BadName; BadFrame for an answer.
[[nodiscard]] base::Result<Request> decode_request(wire::ByteView frame);
// Errors: those of decode_header, UnknownOp, Malformed, BadName; BadFrame for a request
// or a Forget answer.
[[nodiscard]] base::Result<Response> decode_response(wire::ByteView frame);

// Cuts a byte stream into frames. Feed whatever arrived; take frames until next()
// returns an empty optional. Memory is bounded by one frame (kMaxFrame + 4 bytes) plus
// what was fed and not yet taken.
class FrameReader {
 public:
  void feed(wire::ByteView data);
  // The next complete frame without its length prefix (a view valid until the next
  // feed() or next()), nullopt while incomplete. Errors: FrameTooLarge; after an error
  // every call returns it again.
  [[nodiscard]] base::Result<std::optional<wire::ByteView>> next();
  // Bytes fed and not yet returned as frames.
  [[nodiscard]] std::size_t buffered() const { return buffer_.size() - consumed_; }

 private:
  wire::Bytes buffer_;
  std::size_t consumed_ = 0;
  boost::system::error_code error_;
};

}  // namespace peertun::share::proto

template <>
struct boost::system::is_error_code_enum<peertun::share::proto::Errc> : std::true_type {};
