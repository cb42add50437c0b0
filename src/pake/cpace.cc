#include "pake/cpace.h"

#include <sodium.h>

#include <algorithm>

namespace peertun::pake::cpace {
namespace {

static_assert(kPointSize == crypto_core_ristretto255_BYTES);
static_assert(kScalarSize == crypto_core_ristretto255_SCALARBYTES);
static_assert(kIskSize == crypto_hash_sha512_BYTES);
static_assert(crypto_core_ristretto255_HASHBYTES == crypto_hash_sha512_BYTES);
static_assert(kTagSize == crypto_auth_hmacsha512256_BYTES);
static_assert(kKeySize == crypto_auth_hmacsha512256_KEYBYTES);
static_assert(kIskSize <= crypto_generichash_KEYBYTES_MAX);

wire::ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

void append_prepend_len(wire::Bytes& out, wire::ByteView data) {
  // LEB128 (draft appendix A.1.1): 7 bits per byte, least significant first.
  std::size_t length = data.size();
  do {
    auto byte = static_cast<std::uint8_t>(length & 0x7f);
    length >>= 7;
    if (length != 0) {
      byte = static_cast<std::uint8_t>(byte | 0x80);
    }
    out.push_back(byte);
  } while (length != 0);
  out.insert(out.end(), data.begin(), data.end());
}

template <std::size_t N>
void wipe(std::array<std::uint8_t, N>& a) {
  sodium_memzero(a.data(), a.size());
}

// Keyed BLAKE2b-256 as a PRF: key = ISK, message = lv_cat(kChannelLabel, label).
Key kdf(const Isk& isk, std::string_view label) {
  const wire::Bytes info = lv_cat({as_bytes(kChannelLabel), as_bytes(label)});
  Key out{};
  crypto_generichash(out.data(), out.size(), info.data(), info.size(), isk.data(), isk.size());
  return out;
}

}  // namespace

wire::Bytes prepend_len(wire::ByteView data) {
  wire::Bytes out;
  out.reserve(data.size() + 3);
  append_prepend_len(out, data);
  return out;
}

wire::Bytes lv_cat(std::initializer_list<wire::ByteView> parts) {
  wire::Bytes out;
  for (wire::ByteView p : parts) {
    append_prepend_len(out, p);
  }
  return out;
}

wire::Bytes generator_string(wire::ByteView dsi, wire::ByteView prs, wire::ByteView ci,
                             wire::ByteView sid, std::size_t s_in_bytes) {
  // Draft section 8.1: len_zpad = MAX(0, s_in_bytes - len(prepend_len(PRS))
  //                                   - len(prepend_len(DSI)) - 1)
  const std::size_t used = prepend_len(prs).size() + prepend_len(dsi).size() + 1;
  const std::size_t len_zpad = s_in_bytes > used ? s_in_bytes - used : 0;
  const wire::Bytes zpad(len_zpad, 0);
  return lv_cat({dsi, prs, zpad, ci, sid});
}

Point calculate_generator(wire::ByteView prs, wire::ByteView ci, wire::ByteView sid) {
  wire::Bytes gen_str = generator_string(as_bytes(kDsi), prs, ci, sid, kHashBlockSize);
  std::array<std::uint8_t, crypto_hash_sha512_BYTES> hash{};
  crypto_hash_sha512(hash.data(), gen_str.data(), gen_str.size());
  // gen_str holds the password: do not leave it in freed memory.
  sodium_memzero(gen_str.data(), gen_str.size());
  Point g{};
  crypto_core_ristretto255_from_hash(g.data(), hash.data());
  wipe(hash);
  return g;
}

base::Result<Point> scalar_mult_vfy(const Scalar& y, wire::ByteView x) {
  if (x.size() != kPointSize) {
    return Errc::InvalidShare;
  }
  Point out{};
  // Returns -1 when x does not decode (RFC 9496 section 4.3.1) or the result is the
  // identity: both are CPace's abort condition K = G.I (draft section 8.3).
  if (crypto_scalarmult_ristretto255(out.data(), y.data(), x.data()) != 0) {
    return Errc::InvalidShare;
  }
  return out;
}

wire::Bytes transcript_ir(wire::ByteView ya, wire::ByteView ad_a, wire::ByteView yb,
                          wire::ByteView ad_b) {
  return lv_cat({ya, ad_a, yb, ad_b});
}

Isk derive_isk(wire::ByteView sid, const Point& k, wire::ByteView transcript) {
  static constexpr std::string_view kDsiIsk = "CPaceRistretto255_ISK";
  wire::Bytes prefix = lv_cat({as_bytes(kDsiIsk), sid, k});
  crypto_hash_sha512_state state;
  crypto_hash_sha512_init(&state);
  crypto_hash_sha512_update(&state, prefix.data(), prefix.size());
  crypto_hash_sha512_update(&state, transcript.data(), transcript.size());
  Isk isk{};
  crypto_hash_sha512_final(&state, isk.data());
  sodium_memzero(prefix.data(), prefix.size());
  sodium_memzero(&state, sizeof state);
  return isk;
}

wire::Bytes channel_identifier(std::string_view nameplate) {
  return lv_cat({as_bytes(kChannelLabel), as_bytes(nameplate)});
}

SessionKeys::~SessionKeys() {
  wipe(confirm_a);
  wipe(confirm_b);
  wipe(traffic_ab);
  wipe(traffic_ba);
  wipe(session_secret);
}

SessionKeys derive_session_keys(const Isk& isk) {
  SessionKeys keys;
  keys.confirm_a = kdf(isk, "confirm A");
  keys.confirm_b = kdf(isk, "confirm B");
  keys.traffic_ab = kdf(isk, "traffic A->B");
  keys.traffic_ba = kdf(isk, "traffic B->A");
  keys.session_secret = kdf(isk, "session secret");
  keys.check_ab = kdf(isk, "check A->B");
  keys.check_ba = kdf(isk, "check B->A");
  return keys;
}

Tag confirmation_tag(const SessionKeys& keys, Role sender, wire::ByteView transcript) {
  const Key& key = sender == Role::A ? keys.confirm_a : keys.confirm_b;
  Tag tag{};
  crypto_auth_hmacsha512256(tag.data(), transcript.data(), transcript.size(), key.data());
  return tag;
}

base::Result<void> verify_confirmation(const SessionKeys& keys, Role sender,
                                       wire::ByteView transcript, wire::ByteView tag) {
  if (tag.size() != kTagSize) {
    return Errc::Truncated;
  }
  const Key& key = sender == Role::A ? keys.confirm_a : keys.confirm_b;
  // crypto_auth_hmacsha512256_verify compares in constant time.
  if (crypto_auth_hmacsha512256_verify(tag.data(), transcript.data(), transcript.size(),
                                       key.data()) != 0) {
    return Errc::WrongCode;
  }
  return {};
}

base::Result<Cpace> Cpace::start(Role role, const Inputs& in) {
  Scalar y{};
  crypto_core_ristretto255_scalar_random(y.data());
  auto result = start_with_scalar_for_testing(role, in, y);
  wipe(y);
  return result;
}

base::Result<Cpace> Cpace::start(Role role, const JoinCode& code, wire::ByteView session_id) {
  const wire::Bytes ci = channel_identifier(code.nameplate);
  return start(role, Inputs{.prs = as_bytes(code.secret.reveal()),
                            .ci = ci,
                            .sid = session_id,
                            .ad_a = as_bytes(kAdA),
                            .ad_b = as_bytes(kAdB)});
}

base::Result<Cpace> Cpace::start_with_scalar_for_testing(Role role, const Inputs& in,
                                                         const Scalar& y) {
  Point g = calculate_generator(in.prs, in.ci, in.sid);
  Cpace c;
  c.role_ = role;
  c.scalar_ = y;
  // G.scalar_mult(y, g); an identity result (y = 0 mod order) is refused like a peer's.
  auto share = scalar_mult_vfy(y, g);
  wipe(g);
  if (!share) {
    return share.error();
  }
  c.share_ = *share;
  c.sid_.assign(in.sid.begin(), in.sid.end());
  c.ad_a_.assign(in.ad_a.begin(), in.ad_a.end());
  c.ad_b_.assign(in.ad_b.begin(), in.ad_b.end());
  return c;
}

Cpace::Cpace(Cpace&& other) noexcept
    : role_(other.role_),
      scalar_(other.scalar_),
      share_(other.share_),
      sid_(std::move(other.sid_)),
      ad_a_(std::move(other.ad_a_)),
      ad_b_(std::move(other.ad_b_)) {
  wipe(other.scalar_);
}

Cpace& Cpace::operator=(Cpace&& other) noexcept {
  if (this != &other) {
    role_ = other.role_;
    scalar_ = other.scalar_;
    share_ = other.share_;
    sid_ = std::move(other.sid_);
    ad_a_ = std::move(other.ad_a_);
    ad_b_ = std::move(other.ad_b_);
    wipe(other.scalar_);
  }
  return *this;
}

Cpace::~Cpace() { wipe(scalar_); }

base::Result<Cpace::Output> Cpace::finish(wire::ByteView peer_share) const {
  if (peer_share.size() != kPointSize) {
    return Errc::InvalidShare;
  }
  // A peer echoing our own share back is a reflection, never an honest peer.
  if (sodium_memcmp(peer_share.data(), share_.data(), kPointSize) == 0) {
    return Errc::InvalidShare;
  }
  auto k = scalar_mult_vfy(scalar_, peer_share);
  if (!k) {
    return k.error();
  }
  const wire::ByteView ya = role_ == Role::A ? wire::ByteView(share_) : peer_share;
  const wire::ByteView yb = role_ == Role::A ? peer_share : wire::ByteView(share_);
  Output out;
  out.transcript = transcript_ir(ya, ad_a_, yb, ad_b_);
  out.isk = derive_isk(sid_, *k, out.transcript);
  wipe(*k);
  return out;
}

}  // namespace peertun::pake::cpace
