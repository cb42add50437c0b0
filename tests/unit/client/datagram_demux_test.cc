// split_segments: the shared socket's demultiplexer for GRO batches (client/punch_driver.h).
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cstdint>
#include <vector>

#include "client/punch_driver.h"
#include "stun/message.h"

namespace peertun::client {
namespace {

using Bytes = std::vector<std::uint8_t>;

// A QUIC 1-RTT packet as ngtcp2 0.12.1 may send it: with `greased` the fixed bit is clear
// and the first byte is 0..3 (RFC 9287), which only the cookie test tells from STUN.
Bytes quic_packet(std::size_t size, std::uint8_t tag, bool greased = false) {
  Bytes b(size, tag);
  b[0] = greased ? 0x01 : 0x41;
  return b;
}

// A STUN message of exactly `size` bytes (a multiple of 4, at least 20): a Binding request
// header with the magic cookie and a length that matches (stun::looks_like_stun).
Bytes stun_check(std::size_t size) {
  Bytes b(size, 0xEE);
  b[0] = 0x00;
  b[1] = 0x01;
  const auto length = static_cast<std::uint16_t>(size - stun::kHeaderSize);
  b[2] = static_cast<std::uint8_t>(length >> 8U);
  b[3] = static_cast<std::uint8_t>(length);
  b[4] = 0x21;
  b[5] = 0x12;
  b[6] = 0xA4;
  b[7] = 0x42;
  return b;
}

Bytes concat(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const auto& p : parts) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

struct Piece {
  std::size_t offset;
  std::size_t size;
  std::size_t segment_size;
  bool stun;
  bool operator==(const Piece&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Piece& r) {
  return os << "{off " << r.offset << " size " << r.size << " seg " << r.segment_size
            << (r.stun ? " stun}" : " quic}");
}

std::vector<Piece> split(Bytes& datagram, std::size_t segment_size) {
  std::vector<Piece> runs;
  split_segments(datagram, segment_size, [&](const SegmentRun& run) {
    runs.push_back(Piece{static_cast<std::size_t>(run.data.data() - datagram.data()),
                         run.data.size(), run.segment_size, run.stun});
  });
  return runs;
}

TEST(SplitSegmentsTest, AllQuicIsOneRunWithItsShortLastSegment) {
  Bytes d = concat({quic_packet(1200, 1), quic_packet(1200, 2), quic_packet(1200, 3, true),
                    quic_packet(517, 4)});
  EXPECT_EQ(split(d, 1200), (std::vector<Piece>{{0, 4117, 1200, false}}));
}

TEST(SplitSegmentsTest, CheckInTheMiddleSplitsTheQuicRunAroundIt) {
  Bytes d = concat({quic_packet(1200, 1), quic_packet(1200, 2), stun_check(1200),
                    quic_packet(1200, 3), quic_packet(1200, 4, true), quic_packet(300, 5)});
  EXPECT_EQ(split(d, 1200),
            (std::vector<Piece>{
                {0, 2400, 1200, false}, {2400, 1200, 1200, true}, {3600, 2700, 1200, false}}));
}

TEST(SplitSegmentsTest, CheckAsTheShortLastSegment) {
  Bytes d = concat({quic_packet(1200, 1), quic_packet(1200, 2), stun_check(108)});
  EXPECT_EQ(split(d, 1200), (std::vector<Piece>{{0, 2400, 1200, false}, {2400, 108, 108, true}}));
}

TEST(SplitSegmentsTest, CheckAsAFullSizeLastSegment) {
  Bytes d = concat({quic_packet(1200, 1), stun_check(1200)});
  EXPECT_EQ(split(d, 1200), (std::vector<Piece>{{0, 1200, 1200, false}, {1200, 1200, 1200, true}}));
}

TEST(SplitSegmentsTest, ShortQuicSegmentAfterACheckIsARunOfItsOwnSize) {
  Bytes d = concat({quic_packet(1200, 1), stun_check(1200), quic_packet(90, 2)});
  EXPECT_EQ(split(d, 1200),
            (std::vector<Piece>{
                {0, 1200, 1200, false}, {1200, 1200, 1200, true}, {2400, 90, 90, false}}));
}

TEST(SplitSegmentsTest, ConsecutiveChecksAreEachAlone) {
  Bytes d = concat({stun_check(400), stun_check(400), quic_packet(400, 1)});
  EXPECT_EQ(
      split(d, 400),
      (std::vector<Piece>{{0, 400, 400, true}, {400, 400, 400, true}, {800, 400, 400, false}}));
}

TEST(SplitSegmentsTest, GreasedQuicWithoutTheCookieStaysQuic) {
  // First byte 0..3 and a length field that even matches: only the cookie is missing.
  Bytes fake = stun_check(1200);
  fake[4] = 0x21;
  fake[7] = 0x43;
  Bytes d = concat({quic_packet(1200, 1, true), fake});
  EXPECT_EQ(split(d, 1200), (std::vector<Piece>{{0, 2400, 1200, false}}));
}

TEST(SplitSegmentsTest, WithoutCoalescingTheDatagramIsOneSegment) {
  Bytes check = stun_check(96);
  EXPECT_EQ(split(check, 0), (std::vector<Piece>{{0, 96, 96, true}}));
  EXPECT_EQ(split(check, 96), (std::vector<Piece>{{0, 96, 96, true}}));
  Bytes quic = quic_packet(1350, 7);
  EXPECT_EQ(split(quic, 0), (std::vector<Piece>{{0, 1350, 1350, false}}));
  // A segment size larger than the datagram (a kernel that reports it so) is one segment.
  EXPECT_EQ(split(quic, 1500), (std::vector<Piece>{{0, 1350, 1350, false}}));
  Bytes empty;
  EXPECT_TRUE(split(empty, 0).empty());
  EXPECT_TRUE(split(empty, 1200).empty());
}

// Whatever the mix: the runs tile the datagram in order, a run is STUN exactly when it is
// one segment that looks like STUN, no QUIC run contains such a segment, and two QUIC
// runs never touch (they would have been one batch).
RC_GTEST_PROP(SplitSegmentsProperty, RunsTileTheDatagramAndIsolateEveryCheck, ()) {
  const auto segment_size = *rc::gen::inRange<std::size_t>(20, 1500) / 4 * 4;
  const auto count = *rc::gen::inRange<std::size_t>(1, 65);
  std::vector<Bytes> parts;
  for (std::size_t i = 0; i < count; ++i) {
    const bool last = i + 1 == count;
    const auto size = last ? *rc::gen::inRange<std::size_t>(1, segment_size + 1) : segment_size;
    const auto kind = *rc::gen::inRange(0, 3);
    if (kind == 0 && size % 4 == 0 && size >= stun::kHeaderSize) {
      parts.push_back(stun_check(size));
    } else {
      parts.push_back(quic_packet(size, static_cast<std::uint8_t>(i), kind == 1));
    }
  }
  Bytes d = concat(parts);
  const auto runs = split(d, segment_size);
  std::size_t next = 0;
  bool previous_quic = false;
  for (const auto& r : runs) {
    RC_ASSERT(r.offset == next);
    RC_ASSERT(r.size > 0);
    RC_ASSERT(r.segment_size > 0);
    RC_ASSERT(r.offset % segment_size == 0);
    const std::span<const std::uint8_t> bytes(d.data() + r.offset, r.size);
    if (r.stun) {
      RC_ASSERT(r.size <= segment_size);
      RC_ASSERT(r.segment_size == r.size);
      RC_ASSERT(stun::looks_like_stun(bytes));
      previous_quic = false;
    } else {
      RC_ASSERT(!previous_quic);
      RC_ASSERT(r.segment_size == std::min(segment_size, r.size));
      for (std::size_t off = 0; off < r.size; off += segment_size) {
        RC_ASSERT(!stun::looks_like_stun(bytes.subspan(off, std::min(segment_size, r.size - off))));
      }
      previous_quic = true;
    }
    next += r.size;
  }
  RC_ASSERT(next == d.size());
}

}  // namespace
}  // namespace peertun::client
