#include "stun/binding_server.h"

#include <algorithm>
#include <array>

namespace peertun::stun {
namespace {

// An RFC 8489 §14.1/§14.2 address attribute: header + 4 + 4|16 bytes.
std::size_t address_attribute_size(const base::IpAddress& ip) {
  return kAttributeHeaderSize + 4 + ip.bytes().size();
}

constexpr std::size_t padded(std::size_t n) { return (n + 3) & ~std::size_t{3}; }
constexpr std::size_t kFingerprintSize = kAttributeHeaderSize + 4;

// UNKNOWN-ATTRIBUTES lists at most this many types; more are dropped from the list (the
// request is rejected either way). Keeps the scan allocation-free.
constexpr std::size_t kMaxUnknownListed = 16;

std::string_view software_of(const BindingServerConfig& config) {
  return std::string_view(config.software).substr(0, kMaxSoftwareSize);
}

Outcome error_reply(const MessageView& request, const Arrival& arrival,
                    const BindingServerConfig& config, std::uint16_t code, std::string_view reason,
                    std::span<const std::uint16_t> unknown) {
  const std::string_view software = software_of(config);
  const std::size_t size =
      kHeaderSize + kAttributeHeaderSize + padded(4 + reason.size()) +
      (unknown.empty() ? 0 : kAttributeHeaderSize + padded(unknown.size() * 2)) +
      (software.empty() ? 0 : kAttributeHeaderSize + padded(software.size())) + kFingerprintSize;
  MessageBuilder b(Method::Binding, MessageClass::ErrorResponse, request.transaction_id(), size);
  b.add_error_code(code, reason);
  if (!unknown.empty()) {
    b.add_unknown_attributes(unknown);
  }
  if (!software.empty()) {
    b.add_string(attr::kSoftware, software);
  }
  Outcome out;
  out.disposition = Disposition::Reply;
  out.reply = BindingReply{std::move(b).finish(std::nullopt, true), arrival.on_alternate_ip,
                           arrival.on_alternate_port, arrival.source};
  return out;
}

}  // namespace

Outcome handle_binding(ByteView datagram, const Arrival& arrival,
                       const BindingServerConfig& config) {
  auto parsed = parse(datagram);
  if (!parsed) {
    return {Disposition::Malformed, std::nullopt};
  }
  const MessageView& request = *parsed;
  if (request.method() != Method::Binding) {
    return {Disposition::NotForBinding, std::nullopt};
  }
  // RFC 8489 §6.3: a FINGERPRINT that does not match means "not STUN": discard.
  if (request.fingerprint_offset() && !verify_fingerprint(request)) {
    return {Disposition::Malformed, std::nullopt};
  }
  if (request.message_class() != MessageClass::Request) {
    return {Disposition::Ignored, std::nullopt};
  }

  const bool discovery = config.alternate_port != 0 && config.alternate_port != config.primary_port;

  // RFC 8489 §6.3.1: collect unknown comprehension-required attributes; remember the
  // RFC 5780 ones (first occurrence only, §14).
  std::array<std::uint16_t, kMaxUnknownListed> unknown{};
  std::size_t unknown_count = 0;
  std::optional<ByteView> change_request;
  std::optional<ByteView> response_port;
  std::optional<ByteView> padding;
  for (const Attribute& a : request) {
    if (a.ignored) {
      continue;
    }
    const bool discovery_attribute =
        a.type == attr::kChangeRequest || a.type == attr::kResponsePort || a.type == attr::kPadding;
    const bool understood = is_known_attribute(a.type) && (discovery || !discovery_attribute);
    if (!understood && is_comprehension_required(a.type)) {
      const auto listed = std::span(unknown.data(), unknown_count);
      if (unknown_count < unknown.size() &&
          std::find(listed.begin(), listed.end(), a.type) == listed.end()) {
        unknown[unknown_count++] = a.type;
      }
      continue;
    }
    if (!discovery_attribute || !understood) {
      continue;
    }
    if (a.type == attr::kChangeRequest && !change_request) {
      change_request = a.value;
    } else if (a.type == attr::kResponsePort && !response_port) {
      response_port = a.value;
    } else if (a.type == attr::kPadding && !padding) {
      padding = a.value;
    }
  }
  if (unknown_count > 0) {
    return error_reply(request, arrival, config, status::kUnknownAttribute, "Unknown Attribute",
                       std::span(unknown.data(), unknown_count));
  }

  ChangeRequest change;
  if (change_request) {
    auto c = decode_change_request(*change_request);
    if (!c) {
      return error_reply(request, arrival, config, status::kBadRequest, "Bad CHANGE-REQUEST", {});
    }
    change = *c;
  }
  base::SocketAddress destination = arrival.source;
  if (response_port) {
    auto p = decode_response_port(*response_port);
    if (!p || *p == 0) {
      return error_reply(request, arrival, config, status::kBadRequest, "Bad RESPONSE-PORT", {});
    }
    destination = base::SocketAddress(arrival.source.ip(), *p);
  }

  // Where we are and what the "other" address is (RFC 5780 §7.4). Addresses in
  // attributes are reported without IPv4-mapped IPv6 wrapping, as the client sees them.
  const base::IpAddress primary =
      (config.primary_ip.is_unspecified() ? arrival.local_ip : config.primary_ip).unmapped();
  const base::IpAddress current =
      arrival.on_alternate_ip && config.alternate_ip ? config.alternate_ip->unmapped() : primary;
  const bool has_other_ip = config.alternate_ip && !primary.is_unspecified() &&
                            config.alternate_ip->unmapped().family() == primary.family() &&
                            config.alternate_ip->unmapped() != primary;
  const base::IpAddress other =
      has_other_ip ? (arrival.on_alternate_ip ? primary : config.alternate_ip->unmapped())
                   : current;
  const std::uint16_t current_port =
      arrival.on_alternate_port ? config.alternate_port : config.primary_port;
  const std::uint16_t other_port =
      arrival.on_alternate_port ? config.primary_port : config.alternate_port;

  const bool change_ip = discovery && has_other_ip && change.change_ip;
  const bool change_port = discovery && change.change_port;
  const base::SocketAddress origin(change_ip ? other : current,
                                   change_port ? other_port : current_port);
  const base::SocketAddress mapped(arrival.source.ip().unmapped(), arrival.source.port());

  const std::string_view software = software_of(config);
  std::size_t fixed = kHeaderSize + 2 * address_attribute_size(mapped.ip()) +
                      (software.empty() ? 0 : kAttributeHeaderSize + padded(software.size())) +
                      kFingerprintSize;
  if (discovery) {
    fixed += address_attribute_size(origin.ip()) + address_attribute_size(other);
  }
  std::size_t padding_size = 0;
  if (padding) {
    // Same length as the request's, capped at the request size (no amplification) and at
    // what still fits in one UDP datagram.
    const std::size_t room = kMaxReplySize - fixed - kAttributeHeaderSize;
    padding_size = std::min({padding->size(), datagram.size(), room & ~std::size_t{3}});
  }
  const std::size_t size =
      fixed + (padding ? kAttributeHeaderSize + padded(padding_size) : std::size_t{0});

  MessageBuilder b(Method::Binding, MessageClass::SuccessResponse, request.transaction_id(), size);
  b.add_xor_address(attr::kXorMappedAddress, mapped);
  // MAPPED-ADDRESS too, for RFC 3489-era clients (coturn's stunclient prints both).
  b.add_address(attr::kMappedAddress, mapped);
  if (discovery) {
    b.add_address(attr::kResponseOrigin, origin);
    b.add_address(attr::kOtherAddress, base::SocketAddress(other, other_port));
  }
  if (padding) {
    b.add_padding(padding_size);
  }
  if (!software.empty()) {
    b.add_string(attr::kSoftware, software);
  }

  Outcome out;
  out.disposition = Disposition::Reply;
  out.reply =
      BindingReply{std::move(b).finish(std::nullopt, true), change_ip != arrival.on_alternate_ip,
                   change_port != arrival.on_alternate_port, destination};
  return out;
}

}  // namespace peertun::stun
