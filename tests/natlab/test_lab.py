#!/usr/bin/env python3
"""Self-test of the NAT lab: every NAT type's mapping and filtering, checked with real
UDP probes, so that a wrong emulation cannot hide; plus UDP blocking, hairpinning, CGNAT,
rebinding, delay, loss, and a teardown that leaves nothing behind.

Needs root. Run by ctest (label natlab), or by hand:
    sudo python3 tests/natlab/test_lab.py -v
Exits 77 (ctest's skip code) when the lab cannot run here.
"""
import os
import secrets
import select
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from natlab import lab  # noqa: E402

# How long to wait for a packet that should arrive (it normally takes < 1 ms), and for
# one that must not arrive (long enough that "not seen" means "dropped").
ARRIVE_TIMEOUT_S = 3.0
ABSENT_WAIT_S = 0.7
PROBE_TRIES = 3
PORTS = (3478, 3479)


def recv_token(sock, token, timeout):
    """(payload, source) of the first datagram on sock carrying `token`, else None."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return None
        data, src = sock.recvfrom(2048)
        if token in data:
            return data, src


class Probe:
    """UDP servers in the relay namespace on both public IPs x two ports. They report the
    source address a probe arrives from (the NAT mapping), and can send unsolicited
    packets from any of their four endpoints to any address."""

    def __init__(self, l, ipv6=False):
        self.lab = l
        self.ips = l.relay_ips6 if ipv6 else l.relay_ips
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        self.socks = {}
        for ip in self.ips:
            for port in PORTS:
                s = l.socket("relay", family=family)
                s.bind((ip, port))
                self.socks[(ip, port)] = s

    def close(self):
        for s in self.socks.values():
            s.close()

    def endpoint(self, ip_index, port_index):
        return (self.ips[ip_index], PORTS[port_index])

    def observe(self, client, dest):
        """The mapping `dest` sees for `client`'s socket, or None if nothing arrives
        (a few tries: the lab may be lossy in some tests)."""
        server = self.socks[dest]
        for _ in range(PROBE_TRIES):
            token = secrets.token_hex(8).encode()
            client.sendto(token, dest)
            got = recv_token(server, token, ARRIVE_TIMEOUT_S / PROBE_TRIES)
            if got:
                return got[1][:2]  # (address, port), also for IPv6's 4-tuples
        return None

    def poke(self, src, mapping, client, timeout=ABSENT_WAIT_S):
        """Sends from relay endpoint `src` to `mapping`; True if `client` receives it."""
        token = secrets.token_hex(8).encode()
        self.socks[src].sendto(token, mapping)
        got = recv_token(client, token, timeout)
        if got:
            assert got[1][:2] == src, f"poke from {src} arrived as from {got[1]}"
        return got is not None


class LabTestCase(unittest.TestCase):
    def make_lab(self, *args, **kwargs):
        l = lab.Lab(*args, **kwargs)
        l.start()
        self.addCleanup(l.close)
        return l

    def udp(self, l, node, bind_ip="0.0.0.0", ipv6=False):
        if ipv6:
            s = l.socket(node, family=socket.AF_INET6)
            s.bind(("::" if bind_ip == "0.0.0.0" else bind_ip, 0))
        else:
            s = l.socket(node)
            s.bind((bind_ip, 0))
        self.addCleanup(s.close)
        return s

    def probe(self, l, ipv6=False):
        p = Probe(l, ipv6=ipv6)
        self.addCleanup(p.close)
        return p

    def mappings(self, probe, client):
        """{relay endpoint: observed mapping} for all four relay endpoints."""
        out = {}
        for ip_i in range(2):
            for port_i in range(2):
                dest = probe.endpoint(ip_i, port_i)
                seen = probe.observe(client, dest)
                self.assertIsNotNone(seen, f"no answer from {dest}")
                out[dest] = seen
        return out

    def assert_eim(self, probe, client, public_ip):
        seen = self.mappings(probe, client)
        self.assertEqual(len(set(seen.values())), 1, f"mapping not endpoint-independent: {seen}")
        mapping = next(iter(seen.values()))
        self.assertEqual(mapping[0], public_ip)
        return mapping

    def assert_apdm(self, probe, client, public_ip):
        seen = self.mappings(probe, client)
        self.assertEqual({m[0] for m in seen.values()}, {public_ip})
        # Random ports: four destinations, four mappings (>= 3 allows one chance collision).
        self.assertGreaterEqual(len({m[1] for m in seen.values()}), 3,
                                f"mapping not address-and-port-dependent: {seen}")
        # The same destination again keeps its mapping while the flow lives.
        dest = probe.endpoint(0, 0)
        self.assertEqual(probe.observe(client, dest), seen[dest])
        return seen

    def filtering(self, probe, node):
        """Which relay endpoints get an unsolicited packet through to a fresh socket in
        `node`, after it has sent only to endpoint (ip0, port0). Returns four booleans:
        same (ip0, port0) / other port / other ip / other ip and port."""
        fresh = self.udp(probe.lab, node)
        first = probe.endpoint(0, 0)
        mapping = probe.observe(fresh, first)
        self.assertIsNotNone(mapping)
        result = {}
        for name, src in (("other_port", probe.endpoint(0, 1)), ("other_ip", probe.endpoint(1, 0)),
                          ("other_both", probe.endpoint(1, 1))):
            result[name] = probe.poke(src, mapping, fresh)
        # The endpoint it talked to always gets through (and proves the mapping is live).
        result["same"] = probe.poke(first, mapping, fresh, timeout=ARRIVE_TIMEOUT_S)
        return result, mapping

    def assert_filtering(self, probe, node, expected):
        got, _ = self.filtering(probe, node)
        want = {"same": True, "other_port": expected != "apdf",
                "other_ip": expected == "eif", "other_both": expected == "eif"}
        self.assertEqual(got, want, f"{node}: filtering is not {expected}")


class NatTypesTest(LabTestCase):
    def test_none_and_full_cone(self):
        l = self.make_lab("none", "full-cone")
        p = self.probe(l)
        a = self.udp(l, "a")
        mapping = self.assert_eim(p, a, "198.51.100.2")
        self.assertEqual(mapping, ("198.51.100.2", a.getsockname()[1]), "none must not translate")
        self.assert_filtering(p, "a", "eif")

        b = self.udp(l, "b")
        b_map = self.assert_eim(p, b, "192.0.2.2")
        self.assertEqual(l.host_ip("b"), "192.168.2.2")
        self.assert_filtering(p, "b", "eif")
        # Full cone: a host B never talked to (peer A) gets in through B's mapping.
        token = b"from-a-unsolicited"
        a.sendto(token, b_map)
        got = recv_token(b, token, ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got)
        self.assertEqual(got[1], ("198.51.100.2", a.getsockname()[1]))

    def test_restricted_and_port_restricted(self):
        l = self.make_lab("restricted", "port-restricted")
        p = self.probe(l)
        a = self.udp(l, "a")
        a_map = self.assert_eim(p, a, "198.51.100.2")
        self.assert_filtering(p, "a", "adf")
        b = self.udp(l, "b")
        b_map = self.assert_eim(p, b, "192.0.2.2")
        self.assert_filtering(p, "b", "apdf")

        # A (restricted) has sent nothing to B's address: B cannot get in.
        self.assertIsNone(self._send(b, a_map, a))
        # B (port-restricted) has now sent to A's mapping, but only to that port: another
        # socket of A, same public address, is refused.
        a2 = self.udp(l, "a")
        self.assertNotEqual(p.observe(a2, p.endpoint(0, 0)), a_map)
        self.assertIsNone(self._send(a2, b_map, b))
        # From A's mapping B's packet is the reply to B's own flow: it passes ...
        self.assertIsNotNone(self._send(a, b_map, b, ARRIVE_TIMEOUT_S))
        # ... and now that A has sent to B's address, B gets in (from any of its ports).
        self.assertIsNotNone(self._send(b, a_map, a, ARRIVE_TIMEOUT_S))
        b2 = self.udp(l, "b")
        self.assertIsNotNone(self._send(b2, a_map, a, ARRIVE_TIMEOUT_S))

    def test_symmetric_and_cgnat(self):
        l = self.make_lab("symmetric", "cgnat")
        p = self.probe(l)
        a = self.udp(l, "a")
        self.assert_apdm(p, a, "198.51.100.2")
        self.assert_filtering(p, "a", "apdf")

        # CGNAT: the internet sees the carrier's address, with the carrier's symmetric
        # mapping and filtering ...
        self.assertEqual(l.nat_nodes("b"), ["nat-b", "cgn-b"])
        b = self.udp(l, "b")
        self.assert_apdm(p, b, "192.0.2.2")
        self.assert_filtering(p, "b", "apdf")
        # ... while the home NAT's WAN is in 100.64/10 and maps endpoint-independently,
        # as servers on the carrier's own network see.
        c1, c2 = l.socket("cgn-b"), l.socket("cgn-b")
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        c1.bind(("100.64.2.1", 5000))
        c2.bind(("100.64.2.1", 5001))
        seen = []
        for server in (c1, c2):
            token = secrets.token_hex(4).encode()
            b.sendto(token, server.getsockname())
            got = recv_token(server, token, ARRIVE_TIMEOUT_S)
            self.assertIsNotNone(got)
            seen.append(got[1])
        self.assertEqual(seen[0], seen[1])
        self.assertEqual(seen[0][0], "100.64.2.2")

        # Symmetric against port-restricted-behind-symmetric: no direct path, even when
        # both sides send to each other's relay-observed mapping.
        a_map = p.observe(a, p.endpoint(0, 0))
        b_map = p.observe(b, p.endpoint(0, 0))
        for _ in range(3):
            self.assertIsNone(self._send(a, b_map, b))
            self.assertIsNone(self._send(b, a_map, a))

    def test_udp_blocked_lets_tcp_out(self):
        l = self.make_lab("udp-blocked", "full-cone")
        p = self.probe(l)
        a = self.udp(l, "a")
        self.assertIsNone(p.observe(a, p.endpoint(0, 0)), "UDP must not leave a udp-blocked NAT")
        listener = l.socket("relay", socket.SOCK_STREAM)
        self.addCleanup(listener.close)
        listener.bind((l.relay_ip, 4040))
        listener.listen(4)
        client = l.socket("a", socket.SOCK_STREAM)
        self.addCleanup(client.close)
        client.settimeout(ARRIVE_TIMEOUT_S)
        client.connect((l.relay_ip, 4040))
        listener.settimeout(ARRIVE_TIMEOUT_S)
        conn, peer = listener.accept()
        self.addCleanup(conn.close)
        self.assertEqual(peer[0], "198.51.100.2")
        client.sendall(b"ping")
        conn.settimeout(ARRIVE_TIMEOUT_S)
        self.assertEqual(conn.recv(4), b"ping")

        # The same switch at run time, on the full-cone side.
        b = self.udp(l, "b")
        self.assertIsNotNone(p.observe(b, p.endpoint(0, 0)))
        l.block_udp("b")
        self.assertIsNone(p.observe(b, p.endpoint(0, 0)))
        l.unblock_udp("b")
        self.assertIsNotNone(p.observe(b, p.endpoint(0, 0)))

    def _send(self, src_sock, dest, dst_sock, timeout=ABSENT_WAIT_S):
        token = secrets.token_hex(6).encode()
        src_sock.sendto(token, dest)
        return recv_token(dst_sock, token, timeout)


class SameNatTest(LabTestCase):
    def _pair(self, hairpin):
        l = self.make_lab("same-nat", hairpin=hairpin)
        p = self.probe(l)
        a, b = self.udp(l, "a"), self.udp(l, "b")
        a_map = p.observe(a, p.endpoint(0, 0))
        b_map = p.observe(b, p.endpoint(0, 0))
        self.assertEqual(a_map[0], "198.51.100.2")
        self.assertEqual(b_map[0], "198.51.100.2")
        self.assertNotEqual(a_map, b_map)
        self.assertEqual(l.wan_ip("a"), l.wan_ip("b"))
        # On the LAN they always reach each other directly.
        token = b"lan-direct"
        a.sendto(token, (l.host_ip("b"), b.getsockname()[1]))
        got = recv_token(b, token, ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got)
        self.assertEqual(got[1], (l.host_ip("a"), a.getsockname()[1]))
        return l, a, b, a_map, b_map

    def test_hairpin_reaches_the_peer_through_the_public_mapping(self):
        _, a, b, a_map, b_map = self._pair(hairpin=True)
        token = b"hairpin-a-to-b"
        a.sendto(token, b_map)
        got = recv_token(b, token, ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got, "hairpinning NAT did not deliver A -> B's mapping")
        self.assertEqual(got[1], a_map, "a hairpinned packet carries the sender's mapping")
        token = b"hairpin-b-to-a"
        b.sendto(token, a_map)
        got = recv_token(a, token, ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got)
        self.assertEqual(got[1], b_map)

    def test_without_hairpin_the_public_mapping_is_a_dead_end(self):
        _, a, b, a_map, b_map = self._pair(hairpin=False)
        for _ in range(2):
            a.sendto(b"no-hairpin", b_map)
            b.sendto(b"no-hairpin", a_map)
        self.assertIsNone(recv_token(b, b"no-hairpin", ABSENT_WAIT_S))
        self.assertIsNone(recv_token(a, b"no-hairpin", ABSENT_WAIT_S))


class RuntimeTest(LabTestCase):
    def test_rebind_moves_an_eim_mapping_and_kills_the_old_one(self):
        l = self.make_lab("full-cone", "none")
        p = self.probe(l)
        a = self.udp(l, "a")
        old = p.observe(a, p.endpoint(0, 0))
        l.rebind("a")
        new = p.observe(a, p.endpoint(0, 0))
        self.assertEqual(new[0], old[0])
        self.assertNotEqual(new, old, "rebind must change the mapping")
        self.assertFalse(p.poke(p.endpoint(1, 1), old, a), "old mapping still delivers")
        self.assertTrue(p.poke(p.endpoint(1, 1), new, a, timeout=ARRIVE_TIMEOUT_S))
        with self.assertRaises(lab.LabError):
            l.rebind("b")

    def test_flush_conntrack_redraws_symmetric_mappings(self):
        l = self.make_lab("symmetric", "none")
        p = self.probe(l)
        a = self.udp(l, "a")
        dest = p.endpoint(0, 0)
        old = p.observe(a, dest)
        l.flush_conntrack("a")
        self.assertNotEqual(p.observe(a, dest), old)

    def test_bad_arguments_are_clear_errors(self):
        with self.assertRaisesRegex(lab.LabError, "unknown NAT type"):
            lab.Lab("open-internet")
        with self.assertRaisesRegex(lab.LabError, "same-nat"):
            lab.Lab("same-nat", "full-cone")
        with self.assertRaisesRegex(lab.LabError, "hairpin"):
            lab.Lab("full-cone", hairpin=True)
        with self.assertRaisesRegex(lab.LabError, "loss"):
            lab.Lab("full-cone", loss_pct=150)
        with self.assertRaisesRegex(lab.LabError, "natlab_delay_line"):
            lab.Lab("full-cone", delay_ms=10, delay_line="/nonexistent/delay_line")
        l = self.make_lab("full-cone", "none")
        with self.assertRaisesRegex(lab.LabError, "no node"):
            l.ns("carrier")
        # IPv6 is off unless asked for: no addresses, no accessor.
        self.assertEqual(l.relay_ips6, ())
        with self.assertRaisesRegex(lab.LabError, "ipv6=True"):
            l.host_ip6("a")
        for node in ("a", "nat-a", "relay"):
            self.assertEqual(l.run(node, ["ip", "-6", "-o", "addr", "show"]).stdout.strip(), "")


class IPv6Test(LabTestCase):
    """Lab(ipv6=True): routed IPv6 (no NAT66) with a stateful home-router filter."""

    def send6(self, src_sock, dest, dst_sock, timeout=ABSENT_WAIT_S):
        token = secrets.token_hex(6).encode()
        src_sock.sendto(token, dest)
        return recv_token(dst_sock, token, timeout)

    def test_routed_without_nat_filtered_statefully_and_punchable(self):
        l = self.make_lab("port-restricted", "cgnat", ipv6=True)
        self.assertEqual(l.relay_ips6, ("2001:db8:0:1::10", "2001:db8:0:1::11"))
        self.assertEqual(l.host_ip6("a"), "2001:db8:a::2")
        self.assertEqual(l.host_ip6("b"), "2001:db8:b::2")
        p = self.probe(l, ipv6=True)
        # No NAT66: the relay sees each peer's own global address and port, also through
        # the carrier of a cgnat peer.
        a, b = self.udp(l, "a", ipv6=True), self.udp(l, "b", ipv6=True)
        for side, sock in (("a", a), ("b", b)):
            self.assertEqual(p.observe(sock, p.endpoint(0, 0)),
                             (l.host_ip6(side), sock.getsockname()[1]))
        # IPv4 still works as before in the same lab.
        p4 = self.probe(l)
        self.assertEqual(p4.observe(self.udp(l, "a"), p4.endpoint(0, 0))[0], "198.51.100.2")

        # Stateful filtering: unsolicited inbound is dropped until the peer has sent to
        # exactly that address and port.
        fresh = self.udp(l, "a", ipv6=True)
        own = (l.host_ip6("a"), fresh.getsockname()[1])
        self.assertFalse(p.poke(p.endpoint(0, 0), own, fresh), "unsolicited IPv6 got in")
        self.assertEqual(p.observe(fresh, p.endpoint(0, 0)), own)
        self.assertFalse(p.poke(p.endpoint(0, 1), own, fresh))
        self.assertFalse(p.poke(p.endpoint(1, 0), own, fresh))
        self.assertTrue(p.poke(p.endpoint(0, 0), own, fresh, timeout=ARRIVE_TIMEOUT_S))

        # Peer to peer: unsolicited is refused; a simultaneous open (both send to each
        # other's address and port, then both receive) gets through.
        a_ep = (l.host_ip6("a"), a.getsockname()[1])
        b_ep = (l.host_ip6("b"), b.getsockname()[1])
        self.assertIsNone(self.send6(a, b_ep, b))
        a.sendto(b"punch-a", b_ep)
        b.sendto(b"punch-b", a_ep)
        got = recv_token(a, b"punch-b", ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got, "B's punch did not reach A")
        self.assertEqual(got[1][:2], b_ep)
        got = self.send6(a, b_ep, b, ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got, "A did not reach B after the simultaneous open")
        self.assertEqual(got[1][:2], a_ep)
        self.assertIsNotNone(self.send6(b, a_ep, a, ARRIVE_TIMEOUT_S))

    def test_full_cone_none_and_udp_blocked(self):
        l = self.make_lab("full-cone", "udp-blocked", ipv6=True)
        p = self.probe(l, ipv6=True)
        # Full cone lets any inbound IPv6 in, also to a socket that never sent.
        a = self.udp(l, "a", ipv6=True)
        self.assertTrue(p.poke(p.endpoint(1, 1), (l.host_ip6("a"), a.getsockname()[1]), a,
                               timeout=ARRIVE_TIMEOUT_S))
        # udp-blocked blocks IPv6 UDP too; TCP over IPv6 still works, from B's own address.
        b = self.udp(l, "b", ipv6=True)
        self.assertIsNone(p.observe(b, p.endpoint(0, 0)), "IPv6 UDP left a udp-blocked NAT")
        listener = l.socket("relay", socket.SOCK_STREAM, family=socket.AF_INET6)
        self.addCleanup(listener.close)
        listener.bind((l.relay_ips6[0], 4040))
        listener.listen(4)
        client = l.socket("b", socket.SOCK_STREAM, family=socket.AF_INET6)
        self.addCleanup(client.close)
        client.settimeout(ARRIVE_TIMEOUT_S)
        client.connect((l.relay_ips6[0], 4040))
        listener.settimeout(ARRIVE_TIMEOUT_S)
        conn, peer = listener.accept()
        self.addCleanup(conn.close)
        self.assertEqual(peer[0], l.host_ip6("b"))

    def test_none_and_same_nat(self):
        l = self.make_lab("none", "symmetric", ipv6=True)
        self.assertEqual(l.host_ip6("a"), "2001:db8:1::2")
        p = self.probe(l, ipv6=True)
        a = self.udp(l, "a", ipv6=True)
        own = (l.host_ip6("a"), a.getsockname()[1])
        self.assertTrue(p.poke(p.endpoint(0, 0), own, a, timeout=ARRIVE_TIMEOUT_S),
                        "a peer without NAT is not filtered")
        self.assertEqual(p.observe(a, p.endpoint(1, 1)), own)
        b = self.udp(l, "b", ipv6=True)
        self.assertEqual(p.observe(b, p.endpoint(0, 0)), (l.host_ip6("b"), b.getsockname()[1]))

        s = self.make_lab("same-nat", ipv6=True)
        self.assertEqual((s.host_ip6("a"), s.host_ip6("b")), ("2001:db8:a::2", "2001:db8:a::3"))
        ps = self.probe(s, ipv6=True)
        a, b = self.udp(s, "a", ipv6=True), self.udp(s, "b", ipv6=True)
        a_ep = (s.host_ip6("a"), a.getsockname()[1])
        b_ep = (s.host_ip6("b"), b.getsockname()[1])
        self.assertEqual(ps.observe(a, ps.endpoint(0, 0)), a_ep)
        got = self.send6(a, b_ep, b, ARRIVE_TIMEOUT_S)
        self.assertIsNotNone(got, "same LAN: no direct IPv6")
        self.assertEqual(got[1][:2], a_ep)


class ImpairmentTest(LabTestCase):
    @unittest.skipUnless(lab.default_delay_line(), "natlab_delay_line not built")
    def test_delay_line_adds_at_least_the_configured_delay(self):
        delay_ms = 40
        l = self.make_lab("full-cone", "none", delay_ms={"a": delay_ms})
        p = self.probe(l)
        a = self.udp(l, "a")
        server = p.socks[p.endpoint(0, 0)]
        # Echo 20 packets one at a time: each round trip crosses link a twice.
        rtts = []
        for i in range(20):
            token = f"rtt-{i}".encode()
            start = time.monotonic()
            a.sendto(token, p.endpoint(0, 0))
            got = recv_token(server, token, ARRIVE_TIMEOUT_S)
            self.assertIsNotNone(got)
            server.sendto(token, got[1])
            self.assertIsNotNone(recv_token(a, token, ARRIVE_TIMEOUT_S))
            rtts.append(time.monotonic() - start)
        self.assertGreaterEqual(min(rtts), 2 * delay_ms / 1000.0, rtts)
        # A burst is delayed, not lost or reordered.
        for i in range(50):
            a.sendto(f"burst-{i:02d}".encode(), p.endpoint(0, 0))
        got = []
        deadline = time.monotonic() + ARRIVE_TIMEOUT_S
        while len(got) < 50 and time.monotonic() < deadline:
            r = recv_token(server, b"burst-", deadline - time.monotonic())
            if r is None:
                break
            got.append(r[0])
        self.assertEqual(got, [f"burst-{i:02d}".encode() for i in range(50)])

    def test_loss_drops_about_the_configured_share(self):
        l = self.make_lab("full-cone", "full-cone", loss_pct={"a": 30})
        p = self.probe(l)
        a, b = self.udp(l, "a"), self.udp(l, "b")
        server = p.socks[p.endpoint(0, 0)]
        counts = {}
        for name, sock in (("a", a), ("b", b)):
            counts[name] = 0
            # Batches small enough for the server's socket buffer; each is drained before
            # the next is sent, so only the link can lose packets.
            for batch in range(10):
                for i in range(30):
                    sock.sendto(f"loss-{name}-{batch}-{i}".encode(), p.endpoint(0, 0))
                n = 0
                while n < 30 and recv_token(server, f"loss-{name}-{batch}-".encode(),
                                            ABSENT_WAIT_S):
                    n += 1
                counts[name] += n
        # 30% loss one way: about 210 of 300 arrive; the bounds are many sigmas wide.
        self.assertGreater(counts["a"], 120, counts)
        self.assertLess(counts["a"], 285, counts)
        self.assertEqual(counts["b"], 300, counts)


class LifecycleTest(unittest.TestCase):
    def root_links(self):
        # veth pairs only: the lab creates nothing else, and never in the root namespace.
        return subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True,
                              text=True, check=True).stdout

    def test_teardown_leaves_nothing_behind_even_on_error(self):
        links_before = self.root_links()
        with self.assertRaises(RuntimeError):
            with lab.Lab("cgnat", "symmetric") as l:
                prefix = l.prefix
                proc = l.popen("a", ["sleep", "600"])
                # A second lab at the same time is independent.
                with lab.Lab("full-cone") as other:
                    self.assertNotEqual(other.prefix, prefix)
                    s = other.socket("a")
                    s.close()
                self.assertFalse([n for n in lab._netns_list() if n.startswith(other.prefix)])
                self.assertIsNone(proc.poll())
                raise RuntimeError("boom")
        self.assertFalse([n for n in lab._netns_list() if n.startswith(prefix)])
        self.assertIsNotNone(proc.poll(), "a process started in the lab survived it")
        self.assertEqual(self.root_links(), links_before)

    def test_cleanup_stale_removes_a_dead_runs_lab(self):
        dead = subprocess.Popen(["true"])
        dead.wait()
        ns = f"{lab.PREFIX}{dead.pid}-dead-a"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        straggler = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "600"])
        try:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True,
                                      text=True).stdout.split()
                if pids:
                    break
                time.sleep(0.05)
            removed = lab.cleanup_stale()
            self.assertIn(ns, removed)
            self.assertNotIn(ns, lab._netns_list())
            self.assertIsNotNone(straggler.wait(5))
        finally:
            if straggler.poll() is None:
                straggler.kill()
                straggler.wait()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


if __name__ == "__main__":
    lab.unittest_main()
