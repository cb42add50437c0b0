#pragma once
// The folder-share protocol's messages (docs/protocol/share.md): what peer B (the FUSE
// side) asks peer A (the exporter) and what A answers. Plain values; the wire encoding
// is in codec.h.
//
// Nodes are A's names for files: 64-bit ids that A hands out in Lookup, ReadDir and
// Hello answers and forgets again when B sends Forget (the FUSE lookup-count rule).
// kRootNode is the shared folder. Handles are A's open files (Open .. Release).
// Errors travel as Linux errno values (ENOENT, EACCES, ...); 0 means success.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "wire/bytes.h"

namespace peertun::share::proto {

// The version this build speaks; Hello negotiates the highest both sides know.
inline constexpr std::uint16_t kVersion = 1;

using NodeId = std::uint64_t;
using HandleId = std::uint64_t;
using RequestId = std::uint32_t;

inline constexpr NodeId kRootNode = 1;

// Largest Read a request may ask for and an answer may carry.
inline constexpr std::uint32_t kMaxRead = 1U << 20;
// Largest frame (length prefix excluded): a full Read answer plus its headers; also
// bounds a ReadDir answer. Anything bigger is a protocol error.
inline constexpr std::uint32_t kMaxFrame = kMaxRead + 4096;
// NAME_MAX and PATH_MAX - 1 on Linux: longer names and link targets are malformed.
inline constexpr std::size_t kMaxName = 255;
inline constexpr std::size_t kMaxLinkTarget = 4095;
// Entries in one Forget.
inline constexpr std::size_t kMaxForgets = 4096;

// Operation codes (one byte on the wire). 32..63 are reserved for writes (`--rw`).
enum class Op : std::uint8_t {
  Hello = 1,
  Lookup = 2,
  GetAttr = 3,
  ReadDir = 4,
  Open = 5,
  Read = 6,
  ReadLink = 7,
  StatFs = 8,
  Release = 9,
  Forget = 10,  // never answered
};

struct Timestamp {
  std::int64_t seconds = 0;
  std::uint32_t nanoseconds = 0;  // < 1e9
  bool operator==(const Timestamp&) const = default;
};

// A node's attributes as A's filesystem reports them (struct stat, less what B cannot
// use). `mode` carries the file type bits (S_IFREG, S_IFDIR, S_IFLNK only: A never
// serves other types). `blocks` counts 512-byte units.
struct Attr {
  NodeId node = 0;
  std::uint32_t mode = 0;
  std::uint32_t nlink = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size = 0;
  std::uint64_t blocks = 0;
  std::uint32_t block_size = 0;
  Timestamp atime;
  Timestamp mtime;
  Timestamp ctime;
  bool operator==(const Attr&) const = default;
};

// ---- Requests (B -> A) ----

// First request on the connection; nothing else is answered before it (EPROTO).
struct HelloRequest {
  std::uint16_t min_version = kVersion;
  std::uint16_t max_version = kVersion;
  bool want_write = false;  // B was started with --rw
  bool operator==(const HelloRequest&) const = default;
};
// `name` is one path component: 1..kMaxName bytes, no '/', no NUL, not "." or "..".
struct LookupRequest {
  NodeId parent = 0;
  std::string name;
  bool operator==(const LookupRequest&) const = default;
};
struct GetAttrRequest {
  NodeId node = 0;
  bool operator==(const GetAttrRequest&) const = default;
};
// Lists `node` from `cookie` (0 = from the start; later cookies come from the previous
// answer) with at most `max_entries` entries (1..1024; A may return fewer).
struct ReadDirRequest {
  NodeId node = 0;
  std::uint64_t cookie = 0;
  std::uint32_t max_entries = 0;
  bool operator==(const ReadDirRequest&) const = default;
};
struct OpenRequest {
  NodeId node = 0;
  bool write = false;  // needs a writable share (EROFS otherwise)
  bool operator==(const OpenRequest&) const = default;
};
// `offset` must be <= INT64_MAX (EINVAL), `length` 1..kMaxRead (EINVAL).
struct ReadRequest {
  HandleId handle = 0;
  std::uint64_t offset = 0;
  std::uint32_t length = 0;
  bool operator==(const ReadRequest&) const = default;
};
struct ReadLinkRequest {
  NodeId node = 0;
  bool operator==(const ReadLinkRequest&) const = default;
};
struct StatFsRequest {
  NodeId node = 0;
  bool operator==(const StatFsRequest&) const = default;
};
struct ReleaseRequest {
  HandleId handle = 0;
  bool operator==(const ReleaseRequest&) const = default;
};
// B drops `count` lookups of each node (FUSE forget). Unknown nodes are ignored.
struct ForgetRequest {
  std::vector<std::pair<NodeId, std::uint64_t>> nodes;  // 1..kMaxForgets
  bool operator==(const ForgetRequest&) const = default;
};

using RequestBody =
    std::variant<HelloRequest, LookupRequest, GetAttrRequest, ReadDirRequest, OpenRequest,
                 ReadRequest, ReadLinkRequest, StatFsRequest, ReleaseRequest, ForgetRequest>;

struct Request {
  RequestId id = 0;
  RequestBody body;
  bool operator==(const Request&) const = default;
};

[[nodiscard]] Op op_of(const RequestBody& body);

// ---- Answers (A -> B) ----

struct HelloReply {
  std::uint16_t version = kVersion;
  bool writable = false;  // A shares read-write (A's --rw and B's want_write)
  std::uint32_t max_read = kMaxRead;
  Attr root;
  bool operator==(const HelloReply&) const = default;
};
// Lookup's answer. Each successful Lookup adds one to the node's lookup count on A.
struct EntryReply {
  Attr attr;
  std::uint64_t generation = 0;
  bool operator==(const EntryReply&) const = default;
};
struct AttrReply {
  Attr attr;
  bool operator==(const AttrReply&) const = default;
};
// One ReadDir entry; like a Lookup, it adds one to the node's lookup count ("." and
// ".." are never listed). `cookie` resumes the listing after this entry.
struct DirEntry {
  std::string name;
  std::uint64_t cookie = 0;
  Attr attr;
  bool operator==(const DirEntry&) const = default;
};
struct ReadDirReply {
  std::vector<DirEntry> entries;
  bool end = false;  // nothing after the last entry
  bool operator==(const ReadDirReply&) const = default;
};
// `attr` is the file as it was opened: B keeps its page cache only if size and mtime
// match what it cached.
struct OpenReply {
  HandleId handle = 0;
  Attr attr;
  bool operator==(const OpenReply&) const = default;
};
// Fewer bytes than asked means end of file. A file that changed since Open (size,
// mtime or ctime differ) is answered with ESTALE instead, never with torn data.
struct ReadReply {
  wire::Bytes data;
  bool operator==(const ReadReply&) const = default;
};
struct ReadLinkReply {
  std::string target;  // 1..kMaxLinkTarget bytes, no NUL
  bool operator==(const ReadLinkReply&) const = default;
};
struct StatFsReply {
  std::uint64_t blocks = 0;
  std::uint64_t blocks_free = 0;
  std::uint64_t blocks_available = 0;
  std::uint64_t files = 0;
  std::uint64_t files_free = 0;
  std::uint32_t block_size = 0;
  std::uint32_t fragment_size = 0;
  std::uint32_t name_max = 0;
  bool operator==(const StatFsReply&) const = default;
};
// Release's answer, and the body of every error answer.
struct EmptyReply {
  bool operator==(const EmptyReply&) const = default;
};

using ReplyBody = std::variant<EmptyReply, HelloReply, EntryReply, AttrReply, ReadDirReply,
                               OpenReply, ReadReply, ReadLinkReply, StatFsReply>;

struct Response {
  RequestId id = 0;
  Op op = Op::Hello;        // the request's operation
  std::uint32_t error = 0;  // errno value; when non-zero the body is EmptyReply
  ReplyBody body;
  bool operator==(const Response&) const = default;
};

// An error answer to `request`.
[[nodiscard]] Response error_response(RequestId id, Op op, int error);

// True when `name` is one path component: 1..kMaxName bytes, no '/', no NUL, not "." or
// "..". The decoder rejects other names; exporters check again before touching the disk.
[[nodiscard]] bool is_valid_name(std::string_view name);

}  // namespace peertun::share::proto
