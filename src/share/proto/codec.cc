#include "share/proto/codec.h"

#include <algorithm>
#include <cerrno>
#include <string>
#include <string_view>
#include <utility>

// Body layouts are specified byte by byte in docs/protocol/share.md; the size functions
// below restate them, so encode() reserves exactly once and never reallocates (a Read
// answer carries up to 1 MiB).

namespace peertun::share::proto {

namespace {
const char* message(int ev) noexcept {
  switch (static_cast<Errc>(ev)) {
    case Errc::FrameTooLarge:
      return "share frame too large";
    case Errc::BadFrame:
      return "malformed share frame header";
    case Errc::UnknownOp:
      return "unknown share operation";
    case Errc::Malformed:
      return "malformed share message";
    case Errc::BadName:
      return "bad file name in share message";
  }
  return "unknown share protocol error";
}
constexpr base::SimpleErrorCategory kCategory("share.proto", message);

using wire::ByteView;
using wire::ByteWriter;

constexpr std::size_t kLengthSize = 4;
// u8 op | u8 flags | u32 request id.
constexpr std::size_t kHeaderSize = 6;
// Answers carry a u32 errno after the header.
constexpr std::size_t kErrnoSize = 4;
constexpr std::uint8_t kFlagAnswer = 0x01;
// The one-bit flag bytes inside bodies (want_write, writable, write, end).
constexpr std::uint8_t kFlagSet = 0x01;

constexpr std::size_t kTimestampSize = 8 + 4;
constexpr std::size_t kAttrSize = 8 + 4 * 4 + 8 + 8 + 4 + 3 * kTimestampSize;
static_assert(kAttrSize == 80);
constexpr std::size_t kForgetEntrySize = 8 + 8;
// A ReadDir entry with a one-byte name: the smallest an entry can be.
constexpr std::size_t kMinDirEntrySize = 2 + 1 + 8 + kAttrSize;

// ReadDirRequest::max_entries is 1..1024, and an answer never holds more.
constexpr std::uint32_t kMaxDirEntries = 1024;
// Linux MAX_ERRNO: larger values are not error numbers.
constexpr std::uint32_t kMaxErrno = 4095;
constexpr std::uint32_t kNanosecondsPerSecond = 1'000'000'000;
// u16-prefixed strings: longer ones are cut here by the encoder (they are invalid
// anyway, and the decoder still rejects the cut value), so the framing stays intact.
constexpr std::size_t kMaxString16 = 0xffff;

// st_mode as Linux spells it; the wire uses these values whatever the host.
constexpr std::uint32_t kTypeMask = 0170000;
constexpr std::uint32_t kTypeRegular = 0100000;
constexpr std::uint32_t kTypeDirectory = 0040000;
constexpr std::uint32_t kTypeSymlink = 0120000;
constexpr std::uint32_t kPermissionBits = 07777;

bool is_known_op(std::uint8_t op) {
  return op >= static_cast<std::uint8_t>(Op::Hello) && op <= static_cast<std::uint8_t>(Op::Forget);
}

std::uint8_t flag(bool set) { return set ? kFlagSet : 0; }

std::size_t string16_length(std::string_view s) { return std::min(s.size(), kMaxString16); }

// ---- sizes of bodies (the tables in docs/protocol/share.md) ----

struct RequestSize {
  std::size_t operator()(const HelloRequest&) const { return 2 + 2 + 1; }
  std::size_t operator()(const LookupRequest& r) const { return 8 + 2 + string16_length(r.name); }
  std::size_t operator()(const GetAttrRequest&) const { return 8; }
  std::size_t operator()(const ReadDirRequest&) const { return 8 + 8 + 4; }
  std::size_t operator()(const OpenRequest&) const { return 8 + 1; }
  std::size_t operator()(const ReadRequest&) const { return 8 + 8 + 4; }
  std::size_t operator()(const ReadLinkRequest&) const { return 8; }
  std::size_t operator()(const StatFsRequest&) const { return 8; }
  std::size_t operator()(const ReleaseRequest&) const { return 8; }
  std::size_t operator()(const ForgetRequest& r) const {
    return 4 + r.nodes.size() * kForgetEntrySize;
  }
};

struct ReplySize {
  std::size_t operator()(const EmptyReply&) const { return 0; }
  std::size_t operator()(const HelloReply&) const { return 2 + 1 + 4 + kAttrSize; }
  std::size_t operator()(const EntryReply&) const { return kAttrSize + 8; }
  std::size_t operator()(const AttrReply&) const { return kAttrSize; }
  std::size_t operator()(const ReadDirReply& r) const {
    std::size_t size = 4 + 1;
    for (const DirEntry& e : r.entries) {
      size += 2 + string16_length(e.name) + 8 + kAttrSize;
    }
    return size;
  }
  std::size_t operator()(const OpenReply&) const { return 8 + kAttrSize; }
  std::size_t operator()(const ReadReply& r) const { return 4 + r.data.size(); }
  std::size_t operator()(const ReadLinkReply& r) const { return 2 + string16_length(r.target); }
  std::size_t operator()(const StatFsReply&) const { return 5 * 8 + 3 * 4; }
};

// ---- writing ----

void put_string16(ByteWriter& out, std::string_view s) {
  const std::size_t n = string16_length(s);
  out.u16(static_cast<std::uint16_t>(n));
  out.text(s.substr(0, n));
}

void put_timestamp(ByteWriter& out, const Timestamp& t) {
  out.u64(static_cast<std::uint64_t>(t.seconds));
  out.u32(t.nanoseconds);
}

void put_attr(ByteWriter& out, const Attr& a) {
  out.u64(a.node);
  out.u32(a.mode);
  out.u32(a.nlink);
  out.u32(a.uid);
  out.u32(a.gid);
  out.u64(a.size);
  out.u64(a.blocks);
  out.u32(a.block_size);
  put_timestamp(out, a.atime);
  put_timestamp(out, a.mtime);
  put_timestamp(out, a.ctime);
}

struct RequestWriter {
  ByteWriter& out;
  void operator()(const HelloRequest& r) const {
    out.u16(r.min_version);
    out.u16(r.max_version);
    out.u8(flag(r.want_write));
  }
  void operator()(const LookupRequest& r) const {
    out.u64(r.parent);
    put_string16(out, r.name);
  }
  void operator()(const GetAttrRequest& r) const { out.u64(r.node); }
  void operator()(const ReadDirRequest& r) const {
    out.u64(r.node);
    out.u64(r.cookie);
    out.u32(r.max_entries);
  }
  void operator()(const OpenRequest& r) const {
    out.u64(r.node);
    out.u8(flag(r.write));
  }
  void operator()(const ReadRequest& r) const {
    out.u64(r.handle);
    out.u64(r.offset);
    out.u32(r.length);
  }
  void operator()(const ReadLinkRequest& r) const { out.u64(r.node); }
  void operator()(const StatFsRequest& r) const { out.u64(r.node); }
  void operator()(const ReleaseRequest& r) const { out.u64(r.handle); }
  void operator()(const ForgetRequest& r) const {
    out.u32(static_cast<std::uint32_t>(r.nodes.size()));
    for (const auto& [node, count] : r.nodes) {
      out.u64(node);
      out.u64(count);
    }
  }
};

struct ReplyWriter {
  ByteWriter& out;
  void operator()(const EmptyReply&) const {}
  void operator()(const HelloReply& r) const {
    out.u16(r.version);
    out.u8(flag(r.writable));
    out.u32(r.max_read);
    put_attr(out, r.root);
  }
  void operator()(const EntryReply& r) const {
    put_attr(out, r.attr);
    out.u64(r.generation);
  }
  void operator()(const AttrReply& r) const { put_attr(out, r.attr); }
  void operator()(const ReadDirReply& r) const {
    out.u32(static_cast<std::uint32_t>(r.entries.size()));
    for (const DirEntry& e : r.entries) {
      put_string16(out, e.name);
      out.u64(e.cookie);
      put_attr(out, e.attr);
    }
    out.u8(flag(r.end));
  }
  void operator()(const OpenReply& r) const {
    out.u64(r.handle);
    put_attr(out, r.attr);
  }
  void operator()(const ReadReply& r) const {
    out.u32(static_cast<std::uint32_t>(r.data.size()));
    out.bytes(r.data);
  }
  void operator()(const ReadLinkReply& r) const { put_string16(out, r.target); }
  void operator()(const StatFsReply& r) const {
    out.u64(r.blocks);
    out.u64(r.blocks_free);
    out.u64(r.blocks_available);
    out.u64(r.files);
    out.u64(r.files_free);
    out.u32(r.block_size);
    out.u32(r.fragment_size);
    out.u32(r.name_max);
  }
};

// ---- reading ----

// Reads a body field by field. The first failure sticks and later reads yield zeros and
// empty strings, so a decoder reads every field, then asks finish() once. Nothing is
// allocated beyond what the bytes present justify.
class FieldReader {
 public:
  explicit FieldReader(ByteView body) : in_(body) {}

  std::uint8_t u8() { return take(in_.u8()); }
  std::uint16_t u16() { return take(in_.u16()); }
  std::uint32_t u32() { return take(in_.u32()); }
  std::uint64_t u64() { return take(in_.u64()); }
  std::int64_t i64() { return static_cast<std::int64_t>(u64()); }

  // A u32 in [min, max].
  std::uint32_t u32_in(std::uint32_t min, std::uint32_t max) {
    const std::uint32_t v = u32();
    require(v >= min && v <= max);
    return v;
  }
  // A flag byte: 0 or 1, other bits are reserved and must be zero.
  bool flag() {
    const std::uint8_t v = u8();
    require((v & ~kFlagSet) == 0);
    return v == kFlagSet;
  }
  // `n` bytes, viewed in place; empty after a failure.
  ByteView bytes(std::size_t n) {
    if (error_) {
      return {};
    }
    const auto v = in_.bytes(n);
    if (!v) {
      fail(Errc::Malformed);
      return {};
    }
    return *v;
  }
  std::string string16() {
    const ByteView v = bytes(u16());
    return std::string(v.begin(), v.end());
  }
  std::string name() {
    std::string s = string16();
    require(is_valid_name(s), Errc::BadName);
    return s;
  }

  void require(bool ok, Errc why = Errc::Malformed) {
    if (!ok) {
      fail(why);
    }
  }
  void fail(Errc why) {
    if (!error_) {
      error_ = why;
    }
  }
  [[nodiscard]] bool failed() const { return error_.has_value(); }
  [[nodiscard]] std::size_t remaining() const { return in_.remaining(); }

  // The body's verdict: the first failure, or Malformed for bytes left over.
  [[nodiscard]] std::optional<Errc> finish() {
    require(in_.empty());
    return error_;
  }

 private:
  template <class T>
  T take(std::optional<T> v) {
    if (error_ || !v) {
      fail(Errc::Malformed);
      return T{};
    }
    return *v;
  }

  wire::ByteReader in_;
  std::optional<Errc> error_;
};

Timestamp read_timestamp(FieldReader& in) {
  Timestamp t;
  t.seconds = in.i64();
  t.nanoseconds = in.u32_in(0, kNanosecondsPerSecond - 1);
  return t;
}

bool is_valid_mode(std::uint32_t mode) {
  const std::uint32_t type = mode & kTypeMask;
  return (mode & ~(kTypeMask | kPermissionBits)) == 0 &&
         (type == kTypeRegular || type == kTypeDirectory || type == kTypeSymlink);
}

Attr read_attr(FieldReader& in) {
  Attr a;
  a.node = in.u64();
  a.mode = in.u32();
  in.require(is_valid_mode(a.mode));
  a.nlink = in.u32();
  a.uid = in.u32();
  a.gid = in.u32();
  a.size = in.u64();
  a.blocks = in.u64();
  a.block_size = in.u32();
  a.atime = read_timestamp(in);
  a.mtime = read_timestamp(in);
  a.ctime = read_timestamp(in);
  return a;
}

RequestBody read_request_body(Op op, FieldReader& in) {
  switch (op) {
    case Op::Hello: {
      HelloRequest r;
      r.min_version = in.u16();
      r.max_version = in.u16();
      r.want_write = in.flag();
      in.require(r.min_version >= 1 && r.min_version <= r.max_version);
      return r;
    }
    case Op::Lookup: {
      LookupRequest r;
      r.parent = in.u64();
      r.name = in.name();
      return r;
    }
    case Op::GetAttr:
      return GetAttrRequest{in.u64()};
    case Op::ReadDir: {
      ReadDirRequest r;
      r.node = in.u64();
      r.cookie = in.u64();
      r.max_entries = in.u32_in(1, kMaxDirEntries);
      return r;
    }
    case Op::Open: {
      OpenRequest r;
      r.node = in.u64();
      r.write = in.flag();
      return r;
    }
    case Op::Read: {
      ReadRequest r;
      r.handle = in.u64();
      // Any offset: one above INT64_MAX is the exporter's EINVAL, not a decode error.
      r.offset = in.u64();
      r.length = in.u32_in(1, kMaxRead);
      return r;
    }
    case Op::ReadLink:
      return ReadLinkRequest{in.u64()};
    case Op::StatFs:
      return StatFsRequest{in.u64()};
    case Op::Release:
      return ReleaseRequest{in.u64()};
    case Op::Forget: {
      ForgetRequest r;
      const std::uint32_t count = in.u32_in(1, kMaxForgets);
      // The entries must all be present before resize(): a count alone allocates nothing.
      in.require(in.remaining() == std::size_t{count} * kForgetEntrySize);
      if (in.failed()) {
        return r;
      }
      r.nodes.resize(count);
      for (auto& [node, lookups] : r.nodes) {
        node = in.u64();
        lookups = in.u64();
      }
      return r;
    }
  }
  // Unreachable: the caller checked is_known_op().
  return HelloRequest{};
}

ReplyBody read_reply_body(Op op, FieldReader& in) {
  switch (op) {
    case Op::Hello: {
      HelloReply r;
      r.version = in.u16();
      in.require(r.version >= 1);
      r.writable = in.flag();
      r.max_read = in.u32_in(1, kMaxRead);
      r.root = read_attr(in);
      return r;
    }
    case Op::Lookup: {
      EntryReply r;
      r.attr = read_attr(in);
      r.generation = in.u64();
      return r;
    }
    case Op::GetAttr:
      return AttrReply{read_attr(in)};
    case Op::ReadDir: {
      ReadDirReply r;
      const std::uint32_t count = in.u32_in(0, kMaxDirEntries);
      if (in.failed()) {
        return r;
      }
      // A lying count cannot reserve more than the bytes present can hold.
      r.entries.reserve(std::min<std::size_t>(count, in.remaining() / kMinDirEntrySize));
      for (std::uint32_t i = 0; i < count && !in.failed(); ++i) {
        DirEntry e;
        e.name = in.name();
        e.cookie = in.u64();
        e.attr = read_attr(in);
        r.entries.push_back(std::move(e));
      }
      r.end = in.flag();
      return r;
    }
    case Op::Open: {
      OpenReply r;
      r.handle = in.u64();
      r.attr = read_attr(in);
      return r;
    }
    case Op::Read: {
      const std::uint32_t length = in.u32_in(0, kMaxRead);
      const ByteView data = in.bytes(length);
      return ReadReply{wire::Bytes(data.begin(), data.end())};
    }
    case Op::ReadLink: {
      ReadLinkReply r;
      r.target = in.string16();
      in.require(!r.target.empty() && r.target.size() <= kMaxLinkTarget &&
                     r.target.find('\0') == std::string::npos,
                 Errc::BadName);
      return r;
    }
    case Op::StatFs: {
      StatFsReply r;
      r.blocks = in.u64();
      r.blocks_free = in.u64();
      r.blocks_available = in.u64();
      r.files = in.u64();
      r.files_free = in.u64();
      r.block_size = in.u32();
      r.fragment_size = in.u32();
      r.name_max = in.u32();
      return r;
    }
    case Op::Release:
    case Op::Forget:  // rejected by the caller: Forget is never answered
      return EmptyReply{};
  }
  return EmptyReply{};
}

void put_header(ByteWriter& out, std::size_t frame_size, std::uint8_t op, std::uint8_t flags,
                RequestId id) {
  out.u32(static_cast<std::uint32_t>(frame_size));
  out.u8(op);
  out.u8(flags);
  out.u32(id);
}

}  // namespace

const boost::system::error_category& share_proto_category() noexcept { return kCategory; }

int errno_for(const boost::system::error_code& error) {
  return error == Errc::UnknownOp ? ENOSYS : EINVAL;
}

// Values outside the bounds of messages.h are written as they are (the peer rejects
// them), except that u16-prefixed strings are cut at 65535 bytes: the frame always parses.
wire::Bytes encode(const Request& request) {
  const std::size_t frame = kHeaderSize + std::visit(RequestSize{}, request.body);
  ByteWriter out(kLengthSize + frame);
  put_header(out, frame, static_cast<std::uint8_t>(op_of(request.body)), 0, request.id);
  std::visit(RequestWriter{out}, request.body);
  return out.take();
}

// An answer with an errno has no body, whatever `response.body` holds. The op byte is
// written raw, so an error answer can echo an op this version does not know.
wire::Bytes encode(const Response& response) {
  const bool ok = response.error == 0;
  const std::size_t body = ok ? std::visit(ReplySize{}, response.body) : 0;
  const std::size_t frame = kHeaderSize + kErrnoSize + body;
  ByteWriter out(kLengthSize + frame);
  put_header(out, frame, static_cast<std::uint8_t>(response.op), kFlagAnswer, response.id);
  out.u32(response.error);
  if (ok) {
    std::visit(ReplyWriter{out}, response.body);
  }
  return out.take();
}

base::Result<FrameHeader> decode_header(wire::ByteView frame) {
  if (frame.size() < kHeaderSize) {
    return Errc::Malformed;
  }
  const std::uint8_t flags = frame[1];
  if ((flags & ~kFlagAnswer) != 0) {
    return Errc::BadFrame;
  }
  FrameHeader header;
  header.op = frame[0];
  header.answer = (flags & kFlagAnswer) != 0;
  header.id = wire::load_u32(frame.data() + 2);
  return header;
}

base::Result<Request> decode_request(wire::ByteView frame) {
  auto header = decode_header(frame);
  if (!header) {
    return header.error();
  }
  if (header->answer) {
    return Errc::BadFrame;
  }
  if (!is_known_op(header->op)) {
    return Errc::UnknownOp;
  }
  FieldReader in(frame.subspan(kHeaderSize));
  Request request;
  request.id = header->id;
  request.body = read_request_body(static_cast<Op>(header->op), in);
  if (auto error = in.finish()) {
    return *error;
  }
  return request;
}

base::Result<Response> decode_response(wire::ByteView frame) {
  auto header = decode_header(frame);
  if (!header) {
    return header.error();
  }
  if (!header->answer) {
    return Errc::BadFrame;
  }
  if (!is_known_op(header->op)) {
    return Errc::UnknownOp;
  }
  const auto op = static_cast<Op>(header->op);
  if (op == Op::Forget) {
    return Errc::BadFrame;
  }
  FieldReader in(frame.subspan(kHeaderSize));
  Response response;
  response.id = header->id;
  response.op = op;
  response.error = in.u32_in(0, kMaxErrno);
  // An error answer has an empty body; finish() rejects anything after the errno.
  if (!in.failed() && response.error == 0) {
    response.body = read_reply_body(op, in);
  }
  if (auto error = in.finish()) {
    return *error;
  }
  return response;
}

// ---- FrameReader ----
//
// buffer_[0, consumed_) holds frames already returned; the views next() handed out point
// there, so those bytes stay until the next feed() or next(). feed() drops them before
// appending: the bytes not yet taken move to the front once per feed, not once per frame,
// and a caller that takes every complete frame after each feed moves each byte at most
// once. The buffer is then what was not taken (less than one frame) plus the new data.

void FrameReader::feed(wire::ByteView data) {
  if (error_) {
    return;  // the stream is dead; keep no more of it
  }
  if (consumed_ > 0) {
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  // One huge feed must not pin its capacity for the rest of the stream.
  constexpr std::size_t kKeepCapacity = 2 * (kLengthSize + kMaxFrame);
  if (buffer_.capacity() > kKeepCapacity && buffer_.size() + data.size() <= kKeepCapacity) {
    buffer_.shrink_to_fit();
  }
  buffer_.insert(buffer_.end(), data.begin(), data.end());
}

base::Result<std::optional<wire::ByteView>> FrameReader::next() {
  if (error_) {
    return error_;
  }
  const std::size_t available = buffer_.size() - consumed_;
  if (available < kLengthSize) {
    return std::optional<wire::ByteView>();
  }
  const std::uint32_t length = wire::load_u32(buffer_.data() + consumed_);
  if (length > kMaxFrame || length < kHeaderSize) {
    error_ = Errc::FrameTooLarge;
    wire::Bytes().swap(buffer_);  // nothing after a broken length can be framed again
    consumed_ = 0;
    return error_;
  }
  if (available - kLengthSize < length) {
    return std::optional<wire::ByteView>();
  }
  const wire::ByteView frame(buffer_.data() + consumed_ + kLengthSize, length);
  consumed_ += kLengthSize + length;
  return std::optional<wire::ByteView>(frame);
}

}  // namespace peertun::share::proto
