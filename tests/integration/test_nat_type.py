"""`peertun debug nat-type` on loopback: RFC 5780 behaviour discovery against our relay
(with and without an alternate IP) and against coturn, plus the two failure shapes
(UDP silent but TCP answers; nothing answers at all), and "IPv6 reachable" (yes against a
relay on [::1], not tested against an IPv4 address, no when [::1] is silent).

Loopback has no NAT, so the verdict is "no NAT"; the NAT types themselves are covered by
the unit tests' simulated NAT and by the namespace lab."""
import os
import re
import shutil
import socket
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
sys.path.insert(0, os.path.dirname(__file__))
from harness import PeertunTestCase  # noqa: E402
import test_interop as interop  # noqa: E402  (helpers only; its tests run in their own suite)


def unused_port():
    """A port with nothing bound on UDP or TCP at 127.0.0.1 (checked, then released)."""
    for _ in range(50):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            t.close()
    raise RuntimeError("no unused port")


class NatTypeAgainstOurRelay(PeertunTestCase):
    def nat_type(self, relay_address, *extra, json_output=True):
        return self.peer("debug", "nat-type", *extra, relay=relay_address, token=None,
                         json_output=json_output)

    def test_relay_with_alternate_ip_gives_no_nat_with_full_confidence(self):
        relay = self.relay("--alt-ip", "127.0.0.2", listen="127.0.0.1:0")
        d = self.nat_type(f"127.0.0.1:{relay.port}")
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        self.assertEqual(ev["verdict"], "no NAT")
        self.assertEqual(ev["udp"], "works")
        self.assertFalse(ev["behind_nat"])
        self.assertEqual(ev["mapping"], "no-nat")
        self.assertEqual(ev["filtering"], "no-nat")
        self.assertTrue(ev["mapping_ip_tested"])
        self.assertTrue(ev["filtering_ip_tested"])
        self.assertEqual(ev["confidence"], "full")
        self.assertEqual(ev["limits"], [])
        self.assertRegex(ev["public"], r"^127\.0\.0\.1:\d+$")
        self.assertIn("symmetric", ev["direct_possible_with"])

    def test_relay_without_alternate_ip_says_what_it_could_not_test(self):
        relay = self.relay(listen="127.0.0.1:0")
        d = self.nat_type(f"127.0.0.1:{relay.port}")
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        self.assertEqual(ev["verdict"], "no NAT")
        self.assertEqual(ev["mapping"], "no-nat")
        self.assertFalse(ev["filtering_ip_tested"])
        self.assertEqual(ev["confidence"], "partial")
        self.assertTrue(any("no alternate IP" in l for l in ev["limits"]), ev["limits"])
        # The human form says it too.
        h = self.nat_type(f"127.0.0.1:{relay.port}", json_output=False)
        h.wait_line(r"^NAT type: no NAT \(partial confidence", timeout=20)
        h.wait_line(r"not tested: the server has no alternate IP", timeout=20)
        h.wait_line(r"^  mapping:\s+no-nat", timeout=20)
        self.assertEqual(h.wait_exit(20), 0)

    def test_unreachable_relay_exits_1_with_a_clear_line(self):
        port = unused_port()
        d = self.nat_type(f"127.0.0.1:{port}", "--timeout-ms", "600")
        d.wait_line(r"relay 127\.0\.0\.1:\d+ is unreachable: no answer over UDP or TCP",
                    timeout=20, stream="err")
        self.assertEqual(d.wait_exit(20), 1)
        self.assertEqual([l for l in d.out if '"event":"nat_type"' in l], [])

    def test_silent_udp_with_tcp_answering_is_udp_blocked(self):
        # A TCP listener without any UDP socket on that port: what a network that lets
        # only TCP out looks like from here.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        d = self.nat_type(f"127.0.0.1:{port}", "--timeout-ms", "600")
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        self.assertEqual(ev["verdict"], "UDP blocked")
        self.assertEqual(ev["udp"], "blocked")
        self.assertEqual(ev["direct_possible_with"], [])

    def test_ipv6_relay_is_reachable_over_ipv6(self):
        relay = self.relay(listen="[::1]:0")
        d = self.nat_type(f"[::1]:{relay.port}")
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        self.assertEqual(ev["ipv6_reachable"], "yes")
        self.assertEqual(ev["ipv6_server"], f"[::1]:{relay.port}")
        self.assertRegex(ev["ipv6_public"], r"^\[::1\]:\d+$")
        self.assertNotIn("ipv6_detail", ev)
        h = self.nat_type(f"[::1]:{relay.port}", json_output=False)
        h.wait_line(r"^  IPv6 reachable: yes \(public \[::1\]:\d+\)$", timeout=20)
        self.assertEqual(h.wait_exit(20), 0)

    def test_ipv4_only_relay_leaves_ipv6_untested(self):
        relay = self.relay(listen="127.0.0.1:0")
        d = self.nat_type(f"127.0.0.1:{relay.port}")
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        self.assertEqual(ev["ipv6_reachable"], "not tested")
        self.assertEqual(ev["ipv6_detail"], "the relay has no IPv6 address")
        self.assertNotIn("ipv6_server", ev)
        h = self.nat_type(f"127.0.0.1:{relay.port}", json_output=False)
        h.wait_line(r"^  IPv6 reachable: not tested: the relay has no IPv6 address$", timeout=20)
        self.assertEqual(h.wait_exit(20), 0)

    def test_silent_ipv6_address_is_not_reachable(self):
        # Something answers TCP on [::1] but no STUN over UDP: the relay has an IPv6
        # address and this host can send to it, yet no answer comes back.
        listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        listener.bind(("::1", 0))
        listener.listen(4)
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        d = self.nat_type(f"[::1]:{port}", "--timeout-ms", "600")
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        self.assertEqual(ev["ipv6_reachable"], "no")
        self.assertEqual(ev["ipv6_server"], f"[::1]:{port}")
        self.assertIn("no STUN answer", ev["ipv6_detail"])

    def test_bad_flags_are_usage_errors(self):
        d = self.nat_type("127.0.0.1:1", "--timeout-ms", "5")
        self.assertNotEqual(d.wait_exit(10), 0)
        d = self.peer("debug", "nat-type", relay=None, token=None)
        d.wait_line(r"no relay given", stream="err")
        self.assertEqual(d.wait_exit(10), 2)


@unittest.skipUnless(shutil.which("turnserver") and shutil.which("turnutils_natdiscovery"),
                     "coturn is not installed")
class NatTypeAgainstCoturn(interop.CoturnTestCase):
    def test_our_verdict_agrees_with_turnutils_natdiscovery(self):
        rc, ref = interop.run(["turnutils_natdiscovery", "-m", "-f", "-p", str(self.port),
                               "127.0.0.1"], 30)
        self.assertEqual(rc, 0, ref)
        m = re.search(r"NAT with (Endpoint Independent|Address Dependent|"
                      r"Address and Port Dependent) Mapping", ref)
        f = re.search(r"NAT with (Endpoint Independent|Address Dependent|"
                      r"Address and Port Dependent) Filtering", ref)
        self.assertIsNotNone(m, ref)
        self.assertIsNotNone(f, ref)
        d = self.peer("debug", "nat-type", relay=f"127.0.0.1:{self.port}", token=None)
        ev = d.wait_event("nat_type", timeout=20)
        self.assertEqual(d.wait_exit(20), 0)
        # RFC 5780 §4.3: without a NAT "the effective mapping will be Endpoint-Independent";
        # coturn names that case by its effect, we by its cause.
        words = {"Endpoint Independent": {"endpoint-independent", "no-nat"},
                 "Address Dependent": {"address-dependent"},
                 "Address and Port Dependent": {"address-and-port-dependent"}}
        self.assertIn(ev["mapping"], words[m.group(1)], (ev, ref))
        self.assertIn(ev["filtering"], words[f.group(1)], (ev, ref))
        self.assertTrue(ev["mapping_ip_tested"])
        self.assertTrue(ev["filtering_ip_tested"])
        self.assertEqual(ev["confidence"], "full")


if __name__ == "__main__":
    unittest.main()
