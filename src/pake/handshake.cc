#include "pake/handshake.h"

#include <sodium.h>

#include <cstdio>
#include <cstdlib>

#include "pake/envelope.h"

namespace peertun::pake {
namespace {

[[noreturn]] void contract_violation(const char* what) {
  std::fprintf(stderr, "fatal: pake::Handshake %s\n", what);
  std::abort();
}

}  // namespace

base::Result<Handshake> Handshake::start(Role role, const JoinCode& code,
                                         wire::ByteView session_id) {
  // Re-parse so a hand-built JoinCode cannot smuggle a non-canonical secret into PRS:
  // both peers must hash byte-identical strings.
  auto parsed = parse_join_code(format_join_code(code));
  if (!parsed) {
    return parsed.error();
  }
  if (!(*parsed == code)) {
    return Errc::BadSymbol;
  }
  auto c = cpace::Cpace::start(role, code, session_id);
  if (!c) {
    return c.error();
  }
  return Handshake(std::move(*c));
}

wire::Bytes Handshake::first_message() const { return encode_share(cpace_.share()); }

base::Result<std::vector<wire::Bytes>> Handshake::fail(base::ErrorCode e) {
  state_ = State::Failed;
  keys_.reset();
  sodium_memzero(transcript_.data(), transcript_.size());
  transcript_.clear();
  return e;
}

base::Result<std::vector<wire::Bytes>> Handshake::on_message(wire::ByteView payload) {
  if (state_ == State::Complete) {
    // The session now talks through the SealedChannel; a stray message is the caller's
    // routing mistake or a peer bug, and must not undo a verified handshake.
    return Errc::ProtocolError;
  }
  if (state_ == State::Failed) {
    // The relay burns the nameplate after a failure: nothing more is accepted.
    return Errc::ProtocolError;
  }
  auto env = decode_envelope(payload);
  if (!env) {
    return fail(env.error());
  }
  switch (env->type) {
    case MessageType::Share: {
      if (state_ != State::AwaitShare) {
        return fail(Errc::ProtocolError);
      }
      auto out = cpace_.finish(env->body);
      if (!out) {
        return fail(out.error());
      }
      keys_.emplace(cpace::derive_session_keys(out->isk));
      sodium_memzero(out->isk.data(), out->isk.size());
      transcript_ = std::move(out->transcript);
      state_ = State::AwaitConfirm;
      const cpace::Tag tag = cpace::confirmation_tag(*keys_, role(), transcript_);
      std::vector<wire::Bytes> send;
      send.push_back(encode_confirm(tag));
      return send;
    }
    case MessageType::Confirm: {
      if (state_ != State::AwaitConfirm) {
        return fail(Errc::ProtocolError);
      }
      auto ok = cpace::verify_confirmation(*keys_, peer_of(role()), transcript_, env->body);
      if (!ok) {
        return fail(Errc::WrongCode);
      }
      state_ = State::Complete;
      return std::vector<wire::Bytes>{};
    }
    case MessageType::Sealed:
      return fail(Errc::ProtocolError);
  }
  return fail(Errc::ProtocolError);
}

SealedChannel Handshake::take_channel() {
  if (!complete() || channel_taken_) {
    contract_violation("take_channel() before completion or twice");
  }
  channel_taken_ = true;
  return SealedChannel(role(), keys_->traffic_ab, keys_->traffic_ba);
}

std::array<std::uint8_t, 32> Handshake::session_secret() const {
  if (!complete()) {
    contract_violation("session_secret() before completion");
  }
  return keys_->session_secret;
}

std::array<std::uint8_t, 32> Handshake::check_key(Role sender) const {
  if (!complete()) {
    contract_violation("check_key() before completion");
  }
  return sender == Role::A ? keys_->check_ab : keys_->check_ba;
}

}  // namespace peertun::pake
