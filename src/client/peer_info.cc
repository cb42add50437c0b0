#include "client/peer_info.h"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/system/errc.hpp>

namespace peertun::client {
namespace json = boost::json;

std::string encode_peer_info(const PeerInfo& info) {
  json::object o;
  o["v"] = 1;
  o["type"] = "peer_info";
  if (info.reflexive) {
    o["reflexive"] = info.reflexive->to_string();
  }
  json::array host;
  for (const auto& h : info.host) {
    host.emplace_back(h.to_string());
  }
  o["host"] = std::move(host);
  if (info.nat) {
    o["nat"] = traversal::to_json(*info.nat);
  }
  if (info.fingerprint) {
    o["fingerprint"] = *info.fingerprint;
  }
  if (info.share_name) {
    o["share_name"] = *info.share_name;
  }
  return json::serialize(o);
}

base::Result<PeerInfo> decode_peer_info(std::string_view text) {
  const auto invalid = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  if (text.size() > kMaxPeerInfoBytes) {
    return invalid;
  }
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    return invalid;
  }
  const auto& o = v.get_object();
  const auto* version = o.if_contains("v");
  const auto* type = o.if_contains("type");
  if (version == nullptr || !version->is_int64() || version->get_int64() != 1) {
    return invalid;
  }
  if (type == nullptr || !type->is_string() || type->get_string() != "peer_info") {
    return invalid;
  }
  PeerInfo info;
  if (const auto* r = o.if_contains("reflexive")) {
    if (!r->is_string()) {
      return invalid;
    }
    auto addr = base::SocketAddress::parse(std::string_view(r->get_string()));
    if (!addr) {
      return invalid;
    }
    info.reflexive = *addr;
  }
  if (const auto* h = o.if_contains("host")) {
    if (!h->is_array() || h->get_array().size() > kMaxHostCandidates) {
      return invalid;
    }
    for (const auto& item : h->get_array()) {
      if (!item.is_string()) {
        return invalid;
      }
      auto addr = base::SocketAddress::parse(std::string_view(item.get_string()));
      if (!addr) {
        return invalid;
      }
      info.host.push_back(*addr);
    }
  }
  if (const auto* f = o.if_contains("fingerprint")) {
    const json::string* hex = f->if_string();
    if (hex == nullptr || hex->size() != kFingerprintHexLength ||
        !std::all_of(hex->begin(), hex->end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); })) {
      return invalid;
    }
    info.fingerprint = std::string(*hex);
  }
  if (const auto* n = o.if_contains("share_name")) {
    const json::string* name = n->if_string();
    // Shown on B's terminal: no escape sequences or line breaks from the peer.
    if (name == nullptr || name->empty() || name->size() > kMaxShareNameBytes ||
        std::any_of(name->begin(), name->end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return u < 0x20 || u == 0x7f;
        })) {
      return invalid;
    }
    info.share_name = std::string(*name);
  }
  if (const auto* n = o.if_contains("nat")) {
    auto verdict = traversal::nat_verdict_from_json(*n);
    if (!verdict) {
      return invalid;
    }
    info.nat = std::move(*verdict);
  }
  return info;
}

std::optional<base::SocketAddress> best_address(const PeerInfo& info) {
  if (info.reflexive) {
    return info.reflexive;
  }
  if (!info.host.empty()) {
    return info.host.front();
  }
  return std::nullopt;
}

}  // namespace peertun::client
