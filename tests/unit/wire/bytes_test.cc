#include "wire/bytes.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace peertun::wire {
namespace {

TEST(ByteReaderTest, ReadsBigEndianAndStopsAtEnd) {
  const Bytes data{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
  ByteReader r(data);
  EXPECT_EQ(r.u8(), 0x01);
  EXPECT_EQ(r.u16(), 0x0203);
  EXPECT_EQ(r.u32(), 0x04050607u);
  EXPECT_FALSE(r.u8());
  EXPECT_TRUE(r.empty());
}

TEST(ByteReaderTest, FailedReadDoesNotAdvance) {
  const Bytes data{0xaa, 0xbb, 0xcc};
  ByteReader r(data);
  EXPECT_FALSE(r.u32());
  EXPECT_EQ(r.position(), 0u);
  EXPECT_FALSE(r.bytes(4));
  EXPECT_FALSE(r.skip(4));
  EXPECT_EQ(r.u16(), 0xaabb);
}

TEST(HexTest, RoundTripsAndRejects) {
  EXPECT_EQ(to_hex(Bytes{0x00, 0xff, 0x1a}), "00ff1a");
  EXPECT_EQ(from_hex("00 FF\n1a"), (Bytes{0x00, 0xff, 0x1a}));
  EXPECT_FALSE(from_hex("0"));
  EXPECT_FALSE(from_hex("zz"));
}

RC_GTEST_PROP(ByteWriterProperty, ReaderReadsWhatWriterWrote,
              (std::uint8_t a, std::uint16_t b, std::uint32_t c, std::uint64_t d, Bytes tail)) {
  ByteWriter w;
  w.u8(a);
  w.u16(b);
  w.u32(c);
  w.u64(d);
  w.bytes(tail);
  RC_ASSERT(w.size() == 15 + tail.size());
  ByteReader r(w.data());
  RC_ASSERT(r.u8() == a);
  RC_ASSERT(r.u16() == b);
  RC_ASSERT(r.u32() == c);
  RC_ASSERT(r.u64() == d);
  auto rest = r.bytes(tail.size());
  RC_ASSERT(rest.has_value());
  RC_ASSERT(Bytes(rest->begin(), rest->end()) == tail);
  RC_ASSERT(r.empty());
}

}  // namespace
}  // namespace peertun::wire
