#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <vector>

#include "share/proto/codec.h"
#include "unit/share/proto/test_values.h"

namespace peertun::share::proto {
namespace {

using namespace test;  // NOLINT(google-build-using-namespace): the shared test values

// Every sample request and answer, back to back, and each frame without its prefix.
struct Stream {
  wire::Bytes bytes;
  std::vector<wire::Bytes> frames;
  void add(const wire::Bytes& encoded) {
    bytes.insert(bytes.end(), encoded.begin(), encoded.end());
    frames.push_back(unprefixed(encoded));
  }
};

Stream sample_stream() {
  Stream s;
  for (const auto& r : sample_requests()) {
    s.add(encode(r));
  }
  for (const auto& r : sample_responses()) {
    s.add(encode(r));
  }
  return s;
}

// Takes every complete frame, copying each (the views die with the next call).
std::vector<wire::Bytes> drain(FrameReader& reader) {
  std::vector<wire::Bytes> out;
  for (;;) {
    auto frame = reader.next();
    EXPECT_TRUE(frame) << frame.error().message();
    if (!frame || !*frame) {
      return out;
    }
    const wire::ByteView f = frame->value();
    out.emplace_back(f.begin(), f.end());
  }
}

wire::Bytes prefix(std::uint32_t length) {
  wire::ByteWriter w;
  w.u32(length);
  return w.take();
}

TEST(ShareFrameReaderTest, NothingFedNothingOut) {
  FrameReader reader;
  auto frame = reader.next();
  ASSERT_TRUE(frame);
  EXPECT_FALSE(*frame);
  EXPECT_EQ(reader.buffered(), 0u);
  reader.feed({});
  EXPECT_FALSE(*reader.next());
}

TEST(ShareFrameReaderTest, WholeStreamAtOnce) {
  const Stream s = sample_stream();
  FrameReader reader;
  reader.feed(s.bytes);
  EXPECT_EQ(reader.buffered(), s.bytes.size());
  EXPECT_EQ(drain(reader), s.frames);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(ShareFrameReaderTest, ByteByByte) {
  const Stream s = sample_stream();
  FrameReader reader;
  std::vector<wire::Bytes> got;
  std::size_t taken = 0;  // bytes of the stream returned as frames, prefixes included
  for (std::size_t i = 0; i < s.bytes.size(); ++i) {
    reader.feed(wire::ByteView(s.bytes).subspan(i, 1));
    for (auto& f : drain(reader)) {
      taken += 4 + f.size();
      got.push_back(std::move(f));
    }
    ASSERT_EQ(reader.buffered(), i + 1 - taken);
    // A frame comes out exactly when its last byte arrives.
    ASSERT_LT(reader.buffered(), 4 + kMaxFrame);
  }
  EXPECT_EQ(got, s.frames);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(ShareFrameReaderTest, ViewStaysValidUntilTheNextCall) {
  const Stream s = sample_stream();
  FrameReader reader;
  reader.feed(s.bytes);
  auto first = reader.next();
  ASSERT_TRUE(first && *first);
  const wire::ByteView view = first->value();
  EXPECT_EQ(wire::Bytes(view.begin(), view.end()), s.frames[0]);
  EXPECT_EQ(reader.buffered(), s.bytes.size() - 4 - s.frames[0].size());
}

RC_GTEST_PROP(ShareFrameReaderProperty, AnyChunkingGivesTheSameFrames, ()) {
  const auto requests = *rc::gen::container<std::vector<Request>>(gen_request());
  const auto responses = *rc::gen::container<std::vector<Response>>(gen_response());
  Stream s;
  for (const auto& r : requests) {
    s.add(encode(r));
  }
  for (const auto& r : responses) {
    s.add(encode(r));
  }
  FrameReader reader;
  std::vector<wire::Bytes> got;
  std::size_t pos = 0;
  while (pos < s.bytes.size()) {
    const auto n =
        *rc::gen::inRange<std::size_t>(1, std::min<std::size_t>(s.bytes.size() - pos, 3000) + 1);
    reader.feed(wire::ByteView(s.bytes).subspan(pos, n));
    pos += n;
    // Sometimes leave frames in the reader across feeds.
    if (*rc::gen::inRange(0, 3) != 0) {
      for (auto& f : drain(reader)) {
        got.push_back(std::move(f));
      }
    }
  }
  for (auto& f : drain(reader)) {
    got.push_back(std::move(f));
  }
  RC_ASSERT(got == s.frames);
  RC_ASSERT(reader.buffered() == 0u);
}

TEST(ShareFrameReaderTest, OversizeLengthFailsAsSoonAsThePrefixIsIn) {
  const auto bad = prefix(kMaxFrame + 1);
  FrameReader reader;
  for (std::size_t i = 0; i < 3; ++i) {
    reader.feed(wire::ByteView(bad).subspan(i, 1));
    auto frame = reader.next();
    ASSERT_TRUE(frame);
    EXPECT_FALSE(*frame);
  }
  reader.feed(wire::ByteView(bad).subspan(3, 1));
  auto frame = reader.next();
  ASSERT_FALSE(frame);
  EXPECT_EQ(frame.error(), Errc::FrameTooLarge);
  // The error sticks; nothing fed later is kept.
  reader.feed(encode(sample_requests()[0]));
  EXPECT_EQ(reader.next().error(), Errc::FrameTooLarge);
  EXPECT_EQ(reader.next().error(), Errc::FrameTooLarge);
  EXPECT_EQ(reader.buffered(), 0u);
}

TEST(ShareFrameReaderTest, LengthPrefixBounds) {
  for (std::uint32_t length : {0u, 1u, 5u, kMaxFrame + 1, 0x7fffffffu, 0xffffffffu}) {
    FrameReader reader;
    reader.feed(prefix(length));
    auto frame = reader.next();
    ASSERT_FALSE(frame) << length;
    EXPECT_EQ(frame.error(), Errc::FrameTooLarge) << length;
  }
  for (std::uint32_t length : {6u, 7u, kMaxFrame}) {
    FrameReader reader;
    reader.feed(prefix(length));
    const wire::Bytes body(length, 0x5a);
    reader.feed(wire::ByteView(body).first(length - 1));
    ASSERT_FALSE(*reader.next()) << length;
    reader.feed(wire::ByteView(body).last(1));
    auto frame = reader.next();
    ASSERT_TRUE(frame && *frame) << length;
    EXPECT_EQ(frame->value().size(), length);
    EXPECT_EQ(reader.buffered(), 0u);
  }
}

TEST(ShareFrameReaderTest, FramesBeforeABadPrefixStillComeOut) {
  const auto good = encode(sample_requests()[1]);
  FrameReader reader;
  reader.feed(good);
  reader.feed(prefix(3));
  auto first = reader.next();
  ASSERT_TRUE(first && *first);
  const wire::ByteView view = first->value();
  EXPECT_EQ(wire::Bytes(view.begin(), view.end()), unprefixed(good));
  EXPECT_EQ(reader.next().error(), Errc::FrameTooLarge);
}

TEST(ShareFrameReaderTest, ManySmallFramesInOneFeed) {
  // Compaction happens per feed, not per frame: this stays linear.
  const auto one = encode(Request{1, GetAttrRequest{2}});
  wire::Bytes many;
  constexpr std::size_t kCount = 100000;
  many.reserve(one.size() * kCount);
  for (std::size_t i = 0; i < kCount; ++i) {
    many.insert(many.end(), one.begin(), one.end());
  }
  FrameReader reader;
  reader.feed(wire::ByteView(many).first(many.size() - 1));
  std::size_t count = 0;
  for (;;) {
    auto frame = reader.next();
    ASSERT_TRUE(frame);
    if (!*frame) {
      break;
    }
    ++count;
  }
  EXPECT_EQ(count, kCount - 1);
  EXPECT_EQ(reader.buffered(), one.size() - 1);
  reader.feed(wire::ByteView(many).last(1));
  EXPECT_EQ(drain(reader).size(), 1u);
}

}  // namespace
}  // namespace peertun::share::proto
