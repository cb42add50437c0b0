#pragma once
// STUN messages (RFC 8489): constants, a zero-copy parser, a builder, typed attribute
// codecs, and the two integrity checks (MESSAGE-INTEGRITY, FINGERPRINT).
//
// Also carries the attribute numbers of RFC 5780 (NAT behaviour discovery), RFC 8445
// (ICE) and RFC 8656 (TURN) so that every STUN user in peertun shares one table.
//
// Sans-I/O and thread-agnostic: plain functions over bytes and values. Nothing here
// throws on, asserts on, or reads outside untrusted input; failures are Errc values.

#include <array>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/error.h"
#include "base/socket_address.h"
#include "wire/bytes.h"

namespace peertun::stun {

using wire::Bytes;
using wire::ByteView;

// --- Header (RFC 8489 §5) ---------------------------------------------------------------

// RFC 8489 §5: "The Magic Cookie field MUST contain the fixed value 0x2112A442".
inline constexpr std::uint32_t kMagicCookie = 0x2112A442;
// RFC 8489 §5: 2 bytes type, 2 bytes length, 4 bytes cookie, 12 bytes transaction id.
inline constexpr std::size_t kHeaderSize = 20;
// RFC 8489 §14: every attribute starts with 2 bytes type and 2 bytes length.
inline constexpr std::size_t kAttributeHeaderSize = 4;
// RFC 8489 §5: the 16-bit length counts the bytes after the header and is always a
// multiple of 4, so the largest body is 65532 bytes.
inline constexpr std::size_t kMaxBodySize = 0xFFFC;
// RFC 8489 §14.7: the FINGERPRINT CRC-32 is XOR'ed with 0x5354554e ("STUN").
inline constexpr std::uint32_t kFingerprintXor = 0x5354554e;
// RFC 8489 §14.5: MESSAGE-INTEGRITY is a 20-byte HMAC-SHA1.
inline constexpr std::size_t kMessageIntegritySize = 20;

// RFC 8489 §5: the 96-bit transaction id.
using TransactionId = std::array<std::uint8_t, 12>;

// Methods. Binding: RFC 8489 §18.2. The others: RFC 8656 §17 (TURN).
enum class Method : std::uint16_t {
  Binding = 0x001,
  Allocate = 0x003,
  Refresh = 0x004,
  Send = 0x006,
  Data = 0x007,
  CreatePermission = 0x008,
  ChannelBind = 0x009,
};
// RFC 8489 §5: 12 bits of method in the message type.
inline constexpr std::uint16_t kMaxMethod = 0x0FFF;

// RFC 8489 §5: the two class bits C1 C0.
enum class MessageClass : std::uint8_t {
  Request = 0b00,
  Indication = 0b01,
  SuccessResponse = 0b10,
  ErrorResponse = 0b11,
};

// Message type field (RFC 8489 §5, figure 3): method and class bits interleaved.
[[nodiscard]] std::uint16_t encode_message_type(Method method, MessageClass cls);

// --- Attribute types -------------------------------------------------------------------
// RFC 8489 §14: types 0x0000-0x7FFF are comprehension-required, 0x8000-0xFFFF are
// comprehension-optional.
namespace attr {
inline constexpr std::uint16_t kMappedAddress = 0x0001;            // RFC 8489 §14.1
inline constexpr std::uint16_t kChangeRequest = 0x0003;            // RFC 5780 §7.2
inline constexpr std::uint16_t kUsername = 0x0006;                 // RFC 8489 §14.3
inline constexpr std::uint16_t kMessageIntegrity = 0x0008;         // RFC 8489 §14.5
inline constexpr std::uint16_t kErrorCode = 0x0009;                // RFC 8489 §14.8
inline constexpr std::uint16_t kUnknownAttributes = 0x000A;        // RFC 8489 §14.13
inline constexpr std::uint16_t kChannelNumber = 0x000C;            // RFC 8656 §18.1
inline constexpr std::uint16_t kLifetime = 0x000D;                 // RFC 8656 §18.2
inline constexpr std::uint16_t kXorPeerAddress = 0x0012;           // RFC 8656 §18.3
inline constexpr std::uint16_t kData = 0x0013;                     // RFC 8656 §18.4
inline constexpr std::uint16_t kRealm = 0x0014;                    // RFC 8489 §14.9
inline constexpr std::uint16_t kNonce = 0x0015;                    // RFC 8489 §14.10
inline constexpr std::uint16_t kXorRelayedAddress = 0x0016;        // RFC 8656 §18.5
inline constexpr std::uint16_t kRequestedAddressFamily = 0x0017;   // RFC 8656 §18.6
inline constexpr std::uint16_t kEvenPort = 0x0018;                 // RFC 8656 §18.7
inline constexpr std::uint16_t kRequestedTransport = 0x0019;       // RFC 8656 §18.8
inline constexpr std::uint16_t kDontFragment = 0x001A;             // RFC 8656 §18.9
inline constexpr std::uint16_t kMessageIntegritySha256 = 0x001C;   // RFC 8489 §14.6
inline constexpr std::uint16_t kPasswordAlgorithm = 0x001D;        // RFC 8489 §14.12
inline constexpr std::uint16_t kUserhash = 0x001E;                 // RFC 8489 §14.4
inline constexpr std::uint16_t kXorMappedAddress = 0x0020;         // RFC 8489 §14.2
inline constexpr std::uint16_t kReservationToken = 0x0022;         // RFC 8656 §18.10
inline constexpr std::uint16_t kPriority = 0x0024;                 // RFC 8445 §7.1.1
inline constexpr std::uint16_t kUseCandidate = 0x0025;             // RFC 8445 §7.1.2
inline constexpr std::uint16_t kPadding = 0x0026;                  // RFC 5780 §7.6
inline constexpr std::uint16_t kResponsePort = 0x0027;             // RFC 5780 §7.5
inline constexpr std::uint16_t kAdditionalAddressFamily = 0x8000;  // RFC 8656 §18.11
inline constexpr std::uint16_t kAddressErrorCode = 0x8001;         // RFC 8656 §18.12
inline constexpr std::uint16_t kPasswordAlgorithms = 0x8002;       // RFC 8489 §14.11
inline constexpr std::uint16_t kAlternateDomain = 0x8003;          // RFC 8489 §14.16
inline constexpr std::uint16_t kIcmp = 0x8004;                     // RFC 8656 §18.13
inline constexpr std::uint16_t kSoftware = 0x8022;                 // RFC 8489 §14.14
inline constexpr std::uint16_t kAlternateServer = 0x8023;          // RFC 8489 §14.15
inline constexpr std::uint16_t kFingerprint = 0x8028;              // RFC 8489 §14.7
inline constexpr std::uint16_t kIceControlled = 0x8029;            // RFC 8445 §7.1.3
inline constexpr std::uint16_t kIceControlling = 0x802A;           // RFC 8445 §7.1.3
inline constexpr std::uint16_t kResponseOrigin = 0x802B;           // RFC 5780 §7.3
inline constexpr std::uint16_t kOtherAddress = 0x802C;             // RFC 5780 §7.4
}  // namespace attr

// RFC 8489 §14: a type below 0x8000 must be understood or the request rejected (420).
[[nodiscard]] constexpr bool is_comprehension_required(std::uint16_t type) { return type < 0x8000; }
// True for every type in `attr` above: the ones this stack can name and decode.
[[nodiscard]] bool is_known_attribute(std::uint16_t type);

// ERROR-CODE values used by peertun. RFC 8489 §14.8 and RFC 8656 §19.
namespace status {
inline constexpr std::uint16_t kTryAlternate = 300;               // RFC 8489 §14.8
inline constexpr std::uint16_t kBadRequest = 400;                 // RFC 8489 §14.8
inline constexpr std::uint16_t kUnauthorized = 401;               // RFC 8489 §14.8
inline constexpr std::uint16_t kForbidden = 403;                  // RFC 8656 §19
inline constexpr std::uint16_t kUnknownAttribute = 420;           // RFC 8489 §14.8
inline constexpr std::uint16_t kAllocationMismatch = 437;         // RFC 8656 §19
inline constexpr std::uint16_t kStaleNonce = 438;                 // RFC 8489 §14.8
inline constexpr std::uint16_t kAddressFamilyNotSupported = 440;  // RFC 8656 §19
inline constexpr std::uint16_t kWrongCredentials = 441;           // RFC 8656 §19
inline constexpr std::uint16_t kUnsupportedTransport = 442;       // RFC 8656 §19
inline constexpr std::uint16_t kPeerAddressFamilyMismatch = 443;  // RFC 8656 §19
inline constexpr std::uint16_t kAllocationQuotaReached = 486;     // RFC 8656 §19
inline constexpr std::uint16_t kRoleConflict = 487;               // RFC 8445 §7.3.1.1
inline constexpr std::uint16_t kServerError = 500;                // RFC 8489 §14.8
inline constexpr std::uint16_t kInsufficientCapacity = 508;       // RFC 8656 §19
}  // namespace status

// RFC 8489 §14.8: the reason phrase is at most 128 characters / 763 bytes.
inline constexpr std::size_t kMaxReasonSize = 763;
// RFC 8489 §14.14: SOFTWARE is at most 128 characters / 763 bytes.
inline constexpr std::size_t kMaxSoftwareSize = 763;

// RFC 5780 §7.2: CHANGE-REQUEST flag bits A (change IP) and B (change port).
inline constexpr std::uint32_t kChangeIpFlag = 0x04;
inline constexpr std::uint32_t kChangePortFlag = 0x02;

// --- Errors ----------------------------------------------------------------------------

enum class Errc {
  TooShort = 1,               // fewer than 20 bytes
  NotStun,                    // top two bits of the type are not zero
  BadLength,                  // length not a multiple of 4, or 20 + length != size
  BadMagicCookie,             // bytes 4-7 are not 0x2112A442
  TruncatedAttribute,         // an attribute (or its padding) runs past the end
  AttributeAfterFingerprint,  // RFC 8489 §14.7: FINGERPRINT must be last
  BadAttributeLength,         // an attribute's length is wrong for its type
  BadAttributeValue,          // a field inside an attribute is out of range
  UnknownAddressFamily,       // address family is neither 0x01 nor 0x02
  NoMessageIntegrity,         // verify_message_integrity on a message without MI
  IntegrityMismatch,          // HMAC does not match
  NoFingerprint,              // verify_fingerprint on a message without FINGERPRINT
  FingerprintMismatch,        // CRC does not match
  MissingAttribute,           // a required attribute is absent
  UnexpectedMessage,          // wrong method or class for this helper
  CryptoFailure,              // GnuTLS refused (should not happen)
};

const boost::system::error_category& error_category() noexcept;
inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace peertun::stun

template <>
struct boost::system::is_error_code_enum<peertun::stun::Errc> : std::true_type {};

namespace peertun::stun {

// --- Parsing ---------------------------------------------------------------------------

// RFC 7983 demultiplexing plus the RFC 8489 §5 header checks that cost nothing: first
// byte 0..3, magic cookie, length a multiple of 4 that matches the datagram size. A QUIC
// short header whose peer greases the fixed bit (RFC 9287) can also start with 0..3; the
// cookie and length tests keep those out. Never reads past the span; allocates nothing.
[[nodiscard]] bool looks_like_stun(ByteView datagram);

struct Attribute {
  std::uint16_t type = 0;
  ByteView value;          // points into the parsed datagram, without padding
  std::size_t offset = 0;  // of the attribute header from the start of the message
  // RFC 8489 §14.5/§14.6: attributes after MESSAGE-INTEGRITY (other than
  // MESSAGE-INTEGRITY-SHA256 and FINGERPRINT) and after MESSAGE-INTEGRITY-SHA256 (other
  // than FINGERPRINT) must be ignored. They are reported, flagged, but find() skips them.
  bool ignored = false;
};

class MessageView;

// Walks the attributes of a MessageView. Only exists for views parse() validated, so
// it can trust every length.
class AttributeIterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using value_type = Attribute;
  using difference_type = std::ptrdiff_t;
  using pointer = const Attribute*;
  using reference = const Attribute&;

  AttributeIterator() = default;
  const Attribute& operator*() const { return current_; }
  const Attribute* operator->() const { return &current_; }
  AttributeIterator& operator++();
  AttributeIterator operator++(int) {
    auto copy = *this;
    ++*this;
    return copy;
  }
  friend bool operator==(const AttributeIterator& a, const AttributeIterator& b) {
    return a.offset_ == b.offset_;
  }

 private:
  friend class MessageView;
  AttributeIterator(const MessageView* view, std::size_t offset);
  void load();

  const MessageView* view_ = nullptr;
  std::size_t offset_ = 0;
  Attribute current_;
};

// A validated STUN message that borrows the datagram: it must not outlive the buffer
// passed to parse(). Copying is cheap (a span and a few offsets); no allocation.
class MessageView {
 public:
  [[nodiscard]] Method method() const;  // may be a value outside the Method enumerators
  [[nodiscard]] MessageClass message_class() const;
  [[nodiscard]] TransactionId transaction_id() const;
  // The whole message, header included, exactly as received.
  [[nodiscard]] ByteView raw() const { return raw_; }

  // The value of the first non-ignored attribute of this type (RFC 8489 §14: only the
  // first occurrence of an attribute needs to be processed).
  [[nodiscard]] std::optional<ByteView> find(std::uint16_t type) const;

  [[nodiscard]] AttributeIterator begin() const { return {this, kHeaderSize}; }
  [[nodiscard]] AttributeIterator end() const { return {this, raw_.size()}; }

  // Offsets of the attribute headers, if present (the first occurrence).
  [[nodiscard]] std::optional<std::size_t> integrity_offset() const { return integrity_; }
  [[nodiscard]] std::optional<std::size_t> fingerprint_offset() const { return fingerprint_; }
  // Number of attributes the parser flagged as ignored.
  [[nodiscard]] std::size_t ignored_count() const { return ignored_count_; }

  [[nodiscard]] bool is_ignored(std::size_t offset, std::uint16_t type) const;

 private:
  friend base::Result<MessageView> parse(ByteView datagram);
  ByteView raw_;
  std::optional<std::size_t> integrity_;
  std::optional<std::size_t> integrity_sha256_;
  std::optional<std::size_t> fingerprint_;
  std::size_t ignored_count_ = 0;
};

// Validates a whole datagram as one STUN message (RFC 8489 §5, §14, §6.3):
//   top two bits zero (NotStun), length multiple of 4 and 20 + length == size
//   (BadLength), magic cookie (BadMagicCookie), each attribute and its padding inside
//   the message (TruncatedAttribute), nothing after FINGERPRINT
//   (AttributeAfterFingerprint), FINGERPRINT exactly 4 bytes, MESSAGE-INTEGRITY exactly
//   20, MESSAGE-INTEGRITY-SHA256 16..32 in steps of 4 (BadAttributeLength).
// Fewer than 20 bytes: TooShort. Values of other attributes are not checked here; use the
// decoders. Allocates nothing.
[[nodiscard]] base::Result<MessageView> parse(ByteView datagram);

// RFC 8489 §14.7. Errors: NoFingerprint, FingerprintMismatch.
[[nodiscard]] base::Result<void> verify_fingerprint(const MessageView& message);

// RFC 8489 §14.5: HMAC-SHA1 over the message up to MESSAGE-INTEGRITY, with the header
// length adjusted to end just after it; compared in constant time. `key` is the
// short-term password (RFC 8489 §9.1.1) or long_term_key() (§9.2.2).
// Errors: NoMessageIntegrity, IntegrityMismatch, CryptoFailure.
[[nodiscard]] base::Result<void> verify_message_integrity(const MessageView& message, ByteView key);

// RFC 8489 §9.2.2: MD5(username ":" realm ":" password). The RFC wants realm and
// password passed through OpaqueString (SASLprep for RFC 5389 peers); we pass the bytes
// through unchanged, so callers must hand in already-prepared UTF-8. For ASCII
// credentials (all that peertun issues) the profiles are the identity.
using LongTermKey = std::array<std::uint8_t, 16>;
[[nodiscard]] LongTermKey long_term_key(std::string_view username, std::string_view realm,
                                        std::string_view password);
// RFC 8489 §9.1.1: the short-term key is the password itself (OpaqueString-prepared).
[[nodiscard]] inline ByteView short_term_key(std::string_view password) {
  return {reinterpret_cast<const std::uint8_t*>(password.data()), password.size()};
}

// RFC 8489 §14.7: CRC-32 (ISO HDLC / IEEE 802.3, as zlib) of `data`.
[[nodiscard]] std::uint32_t crc32(ByteView data);

// --- Typed decoders --------------------------------------------------------------------
// Each takes an attribute value (as returned by find()) and validates its length and
// fields. Errors: BadAttributeLength, BadAttributeValue, UnknownAddressFamily.

// XOR-MAPPED-ADDRESS, XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS (RFC 8489 §14.2).
[[nodiscard]] base::Result<base::SocketAddress> decode_xor_address(ByteView value,
                                                                   const TransactionId& txid);
// MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS, ALTERNATE-SERVER (RFC 8489 §14.1).
[[nodiscard]] base::Result<base::SocketAddress> decode_address(ByteView value);

struct ErrorCodeValue {
  std::uint16_t code = 0;   // 300..699
  std::string_view reason;  // points into the value; not validated as UTF-8
};
[[nodiscard]] base::Result<ErrorCodeValue> decode_error_code(ByteView value);

struct ChangeRequest {
  bool change_ip = false;
  bool change_port = false;
  friend bool operator==(const ChangeRequest&, const ChangeRequest&) = default;
};
[[nodiscard]] base::Result<ChangeRequest> decode_change_request(ByteView value);

// RESPONSE-PORT (RFC 5780 §7.5): a port then two bytes of padding.
[[nodiscard]] base::Result<std::uint16_t> decode_response_port(ByteView value);

// Any 32-bit attribute: PRIORITY, LIFETIME, FINGERPRINT...
[[nodiscard]] base::Result<std::uint32_t> decode_u32(ByteView value);
// ICE-CONTROLLED / ICE-CONTROLLING tie-breaker.
[[nodiscard]] base::Result<std::uint64_t> decode_u64(ByteView value);

// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13): a list of 16-bit types (even length).
[[nodiscard]] base::Result<std::vector<std::uint16_t>> decode_unknown_attributes(ByteView value);

// --- Building --------------------------------------------------------------------------

// Builds one message into a single buffer (one allocation when `reserve` is large
// enough). A message never exceeds the 16-bit length: 32 bytes stay free for
// MESSAGE-INTEGRITY and FINGERPRINT, variable values (add, add_string, add_padding,
// reasons, lists) that do not fit are cut, fixed-size ones (addresses, integers, flags)
// are dropped, and either sets overflowed(). Callers that pass peer-controlled sizes
// (PADDING) cap them first so this never happens in practice.
class MessageBuilder {
 public:
  MessageBuilder(Method method, MessageClass cls, const TransactionId& txid,
                 std::size_t reserve = 128);

  MessageBuilder& add(std::uint16_t type, ByteView value);
  MessageBuilder& add_string(std::uint16_t type, std::string_view value);
  MessageBuilder& add_u32(std::uint16_t type, std::uint32_t value);
  MessageBuilder& add_u64(std::uint16_t type, std::uint64_t value);
  // RFC 8489 §14.1 (MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS...).
  MessageBuilder& add_address(std::uint16_t type, const base::SocketAddress& address);
  // RFC 8489 §14.2 with this message's transaction id.
  MessageBuilder& add_xor_address(std::uint16_t type, const base::SocketAddress& address);
  // RFC 8489 §14.8; reason cut to kMaxReasonSize. `code` must be 300..699.
  MessageBuilder& add_error_code(std::uint16_t code, std::string_view reason);
  // RFC 5780 §7.2.
  MessageBuilder& add_change_request(bool change_ip, bool change_port);
  // RFC 5780 §7.5.
  MessageBuilder& add_response_port(std::uint16_t port);
  // RFC 5780 §7.6: `n` zero bytes.
  MessageBuilder& add_padding(std::size_t n);
  // RFC 8489 §14.13.
  MessageBuilder& add_unknown_attributes(std::span<const std::uint16_t> types);

  [[nodiscard]] bool overflowed() const { return overflowed_; }
  [[nodiscard]] std::size_t size() const { return out_.size(); }

  // Appends MESSAGE-INTEGRITY (RFC 8489 §14.5) when a key is given, then FINGERPRINT
  // (§14.7) when asked, fixes the length field and hands over the bytes.
  [[nodiscard]] Bytes finish(std::optional<ByteView> integrity_key = std::nullopt,
                             bool fingerprint = true) &&;

 private:
  // Appends a header and room for `len` value bytes (+ padding); returns the value's
  // offset or nullopt if even the header does not fit.
  // A value shorter than min_len is dropped rather than cut (fixed-size attributes).
  std::optional<std::size_t> reserve_attribute(std::uint16_t type, std::size_t& len,
                                               std::size_t min_len = 0);
  // add() for fixed-size values: all or nothing.
  MessageBuilder& add_exact(std::uint16_t type, ByteView value);
  void set_length(std::size_t body);

  Bytes out_;
  TransactionId txid_;
  bool overflowed_ = false;
};

}  // namespace peertun::stun
