"""A man in the middle who knows the join code: it runs the PAKE separately with each
peer, so it can open and re-seal each peer_info, and it replaces the QUIC certificate
fingerprints in them (tests/support/mitm_proxy.cc). It also stands in the UDP path (the
connectivity checks are keyed from each PAKE run, so it must answer them), which lets the
punch succeed: the refusal the peers print comes from the certificate pinning alone.
docs/protocol/quic.md, "What the pinning is for".
"""
import hashlib
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import BUILD_DIR, PeertunTestCase, Proc  # noqa: E402

MITM = os.path.join(BUILD_DIR, "tests/integration/mitm_proxy")

# Exactly what each side prints (stderr, the last line, exit 1). The side that checks a
# certificate and finds the wrong one says so; the other learns it from the TLS alert.
MISMATCH = "peer's certificate does not match the fingerprint exchanged with the join code"
REJECTED = ("the peer rejected our certificate: it does not match the fingerprint exchanged "
            "with the join code")


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class MitmProxy(Proc):
    """mitm_proxy between peer B and `relay`, knowing `code`; `swap` says whose pinned
    fingerprint it replaces: both, to-a, to-b or none."""

    def __init__(self, relay, code, swap):
        super().__init__([MITM, "--relay", relay.control, "--code", code, "--swap", swap])
        m = self.wait_line(r"^mitm\.ready control=(\S+) udp_a=(\S+) udp_b=(\S+)$")
        self.address, self.udp_a, self.udp_b = m.groups()


class MitmTest(PeertunTestCase):
    def setUp(self):
        super().setUp()
        if not os.access(MITM, os.X_OK):
            self.fail(f"{MITM} is missing: build the mitm_proxy target")

    def attacked_session(self, swap, size=1024 * 1024):
        """A pushes a file to B, with the proxy between B and the relay. Returns once both
        punches succeeded, each to the proxy's socket for that peer."""
        relay = self.relay()
        self.src = os.path.join(self.tmp, "secret.bin")
        with open(self.src, "wb") as f:
            f.write(os.urandom(size))
        self.inbox = os.path.join(self.tmp, "inbox")
        os.makedirs(self.inbox)
        a = self.peer("p2p", self.share_dir(), "--send", self.src, relay=relay)
        code = a.wait_event("join_code")["code"]
        mitm = self.keep(MitmProxy(relay, code, swap))
        b = self.peer("p2p-join", code, "--receive", self.inbox, relay=mitm.address)
        # Both PAKE runs complete: the proxy holds the code, so nobody sees a wrong code.
        mitm.wait_line(r"^mitm\.pake peer=A$", timeout=20)
        mitm.wait_line(r"^mitm\.pake peer=B$", timeout=20)
        for to in ("A", "B"):
            fate = "replaced" if swap in ("both", f"to-{to.lower()}") else "kept"
            mitm.wait_line(rf"^mitm\.peer_info from=\S to={to} fingerprint={fate}$", timeout=20)
        self.assertEqual(a.wait_event("peer_address", timeout=20)["address"], mitm.udp_a)
        self.assertEqual(b.wait_event("peer_address", timeout=20)["address"], mitm.udp_b)
        punch_a = a.wait_event("punch", timeout=20)
        punch_b = b.wait_event("punch", timeout=20)
        self.assertEqual((punch_a["result"], punch_a["remote"]), ("succeeded", mitm.udp_a))
        self.assertEqual((punch_b["result"], punch_b["remote"]), ("succeeded", mitm.udp_b))
        return a, b, mitm

    def assert_refused(self, proc, what, reason, handshake_done=False):
        """`proc` exits 1 with one message, "peertun: <what> failed: <reason>" (`what` a
        regex), and never transfers anything. `handshake_done`: whether its own TLS
        handshake completed first (None: either)."""
        self.assertEqual(proc.wait_exit(timeout=30), 1)
        self.assertRegex(proc.err[-1], "^peertun: (%s) failed: %s$" % (what, re.escape(reason)))
        self.assertEqual([l for l in proc.err if l.startswith("peertun:")], [proc.err[-1]])
        if handshake_done is not None:
            self.assertEqual(any('"event":"quic"' in l for l in proc.out), handshake_done,
                             proc.out)
        self.assertFalse(any('"event":"transfer"' in l for l in proc.out), proc.out)

    def test_swapped_fingerprints_make_both_peers_refuse(self):
        a, b, _ = self.attacked_session("both")
        # B (the QUIC client) sees A's certificate first and refuses it; A hears the alert.
        self.assert_refused(b, "the QUIC connection with peer A", MISMATCH)
        self.assert_refused(a, "the QUIC connection with peer B", REJECTED)
        self.assertEqual(os.listdir(self.inbox), [])

    def test_a_refuses_a_certificate_that_is_not_the_pinned_one(self):
        # Only A is lied to: B accepts A's certificate and presents its own, which A checks.
        a, b, _ = self.attacked_session("to-a")
        self.assert_refused(a, "the QUIC connection with peer B", MISMATCH)
        # A QUIC client's handshake completes before the server has checked its
        # certificate, so B hears the alert either still in the handshake or already
        # waiting for the file, depending on which comes first on its event loop.
        self.assert_refused(b, "the QUIC connection with peer A|receiving a file from peer A",
                            REJECTED, handshake_done=None)
        self.assertEqual(os.listdir(self.inbox), [])

    def test_the_proxy_is_transparent_when_it_keeps_the_fingerprints(self):
        # The control case: the same proxy, fingerprints passed through. The file arrives
        # through it, so the refusals above come from the swap alone.
        a, b, _ = self.attacked_session("none")
        self.assertEqual(b.wait_event("quic", timeout=20)["state"], "connected")
        got = b.wait_event("transfer", timeout=60)
        self.assertEqual(got["sha256"], sha256_of(self.src))
        self.assertEqual(sha256_of(os.path.join(self.inbox, "secret.bin")), got["sha256"])
        self.assertEqual(b.wait_exit(timeout=20), 0)
        a.wait_event("peer_left", timeout=20)
        self.assertEqual(a.wait_exit(timeout=20), 0)


if __name__ == "__main__":
    unittest.main()
