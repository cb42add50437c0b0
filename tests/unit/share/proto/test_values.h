#pragma once
// Values and generators shared by the share codec's tests.

#include <rapidcheck.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "share/proto/codec.h"
#include "share/proto/messages.h"

namespace peertun::share::proto::test {

// Linux st_mode file types, as docs/protocol/share.md lists them.
inline constexpr std::uint32_t kRegular = 0100000;
inline constexpr std::uint32_t kDirectory = 0040000;
inline constexpr std::uint32_t kSymlink = 0120000;

inline Attr sample_attr(NodeId node, std::uint32_t mode, std::uint64_t size) {
  Attr a;
  a.node = node;
  a.mode = mode;
  a.nlink = 1;
  a.uid = 1000;
  a.gid = 1000;
  a.size = size;
  a.blocks = (size + 511) / 512;
  a.block_size = 4096;
  a.atime = {1700000000, 123456789};
  a.mtime = {1700000000, 0};
  a.ctime = {1700000001, 500};
  return a;
}

inline wire::Bytes bytes_of(std::string_view s) { return wire::Bytes(s.begin(), s.end()); }

// The frame as decode_*() takes it: without the length prefix.
inline wire::Bytes unprefixed(const wire::Bytes& encoded) {
  return wire::Bytes(encoded.begin() + 4, encoded.end());
}

// One valid request of every op.
inline std::vector<Request> sample_requests() {
  return {
      {1, HelloRequest{1, 1, true}}, {7, LookupRequest{kRootNode, "notes.txt"}},
      {3, GetAttrRequest{42}},       {4, ReadDirRequest{kRootNode, 0, 128}},
      {5, OpenRequest{42, false}},   {9, ReadRequest{3, 0, 4096}},
      {11, ReadLinkRequest{43}},     {12, StatFsRequest{kRootNode}},
      {13, ReleaseRequest{3}},       {14, ForgetRequest{{{42, 1}, {43, 2}, {44, 1000}}}},
  };
}

// One valid answer of every op, and error answers.
inline std::vector<Response> sample_responses() {
  const DirEntry file{"notes.txt", 1, sample_attr(42, kRegular | 0644, 6)};
  const DirEntry dir{"photos", 2, sample_attr(44, kDirectory | 0755, 4096)};
  const DirEntry link{"latest", 3, sample_attr(43, kSymlink | 0777, 9)};
  return {
      {1, Op::Hello, 0,
       HelloReply{1, false, kMaxRead, sample_attr(kRootNode, kDirectory | 0755, 4096)}},
      {7, Op::Lookup, 0, EntryReply{sample_attr(42, kRegular | 0644, 6), 1}},
      {3, Op::GetAttr, 0, AttrReply{sample_attr(42, kRegular | 0644, 6)}},
      {4, Op::ReadDir, 0, ReadDirReply{{file, dir, link}, true}},
      {5, Op::Open, 0, OpenReply{3, sample_attr(42, kRegular | 0644, 6)}},
      {9, Op::Read, 0, ReadReply{bytes_of("hello\n")}},
      {11, Op::ReadLink, 0, ReadLinkReply{"notes.txt"}},
      {12, Op::StatFs, 0, StatFsReply{1000000, 500000, 400000, 65536, 60000, 4096, 4096, 255}},
      {13, Op::Release, 0, EmptyReply{}},
      {8, Op::Lookup, 2, EmptyReply{}},
      {9, Op::Read, 116, EmptyReply{}},
  };
}

// ---- RapidCheck generators: values inside every bound of messages.h ----

inline rc::Gen<Timestamp> gen_timestamp() {
  return rc::gen::build<Timestamp>(
      rc::gen::set(&Timestamp::seconds),
      rc::gen::set(&Timestamp::nanoseconds, rc::gen::inRange<std::uint32_t>(0, 1'000'000'000)));
}

inline rc::Gen<Attr> gen_attr() {
  return rc::gen::exec([] {
    Attr a;
    a.node = *rc::gen::arbitrary<std::uint64_t>();
    a.mode = *rc::gen::element(kRegular, kDirectory, kSymlink) |
             *rc::gen::inRange<std::uint32_t>(0, 010000);
    a.nlink = *rc::gen::arbitrary<std::uint32_t>();
    a.uid = *rc::gen::arbitrary<std::uint32_t>();
    a.gid = *rc::gen::arbitrary<std::uint32_t>();
    a.size = *rc::gen::arbitrary<std::uint64_t>();
    a.blocks = *rc::gen::arbitrary<std::uint64_t>();
    a.block_size = *rc::gen::arbitrary<std::uint32_t>();
    a.atime = *gen_timestamp();
    a.mtime = *gen_timestamp();
    a.ctime = *gen_timestamp();
    return a;
  });
}

// Valid names of 1..kMaxName bytes: any byte but '/' and NUL, dots included.
inline rc::Gen<std::string> gen_name() {
  return rc::gen::exec([] {
    const auto size = *rc::gen::oneOf(rc::gen::inRange<std::size_t>(1, 12),
                                      rc::gen::inRange<std::size_t>(1, kMaxName + 1));
    auto name = *rc::gen::container<std::string>(
        size, rc::gen::oneOf(rc::gen::inRange<char>('a', 'z' + 1), rc::gen::element('.', '-', ' '),
                             rc::gen::arbitrary<char>()));
    for (char& c : name) {
      if (c == '/' || c == '\0') {
        c = '_';
      }
    }
    if (name == "." || name == "..") {
      name += "x";
    }
    return name;
  });
}

inline rc::Gen<std::string> gen_link_target() {
  return rc::gen::exec([] {
    const auto size = *rc::gen::oneOf(rc::gen::inRange<std::size_t>(1, 40),
                                      rc::gen::inRange<std::size_t>(1, kMaxLinkTarget + 1));
    auto target = *rc::gen::container<std::string>(size, rc::gen::arbitrary<char>());
    for (char& c : target) {
      if (c == '\0') {
        c = '/';
      }
    }
    return target;
  });
}

inline rc::Gen<RequestBody> gen_request_body() {
  using rc::gen::arbitrary;
  using rc::gen::inRange;
  return rc::gen::oneOf(
      rc::gen::exec([] {
        const auto min = *inRange<std::uint16_t>(1, 0xffff);
        const auto max = *inRange<std::uint32_t>(min, 0x10000);
        return RequestBody{HelloRequest{min, static_cast<std::uint16_t>(max), *arbitrary<bool>()}};
      }),
      rc::gen::exec([] { return RequestBody{LookupRequest{*arbitrary<NodeId>(), *gen_name()}}; }),
      rc::gen::exec([] { return RequestBody{GetAttrRequest{*arbitrary<NodeId>()}}; }),
      rc::gen::exec([] {
        return RequestBody{ReadDirRequest{*arbitrary<NodeId>(), *arbitrary<std::uint64_t>(),
                                          *inRange<std::uint32_t>(1, 1025)}};
      }),
      rc::gen::exec(
          [] { return RequestBody{OpenRequest{*arbitrary<NodeId>(), *arbitrary<bool>()}}; }),
      rc::gen::exec([] {
        // Any offset, INT64_MAX + 1 and beyond included: those decode and get EINVAL.
        return RequestBody{ReadRequest{*arbitrary<HandleId>(), *arbitrary<std::uint64_t>(),
                                       *inRange<std::uint32_t>(1, kMaxRead + 1)}};
      }),
      rc::gen::exec([] { return RequestBody{ReadLinkRequest{*arbitrary<NodeId>()}}; }),
      rc::gen::exec([] { return RequestBody{StatFsRequest{*arbitrary<NodeId>()}}; }),
      rc::gen::exec([] { return RequestBody{ReleaseRequest{*arbitrary<HandleId>()}}; }),
      rc::gen::exec([] {
        ForgetRequest r;
        r.nodes =
            *rc::gen::nonEmpty(rc::gen::arbitrary<std::vector<std::pair<NodeId, std::uint64_t>>>());
        if (r.nodes.size() > kMaxForgets) {
          r.nodes.resize(kMaxForgets);
        }
        return RequestBody{std::move(r)};
      }));
}

inline rc::Gen<Request> gen_request() {
  return rc::gen::build<Request>(rc::gen::set(&Request::id),
                                 rc::gen::set(&Request::body, gen_request_body()));
}

inline rc::Gen<DirEntry> gen_dir_entry() {
  return rc::gen::build<DirEntry>(rc::gen::set(&DirEntry::name, gen_name()),
                                  rc::gen::set(&DirEntry::cookie),
                                  rc::gen::set(&DirEntry::attr, gen_attr()));
}

// A successful answer's body for `op` (not Forget).
inline rc::Gen<ReplyBody> gen_reply_body(Op op) {
  using rc::gen::arbitrary;
  switch (op) {
    case Op::Hello:
      return rc::gen::exec([] {
        return ReplyBody{HelloReply{*rc::gen::inRange<std::uint16_t>(1, 0xffff), *arbitrary<bool>(),
                                    *rc::gen::inRange<std::uint32_t>(1, kMaxRead + 1),
                                    *gen_attr()}};
      });
    case Op::Lookup:
      return rc::gen::exec(
          [] { return ReplyBody{EntryReply{*gen_attr(), *arbitrary<std::uint64_t>()}}; });
    case Op::GetAttr:
      return rc::gen::exec([] { return ReplyBody{AttrReply{*gen_attr()}}; });
    case Op::ReadDir:
      return rc::gen::exec([] {
        ReadDirReply r;
        r.entries =
            *rc::gen::resize(40, rc::gen::container<std::vector<DirEntry>>(gen_dir_entry()));
        r.end = *arbitrary<bool>();
        return ReplyBody{std::move(r)};
      });
    case Op::Open:
      return rc::gen::exec(
          [] { return ReplyBody{OpenReply{*arbitrary<HandleId>(), *gen_attr()}}; });
    case Op::Read:
      return rc::gen::exec([] { return ReplyBody{ReadReply{*arbitrary<wire::Bytes>()}}; });
    case Op::ReadLink:
      return rc::gen::exec([] { return ReplyBody{ReadLinkReply{*gen_link_target()}}; });
    case Op::StatFs:
      return rc::gen::exec([] {
        StatFsReply r;
        r.blocks = *arbitrary<std::uint64_t>();
        r.blocks_free = *arbitrary<std::uint64_t>();
        r.blocks_available = *arbitrary<std::uint64_t>();
        r.files = *arbitrary<std::uint64_t>();
        r.files_free = *arbitrary<std::uint64_t>();
        r.block_size = *arbitrary<std::uint32_t>();
        r.fragment_size = *arbitrary<std::uint32_t>();
        r.name_max = *arbitrary<std::uint32_t>();
        return ReplyBody{r};
      });
    case Op::Release:
    case Op::Forget:
      break;
  }
  return rc::gen::just(ReplyBody{EmptyReply{}});
}

// Answers of every answerable op, one in five an error answer.
inline rc::Gen<Response> gen_response() {
  return rc::gen::exec([] {
    Response r;
    r.id = *rc::gen::arbitrary<RequestId>();
    r.op = *rc::gen::element(Op::Hello, Op::Lookup, Op::GetAttr, Op::ReadDir, Op::Open, Op::Read,
                             Op::ReadLink, Op::StatFs, Op::Release);
    if (*rc::gen::inRange(0, 5) == 0) {
      r.error = *rc::gen::inRange<std::uint32_t>(1, 4096);
      r.body = EmptyReply{};
    } else {
      r.body = *gen_reply_body(r.op);
    }
    return r;
  });
}

}  // namespace peertun::share::proto::test
