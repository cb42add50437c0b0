#include "share/proto/codec.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "unit/share/proto/test_values.h"

namespace peertun::share::proto {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the shared test values

// ---- frames built by hand, field by field (independent of the encoder) ----

struct Frame {
  wire::ByteWriter out;
  Frame(std::uint8_t op, bool answer, RequestId id, std::optional<std::uint32_t> error = {}) {
    out.u8(op);
    out.u8(answer ? 1 : 0);
    out.u32(id);
    if (error) {
      out.u32(*error);
    }
  }
  static Frame request(Op op, RequestId id = 5) {
    return Frame(static_cast<std::uint8_t>(op), false, id);
  }
  static Frame answer(Op op, std::uint32_t error = 0, RequestId id = 5) {
    return Frame(static_cast<std::uint8_t>(op), true, id, error);
  }
  Frame& u8(std::uint8_t v) {
    out.u8(v);
    return *this;
  }
  Frame& u16(std::uint16_t v) {
    out.u16(v);
    return *this;
  }
  Frame& u32(std::uint32_t v) {
    out.u32(v);
    return *this;
  }
  Frame& u64(std::uint64_t v) {
    out.u64(v);
    return *this;
  }
  Frame& text(std::string_view s) {
    out.text(s);
    return *this;
  }
  Frame& name(std::string_view s) {
    out.u16(static_cast<std::uint16_t>(s.size()));
    out.text(s);
    return *this;
  }
  Frame& timestamp(std::int64_t seconds, std::uint32_t ns) {
    out.u64(static_cast<std::uint64_t>(seconds));
    out.u32(ns);
    return *this;
  }
  // An Attr with the given mode and nanoseconds; the other fields valid.
  Frame& attr(std::uint32_t mode = kRegular | 0644, std::uint32_t atime_ns = 0,
              std::uint32_t mtime_ns = 0, std::uint32_t ctime_ns = 0) {
    out.u64(42);
    out.u32(mode);
    out.u32(1);
    out.u32(1000);
    out.u32(1000);
    out.u64(6);
    out.u64(1);
    out.u32(4096);
    timestamp(1, atime_ns);
    timestamp(2, mtime_ns);
    timestamp(-3, ctime_ns);
    return *this;
  }
  [[nodiscard]] wire::Bytes bytes() const { return out.data(); }
};

std::string hex(wire::ByteView v) { return wire::to_hex(v); }

template <class T>
std::optional<proto::Errc> error_of(const base::Result<T>& r) {
  if (r) {
    return std::nullopt;
  }
  EXPECT_EQ(&r.error().category(), &share_proto_category());
  return static_cast<proto::Errc>(r.error().value());
}

// ---- golden examples: the same frames appear in docs/protocol/share.md ----

struct Golden {
  std::string_view hex;
  std::variant<Request, Response> message;
};

std::vector<Golden> goldens() {
  return {
      {"00000019 02 00 00000007 0000000000000001 0009 6e6f7465732e747874",
       Request{7, LookupRequest{kRootNode, "notes.txt"}}},
      {"00000062 02 01 00000007 00000000"
       "000000000000002a 000081a4 00000001 000003e8 000003e8"
       "0000000000000006 0000000000000001 00001000"
       "000000006553f100 075bcd15 000000006553f100 00000000 000000006553f101 000001f4"
       "0000000000000001",
       Response{7, Op::Lookup, 0, EntryReply{sample_attr(42, kRegular | 0644, 6), 1}}},
      {"0000001a 06 00 00000009 0000000000000003 0000000000000000 00001000",
       Request{9, ReadRequest{3, 0, 4096}}},
      {"00000014 06 01 00000009 00000000 00000006 68656c6c6f0a",
       Response{9, Op::Read, 0, ReadReply{bytes_of("hello\n")}}},
      {"0000000a 02 01 00000008 00000002", error_response(8, Op::Lookup, ENOENT)},
  };
}

wire::Bytes from_hex(std::string_view text) {
  auto b = wire::from_hex(text);
  EXPECT_TRUE(b.has_value()) << text;
  return b.value_or(wire::Bytes{});
}

// Decodes a whole encoded frame (with its prefix) as a request or an answer.
std::optional<std::variant<Request, Response>> decode_any(const wire::Bytes& encoded) {
  if (encoded.size() < 4 || wire::load_u32(encoded.data()) != encoded.size() - 4) {
    return std::nullopt;
  }
  const wire::ByteView frame = wire::ByteView(encoded).subspan(4);
  if (auto request = decode_request(frame)) {
    return *request;
  }
  if (auto response = decode_response(frame)) {
    return *response;
  }
  return std::nullopt;
}

wire::Bytes encode_any(const std::variant<Request, Response>& message) {
  return std::visit([](const auto& m) { return encode(m); }, message);
}

TEST(ShareGoldenTest, ExamplesDecodeAndEncodeExactly) {
  for (const auto& g : goldens()) {
    const wire::Bytes bytes = from_hex(g.hex);
    EXPECT_EQ(hex(encode_any(g.message)), hex(bytes)) << g.hex;
    const auto decoded = decode_any(bytes);
    ASSERT_TRUE(decoded.has_value()) << g.hex;
    EXPECT_TRUE(decoded.value() == g.message) << g.hex;
  }
}

std::string read_doc() {
  std::ifstream in(PEERTUN_SHARE_DOC);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The bytes of every ```hex block of the protocol doc, one frame per block.
std::vector<wire::Bytes> doc_frames() {
  std::vector<wire::Bytes> frames;
  std::istringstream in(read_doc());
  std::string line;
  std::optional<std::string> block;
  while (std::getline(in, line)) {
    if (line == "```hex") {
      block.emplace();
    } else if (block && line.starts_with("```")) {
      frames.push_back(from_hex(*block));
      block.reset();
    } else if (block) {
      *block += line + "\n";
    }
  }
  return frames;
}

TEST(ShareGoldenTest, DocShowsEveryGolden) {
  const auto frames = doc_frames();
  for (const auto& g : goldens()) {
    const auto bytes = from_hex(g.hex);
    EXPECT_NE(std::find(frames.begin(), frames.end(), bytes), frames.end())
        << "missing from share.md: " << hex(bytes);
  }
}

TEST(ShareGoldenTest, EveryDocExampleDecodesAndReencodes) {
  const auto frames = doc_frames();
  ASSERT_GE(frames.size(), goldens().size());
  for (const auto& bytes : frames) {
    const auto decoded = decode_any(bytes);
    ASSERT_TRUE(decoded.has_value()) << hex(bytes);
    EXPECT_EQ(hex(encode_any(decoded.value())), hex(bytes));
  }
}

// ---- round trips ----

TEST(ShareCodecTest, SamplesRoundTrip) {
  for (const auto& request : sample_requests()) {
    const auto encoded = encode(request);
    auto back = decode_request(wire::ByteView(encoded).subspan(4));
    ASSERT_TRUE(back) << hex(encoded) << ": " << back.error().message();
    EXPECT_TRUE(*back == request) << hex(encoded);
  }
  for (const auto& response : sample_responses()) {
    const auto encoded = encode(response);
    auto back = decode_response(wire::ByteView(encoded).subspan(4));
    ASSERT_TRUE(back) << hex(encoded) << ": " << back.error().message();
    EXPECT_TRUE(*back == response) << hex(encoded);
  }
}

// The body sizes of docs/protocol/share.md, restated.
struct RequestBodySize {
  std::size_t operator()(const HelloRequest&) const { return 5; }
  std::size_t operator()(const LookupRequest& r) const { return 10 + r.name.size(); }
  std::size_t operator()(const ReadDirRequest&) const { return 20; }
  std::size_t operator()(const OpenRequest&) const { return 9; }
  std::size_t operator()(const ReadRequest&) const { return 20; }
  std::size_t operator()(const ForgetRequest& r) const { return 4 + 16 * r.nodes.size(); }
  std::size_t operator()(const auto&) const { return 8; }  // GetAttr, ReadLink, StatFs, Release
};

struct ReplyBodySize {
  std::size_t operator()(const EmptyReply&) const { return 0; }
  std::size_t operator()(const HelloReply&) const { return 87; }
  std::size_t operator()(const EntryReply&) const { return 88; }
  std::size_t operator()(const AttrReply&) const { return 80; }
  std::size_t operator()(const ReadDirReply& r) const {
    std::size_t n = 5;
    for (const auto& e : r.entries) {
      n += 90 + e.name.size();
    }
    return n;
  }
  std::size_t operator()(const OpenReply&) const { return 88; }
  std::size_t operator()(const ReadReply& r) const { return 4 + r.data.size(); }
  std::size_t operator()(const ReadLinkReply& r) const { return 2 + r.target.size(); }
  std::size_t operator()(const StatFsReply&) const { return 52; }
};

std::size_t expected_body_size(const RequestBody& body) {
  return std::visit(RequestBodySize{}, body);
}
std::size_t expected_body_size(const ReplyBody& body) { return std::visit(ReplyBodySize{}, body); }

RC_GTEST_PROP(ShareCodecProperty, RequestsRoundTripWithExactLength, ()) {
  const Request request = *gen_request();
  const wire::Bytes encoded = encode(request);
  RC_ASSERT(encoded.size() == 4 + 6 + expected_body_size(request.body));
  RC_ASSERT(encoded.capacity() == encoded.size());  // reserved once, exactly
  RC_ASSERT(wire::load_u32(encoded.data()) == encoded.size() - 4);
  RC_ASSERT(encoded[4] == static_cast<std::uint8_t>(op_of(request.body)));
  RC_ASSERT(encoded[5] == 0);
  const wire::ByteView frame = wire::ByteView(encoded).subspan(4);
  auto header = decode_header(frame);
  RC_ASSERT(header.has_value());
  RC_ASSERT(!header->answer);
  RC_ASSERT(header->id == request.id);
  auto back = decode_request(frame);
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == request);
  RC_ASSERT(error_of(decode_response(frame)) == proto::Errc::BadFrame);
}

RC_GTEST_PROP(ShareCodecProperty, ResponsesRoundTripWithExactLength, ()) {
  const Response response = *gen_response();
  const wire::Bytes encoded = encode(response);
  RC_ASSERT(encoded.size() == 4 + 10 + expected_body_size(response.body));
  RC_ASSERT(encoded.capacity() == encoded.size());
  RC_ASSERT(wire::load_u32(encoded.data()) == encoded.size() - 4);
  const wire::ByteView frame = wire::ByteView(encoded).subspan(4);
  auto header = decode_header(frame);
  RC_ASSERT(header.has_value());
  RC_ASSERT(header->answer);
  RC_ASSERT(header->op == static_cast<std::uint8_t>(response.op));
  auto back = decode_response(frame);
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == response);
  RC_ASSERT(error_of(decode_request(frame)) == proto::Errc::BadFrame);
}

// An errno answer has no body, whatever the Response holds.
RC_GTEST_PROP(ShareCodecProperty, ErrorAnswersDropTheirBody, ()) {
  Response response = *gen_response();
  const auto error = *rc::gen::inRange<std::uint32_t>(1, 4096);
  response.error = error;
  const wire::Bytes encoded = encode(response);
  RC_ASSERT(encoded.size() == 14u);
  auto back = decode_response(wire::ByteView(encoded).subspan(4));
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == error_response(response.id, response.op, static_cast<int>(error)));
}

TEST(ShareCodecTest, LargestMessagesFitTheFrameLimit) {
  Response read{1, Op::Read, 0, ReadReply{wire::Bytes(kMaxRead, 0xa5)}};
  auto encoded = encode(read);
  EXPECT_LE(encoded.size() - 4, kMaxFrame);
  EXPECT_EQ(encoded.capacity(), encoded.size());
  auto back = decode_response(wire::ByteView(encoded).subspan(4));
  ASSERT_TRUE(back);
  EXPECT_TRUE(*back == read);

  ReadDirReply dir;
  for (std::uint32_t i = 0; i < 1024; ++i) {
    dir.entries.push_back({std::string(kMaxName, 'n'), i, sample_attr(i, kRegular, 0)});
  }
  const Response listing{2, Op::ReadDir, 0, dir};
  encoded = encode(listing);
  EXPECT_LE(encoded.size() - 4, kMaxFrame);
  back = decode_response(wire::ByteView(encoded).subspan(4));
  ASSERT_TRUE(back);
  EXPECT_TRUE(*back == listing);

  ForgetRequest forget;
  forget.nodes.assign(kMaxForgets, {7, 1});
  const Request batch{3, forget};
  encoded = encode(batch);
  EXPECT_LE(encoded.size() - 4, kMaxFrame);
  auto request = decode_request(wire::ByteView(encoded).subspan(4));
  ASSERT_TRUE(request);
  EXPECT_TRUE(*request == batch);
}

TEST(ShareCodecTest, ReadOffsetsAboveInt64MaxDecode) {
  // The exporter answers EINVAL; the codec must carry the value to it.
  for (std::uint64_t offset : {std::uint64_t{1} << 63, ~std::uint64_t{0}}) {
    const Request request{1, ReadRequest{2, offset, 1}};
    auto back = decode_request(unprefixed(encode(request)));
    ASSERT_TRUE(back);
    EXPECT_EQ(std::get<ReadRequest>(back->body).offset, offset);
  }
}

TEST(ShareCodecTest, ErrorAnswerEchoesAnUnknownOp) {
  // A's answer to an op it does not know carries that op byte back.
  const auto encoded = encode(error_response(9, static_cast<Op>(200), ENOSYS));
  auto header = decode_header(wire::ByteView(encoded).subspan(4));
  ASSERT_TRUE(header);
  EXPECT_EQ(header->op, 200);
  EXPECT_TRUE(header->answer);
  EXPECT_EQ(header->id, 9u);
  EXPECT_EQ(error_of(decode_response(wire::ByteView(encoded).subspan(4))), proto::Errc::UnknownOp);
}

TEST(ShareCodecTest, OverlongNamesKeepTheFramingIntact) {
  // A name beyond the u16 length field is cut, and still refused as a name.
  const Request request{1, LookupRequest{kRootNode, std::string(70000, 'a')}};
  const auto encoded = encode(request);
  EXPECT_EQ(encoded.size(), 4 + 6 + 8 + 2 + 0xffffu);
  EXPECT_EQ(error_of(decode_request(unprefixed(encoded))), proto::Errc::BadName);
}

// ---- rejections ----

TEST(ShareDecodeTest, TruncatedFramesAreMalformedAtEveryLength) {
  for (const auto& request : sample_requests()) {
    const auto frame = unprefixed(encode(request));
    for (std::size_t n = 0; n < frame.size(); ++n) {
      EXPECT_EQ(error_of(decode_request(wire::ByteView(frame).first(n))), proto::Errc::Malformed)
          << hex(frame) << " cut at " << n;
    }
  }
  for (const auto& response : sample_responses()) {
    const auto frame = unprefixed(encode(response));
    for (std::size_t n = 0; n < frame.size(); ++n) {
      EXPECT_EQ(error_of(decode_response(wire::ByteView(frame).first(n))), proto::Errc::Malformed)
          << hex(frame) << " cut at " << n;
    }
  }
}

TEST(ShareDecodeTest, TrailingBytesAreMalformed) {
  for (const auto& request : sample_requests()) {
    auto frame = unprefixed(encode(request));
    frame.push_back(0);
    EXPECT_EQ(error_of(decode_request(frame)), proto::Errc::Malformed) << hex(frame);
  }
  for (const auto& response : sample_responses()) {
    auto frame = unprefixed(encode(response));
    frame.push_back(0);
    EXPECT_EQ(error_of(decode_response(frame)), proto::Errc::Malformed) << hex(frame);
  }
}

struct Bad {
  std::string what;
  wire::Bytes frame;
  proto::Errc errc;
};

std::vector<Bad> bad_requests() {
  using F = Frame;
  return {
      {"hello min 0", F::request(Op::Hello).u16(0).u16(1).u8(0).bytes(), proto::Errc::Malformed},
      {"hello min > max", F::request(Op::Hello).u16(2).u16(1).u8(0).bytes(),
       proto::Errc::Malformed},
      {"hello flag 2", F::request(Op::Hello).u16(1).u16(1).u8(2).bytes(), proto::Errc::Malformed},
      {"hello flag 0xff", F::request(Op::Hello).u16(1).u16(1).u8(0xff).bytes(),
       proto::Errc::Malformed},
      {"readdir max 0", F::request(Op::ReadDir).u64(1).u64(0).u32(0).bytes(),
       proto::Errc::Malformed},
      {"readdir max 1025", F::request(Op::ReadDir).u64(1).u64(0).u32(1025).bytes(),
       proto::Errc::Malformed},
      {"open flag 2", F::request(Op::Open).u64(1).u8(2).bytes(), proto::Errc::Malformed},
      {"read length 0", F::request(Op::Read).u64(1).u64(0).u32(0).bytes(), proto::Errc::Malformed},
      {"read length kMaxRead + 1", F::request(Op::Read).u64(1).u64(0).u32(kMaxRead + 1).bytes(),
       proto::Errc::Malformed},
      {"read length u32 max", F::request(Op::Read).u64(1).u64(0).u32(0xffffffff).bytes(),
       proto::Errc::Malformed},
      {"forget count 0", F::request(Op::Forget).u32(0).bytes(), proto::Errc::Malformed},
      {"forget count kMaxForgets + 1 (bytes present)",
       [] {
         Frame f = F::request(Op::Forget);
         f.u32(kMaxForgets + 1);
         for (std::size_t i = 0; i <= kMaxForgets; ++i) {
           f.u64(i).u64(1);
         }
         return f.bytes();
       }(),
       proto::Errc::Malformed},
      {"forget count says more than present", F::request(Op::Forget).u32(2).u64(1).u64(1).bytes(),
       proto::Errc::Malformed},
      {"forget count says less than present",
       F::request(Op::Forget).u32(1).u64(1).u64(1).u64(2).u64(1).bytes(), proto::Errc::Malformed},
      {"forget huge count, nothing present", F::request(Op::Forget).u32(0xffffffff).bytes(),
       proto::Errc::Malformed},
      {"lookup name longer than the frame",
       F::request(Op::Lookup).u64(1).u16(9).text("abc").bytes(), proto::Errc::Malformed},
  };
}

TEST(ShareDecodeTest, RejectsOutOfRangeRequestFields) {
  for (const auto& bad : bad_requests()) {
    EXPECT_EQ(error_of(decode_request(bad.frame)), bad.errc) << bad.what << ": " << hex(bad.frame);
  }
}

std::vector<Bad> bad_responses() {
  using F = Frame;
  return {
      {"hello version 0", F::answer(Op::Hello).u16(0).u8(0).u32(kMaxRead).attr().bytes(),
       proto::Errc::Malformed},
      {"hello writable 2", F::answer(Op::Hello).u16(1).u8(2).u32(kMaxRead).attr().bytes(),
       proto::Errc::Malformed},
      {"hello max_read 0", F::answer(Op::Hello).u16(1).u8(0).u32(0).attr().bytes(),
       proto::Errc::Malformed},
      {"hello max_read kMaxRead + 1",
       F::answer(Op::Hello).u16(1).u8(0).u32(kMaxRead + 1).attr().bytes(), proto::Errc::Malformed},
      {"attr fifo", F::answer(Op::GetAttr).attr(0010644).bytes(), proto::Errc::Malformed},
      {"attr socket", F::answer(Op::GetAttr).attr(0140644).bytes(), proto::Errc::Malformed},
      {"attr char device", F::answer(Op::GetAttr).attr(0020644).bytes(), proto::Errc::Malformed},
      {"attr block device", F::answer(Op::GetAttr).attr(0060644).bytes(), proto::Errc::Malformed},
      {"attr no type", F::answer(Op::GetAttr).attr(0644).bytes(), proto::Errc::Malformed},
      {"attr bits above the type", F::answer(Op::GetAttr).attr(0x10000 | kRegular).bytes(),
       proto::Errc::Malformed},
      {"atime ns 1e9", F::answer(Op::GetAttr).attr(kRegular, 1'000'000'000).bytes(),
       proto::Errc::Malformed},
      {"mtime ns 1e9", F::answer(Op::GetAttr).attr(kRegular, 0, 1'000'000'000).bytes(),
       proto::Errc::Malformed},
      {"ctime ns u32 max", F::answer(Op::GetAttr).attr(kRegular, 0, 0, 0xffffffff).bytes(),
       proto::Errc::Malformed},
      {"open attr bad", F::answer(Op::Open).u64(3).attr(0).bytes(), proto::Errc::Malformed},
      {"entry attr bad", F::answer(Op::Lookup).attr(kRegular, 0, 2'000'000'000).u64(1).bytes(),
       proto::Errc::Malformed},
      {"readdir count 1025 (entries present)",
       [] {
         Frame f = F::answer(Op::ReadDir);
         f.u32(1025);
         for (int i = 0; i < 1025; ++i) {
           f.name("n").u64(1).attr();
         }
         return f.u8(1).bytes();
       }(),
       proto::Errc::Malformed},
      {"readdir huge count, nothing present", F::answer(Op::ReadDir).u32(1024).u8(1).bytes(),
       proto::Errc::Malformed},
      {"readdir count 2, one entry",
       F::answer(Op::ReadDir).u32(2).name("a").u64(1).attr().u8(1).bytes(), proto::Errc::Malformed},
      {"readdir end 2", F::answer(Op::ReadDir).u32(0).u8(2).bytes(), proto::Errc::Malformed},
      {"readdir no end byte", F::answer(Op::ReadDir).u32(0).bytes(), proto::Errc::Malformed},
      {"readdir entry attr bad",
       F::answer(Op::ReadDir).u32(1).name("a").u64(1).attr(0).u8(1).bytes(),
       proto::Errc::Malformed},
      {"read length kMaxRead + 1 (bytes present)",
       [] {
         Frame f = F::answer(Op::Read);
         f.u32(kMaxRead + 1);
         f.text(std::string(kMaxRead + 1, 'x'));
         return f.bytes();
       }(),
       proto::Errc::Malformed},
      {"read length beyond the frame", F::answer(Op::Read).u32(100).text("short").bytes(),
       proto::Errc::Malformed},
      {"read length short of the frame", F::answer(Op::Read).u32(2).text("abc").bytes(),
       proto::Errc::Malformed},
      {"readlink empty target", F::answer(Op::ReadLink).u16(0).bytes(), proto::Errc::BadName},
      {"readlink 4096-byte target", F::answer(Op::ReadLink).name(std::string(4096, 't')).bytes(),
       proto::Errc::BadName},
      {"readlink NUL in target", F::answer(Op::ReadLink).name(std::string("a\0b", 3)).bytes(),
       proto::Errc::BadName},
      {"readlink target longer than the frame", F::answer(Op::ReadLink).u16(10).text("abc").bytes(),
       proto::Errc::Malformed},
      {"error answer with a body", F::answer(Op::GetAttr, 2).u8(0).bytes(), proto::Errc::Malformed},
      {"error answer with a whole body", F::answer(Op::GetAttr, 2).attr().bytes(),
       proto::Errc::Malformed},
      {"errno 4096", F::answer(Op::Release, 4096).bytes(), proto::Errc::Malformed},
      {"errno u32 max", F::answer(Op::Release, 0xffffffff).bytes(), proto::Errc::Malformed},
      {"release with a body", F::answer(Op::Release).u8(0).bytes(), proto::Errc::Malformed},
  };
}

TEST(ShareDecodeTest, RejectsOutOfRangeAnswerFields) {
  for (const auto& bad : bad_responses()) {
    EXPECT_EQ(error_of(decode_response(bad.frame)), bad.errc)
        << bad.what << ": "
        << hex(wire::ByteView(bad.frame).first(std::min<std::size_t>(bad.frame.size(), 64)));
  }
}

TEST(ShareDecodeTest, BoundsAreInclusive) {
  using F = Frame;
  EXPECT_TRUE(decode_request(F::request(Op::ReadDir).u64(1).u64(0).u32(1).bytes()));
  EXPECT_TRUE(decode_request(F::request(Op::ReadDir).u64(1).u64(0).u32(1024).bytes()));
  EXPECT_TRUE(decode_request(F::request(Op::Read).u64(1).u64(0).u32(1).bytes()));
  EXPECT_TRUE(decode_request(F::request(Op::Read).u64(1).u64(0).u32(kMaxRead).bytes()));
  EXPECT_TRUE(decode_request(F::request(Op::Hello).u16(1).u16(0xffff).u8(1).bytes()));
  EXPECT_TRUE(decode_request(F::request(Op::Forget).u32(1).u64(1).u64(0).bytes()));
  EXPECT_TRUE(
      decode_request(F::request(Op::Lookup).u64(1).name(std::string(kMaxName, 'x')).bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::GetAttr).attr(kSymlink | 07777, 999'999'999).bytes()));
  EXPECT_TRUE(
      decode_response(F::answer(Op::ReadLink).name(std::string(kMaxLinkTarget, '/')).bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::ReadLink).u16(1).text("/").bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::Read).u32(0).bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::ReadDir).u32(0).u8(0).bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::Hello).u16(1).u8(1).u32(1).attr(kDirectory).bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::Release, 4095).bytes()));
  EXPECT_TRUE(decode_response(F::answer(Op::ReadDir, 1).bytes()));
}

const std::vector<std::string> kBadNames = {
    "",
    ".",
    "..",
    "a/b",
    "/",
    "abc/",
    std::string("a\0b", 3),
    std::string(1, '\0'),
    std::string(kMaxName + 1, 'x'),
    std::string(1000, 'y'),
};

TEST(ShareDecodeTest, RejectsBadNames) {
  for (const auto& name : kBadNames) {
    const auto lookup = Frame::request(Op::Lookup).u64(1).name(name).bytes();
    EXPECT_EQ(error_of(decode_request(lookup)), proto::Errc::BadName) << hex(lookup);
    const auto listing = Frame::answer(Op::ReadDir).u32(1).name(name).u64(1).attr().u8(1).bytes();
    EXPECT_EQ(error_of(decode_response(listing)), proto::Errc::BadName) << hex(listing);
    // The encoder writes what it is given, so hostile-request tests can send it.
    const auto encoded = encode(Request{1, LookupRequest{kRootNode, name}});
    EXPECT_EQ(error_of(decode_request(unprefixed(encoded))), proto::Errc::BadName);
  }
  for (const std::string name : {"...", ".a", "a.", " ", "\xff\xfe", "a\\b"}) {
    EXPECT_TRUE(decode_request(Frame::request(Op::Lookup).u64(1).name(name).bytes())) << name;
  }
}

TEST(ShareDecodeTest, HeaderErrors) {
  for (std::size_t n = 0; n < 6; ++n) {
    const wire::Bytes shorty(n, 0x01);
    EXPECT_EQ(error_of(decode_header(shorty)), proto::Errc::Malformed) << n;
  }
  for (const std::uint8_t flags :
       {std::uint8_t{0x02}, std::uint8_t{0x03}, std::uint8_t{0x80}, std::uint8_t{0xff}}) {
    const auto frame = Frame(static_cast<std::uint8_t>(Op::GetAttr), false, 1).u64(1).bytes();
    auto bad = frame;
    bad[1] = flags;
    EXPECT_EQ(error_of(decode_header(bad)), proto::Errc::BadFrame);
    EXPECT_EQ(error_of(decode_request(bad)), proto::Errc::BadFrame);
    EXPECT_EQ(error_of(decode_response(bad)), proto::Errc::BadFrame);
  }
  const auto header = decode_header(Frame(0xfe, true, 0xdeadbeef).bytes());
  ASSERT_TRUE(header);
  EXPECT_EQ(header->op, 0xfe);
  EXPECT_TRUE(header->answer);
  EXPECT_EQ(header->id, 0xdeadbeefu);
}

TEST(ShareDecodeTest, WrongDirectionIsABadFrame) {
  const auto answer = Frame::answer(Op::GetAttr).attr().bytes();
  EXPECT_EQ(error_of(decode_request(answer)), proto::Errc::BadFrame);
  const auto request = Frame::request(Op::GetAttr).u64(1).bytes();
  EXPECT_EQ(error_of(decode_response(request)), proto::Errc::BadFrame);
  // Forget is never answered.
  EXPECT_EQ(error_of(decode_response(Frame::answer(Op::Forget).bytes())), proto::Errc::BadFrame);
  EXPECT_EQ(error_of(decode_response(Frame::answer(Op::Forget, 22).bytes())),
            proto::Errc::BadFrame);
}

TEST(ShareDecodeTest, UnknownOps) {
  for (int op : {0, 11, 31, 32, 40, 63, 64, 200, 255}) {
    const auto code = static_cast<std::uint8_t>(op);
    EXPECT_EQ(error_of(decode_request(Frame(code, false, 1).u64(1).bytes())),
              proto::Errc::UnknownOp)
        << op;
    EXPECT_EQ(error_of(decode_response(Frame(code, true, 1, 0).bytes())), proto::Errc::UnknownOp)
        << op;
    // Even an empty request of an unknown op has a header to answer.
    EXPECT_TRUE(decode_header(Frame(code, false, 1).bytes())) << op;
  }
}

TEST(ShareErrcTest, CategoryMessagesAndErrnos) {
  EXPECT_STREQ(share_proto_category().name(), "share.proto");
  EXPECT_EQ(base::ErrorCode(proto::Errc::FrameTooLarge).message(), "share frame too large");
  EXPECT_EQ(base::ErrorCode(proto::Errc::BadName).message(), "bad file name in share message");
  EXPECT_EQ(errno_for(proto::Errc::UnknownOp), ENOSYS);
  for (auto e : {proto::Errc::FrameTooLarge, proto::Errc::BadFrame, proto::Errc::Malformed,
                 proto::Errc::BadName}) {
    EXPECT_EQ(errno_for(e), EINVAL);
  }
}

// Every row "| ENAME | number | ..." of the doc's errno table is this platform's number.
TEST(ShareErrcTest, DocErrnoTableMatchesTheHeaders) {
  const std::vector<std::pair<std::string, int>> known = {
      {"ENOENT", ENOENT}, {"EIO", EIO},
      {"EBADF", EBADF},   {"ENOMEM", ENOMEM},
      {"EACCES", EACCES}, {"ENOTDIR", ENOTDIR},
      {"EISDIR", EISDIR}, {"EINVAL", EINVAL},
      {"EMFILE", EMFILE}, {"EROFS", EROFS},
      {"ENOSYS", ENOSYS}, {"ELOOP", ELOOP},
      {"EPROTO", EPROTO}, {"EPROTONOSUPPORT", EPROTONOSUPPORT},
      {"ESTALE", ESTALE},
  };
  std::istringstream in(read_doc());
  std::string line;
  std::size_t rows = 0;
  while (std::getline(in, line)) {
    if (!line.starts_with("| E")) {
      continue;
    }
    std::istringstream cells(line);
    std::string bar, name, number;
    cells >> bar >> name >> bar >> number;
    const auto it =
        std::find_if(known.begin(), known.end(), [&](const auto& k) { return k.first == name; });
    ASSERT_NE(it, known.end()) << "unknown errno in share.md: " << line;
    EXPECT_EQ(std::to_string(it->second), number) << line;
    ++rows;
  }
  EXPECT_EQ(rows, known.size());
}

}  // namespace
}  // namespace peertun::share::proto
