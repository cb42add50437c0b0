#include "control/codec.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "wire/base64.h"
#include "wire/crockford.h"

namespace peertun::control {
namespace {

using base::IpAddress;
using base::Secret;
using base::SocketAddress;

// ---- golden examples: the same lines appear in docs/protocol/control.md ----

constexpr std::string_view kSessionId = "9f86d081884c7d659a2feaa0c55ad015";

wire::Bytes bytes_of(std::string_view s) { return wire::Bytes(s.begin(), s.end()); }

struct ClientGolden {
  std::string_view json;
  ClientMessage message;
};

struct RelayGolden {
  std::string_view json;
  RelayMessage message;
};

std::vector<ClientGolden> client_goldens() {
  return {
      {R"({"v":1,"type":"hello","token":"pt_live_7f3c9a2e","client":"peertun/0.1.0"})",
       Hello{Secret("pt_live_7f3c9a2e"), "peertun/0.1.0"}},
      {R"({"v":1,"type":"create_session"})", CreateSession{}},
      {R"({"v":1,"type":"join_session","nameplate":"2A91"})", JoinSession{"2A91"}},
      {R"({"v":1,"type":"signal","payload":"cGFrZS1tZXNzYWdlLTE="})",
       Signal{bytes_of("pake-message-1")}},
      {R"({"v":1,"type":"abort","reason":"wrong_code"})", Abort{AbortReason::WrongCode}},
      {R"({"v":1,"type":"punch_ready"})", PunchReady{}},
      {R"({"v":1,"type":"path_report","outcome":"direct","reason":"","rtt_ms":47})",
       PathReport{PathOutcome::Direct, "", 47}},
      {R"({"v":1,"type":"path_report","outcome":"impossible","reason":"symmetric NAT on peer B"})",
       PathReport{PathOutcome::Impossible, "symmetric NAT on peer B", std::nullopt}},
  };
}

std::vector<RelayGolden> relay_goldens() {
  const std::string session_id(kSessionId);
  return {
      {R"({"v":1,"type":"welcome","observed_address":"203.0.113.5:54321","stun_port":4040,"alt_port":4041,"alt_ip":"192.0.2.10","relay":"peertun-relay/0.1.0","ping_interval_s":20})",
       Welcome{*SocketAddress::parse("203.0.113.5:54321"), 4040, 4041,
               IpAddress::parse("192.0.2.10"), "peertun-relay/0.1.0", 20}},
      {R"({"v":1,"type":"welcome","observed_address":"[2001:db8::5]:54321","stun_port":4040,"alt_port":0,"relay":"peertun-relay/0.1.0","ping_interval_s":20})",
       Welcome{*SocketAddress::parse("[2001:db8::5]:54321"), 4040, 0, std::nullopt,
               "peertun-relay/0.1.0", 20}},
      {R"({"v":1,"type":"error","code":"unknown_nameplate","message":"no live session has this nameplate"})",
       Error{ErrorCode::UnknownNameplate, "no live session has this nameplate"}},
      {R"({"v":1,"type":"session_created","nameplate":"2A91","session_id":"9f86d081884c7d659a2feaa0c55ad015","expires_in_s":600})",
       SessionCreated{"2A91", session_id, 600}},
      {R"({"v":1,"type":"session_joined","nameplate":"2A91","session_id":"9f86d081884c7d659a2feaa0c55ad015"})",
       SessionJoined{"2A91", session_id}},
      {R"({"v":1,"type":"peer_joined","session_id":"9f86d081884c7d659a2feaa0c55ad015"})",
       PeerJoined{session_id}},
      {R"({"v":1,"type":"signal","payload":"cGFrZS1tZXNzYWdlLTI="})",
       Signal{bytes_of("pake-message-2")}},
      {R"({"v":1,"type":"peer_left","reason":"wrong_code"})", PeerLeft{PeerLeftReason::WrongCode}},
      {R"({"v":1,"type":"fire"})", Fire{}},
  };
}

TEST(ControlGoldenTest, ClientExamplesDecodeAndEncodeExactly) {
  for (const auto& g : client_goldens()) {
    auto decoded = decode_client_message(g.json);
    ASSERT_TRUE(decoded) << g.json << ": " << decoded.error().message();
    EXPECT_TRUE(*decoded == g.message) << g.json;
    EXPECT_EQ(encode(g.message), g.json);
  }
}

TEST(ControlGoldenTest, RelayExamplesDecodeAndEncodeExactly) {
  for (const auto& g : relay_goldens()) {
    auto decoded = decode_relay_message(g.json);
    ASSERT_TRUE(decoded) << g.json << ": " << decoded.error().message();
    EXPECT_TRUE(*decoded == g.message) << g.json;
    EXPECT_EQ(encode(g.message), g.json);
  }
}

std::string read_doc() {
  std::ifstream in(PEERTUN_CONTROL_DOC);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Every line of every ```json block in the protocol doc.
std::vector<std::string> doc_json_lines(const std::string& doc) {
  std::vector<std::string> lines;
  std::istringstream in(doc);
  std::string line;
  bool in_block = false;
  while (std::getline(in, line)) {
    if (line == "```json") {
      in_block = true;
    } else if (line.starts_with("```")) {
      in_block = false;
    } else if (in_block && !line.empty()) {
      lines.push_back(line);
    }
  }
  return lines;
}

TEST(ControlGoldenTest, DocContainsEveryGolden) {
  const auto lines = doc_json_lines(read_doc());
  auto contains = [&](std::string_view json) {
    return std::find(lines.begin(), lines.end(), json) != lines.end();
  };
  for (const auto& g : client_goldens()) {
    EXPECT_TRUE(contains(g.json)) << "missing from control.md: " << g.json;
  }
  for (const auto& g : relay_goldens()) {
    EXPECT_TRUE(contains(g.json)) << "missing from control.md: " << g.json;
  }
}

TEST(ControlGoldenTest, EveryDocExampleDecodes) {
  const auto lines = doc_json_lines(read_doc());
  ASSERT_GE(lines.size(), client_goldens().size() + relay_goldens().size());
  for (const auto& line : lines) {
    EXPECT_TRUE(decode_client_message(line) || decode_relay_message(line)) << line;
  }
}

// ---- behaviour of single fields ----

TEST(ControlDecodeTest, CanonicalisesNameplates) {
  for (const char* typed : {"2a91", "2A9l", "2a9I", "2A91"}) {
    const std::string json =
        std::string(R"({"v":1,"type":"join_session","nameplate":")") + typed + "\"}";
    auto m = decode_client_message(json);
    ASSERT_TRUE(m) << typed;
    EXPECT_EQ(std::get<JoinSession>(*m).nameplate, "2A91") << typed;
  }
  auto o = decode_client_message(R"({"v":1,"type":"join_session","nameplate":"o0Oo"})");
  ASSERT_TRUE(o);
  EXPECT_EQ(std::get<JoinSession>(*o).nameplate, "0000");
}

TEST(ControlDecodeTest, IgnoresUnknownFields) {
  auto m = decode_client_message(
      R"({"future":{"deep":[1,2,{"x":null}]},"v":1,"nameplate":"2A91","type":"join_session","z":1.5})");
  ASSERT_TRUE(m);
  EXPECT_TRUE(*m == ClientMessage{JoinSession{"2A91"}});
}

TEST(ControlDecodeTest, AcceptsNullOrAbsentAltIp) {
  auto m = decode_relay_message(
      R"({"v":1,"type":"welcome","observed_address":"1.2.3.4:5","stun_port":1,"alt_port":0,"alt_ip":null,"relay":"r","ping_interval_s":1})");
  ASSERT_TRUE(m);
  EXPECT_FALSE(std::get<Welcome>(*m).alt_ip);
}

TEST(ControlDecodeTest, MapsUnknownEnumSpellingsToUnknown) {
  auto e = decode_relay_message(R"({"v":1,"type":"error","code":"quota_exceeded","message":""})");
  ASSERT_TRUE(e);
  EXPECT_EQ(std::get<Error>(*e).code, ErrorCode::Unknown);
  auto p = decode_relay_message(R"({"v":1,"type":"peer_left","reason":"timed_out"})");
  ASSERT_TRUE(p);
  EXPECT_EQ(std::get<PeerLeft>(*p).reason, PeerLeftReason::Unknown);
  auto a = decode_client_message(R"({"v":1,"type":"abort","reason":"bored"})");
  ASSERT_TRUE(a);
  EXPECT_EQ(std::get<Abort>(*a).reason, AbortReason::Unknown);
}

TEST(ControlDecodeTest, SignalPayloadLimitIsInclusive) {
  const std::string ok = R"({"v":1,"type":"signal","payload":")" +
                         wire::base64_encode(wire::Bytes(kMaxSignalPayload, 0xab)) + "\"}";
  auto m = decode_client_message(ok);
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<Signal>(*m).payload.size(), kMaxSignalPayload);
  const std::string big = R"({"v":1,"type":"signal","payload":")" +
                          wire::base64_encode(wire::Bytes(kMaxSignalPayload + 1, 0xab)) + "\"}";
  std::string detail;
  auto r = decode_relay_message(big, detail);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::BadField);
  EXPECT_NE(detail.find("\"payload\""), std::string::npos) << detail;
}

TEST(ControlDecodeTest, SizeLimitIsCheckedOnTheRawText) {
  std::string json = R"({"v":1,"type":"create_session"})";
  json.resize(kMaxMessageSize, ' ');  // JSON allows trailing whitespace
  EXPECT_TRUE(decode_client_message(json));
  json.push_back(' ');
  auto r = decode_client_message(json);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::TooLarge);
}

TEST(ControlDecodeTest, MaximumLengthsAreAccepted) {
  const std::string token(kMaxTokenLength, '~');
  const std::string client(kMaxSoftwareLength, 'c');
  auto hello = decode_client_message(R"({"v":1,"type":"hello","token":")" + token +
                                     R"(","client":")" + client + "\"}");
  ASSERT_TRUE(hello);
  EXPECT_EQ(std::get<Hello>(*hello).token.reveal(), token);
  EXPECT_EQ(std::get<Hello>(*hello).client, client);
  const std::string message(kMaxErrorMessageLength, 'm');
  auto error = decode_relay_message(R"({"v":1,"type":"error","code":"internal","message":")" +
                                    message + "\"}");
  ASSERT_TRUE(error);
  EXPECT_EQ(std::get<Error>(*error).message, message);
  auto welcome = decode_relay_message(
      R"({"v":1,"type":"welcome","observed_address":"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535","stun_port":65535,"alt_port":65535,"alt_ip":"255.255.255.255","relay":")" +
      client + R"(","ping_interval_s":4294967295})");
  ASSERT_TRUE(welcome);
  EXPECT_EQ(std::get<Welcome>(*welcome).ping_interval_s, 4294967295u);
  EXPECT_EQ(std::get<Welcome>(*welcome).observed_address.port(), 65535);
}

TEST(ControlDecodeTest, DuplicateKeysKeepTheLast) {
  auto m = decode_client_message(
      R"({"v":1,"type":"join_session","nameplate":"AAAA","nameplate":"2A91"})");
  ASSERT_TRUE(m);
  EXPECT_EQ(std::get<JoinSession>(*m).nameplate, "2A91");
}

// ---- negative cases: one row per way to be wrong ----

struct Bad {
  std::string json;
  Errc errc;
  std::string_view detail_mentions;  // the field the detail must name, "" for none
};

const std::string kBigInput(kMaxMessageSize + 1, '{');

std::vector<Bad> bad_client_messages() {
  return {
      {kBigInput, Errc::TooLarge, ""},
      {"", Errc::NotJson, ""},
      {"{", Errc::NotJson, ""},
      {R"({"v":1,"type":"create_session",})", Errc::NotJson, ""},
      {"{\"v\":1,\"type\":\"create_session\",\"x\":\"\xff\"}", Errc::NotJson, ""},
      {R"({"v":1,"type":"create_session"} {})", Errc::NotJson, ""},
      {R"({"v":1,"type":"create_session","x":)" + std::string(40, '[') + std::string(40, ']') + "}",
       Errc::NotJson, ""},
      {"[]", Errc::NotAnObject, ""},
      {R"([{"v":1,"type":"create_session"}])", Errc::NotAnObject, ""},
      {"\"hello\"", Errc::NotAnObject, ""},
      {"null", Errc::NotAnObject, ""},
      {"1", Errc::NotAnObject, ""},
      {R"({"v":2,"type":"create_session"})", Errc::UnsupportedVersion, "\"v\""},
      {R"({"v":0,"type":"create_session"})", Errc::UnsupportedVersion, "\"v\""},
      {R"({"v":-1,"type":"create_session"})", Errc::UnsupportedVersion, "\"v\""},
      {R"({"v":18446744073709551615,"type":"create_session"})", Errc::UnsupportedVersion, "\"v\""},
      {R"({"v":2,"type":"fire"})", Errc::UnsupportedVersion, "\"v\""},
      {R"({"type":"create_session"})", Errc::MissingField, "\"v\""},
      {R"({"v":"1","type":"create_session"})", Errc::BadField, "\"v\""},
      {R"({"v":1.0,"type":"create_session"})", Errc::BadField, "\"v\""},
      {R"({"v":1,"type":"fire"})", Errc::UnknownType, "\"type\""},
      {R"({"v":1,"type":"welcome"})", Errc::UnknownType, "\"type\""},
      {R"({"v":1,"type":"HELLO"})", Errc::UnknownType, "\"type\""},
      {R"({"v":1})", Errc::MissingField, "\"type\""},
      {R"({"v":1,"type":7})", Errc::BadField, "\"type\""},
      {R"({"v":1,"type":"hello","client":"c"})", Errc::MissingField, "\"token\""},
      {R"({"v":1,"type":"hello","token":"t"})", Errc::MissingField, "\"client\""},
      {R"({"v":1,"type":"hello","token":5,"client":"c"})", Errc::BadField, "\"token\""},
      {R"({"v":1,"type":"hello","token":"","client":"c"})", Errc::BadField, "\"token\""},
      {R"({"v":1,"type":"hello","token":"a b","client":"c"})", Errc::BadField, "\"token\""},
      {R"({"v":1,"type":"hello","token":"t\u00e9","client":"c"})", Errc::BadField, "\"token\""},
      {R"({"v":1,"type":"hello","token":"t\n","client":"c"})", Errc::BadField, "\"token\""},
      {R"({"v":1,"type":"hello","token":")" + std::string(kMaxTokenLength + 1, 'x') +
           R"(","client":"c"})",
       Errc::BadField, "\"token\""},
      {R"({"v":1,"type":"hello","token":"t","client":""})", Errc::BadField, "\"client\""},
      {R"({"v":1,"type":"hello","token":"t","client":")" +
           std::string(kMaxSoftwareLength + 1, 'c') + "\"}",
       Errc::BadField, "\"client\""},
      {R"({"v":1,"type":"hello","token":"t","client":["c"]})", Errc::BadField, "\"client\""},
      {R"({"v":1,"type":"join_session"})", Errc::MissingField, "\"nameplate\""},
      {R"({"v":1,"type":"join_session","nameplate":2091})", Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"join_session","nameplate":"2A9"})", Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"join_session","nameplate":"2A91X"})", Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"join_session","nameplate":"2A9U"})", Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"join_session","nameplate":"2A-9"})", Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"join_session","nameplate":""})", Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"path_report","reason":""})", Errc::MissingField, "\"outcome\""},
      {R"({"v":1,"type":"path_report","outcome":"direct"})", Errc::MissingField, "\"reason\""},
      {R"({"v":1,"type":"path_report","outcome":"direct","reason":"","rtt_ms":-1})", Errc::BadField,
       "\"rtt_ms\""},
      {R"({"v":1,"type":"path_report","outcome":"direct","reason":"","rtt_ms":3600001})",
       Errc::BadField, "\"rtt_ms\""},
      {R"({"v":1,"type":"path_report","outcome":"direct","reason":")" +
           std::string(kMaxPathReasonLength + 1, 'r') + "\"}",
       Errc::BadField, "\"reason\""},
      {R"({"v":1,"type":"signal"})", Errc::MissingField, "\"payload\""},
      {R"({"v":1,"type":"signal","payload":""})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"signal","payload":"Zm9v!A=="})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"signal","payload":"Zh=="})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"signal","payload":"Zg"})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"signal","payload":"Zm9v\nYmFy"})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"signal","payload":[1,2]})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"abort"})", Errc::MissingField, "\"reason\""},
      {R"({"v":1,"type":"abort","reason":1})", Errc::BadField, "\"reason\""},
  };
}

constexpr std::string_view kWelcomeHead = R"({"v":1,"type":"welcome",)";

std::string welcome_with(std::string_view observed, std::string_view stun,
                         std::string_view alt_port, std::string_view alt_ip,
                         std::string_view ping) {
  std::string s(kWelcomeHead);
  s += R"("observed_address":)";
  s += observed;
  s += R"(,"stun_port":)";
  s += stun;
  s += R"(,"alt_port":)";
  s += alt_port;
  if (!alt_ip.empty()) {
    s += R"(,"alt_ip":)";
    s += alt_ip;
  }
  s += R"(,"relay":"r","ping_interval_s":)";
  s += ping;
  s += "}";
  return s;
}

std::vector<Bad> bad_relay_messages() {
  const std::string id = R"("9f86d081884c7d659a2feaa0c55ad015")";
  return {
      {kBigInput, Errc::TooLarge, ""},
      {"nope", Errc::NotJson, ""},
      {"[1]", Errc::NotAnObject, ""},
      {R"({"v":3,"type":"welcome"})", Errc::UnsupportedVersion, "\"v\""},
      {R"({"v":1,"type":"hello"})", Errc::UnknownType, "\"type\""},
      {R"({"v":1,"type":"abort","reason":"cancelled"})", Errc::UnknownType, "\"type\""},
      {R"({"v":1,"type":"welcome","stun_port":1,"alt_port":0,"relay":"r","ping_interval_s":1})",
       Errc::MissingField, "\"observed_address\""},
      {welcome_with(R"("1.2.3.4")", "1", "0", "", "1"), Errc::BadField, "\"observed_address\""},
      {welcome_with(R"("1.2.3.4:0")", "1", "0", "", "1"), Errc::BadField, "\"observed_address\""},
      {welcome_with(R"("1.2.3.4:65536")", "1", "0", "", "1"), Errc::BadField,
       "\"observed_address\""},
      {welcome_with(R"("example.com:80")", "1", "0", "", "1"), Errc::BadField,
       "\"observed_address\""},
      {welcome_with(R"("::1:80")", "1", "0", "", "1"), Errc::BadField, "\"observed_address\""},
      {welcome_with(R"("1.2.3.4\u0000junk:5")", "1", "0", "", "1"), Errc::BadField,
       "\"observed_address\""},
      {welcome_with(R"("[fe80::1%eth0]:5")", "1", "0", "", "1"), Errc::BadField,
       "\"observed_address\""},
      {welcome_with("1234", "1", "0", "", "1"), Errc::BadField, "\"observed_address\""},
      {welcome_with(R"("1.2.3.4:5")", "0", "0", "", "1"), Errc::BadField, "\"stun_port\""},
      {welcome_with(R"("1.2.3.4:5")", "65536", "0", "", "1"), Errc::BadField, "\"stun_port\""},
      {welcome_with(R"("1.2.3.4:5")", "-1", "0", "", "1"), Errc::BadField, "\"stun_port\""},
      {welcome_with(R"("1.2.3.4:5")", "4040.0", "0", "", "1"), Errc::BadField, "\"stun_port\""},
      {welcome_with(R"("1.2.3.4:5")", "4e3", "0", "", "1"), Errc::BadField, "\"stun_port\""},
      {welcome_with(R"("1.2.3.4:5")", R"("4040")", "0", "", "1"), Errc::BadField, "\"stun_port\""},
      {welcome_with(R"("1.2.3.4:5")", "1", "70000", "", "1"), Errc::BadField, "\"alt_port\""},
      {welcome_with(R"("1.2.3.4:5")", "1", "0", R"("1.2.3.4:5")", "1"), Errc::BadField,
       "\"alt_ip\""},
      {welcome_with(R"("1.2.3.4:5")", "1", "0", R"("1.2.3")", "1"), Errc::BadField, "\"alt_ip\""},
      {welcome_with(R"("1.2.3.4:5")", "1", "0", "7", "1"), Errc::BadField, "\"alt_ip\""},
      {welcome_with(R"("1.2.3.4:5")", "1", "0", "", "0"), Errc::BadField, "\"ping_interval_s\""},
      {welcome_with(R"("1.2.3.4:5")", "1", "0", "", "4294967296"), Errc::BadField,
       "\"ping_interval_s\""},
      {R"({"v":1,"type":"welcome","observed_address":"1.2.3.4:5","stun_port":1,"alt_port":0,"ping_interval_s":1})",
       Errc::MissingField, "\"relay\""},
      {R"({"v":1,"type":"error","message":"m"})", Errc::MissingField, "\"code\""},
      {R"({"v":1,"type":"error","code":"internal"})", Errc::MissingField, "\"message\""},
      {R"({"v":1,"type":"error","code":null,"message":"m"})", Errc::BadField, "\"code\""},
      {R"({"v":1,"type":"error","code":"internal","message":")" +
           std::string(kMaxErrorMessageLength + 1, 'm') + "\"}",
       Errc::BadField, "\"message\""},
      {R"({"v":1,"type":"session_created","nameplate":"2A91","session_id":)" + id + "}",
       Errc::MissingField, "\"expires_in_s\""},
      {R"({"v":1,"type":"session_created","nameplate":"2A91","session_id":)" + id +
           R"(,"expires_in_s":4294967296})",
       Errc::BadField, "\"expires_in_s\""},
      {R"({"v":1,"type":"session_created","nameplate":"U000","session_id":)" + id +
           R"(,"expires_in_s":1})",
       Errc::BadField, "\"nameplate\""},
      {R"({"v":1,"type":"session_joined","nameplate":"2A91","session_id":"9F86D081884C7D659A2FEAA0C55AD015"})",
       Errc::BadField, "\"session_id\""},
      {R"({"v":1,"type":"session_joined","nameplate":"2A91","session_id":"9f86d0"})",
       Errc::BadField, "\"session_id\""},
      {R"({"v":1,"type":"session_joined","session_id":)" + id + "}", Errc::MissingField,
       "\"nameplate\""},
      {R"({"v":1,"type":"peer_joined","session_id":"9f86d081884c7d659a2feaa0c55ad01g"})",
       Errc::BadField, "\"session_id\""},
      {R"({"v":1,"type":"peer_joined"})", Errc::MissingField, "\"session_id\""},
      {R"({"v":1,"type":"signal","payload":"Zm9=")", Errc::NotJson, ""},
      {R"({"v":1,"type":"signal","payload":"Zm9="})", Errc::BadField, "\"payload\""},
      {R"({"v":1,"type":"peer_left"})", Errc::MissingField, "\"reason\""},
      {R"({"v":1,"type":"peer_left","reason":true})", Errc::BadField, "\"reason\""},
  };
}

TEST(ControlDecodeTest, RejectsBadClientMessages) {
  for (const auto& bad : bad_client_messages()) {
    std::string detail;
    auto r = decode_client_message(bad.json, detail);
    const std::string shown = bad.json.substr(0, 120);
    ASSERT_FALSE(r) << shown;
    EXPECT_EQ(r.error(), bad.errc) << shown << " -> " << detail;
    EXPECT_EQ(&r.error().category(), &error_category());
    EXPECT_FALSE(detail.empty()) << shown;
    EXPECT_NE(detail.find(bad.detail_mentions), std::string::npos) << shown << " -> " << detail;
    // The short form fails the same way.
    EXPECT_EQ(decode_client_message(bad.json).error(), bad.errc) << shown;
  }
}

TEST(ControlDecodeTest, RejectsBadRelayMessages) {
  for (const auto& bad : bad_relay_messages()) {
    std::string detail;
    auto r = decode_relay_message(bad.json, detail);
    const std::string shown = bad.json.substr(0, 120);
    ASSERT_FALSE(r) << shown;
    EXPECT_EQ(r.error(), bad.errc) << shown << " -> " << detail;
    EXPECT_FALSE(detail.empty()) << shown;
    EXPECT_NE(detail.find(bad.detail_mentions), std::string::npos) << shown << " -> " << detail;
  }
}

TEST(ControlDecodeTest, SuccessClearsDetail) {
  std::string detail = "stale";
  ASSERT_TRUE(decode_client_message(R"({"v":1,"type":"create_session"})", detail));
  EXPECT_TRUE(detail.empty());
}

TEST(ControlErrcTest, CategoryAndReplyCodes) {
  EXPECT_STREQ(error_category().name(), "peertun.control");
  const base::ErrorCode ec = Errc::BadField;
  EXPECT_EQ(ec.message(), "control message has a malformed field");
  EXPECT_EQ(reply_code_for(Errc::UnsupportedVersion), ErrorCode::UnsupportedVersion);
  for (Errc e : {Errc::TooLarge, Errc::NotJson, Errc::NotAnObject, Errc::UnknownType,
                 Errc::MissingField, Errc::BadField}) {
    EXPECT_EQ(reply_code_for(e), ErrorCode::BadMessage);
  }
}

TEST(ControlEnumTest, SpellingsMatchTheDoc) {
  EXPECT_EQ(to_string(ErrorCode::MissingToken), "missing_token");
  EXPECT_EQ(to_string(ErrorCode::BadToken), "bad_token");
  EXPECT_EQ(to_string(ErrorCode::BadMessage), "bad_message");
  EXPECT_EQ(to_string(ErrorCode::UnsupportedVersion), "unsupported_version");
  EXPECT_EQ(to_string(ErrorCode::UnknownNameplate), "unknown_nameplate");
  EXPECT_EQ(to_string(ErrorCode::NameplateExpired), "nameplate_expired");
  EXPECT_EQ(to_string(ErrorCode::NameplateInUse), "nameplate_in_use");
  EXPECT_EQ(to_string(ErrorCode::NotInSession), "not_in_session");
  EXPECT_EQ(to_string(ErrorCode::AlreadyInSession), "already_in_session");
  EXPECT_EQ(to_string(ErrorCode::RateLimited), "rate_limited");
  EXPECT_EQ(to_string(ErrorCode::Internal), "internal");
  EXPECT_EQ(to_string(AbortReason::WrongCode), "wrong_code");
  EXPECT_EQ(to_string(AbortReason::Cancelled), "cancelled");
  EXPECT_EQ(to_string(AbortReason::ProtocolError), "protocol_error");
  EXPECT_EQ(to_string(PeerLeftReason::Disconnected), "disconnected");
  EXPECT_EQ(to_string(PeerLeftReason::ProtocolError), "protocol_error");
  EXPECT_EQ(type_name(ClientMessage{JoinSession{}}), "join_session");
  EXPECT_EQ(type_name(RelayMessage{SessionCreated{}}), "session_created");
}

// ---- the token never leaks ----

TEST(ControlSecretTest, HelloRoundTripsTheTokenButErrorsNeverShowIt) {
  const std::string token = "tok_Sup3rS3cret!Value";
  const Hello hello{Secret(token), "peertun/0.1.0"};
  const std::string json = encode(hello);
  EXPECT_NE(json.find(token), std::string::npos);
  auto back = decode_client_message(json);
  ASSERT_TRUE(back);
  EXPECT_EQ(std::get<Hello>(*back).token.reveal(), token);

  const std::string bad_hellos[] = {
      R"({"v":1,"type":"hello","token":"tok_Sup3rS3cret!Value","client":7})",
      R"({"v":1,"type":"hello","token":"tok_Sup3rS3cret!Value"})",
      R"({"v":1,"type":"hello","token":"tok_Sup3rS3cret!Value ","client":"c"})",
      R"({"v":1,"type":"hello","token":"tok_Sup3rS3cret!Value\u0001","client":"c"})",
      R"({"v":2,"type":"hello","token":"tok_Sup3rS3cret!Value","client":"c"})",
      R"({"v":1,"type":"helo","token":"tok_Sup3rS3cret!Value","client":"c"})",
      R"({"v":1,"type":"hello","token":"tok_Sup3rS3cret!Value","client":"c")",
  };
  for (const auto& bad : bad_hellos) {
    std::string detail;
    auto r = decode_client_message(bad, detail);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(detail.find("Sup3r"), std::string::npos) << detail;
    EXPECT_EQ(r.error().message().find("Sup3r"), std::string::npos);
  }
}

RC_GTEST_PROP(ControlSecretProperty, NoDecodeErrorQuotesTheToken, ()) {
  // Tokens marked by a prefix the error texts never contain.
  // Spaces, quotes and backslashes make some tokens invalid and some JSON malformed.
  const auto body = *rc::gen::container<std::string>(rc::gen::inRange<char>(0x20, 0x7f));
  const std::string token = "tok_" + body;
  // Break the message somewhere after the token; the decoder then fails on a later check.
  std::string json = R"({"v":1,"type":"hello","token":")" + token + R"(","client":"c"})";
  const std::size_t after_token = json.find(token) + token.size();
  const auto cut = *rc::gen::inRange<std::size_t>(after_token, json.size());
  json.resize(cut);
  std::string detail;
  const auto tail = *rc::gen::element<std::string>("", ",", "]", " x", "\"", "}");
  auto r = decode_client_message(json + tail, detail);
  if (!r) {
    RC_ASSERT(detail.find("tok_") == std::string::npos);
  }
}

// ---- round-trip properties over generated values ----

// Valid UTF-8 of up to max_bytes bytes drawn from all planes, control characters
// (which JSON must escape) and the characters JSON quotes specially.
rc::Gen<std::string> gen_utf8(std::size_t min_bytes, std::size_t max_bytes) {
  const auto code_point = rc::gen::oneOf(
      rc::gen::inRange<std::uint32_t>(0x00, 0x80), rc::gen::element<std::uint32_t>('"', '\\', '/'),
      rc::gen::inRange<std::uint32_t>(0x80, 0x800), rc::gen::inRange<std::uint32_t>(0x800, 0xd800),
      rc::gen::inRange<std::uint32_t>(0xe000, 0x10000),
      rc::gen::inRange<std::uint32_t>(0x10000, 0x110000));
  const auto points = rc::gen::container<std::vector<std::uint32_t>>(code_point);
  auto text = rc::gen::map(points, [max_bytes](const std::vector<std::uint32_t>& cps) {
    std::string out;
    for (std::uint32_t cp : cps) {
      std::string c;
      if (cp < 0x80) {
        c.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        c.push_back(static_cast<char>(0xc0 | (cp >> 6)));
        c.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else if (cp < 0x10000) {
        c.push_back(static_cast<char>(0xe0 | (cp >> 12)));
        c.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        c.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      } else {
        c.push_back(static_cast<char>(0xf0 | (cp >> 18)));
        c.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        c.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
        c.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
      }
      if (out.size() + c.size() > max_bytes) {
        break;
      }
      out += c;
    }
    return out;
  });
  return rc::gen::suchThat(text,
                           [min_bytes](const std::string& s) { return s.size() >= min_bytes; });
}

rc::Gen<std::string> gen_nameplate() {
  return rc::gen::map(rc::gen::inRange<std::uint64_t>(0, 1u << 20),
                      [](std::uint64_t v) { return wire::crockford_encode(v, 4); });
}

rc::Gen<std::string> gen_session_id() {
  return rc::gen::map(
      rc::gen::container<std::vector<std::uint8_t>>(16, rc::gen::arbitrary<std::uint8_t>()),
      [](const std::vector<std::uint8_t>& b) { return wire::to_hex(b); });
}

rc::Gen<IpAddress> gen_ip() {
  return rc::gen::oneOf(
      rc::gen::map(rc::gen::arbitrary<std::array<std::uint8_t, 4>>(), &IpAddress::v4),
      rc::gen::map(rc::gen::arbitrary<std::array<std::uint8_t, 16>>(), &IpAddress::v6));
}

rc::Gen<wire::Bytes> gen_payload() { return rc::gen::nonEmpty(rc::gen::arbitrary<wire::Bytes>()); }

rc::Gen<ClientMessage> gen_client_message() {
  return rc::gen::oneOf(
      rc::gen::map(
          rc::gen::tuple(rc::gen::resize(300, rc::gen::nonEmpty(rc::gen::container<std::string>(
                                                  rc::gen::inRange<char>(0x21, 0x7f)))),
                         gen_utf8(1, kMaxSoftwareLength)),
          [](const std::tuple<std::string, std::string>& t) {
            auto token = std::get<0>(t).substr(0, kMaxTokenLength);
            return ClientMessage{Hello{Secret(token), std::get<1>(t)}};
          }),
      rc::gen::just(ClientMessage{CreateSession{}}),
      rc::gen::map(gen_nameplate(), [](std::string n) { return ClientMessage{JoinSession{n}}; }),
      rc::gen::map(gen_payload(), [](wire::Bytes p) { return ClientMessage{Signal{p}}; }),
      rc::gen::map(rc::gen::element(AbortReason::WrongCode, AbortReason::Cancelled,
                                    AbortReason::ProtocolError, AbortReason::Unknown),
                   [](AbortReason r) { return ClientMessage{Abort{r}}; }),
      rc::gen::just(ClientMessage{PunchReady{}}), rc::gen::exec([] {
        PathReport r;
        r.outcome = *rc::gen::element(PathOutcome::Direct, PathOutcome::Failed,
                                      PathOutcome::Impossible, PathOutcome::Unknown);
        r.reason = *gen_utf8(0, kMaxPathReasonLength);
        if (*rc::gen::arbitrary<bool>()) {
          r.rtt_ms = *rc::gen::inRange<std::uint32_t>(0, kMaxReportedRttMs + 1);
        }
        return ClientMessage{r};
      }));
}

rc::Gen<RelayMessage> gen_relay_message() {
  const auto welcome = rc::gen::exec([] {
    Welcome w;
    w.observed_address = SocketAddress(*gen_ip(), *rc::gen::inRange<std::uint16_t>(1, 65535));
    w.stun_port = *rc::gen::inRange<std::uint16_t>(1, 65535);
    w.alt_port = *rc::gen::arbitrary<std::uint16_t>();
    if (*rc::gen::arbitrary<bool>()) {
      w.alt_ip = *gen_ip();
    }
    w.relay = *gen_utf8(1, kMaxSoftwareLength);
    w.ping_interval_s = *rc::gen::inRange<std::uint32_t>(1, UINT32_MAX);
    return RelayMessage{w};
  });
  const auto error = rc::gen::exec([] {
    const auto code = *rc::gen::element(
        ErrorCode::MissingToken, ErrorCode::BadToken, ErrorCode::BadMessage,
        ErrorCode::UnsupportedVersion, ErrorCode::UnknownNameplate, ErrorCode::NameplateExpired,
        ErrorCode::NameplateInUse, ErrorCode::NotInSession, ErrorCode::AlreadyInSession,
        ErrorCode::RateLimited, ErrorCode::Internal, ErrorCode::Unknown);
    return RelayMessage{Error{code, *gen_utf8(0, kMaxErrorMessageLength)}};
  });
  const auto created = rc::gen::exec([] {
    return RelayMessage{
        SessionCreated{*gen_nameplate(), *gen_session_id(), *rc::gen::arbitrary<std::uint32_t>()}};
  });
  const auto joined = rc::gen::exec(
      [] { return RelayMessage{SessionJoined{*gen_nameplate(), *gen_session_id()}}; });
  const auto peer_joined =
      rc::gen::exec([] { return RelayMessage{PeerJoined{*gen_session_id()}}; });
  const auto signal =
      rc::gen::map(gen_payload(), [](wire::Bytes p) { return RelayMessage{Signal{p}}; });
  const auto left =
      rc::gen::map(rc::gen::element(PeerLeftReason::Disconnected, PeerLeftReason::WrongCode,
                                    PeerLeftReason::Cancelled, PeerLeftReason::ProtocolError,
                                    PeerLeftReason::Unknown),
                   [](PeerLeftReason r) { return RelayMessage{PeerLeft{r}}; });
  return rc::gen::oneOf(welcome, error, created, joined, peer_joined, signal, left,
                        rc::gen::just(RelayMessage{Fire{}}));
}

RC_GTEST_PROP(ControlProperty, ClientMessagesRoundTrip, ()) {
  const auto message = *gen_client_message();
  const std::string json = encode(message);
  RC_ASSERT(json.size() <= kMaxMessageSize);
  RC_ASSERT(json.starts_with(R"({"v":1,"type":")" + std::string(type_name(message)) + "\""));
  std::string detail;
  auto back = decode_client_message(json, detail);
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == message);
  RC_ASSERT(encode(*back) == json);
}

RC_GTEST_PROP(ControlProperty, RelayMessagesRoundTrip, ()) {
  const auto message = *gen_relay_message();
  const std::string json = encode(message);
  RC_ASSERT(json.size() <= kMaxMessageSize);
  RC_ASSERT(json.starts_with(R"({"v":1,"type":")" + std::string(type_name(message)) + "\""));
  std::string detail;
  auto back = decode_relay_message(json, detail);
  RC_ASSERT(back.has_value());
  RC_ASSERT(*back == message);
  RC_ASSERT(encode(*back) == json);
}

// Signal's encoding has a fixed frame, so its length is exact.
RC_GTEST_PROP(ControlProperty, SignalEncodedLengthIsExact, ()) {
  const auto payload = *gen_payload();
  const std::string json = encode(Signal{payload});
  constexpr std::string_view kFrame = R"({"v":1,"type":"signal","payload":""})";
  RC_ASSERT(json.size() == kFrame.size() + wire::base64_encoded_size(payload.size()));
  RC_ASSERT(json == encode(ClientMessage{Signal{payload}}));
  RC_ASSERT(json == encode(RelayMessage{Signal{payload}}));
}

TEST(ControlEncodeTest, LargestValuesStayUnderTheFrameLimit) {
  // Worst cases for expansion: a full payload, and text that JSON escapes six-fold.
  EXPECT_LE(encode(Signal{wire::Bytes(kMaxSignalPayload, 0xff)}).size(), kMaxMessageSize);
  const std::string controls(kMaxErrorMessageLength, '\x01');
  const std::string json = encode(RelayMessage{Error{ErrorCode::Internal, controls}});
  EXPECT_LE(json.size(), kMaxMessageSize);
  auto back = decode_relay_message(json);
  ASSERT_TRUE(back);
  EXPECT_EQ(std::get<Error>(*back).message, controls);
}

}  // namespace
}  // namespace peertun::control
