#include "traversal/nat_behavior.h"

#include <algorithm>
#include <boost/json.hpp>
#include <boost/system/errc.hpp>

#include "base/random.h"

namespace peertun::traversal {
namespace {

using Clock = BehaviorProbe::Clock;

constexpr std::string_view kLimitNo5780 =
    "the STUN server announces no OTHER-ADDRESS (no RFC 5780): mapping and filtering not tested";
constexpr std::string_view kLimitNoAltIpMapping =
    "the server has no alternate IP: address-dependent mapping cannot be told from "
    "endpoint-independent mapping";
constexpr std::string_view kLimitNoAltIpFiltering =
    "the server has no alternate IP: address-dependent filtering not tested (endpoint-"
    "independent filtering cannot be told from address-dependent filtering)";

bool is_symmetric(MappingBehavior m) {
  return m == MappingBehavior::AddressDependent || m == MappingBehavior::AddressAndPortDependent;
}

bool answered(const TestResult& r) {
  return r.outcome == TestOutcome::Answered && r.mapped.has_value();
}

// What a test that did not answer means for the user.
std::string missing_note(std::string_view what, const TestResult& r) {
  switch (r.outcome) {
    case TestOutcome::Refused:
      return std::string(what) + ": the server refused the request";
    case TestOutcome::Cut:
      return std::string(what) + ": cut short by the time budget (inconclusive)";
    case TestOutcome::NoAnswer:
      return std::string(what) + ": no answer";
    case TestOutcome::NotRun:
    case TestOutcome::Answered:
      break;
  }
  return std::string(what) + ": not run";
}

void add_limit(NatVerdict& v, std::string_view note) {
  if (std::find(v.limits.begin(), v.limits.end(), note) == v.limits.end()) {
    v.limits.emplace_back(note);
  }
}

// RFC 5780 §4.3.
void classify_mapping(const Observations& o, NatVerdict& v) {
  const auto& x1 = o.map_primary.mapped;
  if (!answered(o.map_primary)) {
    return;
  }
  if (v.behind_nat == false) {
    // "If this address and port are the same as the local IP address and port of the
    // socket used to send the request, the client knows that it is not NATed".
    v.mapping = MappingBehavior::NoNat;
    v.mapping_ip_tested = true;
    return;
  }
  if (!o.other) {
    add_limit(v, kLimitNo5780);
    return;
  }
  const bool alt_ip = server_has_alternate_ip(o);
  v.mapping_ip_tested = alt_ip && answered(o.map_alt_ip);
  // Same IP, other port: a different mapping can only mean address-and-port-dependent.
  if (answered(o.map_alt_port) && *o.map_alt_port.mapped != *x1) {
    v.mapping = MappingBehavior::AddressAndPortDependent;
    return;
  }
  if (alt_ip && answered(o.map_alt_ip)) {
    const auto& x2 = *o.map_alt_ip.mapped;
    if (x2 == *x1) {
      // Test II: "the same as test I: the NAT currently has Endpoint-Independent Mapping".
      v.mapping = MappingBehavior::EndpointIndependent;
      return;
    }
    if (answered(o.map_alt_port)) {
      // The port alone does not change it, the IP does.
      v.mapping = MappingBehavior::AddressDependent;
      return;
    }
    if (answered(o.map_alt_both)) {
      // Test III: "matches test II: Address-Dependent; if it doesn't match, Address and
      // Port-Dependent".
      v.mapping = *o.map_alt_both.mapped == x2 ? MappingBehavior::AddressDependent
                                               : MappingBehavior::AddressAndPortDependent;
      return;
    }
    add_limit(v, "mapping changes with the destination IP, but the port test got no answer");
    return;
  }
  if (alt_ip) {
    add_limit(v, missing_note("mapping test to the alternate IP", o.map_alt_ip));
  } else {
    add_limit(v, kLimitNoAltIpMapping);
  }
  if (answered(o.map_alt_port)) {
    // Same mapping towards another port of the same IP: endpoint-independent as far as
    // this test can see (address-dependent would look the same).
    v.mapping = MappingBehavior::EndpointIndependent;
    return;
  }
  add_limit(v, missing_note("mapping test to the alternate port", o.map_alt_port));
}

// RFC 5780 §4.4.
void classify_filtering(const Observations& o, NatVerdict& v) {
  if (!answered(o.filter_primary)) {
    if (o.filter_primary.outcome != TestOutcome::NotRun) {
      add_limit(v, missing_note("filtering test I", o.filter_primary));
    }
    return;
  }
  if (!o.other) {
    add_limit(v, kLimitNo5780);
    return;
  }
  const bool no_nat = v.behind_nat == false;
  const auto& both = o.filter_change_both;
  // Only an answer that really came from another IP tests IP filtering; a server that
  // ignores change-IP answers from the primary IP's other port.
  const bool both_from_other_ip =
      answered(both) && both.source && both.source->ip() != o.primary.ip();
  if (both_from_other_ip) {
    // Test II answered: "the current behavior is Endpoint-Independent Filtering".
    v.filtering = no_nat ? FilteringBehavior::NoNat : FilteringBehavior::EndpointIndependent;
    v.filtering_ip_tested = true;
    return;
  }
  const bool ip_test_conclusive =
      server_has_alternate_ip(o) && both.outcome == TestOutcome::NoAnswer;
  v.filtering_ip_tested = ip_test_conclusive;
  // Only said when it matters: port-dependent filtering is conclusive without the IP test.
  auto note_ip_untested = [&] {
    if (ip_test_conclusive) {
      return;
    }
    if (server_has_alternate_ip(o)) {
      add_limit(v, missing_note("filtering test from the alternate IP", both));
    } else {
      add_limit(v, kLimitNoAltIpFiltering);
    }
  };
  const auto& port = o.filter_change_port;
  const bool port_answer =
      (answered(port) && port.source && port.source->port() != o.primary.port()) ||
      (answered(both) && both.source && both.source->port() != o.primary.port());
  if (port_answer) {
    // Test III answered: "Address-Dependent Filtering" — or, without the IP test, at
    // least no port-dependent filtering.
    note_ip_untested();
    if (no_nat && !ip_test_conclusive) {
      v.filtering = FilteringBehavior::NoNat;
    } else {
      v.filtering = FilteringBehavior::AddressDependent;
    }
    return;
  }
  if (port.outcome == TestOutcome::NoAnswer) {
    // "if no response is received, the current behavior is Address and Port-Dependent".
    v.filtering = FilteringBehavior::AddressAndPortDependent;
    return;
  }
  note_ip_untested();
  add_limit(v, missing_note("filtering test from the alternate port", port));
}

}  // namespace

// --- Words --------------------------------------------------------------------------------

std::string_view to_string(MappingBehavior m) {
  switch (m) {
    case MappingBehavior::NoNat:
      return "no-nat";
    case MappingBehavior::EndpointIndependent:
      return "endpoint-independent";
    case MappingBehavior::AddressDependent:
      return "address-dependent";
    case MappingBehavior::AddressAndPortDependent:
      return "address-and-port-dependent";
    case MappingBehavior::Unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(FilteringBehavior f) {
  switch (f) {
    case FilteringBehavior::NoNat:
      return "no-nat";
    case FilteringBehavior::EndpointIndependent:
      return "endpoint-independent";
    case FilteringBehavior::AddressDependent:
      return "address-dependent";
    case FilteringBehavior::AddressAndPortDependent:
      return "address-and-port-dependent";
    case FilteringBehavior::Unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(UdpStatus u) {
  switch (u) {
    case UdpStatus::Works:
      return "works";
    case UdpStatus::Blocked:
      return "blocked";
    case UdpStatus::Unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(Hairpin h) {
  switch (h) {
    case Hairpin::Yes:
      return "yes";
    case Hairpin::No:
      return "no";
    case Hairpin::Unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(Confidence c) {
  switch (c) {
    case Confidence::Full:
      return "full";
    case Confidence::Partial:
      return "partial";
    case Confidence::None:
      break;
  }
  return "none";
}

std::string_view to_string(DirectPathOutlook o) {
  switch (o) {
    case DirectPathOutlook::Possible:
      return "possible";
    case DirectPathOutlook::Impossible:
      return "impossible";
    case DirectPathOutlook::Unknown:
      break;
  }
  return "unknown";
}

std::string_view to_string(ProbeTest t) {
  switch (t) {
    case ProbeTest::MapPrimary:
      return "map-primary";
    case ProbeTest::MapAltPort:
      return "map-alt-port";
    case ProbeTest::MapAltIp:
      return "map-alt-ip";
    case ProbeTest::MapAltBoth:
      return "map-alt-both";
    case ProbeTest::FilterPrimary:
      return "filter-primary";
    case ProbeTest::FilterChangeBoth:
      return "filter-change-both";
    case ProbeTest::FilterChangePort:
      return "filter-change-port";
    case ProbeTest::Hairpin:
      return "hairpin";
  }
  return "unknown";
}

namespace {

template <class E, std::size_t N>
std::optional<E> from_word(std::string_view s, const std::array<E, N>& all) {
  for (E e : all) {
    if (to_string(e) == s) {
      return e;
    }
  }
  return std::nullopt;
}

constexpr std::array kMappings{
    MappingBehavior::Unknown, MappingBehavior::NoNat, MappingBehavior::EndpointIndependent,
    MappingBehavior::AddressDependent, MappingBehavior::AddressAndPortDependent};
constexpr std::array kFilterings{
    FilteringBehavior::Unknown, FilteringBehavior::NoNat, FilteringBehavior::EndpointIndependent,
    FilteringBehavior::AddressDependent, FilteringBehavior::AddressAndPortDependent};

}  // namespace

std::optional<MappingBehavior> mapping_from_string(std::string_view s) {
  return from_word(s, kMappings);
}
std::optional<FilteringBehavior> filtering_from_string(std::string_view s) {
  return from_word(s, kFilterings);
}
std::optional<UdpStatus> udp_status_from_string(std::string_view s) {
  return from_word(s, std::array{UdpStatus::Unknown, UdpStatus::Works, UdpStatus::Blocked});
}
std::optional<Hairpin> hairpin_from_string(std::string_view s) {
  return from_word(s, std::array{Hairpin::Unknown, Hairpin::Yes, Hairpin::No});
}
std::optional<Confidence> confidence_from_string(std::string_view s) {
  return from_word(s, std::array{Confidence::None, Confidence::Partial, Confidence::Full});
}

std::string_view verdict_name(const NatVerdict& v) {
  if (v.udp == UdpStatus::Blocked) {
    return "UDP blocked";
  }
  if (v.mapping == MappingBehavior::NoNat) {
    return "no NAT";
  }
  if (is_symmetric(v.mapping)) {
    return "symmetric";
  }
  if (v.mapping == MappingBehavior::EndpointIndependent) {
    switch (v.filtering) {
      case FilteringBehavior::NoNat:
      case FilteringBehavior::EndpointIndependent:
        return "full cone";
      case FilteringBehavior::AddressDependent:
        return "restricted cone";
      case FilteringBehavior::AddressAndPortDependent:
        return "port-restricted cone";
      case FilteringBehavior::Unknown:
        break;
    }
  }
  return "unknown";
}

// --- JSON ---------------------------------------------------------------------------------

boost::json::object to_json(const NatVerdict& v) {
  boost::json::object o;
  o["udp"] = to_string(v.udp);
  if (v.behind_nat) {
    o["behind_nat"] = *v.behind_nat;
  }
  o["mapping"] = to_string(v.mapping);
  o["filtering"] = to_string(v.filtering);
  o["mapping_ip_tested"] = v.mapping_ip_tested;
  o["filtering_ip_tested"] = v.filtering_ip_tested;
  if (v.public_address) {
    o["public"] = v.public_address->to_string();
  }
  o["hairpin"] = to_string(v.hairpin);
  o["confidence"] = to_string(v.confidence);
  boost::json::array limits;
  for (const auto& l : v.limits) {
    limits.emplace_back(l);
  }
  o["limits"] = std::move(limits);
  return o;
}

base::Result<NatVerdict> nat_verdict_from_json(const boost::json::value& json) {
  const auto invalid = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  if (!json.is_object()) {
    return invalid;
  }
  const auto& o = json.get_object();
  NatVerdict v;
  // A word field: absent = default; not a string = malformed; unknown word = Unknown.
  auto word = [&o](std::string_view key, auto parse, auto& out) -> bool {
    const auto* f = o.if_contains(key);
    if (f == nullptr) {
      return true;
    }
    if (!f->is_string()) {
      return false;
    }
    if (auto parsed = parse(std::string_view(f->get_string()))) {
      out = *parsed;
    }
    return true;
  };
  auto flag = [&o](std::string_view key, bool& out) -> bool {
    const auto* f = o.if_contains(key);
    if (f == nullptr) {
      return true;
    }
    if (!f->is_bool()) {
      return false;
    }
    out = f->get_bool();
    return true;
  };
  if (!word("udp", udp_status_from_string, v.udp) ||
      !word("mapping", mapping_from_string, v.mapping) ||
      !word("filtering", filtering_from_string, v.filtering) ||
      !word("hairpin", hairpin_from_string, v.hairpin) ||
      !word("confidence", confidence_from_string, v.confidence) ||
      !flag("mapping_ip_tested", v.mapping_ip_tested) ||
      !flag("filtering_ip_tested", v.filtering_ip_tested)) {
    return invalid;
  }
  if (const auto* f = o.if_contains("behind_nat")) {
    if (!f->is_bool()) {
      return invalid;
    }
    v.behind_nat = f->get_bool();
  }
  if (const auto* f = o.if_contains("public")) {
    if (!f->is_string()) {
      return invalid;
    }
    auto address = base::SocketAddress::parse(std::string_view(f->get_string()));
    if (!address) {
      return invalid;
    }
    v.public_address = *address;
  }
  if (const auto* f = o.if_contains("limits")) {
    if (!f->is_array() || f->get_array().size() > kMaxVerdictLimits) {
      return invalid;
    }
    for (const auto& item : f->get_array()) {
      if (!item.is_string() || item.get_string().size() > kMaxVerdictLimitLength) {
        return invalid;
      }
      v.limits.emplace_back(item.get_string());
    }
  }
  return v;
}

// --- Classifiers --------------------------------------------------------------------------

bool server_has_alternate_ip(const Observations& o) {
  return o.other.has_value() && o.other->ip() != o.primary.ip();
}

NatVerdict classify(const Observations& o) {
  NatVerdict v;
  const bool any_answer = o.map_primary.outcome == TestOutcome::Answered ||
                          o.filter_primary.outcome == TestOutcome::Answered ||
                          o.map_primary.outcome == TestOutcome::Refused ||
                          o.filter_primary.outcome == TestOutcome::Refused;
  if (any_answer) {
    v.udp = UdpStatus::Works;
  } else if (o.map_primary.outcome == TestOutcome::NoAnswer &&
             o.filter_primary.outcome != TestOutcome::Cut) {
    // The whole budget passed without one answer from the server: RFC 5780 §4.2 "UDP
    // connectivity test" failed.
    v.udp = UdpStatus::Blocked;
    v.confidence = Confidence::Full;
    return v;
  } else {
    add_limit(v, missing_note("UDP connectivity test", o.map_primary));
    return v;
  }

  if (answered(o.map_primary)) {
    v.public_address = o.map_primary.mapped;
  } else if (answered(o.filter_primary)) {
    v.public_address = o.filter_primary.mapped;
  }
  if (v.public_address && !o.local.empty()) {
    v.behind_nat = std::find(o.local.begin(), o.local.end(), *v.public_address) == o.local.end();
  }
  if (!answered(o.map_primary)) {
    add_limit(v, missing_note("mapping test I", o.map_primary));
  }
  classify_mapping(o, v);
  if (o.filter_primary.outcome == TestOutcome::NotRun) {
    add_limit(v, "filtering not tested");
  }
  classify_filtering(o, v);
  v.hairpin = o.hairpin;

  const bool mapping_full =
      v.mapping == MappingBehavior::NoNat || v.mapping == MappingBehavior::AddressDependent ||
      v.mapping == MappingBehavior::AddressAndPortDependent ||
      (v.mapping == MappingBehavior::EndpointIndependent && v.mapping_ip_tested);
  const bool filtering_full =
      v.filtering != FilteringBehavior::Unknown &&
      (v.filtering_ip_tested || v.filtering == FilteringBehavior::AddressAndPortDependent);
  if (mapping_full && filtering_full) {
    v.confidence = Confidence::Full;
  } else if (v.mapping != MappingBehavior::Unknown || v.filtering != FilteringBehavior::Unknown) {
    v.confidence = Confidence::Partial;
  } else {
    v.confidence = Confidence::None;
  }
  return v;
}

NatVerdict quick_mapping_verdict(std::optional<base::SocketAddress> primary_mapped,
                                 std::optional<base::SocketAddress> alt_port_mapped,
                                 std::optional<base::SocketAddress> alt_ip_mapped,
                                 std::span<const base::SocketAddress> local) {
  // The same reasoning as classify(), with a fabricated server layout: the function only
  // compares mapped addresses, so the server addresses need only differ as the tests did.
  Observations o;
  o.primary = base::SocketAddress(base::IpAddress::v4({192, 0, 2, 1}), 1);
  o.other =
      base::SocketAddress(alt_ip_mapped ? base::IpAddress::v4({192, 0, 2, 2}) : o.primary.ip(), 2);
  o.local.assign(local.begin(), local.end());
  auto result = [](const std::optional<base::SocketAddress>& mapped) {
    return mapped ? TestResult{TestOutcome::Answered, mapped, std::nullopt}
                  : TestResult{TestOutcome::NoAnswer, std::nullopt, std::nullopt};
  };
  o.map_primary = result(primary_mapped);
  o.map_alt_port = result(alt_port_mapped);
  if (alt_ip_mapped) {
    o.map_alt_ip = result(alt_ip_mapped);
  }
  auto v = classify(o);
  // The fabricated layout must not leak into the wording: say what this mode skipped.
  std::erase_if(v.limits, [](const std::string& l) {
    return l == kLimitNoAltIpFiltering || l == "filtering not tested";
  });
  if (!alt_ip_mapped && v.mapping == MappingBehavior::EndpointIndependent) {
    std::erase(v.limits, std::string(kLimitNoAltIpMapping));
    add_limit(v,
              "no alternate-IP test: address-dependent mapping cannot be told from "
              "endpoint-independent mapping");
  }
  if (v.udp == UdpStatus::Works) {
    add_limit(v, "filtering not tested (quick mapping check)");
    if (v.confidence == Confidence::Full) {
      v.confidence = Confidence::Partial;
    }
  }
  return v;
}

NatVerdict with_filtering(NatVerdict session, const NatVerdict& full) {
  if (full.filtering == FilteringBehavior::Unknown) {
    return session;
  }
  session.filtering = full.filtering;
  session.filtering_ip_tested = full.filtering_ip_tested;
  if (session.hairpin == Hairpin::Unknown) {
    session.hairpin = full.hairpin;
  }
  std::erase(session.limits, std::string("filtering not tested (quick mapping check)"));
  for (const auto& l : full.limits) {
    if (l.find("filtering") != std::string::npos && l.find("mapping") == std::string::npos) {
      add_limit(session, l);
    }
  }
  if (session.mapping_ip_tested && session.filtering_ip_tested && session.limits.empty() &&
      session.confidence == Confidence::Partial) {
    session.confidence = Confidence::Full;
  }
  return session;
}

// --- Pair decision ------------------------------------------------------------------------

namespace {

struct Reading {
  UdpStatus udp;
  MappingBehavior mapping;
  FilteringBehavior filtering;
};

// Every reading a verdict allows; the reported one first.
std::vector<Reading> readings(const NatVerdict& v) {
  std::vector<UdpStatus> udps{v.udp};
  if (v.udp == UdpStatus::Unknown) {
    udps = {UdpStatus::Works, UdpStatus::Blocked};
  }
  std::vector<MappingBehavior> maps{v.mapping};
  if (v.mapping == MappingBehavior::Unknown) {
    maps = {MappingBehavior::EndpointIndependent, MappingBehavior::AddressDependent,
            MappingBehavior::AddressAndPortDependent};
  } else if (v.mapping == MappingBehavior::EndpointIndependent && !v.mapping_ip_tested) {
    maps.push_back(MappingBehavior::AddressDependent);
  }
  std::vector<FilteringBehavior> filters{v.filtering};
  if (v.filtering == FilteringBehavior::Unknown) {
    filters = {FilteringBehavior::EndpointIndependent, FilteringBehavior::AddressDependent,
               FilteringBehavior::AddressAndPortDependent};
  } else if ((v.filtering == FilteringBehavior::AddressDependent ||
              v.filtering == FilteringBehavior::NoNat) &&
             !v.filtering_ip_tested) {
    // Untested IP filtering: the NAT may be more open (EIF) and, for "no NAT", the
    // firewall may filter by address.
    filters.push_back(v.filtering == FilteringBehavior::NoNat
                          ? FilteringBehavior::AddressDependent
                          : FilteringBehavior::EndpointIndependent);
  }
  std::vector<Reading> out;
  for (auto u : udps) {
    for (auto m : maps) {
      for (auto f : filters) {
        out.push_back({u, m, f});
      }
    }
  }
  return out;
}

PathOutlook decide(const Reading& a, const Reading& b, bool same_public_ip, std::string_view an,
                   std::string_view bn) {
  using O = DirectPathOutlook;
  auto name = [](std::string_view n) { return std::string(n); };
  if (a.udp == UdpStatus::Blocked && b.udp == UdpStatus::Blocked) {
    return {O::Impossible, "UDP blocked on both peers"};
  }
  if (a.udp == UdpStatus::Blocked) {
    return {O::Impossible, "UDP blocked on " + name(an)};
  }
  if (b.udp == UdpStatus::Blocked) {
    return {O::Impossible, "UDP blocked on " + name(bn)};
  }
  if (same_public_ip) {
    return {O::Possible, "same NAT"};
  }
  const bool sa = is_symmetric(a.mapping);
  const bool sb = is_symmetric(b.mapping);
  if (sa && sb) {
    return {O::Impossible, "symmetric NAT on both peers"};
  }
  // A symmetric side reaches the other from a mapping the other never saw; only a
  // filter that ignores the port lets that first packet in.
  if (sa && b.filtering == FilteringBehavior::AddressAndPortDependent) {
    return {O::Impossible,
            "symmetric NAT on " + name(an) + ", port-restricted filtering on " + name(bn)};
  }
  if (sb && a.filtering == FilteringBehavior::AddressAndPortDependent) {
    return {O::Impossible,
            "symmetric NAT on " + name(bn) + ", port-restricted filtering on " + name(an)};
  }
  if (sa) {
    return {O::Possible, "symmetric NAT on " + name(an) + ", reachable through " + name(bn) +
                             "'s endpoint-independent mapping"};
  }
  if (sb) {
    return {O::Possible, "symmetric NAT on " + name(bn) + ", reachable through " + name(an) +
                             "'s endpoint-independent mapping"};
  }
  return {O::Possible, "no symmetric NAT on either side"};
}

bool has_doubt(const NatVerdict& v) { return readings(v).size() > 1; }

}  // namespace

PathOutlook direct_path_outlook(const NatVerdict& a, const NatVerdict& b, std::string_view a_name,
                                std::string_view b_name) {
  const bool same_public_ip =
      a.public_address && b.public_address && a.public_address->ip() == b.public_address->ip();
  const auto ra = readings(a);
  const auto rb = readings(b);
  std::optional<PathOutlook> first;
  for (const auto& x : ra) {
    for (const auto& y : rb) {
      auto d = decide(x, y, same_public_ip, a_name, b_name);
      if (!first) {
        first = std::move(d);
      } else if (d.outlook != first->outlook) {
        std::string who;
        if (has_doubt(a) && has_doubt(b)) {
          who = "both peers' NATs";
        } else {
          who = std::string(has_doubt(a) ? a_name : b_name) + "'s NAT";
        }
        return {DirectPathOutlook::Unknown, "not enough known about " + who};
      }
    }
  }
  return *first;
}

// --- BehaviorProbe ------------------------------------------------------------------------

BehaviorProbe::BehaviorProbe(ProbeConfig config) : config_(std::move(config)) {
  obs_.primary = config_.primary;
  obs_.other = config_.other;
  obs_.local = config_.local;
}

TestResult* BehaviorProbe::result_of(ProbeTest test) {
  switch (test) {
    case ProbeTest::MapPrimary:
      return &obs_.map_primary;
    case ProbeTest::MapAltPort:
      return &obs_.map_alt_port;
    case ProbeTest::MapAltIp:
      return &obs_.map_alt_ip;
    case ProbeTest::MapAltBoth:
      return &obs_.map_alt_both;
    case ProbeTest::FilterPrimary:
      return &obs_.filter_primary;
    case ProbeTest::FilterChangeBoth:
      return &obs_.filter_change_both;
    case ProbeTest::FilterChangePort:
      return &obs_.filter_change_port;
    case ProbeTest::Hairpin:
      break;
  }
  return nullptr;  // the hairpin test records obs_.hairpin instead
}

void BehaviorProbe::start(Clock::time_point now) {
  if (started_) {
    return;
  }
  started_ = true;
  end_ = now + config_.budget;
  stun::BindingRequestOptions plain;
  plain.software = config_.software;
  launch(ProbeTest::MapPrimary, config_.primary, plain, now, config_.budget);
  if (config_.mode == ProbeMode::Full) {
    launch(ProbeTest::FilterPrimary, config_.primary, plain, now, config_.budget);
  }
  launch_dependent(now);
}

void BehaviorProbe::launch(ProbeTest test, base::SocketAddress destination,
                           stun::BindingRequestOptions options, Clock::time_point now,
                           Clock::duration bound) {
  auto& t = txns_[static_cast<std::size_t>(test)];
  if (t.state != State::Idle) {
    return;
  }
  t.state = State::Running;
  t.socket = test == ProbeTest::FilterPrimary || test == ProbeTest::FilterChangeBoth ||
                     test == ProbeTest::FilterChangePort
                 ? ProbeSocket::Filtering
                 : ProbeSocket::Mapping;
  base::random_bytes(t.txid);
  t.destination = destination;
  t.request = stun::make_binding_request(t.txid, options);
  t.started = now;
  t.next_send = now;
  t.full_bound = now + bound <= end_;
  t.deadline = std::min(now + bound, end_);
  t.rto = rto_;
}

// Starts every test whose inputs are known. Idempotent: launch() skips started tests.
void BehaviorProbe::launch_dependent(Clock::time_point now) {
  if (!obs_.other || now >= end_) {
    return;
  }
  const auto primary = obs_.primary;
  const auto other = *obs_.other;
  const bool alt_ip = server_has_alternate_ip(obs_);
  stun::BindingRequestOptions plain;
  plain.software = config_.software;
  const auto bound = std::chrono::duration_cast<Clock::duration>(config_.test_bound);
  const bool map_primary_failed =
      txns_[static_cast<std::size_t>(ProbeTest::MapPrimary)].state == State::Finished &&
      !answered(obs_.map_primary);
  if (!map_primary_failed && other.port() != primary.port()) {
    launch(ProbeTest::MapAltPort, {primary.ip(), other.port()}, plain, now, bound);
  }
  if (!map_primary_failed && alt_ip) {
    launch(ProbeTest::MapAltIp, {other.ip(), primary.port()}, plain, now, bound);
    if (config_.mode == ProbeMode::Full) {
      launch(ProbeTest::MapAltBoth, other, plain, now, bound);
    }
  }
  if (config_.mode != ProbeMode::Full) {
    return;
  }
  if (answered(obs_.filter_primary) && other.port() != primary.port()) {
    if (alt_ip) {
      auto both = plain;
      both.change_ip = true;
      both.change_port = true;
      launch(ProbeTest::FilterChangeBoth, primary, both, now, bound);
    }
    auto port = plain;
    port.change_port = true;
    launch(ProbeTest::FilterChangePort, primary, port, now, bound);
  }
  // RFC 5780 §4.6: a request to our own mapped address, from the same socket. Only
  // meaningful behind a NAT.
  if (answered(obs_.map_primary)) {
    const auto& mapped = *obs_.map_primary.mapped;
    const bool own = std::find(obs_.local.begin(), obs_.local.end(), mapped) != obs_.local.end();
    if (!own) {
      launch(ProbeTest::Hairpin, mapped, plain, now, bound);
    }
  }
}

std::vector<ProbeSend> BehaviorProbe::poll_send(Clock::time_point now) {
  std::vector<ProbeSend> out;
  if (!started_ || done_) {
    return out;
  }
  on_timer(now);
  for (std::size_t i = 0; i < txns_.size(); ++i) {
    auto& t = txns_[i];
    if (t.state != State::Running || now < t.next_send) {
      continue;
    }
    out.push_back({static_cast<ProbeTest>(i), t.socket, t.destination, t.request});
    // RFC 8489 §6.2.1: retransmit after RTO, doubling each time.
    t.next_send = now + t.rto;
    t.rto *= 2;
  }
  return out;
}

bool BehaviorProbe::on_datagram(ProbeSocket socket, const base::SocketAddress& source,
                                stun::ByteView data, Clock::time_point now) {
  if (!started_ || !stun::looks_like_stun(data)) {
    return false;
  }
  auto view = stun::parse(data);
  if (!view) {
    return false;
  }
  const auto txid = view->transaction_id();
  for (std::size_t i = 0; i < txns_.size(); ++i) {
    auto& t = txns_[i];
    if (t.state == State::Idle || t.txid != txid || t.socket != socket) {
      continue;
    }
    const auto test = static_cast<ProbeTest>(i);
    if (t.state == State::Finished) {
      return true;  // a late duplicate of an answer we have: still ours
    }
    if (test == ProbeTest::Hairpin) {
      if (view->method() == stun::Method::Binding &&
          view->message_class() == stun::MessageClass::Request) {
        obs_.hairpin = Hairpin::Yes;
        t.state = State::Finished;
        check_done(now);
      }
      return true;
    }
    auto response = stun::parse_binding_response(*view);
    if (!response) {
      return true;  // ours, but unreadable: keep waiting for a retransmission's answer
    }
    auto* r = result_of(test);
    r->source = source;
    if (!response->success) {
      r->outcome = TestOutcome::Refused;
    } else {
      r->outcome = TestOutcome::Answered;
      r->mapped = response->mapped_address;
    }
    t.state = State::Finished;
    if (!obs_.other && response->other_address &&
        response->other_address->family() == obs_.primary.family()) {
      obs_.other = response->other_address;
    }
    if (test == ProbeTest::MapPrimary || test == ProbeTest::FilterPrimary) {
      // RFC 6298 §2.2 with RTTVAR = R/2: RTO = R + 4 * R/2 = 3R.
      const auto rtt = now - t.started;
      rto_ = std::clamp<Clock::duration>(3 * rtt, kMinRto, kInitialRto);
    }
    launch_dependent(now);
    check_done(now);
    return true;
  }
  return false;
}

void BehaviorProbe::finish(ProbeTest test, TestOutcome outcome) {
  auto& t = txns_[static_cast<std::size_t>(test)];
  t.state = State::Finished;
  if (test == ProbeTest::Hairpin) {
    obs_.hairpin = outcome == TestOutcome::NoAnswer ? Hairpin::No : Hairpin::Unknown;
    return;
  }
  result_of(test)->outcome = outcome;
}

void BehaviorProbe::on_timer(Clock::time_point now) {
  if (!started_ || done_) {
    return;
  }
  for (std::size_t i = 0; i < txns_.size(); ++i) {
    auto& t = txns_[i];
    if (t.state == State::Running && now >= t.deadline) {
      finish(static_cast<ProbeTest>(i), t.full_bound ? TestOutcome::NoAnswer : TestOutcome::Cut);
    }
  }
  if (now >= end_) {
    for (std::size_t i = 0; i < txns_.size(); ++i) {
      if (txns_[i].state == State::Running) {
        finish(static_cast<ProbeTest>(i), TestOutcome::Cut);
      }
    }
  }
  // A failed test I ends the dependents' chances; an answered one may start them.
  launch_dependent(now);
  check_done(now);
}

void BehaviorProbe::check_done(Clock::time_point now) {
  bool running = false;
  for (const auto& t : txns_) {
    running = running || t.state == State::Running;
  }
  if (!running) {
    // Nothing in flight and nothing more can start (launch_dependent ran after every
    // change), or the budget is spent.
    done_ = true;
  }
  if (now >= end_) {
    done_ = true;
  }
}

std::optional<Clock::time_point> BehaviorProbe::next_deadline() const {
  if (!started_ || done_) {
    return std::nullopt;
  }
  std::optional<Clock::time_point> next;
  for (const auto& t : txns_) {
    if (t.state != State::Running) {
      continue;
    }
    const auto at = std::min(t.next_send, t.deadline);
    if (!next || at < *next) {
      next = at;
    }
  }
  return next ? std::min(*next, end_) : end_;
}

NatVerdict BehaviorProbe::verdict() const { return classify(obs_); }

}  // namespace peertun::traversal
