#!/usr/bin/env python3
"""`peertun debug nat-type` behind every lab NAT type, checked against what the lab builds
and against coturn's `turnutils_natdiscovery` run in the same lab.

One lab per NAT type, shared by both tools: our relay (`--alt-ip`, ports 4040/4041) and
coturn's turnserver (ports 3478/3479) both listen on the relay's two public IPs; both
clients run in peer A's namespace. Each cell asserts our mapping, filtering, verdict name,
public address, hairpinning (yes only for same-nat with hairpin; unknown without a NAT)
and "IPv6 reachable" (the lab is IPv4 only), then that coturn's verdict agrees on mapping
and filtering (and on hairpinning for same-nat). Needs root; exits 77 (ctest's skip
code) when the lab cannot run here.

    sudo PEERTUN_BUILD_DIR=build/release python3 tests/natlab/test_nat_type_lab.py -v
"""
import os
import re
import shutil
import socket
import struct
import subprocess
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
RELAY_PORT = 4040  # the relay's alternate port is 4041
COTURN_PORT = 3478  # coturn's alternate port is 3479
# Bounds: how long each step may take on a loaded 2-core CI machine.
STEP_TIMEOUT_S = 20.0
# natdiscovery waits 3 s for each answer that does not come, and runs up to 3 tests.
NATDISCOVERY_TIMEOUT_S = 30.0

EIM, ADM, APDM = "endpoint-independent", "address-dependent", "address-and-port-dependent"

# (test name, lab type, hairpin, mapping, filtering, verdict name, hairpin result)
CELLS = [
    ("none", "none", False, "no-nat", "no-nat", "no NAT", "unknown"),
    ("full_cone", "full-cone", False, EIM, EIM, "full cone", "no"),
    ("restricted", "restricted", False, EIM, ADM, "restricted cone", "no"),
    ("port_restricted", "port-restricted", False, EIM, APDM, "port-restricted cone", "no"),
    ("symmetric", "symmetric", False, APDM, APDM, "symmetric", "no"),
    # From the internet a cgnat peer is its carrier NAT: symmetric.
    ("cgnat", "cgnat", False, APDM, APDM, "symmetric", "no"),
    ("udp_blocked", "udp-blocked", False, "unknown", "unknown", "UDP blocked", "unknown"),
    ("same_nat", "same-nat", False, EIM, APDM, "port-restricted cone", "no"),
    ("same_nat_hairpin", "same-nat", True, EIM, APDM, "port-restricted cone", "yes"),
]

# coturn's words -> ours. RFC 5780 §4.3: without a NAT "the effective mapping will be
# Endpoint-Independent"; coturn names that case by its effect, we by its cause.
COTURN_WORDS = {"Endpoint Independent": {EIM, "no-nat"},
                "Address Dependent": {ADM},
                "Address and Port Dependent": {APDM}}
COTURN_RESULT = r"NAT with (Endpoint Independent|Address Dependent|Address and Port Dependent) %s!"


def have_coturn():
    return shutil.which("turnserver") and shutil.which("turnutils_natdiscovery")


def stun_answers(l, ip, port, timeout):
    """True once a STUN Binding request from the relay's own namespace to ip:port gets
    any answer within `timeout` (readiness of a server there)."""
    s = l.socket("relay")
    try:
        s.settimeout(0.2)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # RFC 8489 §5: Binding request, no attributes, magic cookie, random id.
            s.sendto(struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12)), (ip, port))
            try:
                data, _ = s.recvfrom(2048)
                if len(data) >= 20:
                    return True
            except socket.timeout:
                pass
        return False
    finally:
        s.close()


class NatTypeLab(unittest.TestCase):
    def setUp(self):
        self.procs = []
        self.popens = []
        self.tmp = tempfile.mkdtemp(prefix="peertun-natlab-nattype-")

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        for p in self.popens:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start_servers(self, l):
        """Our relay and (when installed) coturn in the relay namespace, both on both IPs."""
        relay = harness.Proc(l.wrap("relay", [
            harness.RELAY, "--listen", f"{l.relay_ip}:{RELAY_PORT}",
            "--alt-ip", l.relay_ips[1], "--token", TOKEN]))
        self.procs.append(relay)
        if have_coturn():
            work = os.path.join(self.tmp, "coturn")
            os.makedirs(work)
            args = ["turnserver", "-n", "--no-tls", "--no-dtls", "--no-cli",
                    "-p", str(COTURN_PORT), "-L", l.relay_ips[0], "-L", l.relay_ips[1],
                    "-E", l.relay_ips[0], "--min-port", "49152", "--max-port", "49999",
                    "-a", "-u", "test:testpass", "-r", "natlab.test", "-f",
                    "-b", os.path.join(work, "turndb.sqlite"),
                    "--pidfile", os.path.join(work, "coturn.pid"),
                    "--log-file", os.path.join(work, "coturn.log"), "--simple-log",
                    "--no-stdout-log"]
            self.popens.append(subprocess.Popen(l.wrap("relay", args),
                                                stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL))
        relay.wait_line(r"peertun-relay listening", timeout=STEP_TIMEOUT_S)
        if have_coturn():
            for ip in l.relay_ips:
                self.assertTrue(stun_answers(l, ip, COTURN_PORT, STEP_TIMEOUT_S),
                                f"coturn does not answer on {ip}:{COTURN_PORT}")

    def start_natdiscovery(self, l, hairpin):
        """coturn's discovery runs, one process per behaviour so they overlap (each waits
        3 s for every answer that does not come). Started before ours and read after it;
        they use their own sockets, so the NAT keeps their state apart from ours."""
        runs = {"mapping": ["-m"], "filtering": ["-f"]}
        if hairpin:
            runs["hairpin"] = ["-H"]
        started = {}
        for name, flags in runs.items():
            p = subprocess.Popen(l.wrap("a", ["turnutils_natdiscovery", *flags, "-p",
                                              str(COTURN_PORT), l.relay_ip]),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.popens.append(p)
            started[name] = p
        return started

    def finish_natdiscovery(self, started):
        out = {}
        for name, p in started.items():
            try:
                text, _ = p.communicate(timeout=NATDISCOVERY_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                text, _ = p.communicate(timeout=5)
                self.fail(f"turnutils_natdiscovery ({name}) did not finish: {text}")
            out[name] = text
        return out

    def check_cell(self, kind, hairpin, mapping, filtering, name, hairpin_result):
        with lab.Lab(kind, kind, hairpin=hairpin) as l:
            self.start_servers(l)
            coturn = None
            if have_coturn():
                coturn = self.start_natdiscovery(l, hairpin=kind == "same-nat")
            d = harness.Proc(l.wrap("a", [harness.PEERTUN, "--json", "--relay",
                                          f"{l.relay_ip}:{RELAY_PORT}", "debug", "nat-type"]))
            self.procs.append(d)
            ev = d.wait_event("nat_type", timeout=STEP_TIMEOUT_S)
            self.assertEqual(d.wait_exit(STEP_TIMEOUT_S), 0, d.err)
            what = f"{kind}{' (hairpin)' if hairpin else ''}: {ev}"

            # Ours against what the lab built.
            self.assertEqual(ev["mapping"], mapping, what)
            self.assertEqual(ev["filtering"], filtering, what)
            self.assertEqual(ev["verdict"], name, what)
            self.assertEqual(ev["hairpin"], hairpin_result, what)
            self.assertEqual(ev["server"], f"{l.relay_ip}:{RELAY_PORT}", what)
            # The lab is IPv4 only and the relay was given as an IPv4 address.
            self.assertEqual(ev["ipv6_reachable"], "not tested", what)
            if kind == "udp-blocked":
                self.assertEqual(ev["udp"], "blocked", what)
                self.assertEqual(ev["direct_possible_with"], [], what)
            else:
                self.assertEqual(ev["udp"], "works", what)
                self.assertEqual(ev["behind_nat"], kind != "none", what)
                self.assertEqual(ev["public"].rsplit(":", 1)[0], l.wan_ip("a"), what)
                # The relay has two IPs: every test ran and was conclusive.
                self.assertTrue(ev["mapping_ip_tested"], what)
                self.assertTrue(ev["filtering_ip_tested"], what)
                self.assertEqual(ev["confidence"], "full", what)
                self.assertEqual(ev["limits"], [], what)

            if coturn is None:
                self.skipTest("coturn is not installed: ours checked, no comparison")
            ref = self.finish_natdiscovery(coturn)
            if kind == "udp-blocked":
                # coturn hears nothing either: no verdict, only timeouts.
                for text in ref.values():
                    self.assertIn("STUN receive timeout", text, ref)
                    self.assertNotRegex(text, r"NAT with|No NAT", ref)
                return
            m = re.search(COTURN_RESULT % "Mapping", ref["mapping"])
            f = re.search(COTURN_RESULT % "Filtering", ref["filtering"])
            self.assertIsNotNone(m, ref["mapping"])
            self.assertIsNotNone(f, ref["filtering"])
            self.assertIn(ev["mapping"], COTURN_WORDS[m.group(1)], (what, m.group(0)))
            self.assertIn(ev["filtering"], COTURN_WORDS[f.group(1)], (what, f.group(0)))
            if "hairpin" in ref:
                # coturn's hairpin test (RFC 5780 §4.6) sees its own request come back.
                coturn_hairpin = "maybe a successful hairpinning" in ref["hairpin"]
                self.assertEqual(ev["hairpin"] == "yes", coturn_hairpin,
                                 (what, ref["hairpin"]))


def make_cell_test(kind, hairpin, mapping, filtering, name, hairpin_result):
    def test(self):
        self.check_cell(kind, hairpin, mapping, filtering, name, hairpin_result)
    return test


for _test, _kind, _hairpin, _m, _f, _name, _hp in CELLS:
    setattr(NatTypeLab, "test_" + _test, make_cell_test(_kind, _hairpin, _m, _f, _name, _hp))


if __name__ == "__main__":
    lab.unittest_main()
