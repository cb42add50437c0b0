#!/usr/bin/env python3
"""Hole punching through the lab's NATs: the real relay and two real peertun clients in
network namespaces, one cell per NAT pair. Each cell asserts the outcome both peers
print (direct, or impossible at once with the side named) and what they reported to the
relay. Needs root; exits 77 (ctest's skip code) when the lab cannot run here.

    sudo PEERTUN_BUILD_DIR=build/release python3 tests/natlab/test_punch.py -v [CLASS]

CLASS: PunchLab (clean links), PunchLabImpaired (50 ms RTT, 2% loss), PunchLabExtras.
"""
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import harness  # noqa: E402
from natlab import lab  # noqa: E402

TOKEN = "natlab-token"
RELAY_PORT = 4040
# Failing cells end this long after the fire instead of the default 8 s; cells that
# succeed do so in well under a second.
ATTEMPT_TIMEOUT = "3s"
# Bounds: how long the steps may take on a loaded 2-core CI machine.
STEP_TIMEOUT_S = 20.0

# The matrix: every ordered pair of these, plus same-nat and udp-blocked.
TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric", "cgnat"]
# A CGNAT is a port-restricted home NAT behind a symmetric carrier NAT: symmetric overall.
SYMMETRIC = {"symmetric", "cgnat"}
# Filtering that lets a symmetric side's fresh mapping in (RFC 4787 §5): none at all,
# endpoint-independent, or address-dependent.
ADMITS_NEW_PORTS = {"none", "full-cone", "restricted"}


def expected_outcome(a, b):
    """(outcome both peers must print, text the reason must contain) for a cell."""
    for me, other, name in ((a, b, "A"), (b, a, "B")):
        if me in SYMMETRIC and other in SYMMETRIC:
            return "impossible", "symmetric NAT"
        if me in SYMMETRIC and other not in ADMITS_NEW_PORTS:
            return "impossible", f"symmetric NAT on peer {name}"
    return "succeeded", None


CELLS = [(a, b, *expected_outcome(a, b)) for a in TYPES for b in TYPES]
CELLS += [("udp-blocked", "full-cone", "impossible", "UDP blocked on peer A"),
          ("port-restricted", "udp-blocked", "impossible", "UDP blocked on peer B")]


def fetch_metrics(l):
    """The relay's /metrics, fetched from inside the relay's namespace."""
    s = l.socket("relay", socket.SOCK_STREAM)
    try:
        s.settimeout(5)
        s.connect((l.relay_ip, RELAY_PORT))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    values = {}
    for line in data.decode().splitlines():
        if line.startswith("peertun_relay_"):
            name, value = line.rsplit(" ", 1)
            values[name[len("peertun_relay_"):]] = int(value)
    return values


class PunchLabBase(unittest.TestCase):
    def setUp(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="peertun-natlab-")

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        harness.unmount_below(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, l, node, argv):
        proc = harness.Proc(l.wrap(node, argv))
        self.procs.append(proc)
        return proc

    def run_pair(self, l, extra=()):
        """Relay + A + B in the lab; returns (A's punch event, B's punch event)."""
        relay = self.start(l, "relay", [harness.RELAY, "--listen", f"{l.relay_ip}:{RELAY_PORT}",
                                        "--alt-ip", l.relay_ips[1], "--token", TOKEN])
        relay.wait_line(r"peertun-relay listening", timeout=STEP_TIMEOUT_S)
        share = os.path.join(self.tmp, "share")
        os.makedirs(share, exist_ok=True)
        common = ["--relay", f"{l.relay_ip}:{RELAY_PORT}", "--token", TOKEN, "--json"]
        a = self.start(l, "a", [harness.PEERTUN, *common, "p2p", share,
                                "--p2p-attempt-timeout", ATTEMPT_TIMEOUT, *extra])
        code = a.wait_event("join_code", timeout=STEP_TIMEOUT_S)["code"]
        # B mounts A's folder once QUIC is up; below this test's folder, so that a B
        # killed at teardown leaves no stale mount in /tmp.
        mnt = os.path.join(self.tmp, f"mnt-{len(self.procs)}")
        b = self.start(l, "b", [harness.PEERTUN, *common, "p2p-join", code, "--mount", mnt,
                                "--p2p-attempt-timeout", ATTEMPT_TIMEOUT, *extra])
        punch_b = b.wait_event("punch", timeout=STEP_TIMEOUT_S)
        punch_a = a.wait_event("punch", timeout=STEP_TIMEOUT_S)
        return punch_a, punch_b, a, b

    # Lab options for every cell of this class (impairments).
    lab_options = {}

    def check_cell(self, kind_a, kind_b, expected, names):
        with lab.Lab(kind_a, kind_b, **self.lab_options) as l:
            started = time.monotonic()
            punch_a, punch_b, a, b = self.run_pair(l)
            for who, event in (("A", punch_a), ("B", punch_b)):
                self.assertEqual(event["result"], expected,
                                 f"{kind_a} x {kind_b}: peer {who} says {event}")
                if names:
                    self.assertIn(names, event["reason"], f"peer {who}: {event}")
            if expected == "succeeded":
                # The selected path is the peer's public side, never the relay.
                for event in (punch_a, punch_b):
                    self.assertNotIn(event["remote"].split(":")[0], l.relay_ips)
                    self.assertGreaterEqual(event["rtt_ms"], 0)
            if expected == "impossible":
                # Said at once, not after the attempt timeout; no fire was needed.
                self.assertLess(time.monotonic() - started, STEP_TIMEOUT_S)
            # Both peers' reports reached the relay (the metrics line is the record).
            outcome = "direct" if expected == "succeeded" else expected
            key = f'path_reports_total{{outcome="{outcome}"}}'
            deadline = time.monotonic() + 10
            while fetch_metrics(l).get(key, 0) < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            self.assertEqual(fetch_metrics(l).get(key, 0), 2, key)


class PunchLab(PunchLabBase):
    """One test per cell of CELLS, on clean links."""


class PunchLabImpaired(PunchLabBase):
    """The same cells with 50 ms RTT and 2% loss on each WAN link: same outcomes."""
    lab_options = {"delay_ms": 25, "loss_pct": 2}

    def setUp(self):
        super().setUp()
        if not lab.default_delay_line():
            self.skipTest("natlab_delay_line not built")


def make_cell_test(kind_a, kind_b, expected, names):
    def test(self):
        self.check_cell(kind_a, kind_b, expected, names)
    return test


for _a, _b, _expected, _names in CELLS:
    _name = "test_" + re.sub(r"[^a-z0-9]+", "_", f"{_a}__{_b}")
    setattr(PunchLab, _name, make_cell_test(_a, _b, _expected, _names))
    setattr(PunchLabImpaired, _name, make_cell_test(_a, _b, _expected, _names))


class PunchLabExtras(PunchLabBase):
    def test_same_nat_peers_use_the_lan(self):
        for hairpin in (False, True):
            with self.subTest(hairpin=hairpin), lab.Lab("same-nat", "same-nat",
                                                        hairpin=hairpin) as l:
                punch_a, punch_b, _, _ = self.run_pair(l)
                self.assertEqual(punch_a["result"], "succeeded")
                self.assertEqual(punch_b["result"], "succeeded")
                # The LAN pair wins over the public (hairpin) one.
                self.assertEqual(punch_a["remote"].split(":")[0], l.host_ip("b"))
                self.assertEqual(punch_b["remote"].split(":")[0], l.host_ip("a"))
                self.assertEqual(punch_a["candidate"], "host")
            for p in self.procs:
                p.stop()
            self.procs.clear()

    def test_dual_stack_peers_prefer_the_direct_ipv6_pair(self):
        # Both NATs are port-restricted for IPv4, and IPv6 goes through them un-NATed
        # behind a stateful firewall: the simultaneous open works on the peers' global
        # IPv6 addresses, and that pair outranks the server-reflexive IPv4 one.
        with lab.Lab("port-restricted", "port-restricted", ipv6=True) as l:
            punch_a, punch_b, _, _ = self.run_pair(l)
            self.assertEqual(punch_a["result"], "succeeded")
            self.assertEqual(punch_b["result"], "succeeded")
            self.assertEqual(punch_a["candidate"], "host")
            self.assertEqual(punch_a["remote"], f"[{l.host_ip6('b')}]:"
                             + punch_a["remote"].rsplit(":", 1)[1])
            self.assertEqual(punch_b["remote"], f"[{l.host_ip6('a')}]:"
                             + punch_b["remote"].rsplit(":", 1)[1])

    def test_lossy_delayed_links_still_punch(self):
        if not lab.default_delay_line():
            self.skipTest("natlab_delay_line not built")
        with lab.Lab("port-restricted", "restricted", delay_ms=25, loss_pct=5) as l:
            punch_a, punch_b, _, _ = self.run_pair(l)
            self.assertEqual(punch_a["result"], "succeeded")
            self.assertEqual(punch_b["result"], "succeeded")
            # 25 ms each way on each WAN link: 100 ms between the peers at least.
            self.assertGreaterEqual(punch_a["rtt_ms"], 100)

    def test_human_lines(self):
        with lab.Lab("full-cone", "symmetric") as l:
            relay = self.start(l, "relay", [harness.RELAY, "--listen",
                                            f"{l.relay_ip}:{RELAY_PORT}", "--alt-ip",
                                            l.relay_ips[1], "--token", TOKEN])
            relay.wait_line(r"peertun-relay listening", timeout=STEP_TIMEOUT_S)
            share = os.path.join(self.tmp, "share")
            os.makedirs(share, exist_ok=True)
            common = ["--relay", f"{l.relay_ip}:{RELAY_PORT}", "--token", TOKEN]
            a = self.start(l, "a", [harness.PEERTUN, *common, "p2p", share])
            code = a.wait_line(r"Join code: (pt-p2p-\S+)", timeout=STEP_TIMEOUT_S).group(1)
            b = self.start(l, "b", [harness.PEERTUN, *common, "p2p-join", code,
                                    "--mount", os.path.join(self.tmp, "mnt")])
            b.wait_line(r"^\u2713 STUN: my public address is " + re.escape(l.wan_ip("b")),
                        timeout=STEP_TIMEOUT_S)
            b.wait_line(r"^\u2713 Peer A is at " + re.escape(l.wan_ip("a")),
                        timeout=STEP_TIMEOUT_S)
            b.wait_line(r"^\u2713 UDP hole-punch: succeeded \(RTT \d+ms\)",
                        timeout=STEP_TIMEOUT_S)
            a.wait_line(r"^\u2713 UDP hole-punch: succeeded \(RTT \d+ms\)",
                        timeout=STEP_TIMEOUT_S)


if __name__ == "__main__":
    lab.unittest_main()
