#include "control/codec.h"

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <utility>

#include "base/socket_address.h"
#include "wire/base64.h"
#include "wire/crockford.h"

namespace peertun::control {
namespace json = boost::json;

namespace {

const char* errc_message(int ev) noexcept {
  switch (static_cast<Errc>(ev)) {
    case Errc::TooLarge:
      return "control message too large";
    case Errc::NotJson:
      return "control message is not JSON";
    case Errc::NotAnObject:
      return "control message is not a JSON object";
    case Errc::UnsupportedVersion:
      return "unsupported control protocol version";
    case Errc::UnknownType:
      return "unknown control message type";
    case Errc::MissingField:
      return "control message lacks a required field";
    case Errc::BadField:
      return "control message has a malformed field";
  }
  return "unknown control error";
}

constexpr base::SimpleErrorCategory kCategory("peertun.control", &errc_message);

// ---- enum spellings: one table per enum, used both ways ----

template <class E>
struct Spelling {
  E value;
  std::string_view text;
};

constexpr Spelling<AbortReason> kAbortReasons[] = {
    {AbortReason::WrongCode, "wrong_code"},
    {AbortReason::Cancelled, "cancelled"},
    {AbortReason::ProtocolError, "protocol_error"},
    {AbortReason::Unknown, "unknown"},
};

constexpr Spelling<PeerLeftReason> kPeerLeftReasons[] = {
    {PeerLeftReason::Disconnected, "disconnected"},
    {PeerLeftReason::WrongCode, "wrong_code"},
    {PeerLeftReason::Cancelled, "cancelled"},
    {PeerLeftReason::ProtocolError, "protocol_error"},
    {PeerLeftReason::Unknown, "unknown"},
};

constexpr Spelling<ErrorCode> kErrorCodes[] = {
    {ErrorCode::MissingToken, "missing_token"},
    {ErrorCode::BadToken, "bad_token"},
    {ErrorCode::BadMessage, "bad_message"},
    {ErrorCode::UnsupportedVersion, "unsupported_version"},
    {ErrorCode::UnknownNameplate, "unknown_nameplate"},
    {ErrorCode::NameplateExpired, "nameplate_expired"},
    {ErrorCode::NameplateInUse, "nameplate_in_use"},
    {ErrorCode::NotInSession, "not_in_session"},
    {ErrorCode::AlreadyInSession, "already_in_session"},
    {ErrorCode::RateLimited, "rate_limited"},
    {ErrorCode::Internal, "internal"},
    {ErrorCode::Unknown, "unknown"},
};

constexpr Spelling<PathOutcome> kPathOutcomes[] = {
    {PathOutcome::Direct, "direct"},
    {PathOutcome::Failed, "failed"},
    {PathOutcome::Impossible, "impossible"},
    {PathOutcome::Unknown, "unknown"},
};

template <class E, std::size_t N>
std::string_view spell(const Spelling<E> (&table)[N], E value) {
  for (const auto& s : table) {
    if (s.value == value) {
      return s.text;
    }
  }
  return "unknown";
}

// Forward compatibility: a spelling this version does not know becomes Unknown.
template <class E, std::size_t N>
E unspell(const Spelling<E> (&table)[N], std::string_view text) {
  for (const auto& s : table) {
    if (s.text == text) {
      return s.value;
    }
  }
  return E::Unknown;
}

// ---- field formats ----

bool is_token(std::string_view s) {
  if (s.empty() || s.size() > kMaxTokenLength) {
    return false;
  }
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) {
      return false;
    }
  }
  return true;
}

// Canonical nameplate ("2a9l" -> "2A91"), or nullopt if not 4 Crockford symbols.
std::optional<std::string> canonical_nameplate(std::string_view s) {
  if (s.size() != kNameplateLength) {
    return std::nullopt;
  }
  const auto value = wire::crockford_decode(s);
  if (!value) {
    return std::nullopt;
  }
  return wire::crockford_encode(*value, static_cast<int>(kNameplateLength));
}

bool is_session_id(std::string_view s) {
  if (s.size() != kSessionIdLength) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// Address text holds only these characters. base::IpAddress::parse hands the text to
// inet_pton as a C string, which would stop at an embedded NUL and accept the prefix.
bool has_only_address_chars(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                    c == '.' || c == ':' || c == '[' || c == ']';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// ---- decoding ----

// One message object being decoded; records why it failed in `detail`.
class Fields {
 public:
  Fields(const json::object& object, std::string& detail) : object_(object), detail_(detail) {}

  base::ErrorCode fail(Errc code, std::string_view field, std::string_view what) {
    detail_ = "field \"";
    detail_ += field;
    detail_ += "\": ";
    detail_ += what;
    return make_error_code(code);
  }

  // Present and not null.
  [[nodiscard]] bool has(std::string_view key) const {
    const json::value* v = object_.if_contains(key);
    return v != nullptr && !v->is_null();
  }

  base::Result<const json::value*> required(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr) {
      return fail(Errc::MissingField, key, "missing");
    }
    return v;
  }

  base::Result<std::string_view> string(std::string_view key) {
    auto v = required(key);
    if (!v) {
      return v.error();
    }
    const json::string* s = (*v)->if_string();
    if (s == nullptr) {
      return fail(Errc::BadField, key, "expected a string");
    }
    return std::string_view(*s);
  }

  // A UTF-8 string (the JSON parser has validated the encoding) of bounded length.
  base::Result<std::string> text(std::string_view key, std::size_t min, std::size_t max) {
    auto s = string(key);
    if (!s) {
      return s.error();
    }
    if (s->size() < min || s->size() > max) {
      return fail(Errc::BadField, key,
                  "length must be " + std::to_string(min) + ".." + std::to_string(max) + " bytes");
    }
    return std::string(*s);
  }

  // An integer in [min, max]. JSON numbers with a fraction or exponent are refused even
  // when integral, so every accepted value has one spelling.
  base::Result<std::uint64_t> integer(std::string_view key, std::uint64_t min, std::uint64_t max) {
    auto v = required(key);
    if (!v) {
      return v.error();
    }
    std::optional<std::uint64_t> n;
    if (const auto* i = (*v)->if_int64()) {
      if (*i >= 0) {
        n = static_cast<std::uint64_t>(*i);
      }
    } else if (const auto* u = (*v)->if_uint64()) {
      n = *u;
    } else if (!(*v)->is_double()) {
      return fail(Errc::BadField, key, "expected an integer");
    }
    if (!n || *n < min || *n > max) {
      return fail(Errc::BadField, key,
                  "expected an integer in " + std::to_string(min) + ".." + std::to_string(max));
    }
    return *n;
  }

  base::Result<std::string> nameplate(std::string_view key) {
    auto s = string(key);
    if (!s) {
      return s.error();
    }
    auto canonical = canonical_nameplate(*s);
    if (!canonical) {
      return fail(Errc::BadField, key, "expected 4 Crockford base32 symbols");
    }
    return std::move(*canonical);
  }

  base::Result<std::string> session_id(std::string_view key) {
    auto s = string(key);
    if (!s) {
      return s.error();
    }
    if (!is_session_id(*s)) {
      return fail(Errc::BadField, key, "expected 32 lower-case hex digits");
    }
    return std::string(*s);
  }

  template <class E, std::size_t N>
  base::Result<E> enumeration(std::string_view key, const Spelling<E> (&table)[N]) {
    auto s = string(key);
    if (!s) {
      return s.error();
    }
    return unspell(table, *s);
  }

  base::Result<wire::Bytes> payload(std::string_view key) {
    auto s = string(key);
    if (!s) {
      return s.error();
    }
    auto bytes = wire::base64_decode(*s, kMaxSignalPayload);
    if (!bytes) {
      return fail(
          Errc::BadField, key,
          "expected canonical base64 of at most " + std::to_string(kMaxSignalPayload) + " bytes");
    }
    if (bytes->empty()) {
      return fail(Errc::BadField, key, "must not be empty");
    }
    return std::move(*bytes);
  }

  base::Result<base::SocketAddress> socket_address(std::string_view key) {
    auto s = string(key);
    if (!s) {
      return s.error();
    }
    std::optional<base::SocketAddress> a;
    if (has_only_address_chars(*s)) {
      a = base::SocketAddress::parse(*s);
    }
    if (!a || a->port() == 0) {
      return fail(Errc::BadField, key,
                  "expected \"ip:port\" or \"[ipv6]:port\" with port 1..65535");
    }
    return *a;
  }

  // Absent or null: nullopt.
  base::Result<std::optional<base::IpAddress>> optional_ip(std::string_view key) {
    const json::value* v = object_.if_contains(key);
    if (v == nullptr || v->is_null()) {
      return std::optional<base::IpAddress>();
    }
    const json::string* s = v->if_string();
    std::optional<base::IpAddress> ip;
    if (s != nullptr && has_only_address_chars(*s)) {
      ip = base::IpAddress::parse(*s);
    }
    if (!ip) {
      return fail(Errc::BadField, key, "expected an IPv4 or IPv6 address");
    }
    return std::optional<base::IpAddress>(*ip);
  }

 private:
  const json::object& object_;
  std::string& detail_;
};

// Propagates an error out of the enclosing decoder.
#define PEERTUN_CONTROL_TRY(var, expr) \
  auto var = (expr);                   \
  if (!var) {                          \
    return var.error();                \
  }

base::Result<ClientMessage> decode_hello(Fields& f) {
  // The token is checked without ever copying it into `detail`.
  PEERTUN_CONTROL_TRY(token, f.string("token"));
  if (!is_token(*token)) {
    return f.fail(Errc::BadField, "token", "expected 1..256 visible ASCII characters");
  }
  PEERTUN_CONTROL_TRY(client, f.text("client", 1, kMaxSoftwareLength));
  return Hello{base::Secret(std::string(*token)), std::move(*client)};
}

base::Result<ClientMessage> decode_join_session(Fields& f) {
  PEERTUN_CONTROL_TRY(nameplate, f.nameplate("nameplate"));
  return JoinSession{std::move(*nameplate)};
}

base::Result<Signal> decode_signal(Fields& f) {
  PEERTUN_CONTROL_TRY(payload, f.payload("payload"));
  return Signal{std::move(*payload)};
}

base::Result<ClientMessage> decode_abort(Fields& f) {
  PEERTUN_CONTROL_TRY(reason, f.enumeration("reason", kAbortReasons));
  return Abort{*reason};
}

base::Result<ClientMessage> decode_path_report(Fields& f) {
  PEERTUN_CONTROL_TRY(outcome, f.enumeration("outcome", kPathOutcomes));
  PEERTUN_CONTROL_TRY(reason, f.text("reason", 0, kMaxPathReasonLength));
  std::optional<std::uint32_t> rtt;
  if (f.has("rtt_ms")) {
    PEERTUN_CONTROL_TRY(ms, f.integer("rtt_ms", 0, kMaxReportedRttMs));
    rtt = static_cast<std::uint32_t>(*ms);
  }
  return PathReport{*outcome, std::move(*reason), rtt};
}

base::Result<RelayMessage> decode_welcome(Fields& f) {
  PEERTUN_CONTROL_TRY(observed, f.socket_address("observed_address"));
  PEERTUN_CONTROL_TRY(stun_port, f.integer("stun_port", 1, 65535));
  PEERTUN_CONTROL_TRY(alt_port, f.integer("alt_port", 0, 65535));
  PEERTUN_CONTROL_TRY(alt_ip, f.optional_ip("alt_ip"));
  PEERTUN_CONTROL_TRY(relay, f.text("relay", 1, kMaxSoftwareLength));
  PEERTUN_CONTROL_TRY(ping, f.integer("ping_interval_s", 1, UINT32_MAX));
  return Welcome{*observed,
                 static_cast<std::uint16_t>(*stun_port),
                 static_cast<std::uint16_t>(*alt_port),
                 *alt_ip,
                 std::move(*relay),
                 static_cast<std::uint32_t>(*ping)};
}

base::Result<RelayMessage> decode_error(Fields& f) {
  PEERTUN_CONTROL_TRY(code, f.enumeration("code", kErrorCodes));
  PEERTUN_CONTROL_TRY(message, f.text("message", 0, kMaxErrorMessageLength));
  return Error{*code, std::move(*message)};
}

base::Result<RelayMessage> decode_session_created(Fields& f) {
  PEERTUN_CONTROL_TRY(nameplate, f.nameplate("nameplate"));
  PEERTUN_CONTROL_TRY(session_id, f.session_id("session_id"));
  PEERTUN_CONTROL_TRY(expires, f.integer("expires_in_s", 0, UINT32_MAX));
  return SessionCreated{std::move(*nameplate), std::move(*session_id),
                        static_cast<std::uint32_t>(*expires)};
}

base::Result<RelayMessage> decode_session_joined(Fields& f) {
  PEERTUN_CONTROL_TRY(nameplate, f.nameplate("nameplate"));
  PEERTUN_CONTROL_TRY(session_id, f.session_id("session_id"));
  return SessionJoined{std::move(*nameplate), std::move(*session_id)};
}

base::Result<RelayMessage> decode_peer_joined(Fields& f) {
  PEERTUN_CONTROL_TRY(session_id, f.session_id("session_id"));
  return PeerJoined{std::move(*session_id)};
}

base::Result<RelayMessage> decode_peer_left(Fields& f) {
  PEERTUN_CONTROL_TRY(reason, f.enumeration("reason", kPeerLeftReasons));
  return PeerLeft{*reason};
}

#undef PEERTUN_CONTROL_TRY

// The checks every message shares: size, JSON, object, "v", "type". On success
// returns the object (owned by `storage`) and its type string.
struct Envelope {
  const json::object* object = nullptr;
  std::string_view type;
};

base::Result<Envelope> open_envelope(std::string_view text, json::value& storage,
                                     std::string& detail) {
  if (text.size() > kMaxMessageSize) {
    detail = "message is " + std::to_string(text.size()) + " bytes, limit " +
             std::to_string(kMaxMessageSize);
    return make_error_code(Errc::TooLarge);
  }
  json::parse_options options;
  options.max_depth = 32;
  boost::system::error_code ec;
  storage = json::parse(json::string_view(text.data(), text.size()), ec, {}, options);
  if (ec) {
    detail = "not JSON: " + ec.message();
    return make_error_code(Errc::NotJson);
  }
  const json::object* object = storage.if_object();
  if (object == nullptr) {
    detail = "not a JSON object";
    return make_error_code(Errc::NotAnObject);
  }
  const json::value* v = object->if_contains("v");
  if (v == nullptr) {
    detail = "field \"v\": missing";
    return make_error_code(Errc::MissingField);
  }
  if (!v->is_int64() && !v->is_uint64()) {
    detail = "field \"v\": expected an integer";
    return make_error_code(Errc::BadField);
  }
  if (!v->is_int64() || v->get_int64() != kProtocolVersion) {
    detail = "field \"v\": version " + std::to_string(kProtocolVersion) + " is supported";
    return make_error_code(Errc::UnsupportedVersion);
  }
  const json::value* type = object->if_contains("type");
  if (type == nullptr) {
    detail = "field \"type\": missing";
    return make_error_code(Errc::MissingField);
  }
  const json::string* type_text = type->if_string();
  if (type_text == nullptr) {
    detail = "field \"type\": expected a string";
    return make_error_code(Errc::BadField);
  }
  return Envelope{object, std::string_view(*type_text)};
}

base::ErrorCode unknown_type(std::string& detail, std::string_view direction) {
  detail = "field \"type\": not a ";
  detail += direction;
  detail += " message type";
  return make_error_code(Errc::UnknownType);
}

// ---- encoding ----

json::object envelope(std::string_view type) {
  json::object o;
  o["v"] = kProtocolVersion;
  o["type"] = type;
  return o;
}

json::string_view sv(std::string_view s) { return {s.data(), s.size()}; }

json::object to_json(const Hello& m) {
  auto o = envelope("hello");
  o["token"] = sv(m.token.reveal());
  o["client"] = sv(m.client);
  return o;
}
json::object to_json(const CreateSession&) { return envelope("create_session"); }
json::object to_json(const JoinSession& m) {
  auto o = envelope("join_session");
  o["nameplate"] = sv(m.nameplate);
  return o;
}
json::object to_json(const Signal& m) {
  auto o = envelope("signal");
  o["payload"] = sv(wire::base64_encode(m.payload));
  return o;
}
json::object to_json(const Abort& m) {
  auto o = envelope("abort");
  o["reason"] = sv(to_string(m.reason));
  return o;
}
json::object to_json(const PunchReady&) { return envelope("punch_ready"); }
json::object to_json(const PathReport& m) {
  auto o = envelope("path_report");
  o["outcome"] = sv(to_string(m.outcome));
  o["reason"] = sv(m.reason);
  if (m.rtt_ms) {
    o["rtt_ms"] = *m.rtt_ms;
  }
  return o;
}
json::object to_json(const Fire&) { return envelope("fire"); }
json::object to_json(const Welcome& m) {
  auto o = envelope("welcome");
  o["observed_address"] = sv(m.observed_address.to_string());
  o["stun_port"] = m.stun_port;
  o["alt_port"] = m.alt_port;
  if (m.alt_ip) {
    o["alt_ip"] = sv(m.alt_ip->to_string());
  }
  o["relay"] = sv(m.relay);
  o["ping_interval_s"] = m.ping_interval_s;
  return o;
}
json::object to_json(const Error& m) {
  auto o = envelope("error");
  o["code"] = sv(to_string(m.code));
  o["message"] = sv(m.message);
  return o;
}
json::object to_json(const SessionCreated& m) {
  auto o = envelope("session_created");
  o["nameplate"] = sv(m.nameplate);
  o["session_id"] = sv(m.session_id);
  o["expires_in_s"] = m.expires_in_s;
  return o;
}
json::object to_json(const SessionJoined& m) {
  auto o = envelope("session_joined");
  o["nameplate"] = sv(m.nameplate);
  o["session_id"] = sv(m.session_id);
  return o;
}
json::object to_json(const PeerJoined& m) {
  auto o = envelope("peer_joined");
  o["session_id"] = sv(m.session_id);
  return o;
}
json::object to_json(const PeerLeft& m) {
  auto o = envelope("peer_left");
  o["reason"] = sv(to_string(m.reason));
  return o;
}

template <class Variant>
std::string encode_variant(const Variant& message) {
  return std::visit([](const auto& m) { return json::serialize(to_json(m)); }, message);
}

}  // namespace

const boost::system::error_category& error_category() noexcept { return kCategory; }

ErrorCode reply_code_for(const base::ErrorCode& decode_error) {
  if (decode_error == make_error_code(Errc::UnsupportedVersion)) {
    return ErrorCode::UnsupportedVersion;
  }
  return ErrorCode::BadMessage;
}

std::string_view to_string(AbortReason reason) { return spell(kAbortReasons, reason); }
std::string_view to_string(PeerLeftReason reason) { return spell(kPeerLeftReasons, reason); }
std::string_view to_string(ErrorCode code) { return spell(kErrorCodes, code); }
std::string_view to_string(PathOutcome outcome) { return spell(kPathOutcomes, outcome); }

std::string_view type_name(const ClientMessage& message) {
  constexpr std::string_view kNames[] = {"hello", "create_session", "join_session", "signal",
                                         "abort", "punch_ready",    "path_report"};
  static_assert(std::size(kNames) == std::variant_size_v<ClientMessage>);
  return kNames[message.index()];
}

std::string_view type_name(const RelayMessage& message) {
  constexpr std::string_view kNames[] = {"welcome",        "error",       "session_created",
                                         "session_joined", "peer_joined", "signal",
                                         "peer_left",      "fire"};
  static_assert(std::size(kNames) == std::variant_size_v<RelayMessage>);
  return kNames[message.index()];
}

std::string encode(const ClientMessage& message) { return encode_variant(message); }
std::string encode(const RelayMessage& message) { return encode_variant(message); }
std::string encode(const Signal& message) { return json::serialize(to_json(message)); }

base::Result<ClientMessage> decode_client_message(std::string_view text, std::string& detail) {
  detail.clear();
  json::value storage;
  auto env = open_envelope(text, storage, detail);
  if (!env) {
    return env.error();
  }
  Fields f(*env->object, detail);
  const std::string_view type = env->type;
  if (type == "hello") {
    return decode_hello(f);
  }
  if (type == "create_session") {
    return CreateSession{};
  }
  if (type == "join_session") {
    return decode_join_session(f);
  }
  if (type == "signal") {
    auto s = decode_signal(f);
    if (!s) {
      return s.error();
    }
    return std::move(*s);
  }
  if (type == "abort") {
    return decode_abort(f);
  }
  if (type == "punch_ready") {
    return PunchReady{};
  }
  if (type == "path_report") {
    return decode_path_report(f);
  }
  return unknown_type(detail, "client");
}

base::Result<RelayMessage> decode_relay_message(std::string_view text, std::string& detail) {
  detail.clear();
  json::value storage;
  auto env = open_envelope(text, storage, detail);
  if (!env) {
    return env.error();
  }
  Fields f(*env->object, detail);
  const std::string_view type = env->type;
  if (type == "welcome") {
    return decode_welcome(f);
  }
  if (type == "error") {
    return decode_error(f);
  }
  if (type == "session_created") {
    return decode_session_created(f);
  }
  if (type == "session_joined") {
    return decode_session_joined(f);
  }
  if (type == "peer_joined") {
    return decode_peer_joined(f);
  }
  if (type == "signal") {
    auto s = decode_signal(f);
    if (!s) {
      return s.error();
    }
    return std::move(*s);
  }
  if (type == "peer_left") {
    return decode_peer_left(f);
  }
  if (type == "fire") {
    return Fire{};
  }
  return unknown_type(detail, "relay");
}

base::Result<ClientMessage> decode_client_message(std::string_view text) {
  std::string detail;
  return decode_client_message(text, detail);
}

base::Result<RelayMessage> decode_relay_message(std::string_view text) {
  std::string detail;
  return decode_relay_message(text, detail);
}

}  // namespace peertun::control
