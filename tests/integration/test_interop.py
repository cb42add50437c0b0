"""Interoperability with coturn: its STUN clients against our relay, and our client
against its server."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import PeertunTestCase  # noqa: E402


def run(cmd, timeout):
    """Runs a third-party tool with a hard bound (coturn's clients can hang)."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        return 124, (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else ""


def free_port_pair():
    """A port P with P and P+1 free on UDP and TCP at 127.0.0.1 and 127.0.0.2."""
    for _ in range(50):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p >= 65534:
            continue
        ok = True
        for ip in ("127.0.0.1", "127.0.0.2"):
            for port in (p, p + 1):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    t = socket.socket(socket.AF_INET, kind)
                    try:
                        t.bind((ip, port))
                    except OSError:
                        ok = False
                    finally:
                        t.close()
        if ok:
            return p
    raise RuntimeError("no free port pair")


@unittest.skipUnless(shutil.which("turnutils_stunclient"), "coturn is not installed")
class CoturnClientsAgainstOurRelay(PeertunTestCase):
    def test_stunclient_sees_mapped_address_and_rfc5780_attributes(self):
        relay = self.relay("--alt-ip", "127.0.0.2", listen="127.0.0.1:0")
        rc, out = run(["turnutils_stunclient", "-p", str(relay.port), "127.0.0.1"], 15)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"UDP reflexive addr: 127\.0\.0\.1:\d+")
        self.assertIn(f"Response origin: : 127.0.0.1:{relay.port}", out)
        self.assertIn(f"Other addr: : 127.0.0.2:{relay.alt_port}", out)
        # CHANGE-REQUEST (ip+port) was honoured: responses 2 and 3 come from the other address.
        self.assertEqual(out.count(f"Response origin: : 127.0.0.2:{relay.alt_port}"), 2, out)

    def test_natdiscovery_reports_endpoint_independent_on_loopback(self):
        relay = self.relay("--alt-ip", "127.0.0.2", listen="127.0.0.1:0")
        rc, out = run(["turnutils_natdiscovery", "-m", "-f", "-p", str(relay.port),
                       "127.0.0.1"], 30)
        self.assertEqual(rc, 0, out)
        self.assertIn("NAT with Endpoint Independent Mapping!", out)
        self.assertIn("NAT with Endpoint Independent Filtering!", out)

    def test_stunclient_over_ipv6(self):
        relay = self.relay(listen="[::1]:0")
        rc, out = run(["turnutils_stunclient", "-p", str(relay.port), "::1"], 15)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"UDP reflexive addr: ::1:\d+|UDP reflexive addr: \[::1\]:\d+")

    def test_single_address_relay_changes_port_only(self):
        relay = self.relay(listen="127.0.0.1:0")
        rc, out = run(["turnutils_stunclient", "-p", str(relay.port), "127.0.0.1"], 15)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"Other addr: : 127.0.0.1:{relay.alt_port}", out)
        self.assertIn(f"Response origin: : 127.0.0.1:{relay.alt_port}", out)


class CoturnTestCase(PeertunTestCase):
    """Runs coturn on 127.0.0.1 and 127.0.0.2 (RFC 5780 needs two addresses) for each
    test: self.port is its port, stopped by PID afterwards."""

    def setUp(self):
        super().setUp()
        self.port = free_port_pair()
        work = tempfile.mkdtemp(prefix="coturn-")
        self.work = work
        self.pidfile = os.path.join(work, "coturn.pid")
        args = ["turnserver", "-n", "--no-tls", "--no-dtls", "--no-cli",
                "-p", str(self.port), "-L", "127.0.0.1", "-L", "127.0.0.2", "-E", "127.0.0.1",
                "--min-port", "49152", "--max-port", "49999", "-a", "-u", "test:testpass",
                "-r", "interop.test", "-f", "--allow-loopback-peers",
                "-b", os.path.join(work, "turndb.sqlite"), "--pidfile", self.pidfile,
                "--log-file", os.path.join(work, "coturn.log"), "--simple-log",
                "--no-stdout-log"]
        self.coturn = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        # Readiness: coturn answers a STUN request (bounded).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rc, _ = run(["turnutils_stunclient", "-p", str(self.port), "127.0.0.1"], 3)
            if rc == 0:
                break
            time.sleep(0.2)
        else:
            self.fail("coturn did not start")

    def tearDown(self):
        if self.coturn.poll() is None:
            self.coturn.terminate()
            try:
                self.coturn.wait(5)
            except subprocess.TimeoutExpired:
                self.coturn.kill()
                self.coturn.wait(5)
        shutil.rmtree(self.work, ignore_errors=True)
        super().tearDown()


@unittest.skipUnless(shutil.which("turnserver"), "coturn is not installed")
class OurClientAgainstCoturn(CoturnTestCase):
    def test_debug_stun_agrees_with_coturns_own_client(self):
        rc, ref = run(["turnutils_stunclient", "-p", str(self.port), "127.0.0.1"], 15)
        self.assertEqual(rc, 0, ref)
        other = re.search(r"Other addr: : (\S+)", ref).group(1)
        origin = re.search(r"Response origin: : (\S+)", ref).group(1)
        d = self.peer("debug", "stun", relay=f"127.0.0.1:{self.port}", token=None)
        ev = d.wait_event("stun")
        self.assertEqual(d.wait_exit(), 0)
        self.assertEqual(ev["other_address"], other)
        self.assertEqual(ev["response_origin"], origin)
        # No NAT on loopback: coturn maps us to our own socket, from both addresses.
        self.assertEqual(ev["mapped"], f"127.0.0.1:{ev['local_port']}")
        self.assertEqual(ev["alt_mapped"], ev["mapped"])
        self.assertFalse(ev["mapping_varies"])


if __name__ == "__main__":
    unittest.main()
