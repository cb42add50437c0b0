#include "stun/message.h"

#include <algorithm>
#include <cstring>

namespace peertun::stun {
namespace {

const char* errc_message(int ev) noexcept {
  switch (static_cast<Errc>(ev)) {
    case Errc::TooShort:
      return "datagram shorter than a STUN header";
    case Errc::NotStun:
      return "top two bits of the message type are not zero";
    case Errc::BadLength:
      return "STUN length field inconsistent with the datagram";
    case Errc::BadMagicCookie:
      return "bad STUN magic cookie";
    case Errc::TruncatedAttribute:
      return "STUN attribute runs past the end of the message";
    case Errc::AttributeAfterFingerprint:
      return "STUN attribute after FINGERPRINT";
    case Errc::BadAttributeLength:
      return "STUN attribute has the wrong length for its type";
    case Errc::BadAttributeValue:
      return "STUN attribute value out of range";
    case Errc::UnknownAddressFamily:
      return "unknown address family in STUN address attribute";
    case Errc::NoMessageIntegrity:
      return "STUN message has no MESSAGE-INTEGRITY";
    case Errc::IntegrityMismatch:
      return "STUN MESSAGE-INTEGRITY does not match";
    case Errc::NoFingerprint:
      return "STUN message has no FINGERPRINT";
    case Errc::FingerprintMismatch:
      return "STUN FINGERPRINT does not match";
    case Errc::MissingAttribute:
      return "required STUN attribute missing";
    case Errc::UnexpectedMessage:
      return "unexpected STUN method or class";
    case Errc::CryptoFailure:
      return "crypto library failure";
  }
  return "unknown stun error";
}

constexpr base::SimpleErrorCategory kCategory("stun", &errc_message);

// RFC 8489 §14.1: address family codes.
constexpr std::uint8_t kFamilyV4 = 0x01;
constexpr std::uint8_t kFamilyV6 = 0x02;

constexpr std::size_t padded(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// Room kept at the end of every built message for MESSAGE-INTEGRITY (24) + FINGERPRINT (8).
constexpr std::size_t kTrailerReserve = 32;

}  // namespace

const boost::system::error_category& error_category() noexcept { return kCategory; }

std::uint16_t encode_message_type(Method method, MessageClass cls) {
  const auto m = static_cast<unsigned>(method) & kMaxMethod;
  const auto c = static_cast<unsigned>(cls);
  return static_cast<std::uint16_t>((m & 0x000Fu) | ((m & 0x0070u) << 1) | ((m & 0x0F80u) << 2) |
                                    ((c & 0b01u) << 4) | ((c & 0b10u) << 7));
}

bool is_known_attribute(std::uint16_t type) {
  switch (type) {
    case attr::kMappedAddress:
    case attr::kChangeRequest:
    case attr::kUsername:
    case attr::kMessageIntegrity:
    case attr::kErrorCode:
    case attr::kUnknownAttributes:
    case attr::kChannelNumber:
    case attr::kLifetime:
    case attr::kXorPeerAddress:
    case attr::kData:
    case attr::kRealm:
    case attr::kNonce:
    case attr::kXorRelayedAddress:
    case attr::kRequestedAddressFamily:
    case attr::kEvenPort:
    case attr::kRequestedTransport:
    case attr::kDontFragment:
    case attr::kMessageIntegritySha256:
    case attr::kPasswordAlgorithm:
    case attr::kUserhash:
    case attr::kXorMappedAddress:
    case attr::kReservationToken:
    case attr::kPriority:
    case attr::kUseCandidate:
    case attr::kPadding:
    case attr::kResponsePort:
    case attr::kAdditionalAddressFamily:
    case attr::kAddressErrorCode:
    case attr::kPasswordAlgorithms:
    case attr::kAlternateDomain:
    case attr::kIcmp:
    case attr::kSoftware:
    case attr::kAlternateServer:
    case attr::kFingerprint:
    case attr::kIceControlled:
    case attr::kIceControlling:
    case attr::kResponseOrigin:
    case attr::kOtherAddress:
      return true;
    default:
      return false;
  }
}

// --- Parsing ---------------------------------------------------------------------------

bool looks_like_stun(ByteView datagram) {
  if (datagram.size() < kHeaderSize || datagram[0] > 3) {
    return false;
  }
  const std::size_t length = wire::load_u16(&datagram[2]);
  return length % 4 == 0 && kHeaderSize + length == datagram.size() &&
         wire::load_u32(&datagram[4]) == kMagicCookie;
}

AttributeIterator::AttributeIterator(const MessageView* view, std::size_t offset)
    : view_(view), offset_(offset) {
  load();
}

void AttributeIterator::load() {
  const ByteView raw = view_->raw();
  // parse() proved that every header and value lies inside raw; the end is exactly
  // raw.size().
  if (offset_ + kAttributeHeaderSize > raw.size()) {
    offset_ = raw.size();
    current_ = {};
    return;
  }
  current_.type = wire::load_u16(&raw[offset_]);
  const std::size_t len = wire::load_u16(&raw[offset_ + 2]);
  current_.value = raw.subspan(offset_ + kAttributeHeaderSize, len);
  current_.offset = offset_;
  current_.ignored = view_->is_ignored(offset_, current_.type);
}

AttributeIterator& AttributeIterator::operator++() {
  offset_ += kAttributeHeaderSize + padded(current_.value.size());
  load();
  return *this;
}

Method MessageView::method() const {
  const unsigned t = wire::load_u16(raw_.data());
  return static_cast<Method>((t & 0x000Fu) | ((t & 0x00E0u) >> 1) | ((t & 0x3E00u) >> 2));
}

MessageClass MessageView::message_class() const {
  const unsigned t = wire::load_u16(raw_.data());
  return static_cast<MessageClass>(((t >> 4) & 0b01u) | ((t >> 7) & 0b10u));
}

TransactionId MessageView::transaction_id() const {
  TransactionId id;
  std::memcpy(id.data(), raw_.data() + 8, id.size());
  return id;
}

bool MessageView::is_ignored(std::size_t offset, std::uint16_t type) const {
  if (integrity_ && offset > *integrity_ && type != attr::kFingerprint &&
      type != attr::kMessageIntegritySha256) {
    return true;
  }
  return integrity_sha256_ && offset > *integrity_sha256_ && type != attr::kFingerprint;
}

std::optional<ByteView> MessageView::find(std::uint16_t type) const {
  for (const Attribute& a : *this) {
    if (a.type == type && !a.ignored) {
      return a.value;
    }
  }
  return std::nullopt;
}

base::Result<MessageView> parse(ByteView datagram) {
  if (datagram.size() < kHeaderSize) {
    return Errc::TooShort;
  }
  if ((datagram[0] & 0xC0) != 0) {
    return Errc::NotStun;
  }
  const std::size_t length = wire::load_u16(&datagram[2]);
  if (length % 4 != 0 || kHeaderSize + length != datagram.size()) {
    return Errc::BadLength;
  }
  if (wire::load_u32(&datagram[4]) != kMagicCookie) {
    return Errc::BadMagicCookie;
  }

  MessageView view;
  view.raw_ = datagram;
  std::size_t offset = kHeaderSize;
  while (offset < datagram.size()) {
    if (view.fingerprint_) {
      return Errc::AttributeAfterFingerprint;
    }
    // The total is a multiple of 4 and so is offset, so 4 header bytes are present.
    const std::uint16_t type = wire::load_u16(&datagram[offset]);
    const std::size_t len = wire::load_u16(&datagram[offset + 2]);
    if (padded(len) > datagram.size() - offset - kAttributeHeaderSize) {
      return Errc::TruncatedAttribute;
    }
    const bool ignored = view.is_ignored(offset, type);
    if (ignored) {
      ++view.ignored_count_;
    } else if (type == attr::kFingerprint) {
      if (len != 4) {
        return Errc::BadAttributeLength;
      }
      view.fingerprint_ = offset;
    } else if (type == attr::kMessageIntegrity && !view.integrity_) {
      if (len != kMessageIntegritySize) {
        return Errc::BadAttributeLength;
      }
      view.integrity_ = offset;
    } else if (type == attr::kMessageIntegritySha256 && !view.integrity_sha256_) {
      // RFC 8489 §14.6: at least 16 bytes, at most 32, a multiple of 4.
      if (len < 16 || len > 32 || len % 4 != 0) {
        return Errc::BadAttributeLength;
      }
      view.integrity_sha256_ = offset;
    }
    offset += kAttributeHeaderSize + padded(len);
  }
  return view;
}

// --- Decoders --------------------------------------------------------------------------

namespace {

base::Result<base::SocketAddress> decode_address_impl(ByteView value, const TransactionId* txid) {
  if (value.size() < 4) {
    return Errc::BadAttributeLength;
  }
  // value[0] is reserved: RFC 8489 §14.1 says it MUST be ignored on receipt.
  const std::uint8_t family = value[1];
  std::uint16_t port = wire::load_u16(&value[2]);
  if (txid) {
    port = static_cast<std::uint16_t>(port ^ (kMagicCookie >> 16));
  }
  if (family == kFamilyV4) {
    if (value.size() != 8) {
      return Errc::BadAttributeLength;
    }
    std::array<std::uint8_t, 4> ip;
    std::memcpy(ip.data(), &value[4], 4);
    if (txid) {
      std::uint32_t x = wire::load_u32(ip.data()) ^ kMagicCookie;
      wire::store_u32(ip.data(), x);
    }
    return base::SocketAddress(base::IpAddress::v4(ip), port);
  }
  if (family == kFamilyV6) {
    if (value.size() != 20) {
      return Errc::BadAttributeLength;
    }
    std::array<std::uint8_t, 16> ip;
    std::memcpy(ip.data(), &value[4], 16);
    if (txid) {
      std::array<std::uint8_t, 16> mask;
      wire::store_u32(mask.data(), kMagicCookie);
      std::memcpy(mask.data() + 4, txid->data(), txid->size());
      for (std::size_t i = 0; i < ip.size(); ++i) {
        ip[i] = static_cast<std::uint8_t>(ip[i] ^ mask[i]);
      }
    }
    return base::SocketAddress(base::IpAddress::v6(ip), port);
  }
  return Errc::UnknownAddressFamily;
}

}  // namespace

base::Result<base::SocketAddress> decode_xor_address(ByteView value, const TransactionId& txid) {
  return decode_address_impl(value, &txid);
}

base::Result<base::SocketAddress> decode_address(ByteView value) {
  return decode_address_impl(value, nullptr);
}

base::Result<ErrorCodeValue> decode_error_code(ByteView value) {
  if (value.size() < 4 || value.size() > 4 + kMaxReasonSize) {
    return Errc::BadAttributeLength;
  }
  // RFC 8489 §14.8: 21 reserved bits, Class (3 bits, 3..6), Number (0..99).
  const unsigned cls = value[2] & 0x07u;
  const unsigned number = value[3];
  if (cls < 3 || cls > 6 || number > 99) {
    return Errc::BadAttributeValue;
  }
  ErrorCodeValue out;
  out.code = static_cast<std::uint16_t>(cls * 100 + number);
  out.reason = std::string_view(reinterpret_cast<const char*>(value.data() + 4), value.size() - 4);
  return out;
}

base::Result<ChangeRequest> decode_change_request(ByteView value) {
  if (value.size() != 4) {
    return Errc::BadAttributeLength;
  }
  const std::uint32_t flags = wire::load_u32(value.data());
  return ChangeRequest{(flags & kChangeIpFlag) != 0, (flags & kChangePortFlag) != 0};
}

base::Result<std::uint16_t> decode_response_port(ByteView value) {
  if (value.size() != 4) {
    return Errc::BadAttributeLength;
  }
  return wire::load_u16(value.data());
}

base::Result<std::uint32_t> decode_u32(ByteView value) {
  if (value.size() != 4) {
    return Errc::BadAttributeLength;
  }
  return wire::load_u32(value.data());
}

base::Result<std::uint64_t> decode_u64(ByteView value) {
  if (value.size() != 8) {
    return Errc::BadAttributeLength;
  }
  return (std::uint64_t{wire::load_u32(value.data())} << 32) | wire::load_u32(value.data() + 4);
}

base::Result<std::vector<std::uint16_t>> decode_unknown_attributes(ByteView value) {
  if (value.size() % 2 != 0) {
    return Errc::BadAttributeLength;
  }
  std::vector<std::uint16_t> out;
  out.reserve(value.size() / 2);
  for (std::size_t i = 0; i < value.size(); i += 2) {
    out.push_back(wire::load_u16(&value[i]));
  }
  return out;
}

// --- Building --------------------------------------------------------------------------

MessageBuilder::MessageBuilder(Method method, MessageClass cls, const TransactionId& txid,
                               std::size_t reserve)
    : txid_(txid) {
  out_.reserve(std::max(reserve, kHeaderSize));
  out_.resize(kHeaderSize);
  wire::store_u16(out_.data(), encode_message_type(method, cls));
  wire::store_u32(out_.data() + 4, kMagicCookie);
  std::memcpy(out_.data() + 8, txid.data(), txid.size());
}

void MessageBuilder::set_length(std::size_t body) {
  wire::store_u16(out_.data() + 2, static_cast<std::uint16_t>(body));
}

std::optional<std::size_t> MessageBuilder::reserve_attribute(std::uint16_t type, std::size_t& len,
                                                             std::size_t min_len) {
  const std::size_t limit = kMaxBodySize - kTrailerReserve;
  const std::size_t used = out_.size() - kHeaderSize;
  if (used + kAttributeHeaderSize > limit) {
    overflowed_ = true;
    return std::nullopt;
  }
  const std::size_t room = (limit - used - kAttributeHeaderSize) & ~std::size_t{3};
  if (room < min_len) {
    overflowed_ = true;
    return std::nullopt;
  }
  if (len > room) {
    len = room;
    overflowed_ = true;
  }
  const std::size_t at = out_.size();
  out_.resize(at + kAttributeHeaderSize + padded(len), 0);
  wire::store_u16(&out_[at], type);
  wire::store_u16(&out_[at + 2], static_cast<std::uint16_t>(len));
  return at + kAttributeHeaderSize;
}

MessageBuilder& MessageBuilder::add(std::uint16_t type, ByteView value) {
  std::size_t len = value.size();
  if (auto at = reserve_attribute(type, len); at && len > 0) {
    std::memcpy(&out_[*at], value.data(), len);
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_exact(std::uint16_t type, ByteView value) {
  std::size_t len = value.size();
  if (auto at = reserve_attribute(type, len, value.size()); at && len > 0) {
    std::memcpy(&out_[*at], value.data(), len);
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_string(std::uint16_t type, std::string_view value) {
  return add(type, ByteView(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()));
}

MessageBuilder& MessageBuilder::add_u32(std::uint16_t type, std::uint32_t value) {
  std::array<std::uint8_t, 4> b;
  wire::store_u32(b.data(), value);
  return add_exact(type, b);
}

MessageBuilder& MessageBuilder::add_u64(std::uint16_t type, std::uint64_t value) {
  std::array<std::uint8_t, 8> b;
  wire::store_u32(b.data(), static_cast<std::uint32_t>(value >> 32));
  wire::store_u32(b.data() + 4, static_cast<std::uint32_t>(value));
  return add_exact(type, b);
}

MessageBuilder& MessageBuilder::add_address(std::uint16_t type,
                                            const base::SocketAddress& address) {
  std::array<std::uint8_t, 20> b{};
  const auto ip = address.ip().bytes();
  b[1] = address.ip().is_v4() ? kFamilyV4 : kFamilyV6;
  wire::store_u16(&b[2], address.port());
  std::memcpy(&b[4], ip.data(), ip.size());
  return add_exact(type, ByteView(b.data(), 4 + ip.size()));
}

MessageBuilder& MessageBuilder::add_xor_address(std::uint16_t type,
                                                const base::SocketAddress& address) {
  std::array<std::uint8_t, 20> b{};
  const auto ip = address.ip().bytes();
  b[1] = address.ip().is_v4() ? kFamilyV4 : kFamilyV6;
  wire::store_u16(&b[2], static_cast<std::uint16_t>(address.port() ^ (kMagicCookie >> 16)));
  std::array<std::uint8_t, 16> mask;
  wire::store_u32(mask.data(), kMagicCookie);
  std::memcpy(mask.data() + 4, txid_.data(), txid_.size());
  for (std::size_t i = 0; i < ip.size(); ++i) {
    b[4 + i] = static_cast<std::uint8_t>(ip[i] ^ mask[i]);
  }
  return add_exact(type, ByteView(b.data(), 4 + ip.size()));
}

MessageBuilder& MessageBuilder::add_error_code(std::uint16_t code, std::string_view reason) {
  reason = reason.substr(0, kMaxReasonSize);
  std::size_t len = 4 + reason.size();
  if (auto at = reserve_attribute(attr::kErrorCode, len, 4)) {
    out_[*at + 2] = static_cast<std::uint8_t>((code / 100) & 0x07);
    out_[*at + 3] = static_cast<std::uint8_t>(code % 100);
    if (len > 4) {
      std::memcpy(&out_[*at + 4], reason.data(), len - 4);
    }
  }
  return *this;
}

MessageBuilder& MessageBuilder::add_change_request(bool change_ip, bool change_port) {
  return add_u32(attr::kChangeRequest,
                 (change_ip ? kChangeIpFlag : 0u) | (change_port ? kChangePortFlag : 0u));
}

MessageBuilder& MessageBuilder::add_response_port(std::uint16_t port) {
  std::array<std::uint8_t, 4> b{};
  wire::store_u16(b.data(), port);
  return add_exact(attr::kResponsePort, b);
}

MessageBuilder& MessageBuilder::add_padding(std::size_t n) {
  // reserve_attribute zero-fills, so no source buffer is needed.
  reserve_attribute(attr::kPadding, n);
  return *this;
}

MessageBuilder& MessageBuilder::add_unknown_attributes(std::span<const std::uint16_t> types) {
  std::size_t len = types.size() * 2;
  if (auto at = reserve_attribute(attr::kUnknownAttributes, len)) {
    for (std::size_t i = 0; i * 2 < len; ++i) {
      wire::store_u16(&out_[*at + i * 2], types[i]);
    }
  }
  return *this;
}

}  // namespace peertun::stun
