#!/usr/bin/env python3
"""The direct QUIC data path through the lab's NATs: 1 GiB pushed from A to B after the
punch arrives byte-exact (SHA-256), on clean links, at 50 ms RTT with 1% loss, and across
a NAT rebinding forced mid-transfer; the relay's UDP port sees none of it. Needs root; exits 77 (ctest's skip code) when the
lab cannot run here.

    sudo PEERTUN_BUILD_DIR=build/release python3 tests/natlab/test_transfer_lab.py -v
"""
import hashlib
import os
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
from test_punch import RELAY_PORT, TOKEN, fetch_metrics  # noqa: E402

SIZE = 1 << 30
STEP_TIMEOUT_S = 20.0
# Generous: 1 GiB at a few MB/s on a loaded 2-core machine still fits.
TRANSFER_TIMEOUT_S = 400.0


def write_random_file(path, size):
    """A file of `size` pseudo-random bytes and its SHA-256 (fast: one random block
    repeated with a counter, so no two MiB are equal)."""
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size >> 20):
            chunk = i.to_bytes(8, "big") + block[8:]
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


class TransferLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="peertun-natlab-xfer-")
        cls.src = os.path.join(cls.tmp, "one-gib.bin")
        cls.digest = write_random_file(cls.src, SIZE)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()

    def start(self, l, node, argv):
        proc = harness.Proc(l.wrap(node, argv))
        self.procs.append(proc)
        return proc

    def push(self, rebind_side=None, **lab_options):
        inbox = tempfile.mkdtemp(prefix="inbox-", dir=self.tmp)
        try:
            with lab.Lab("port-restricted", "restricted", **lab_options) as l:
                relay = self.start(l, "relay", [harness.RELAY, "--listen",
                                                f"{l.relay_ip}:{RELAY_PORT}", "--alt-ip",
                                                l.relay_ips[1], "--token", TOKEN])
                relay.wait_line(r"peertun-relay listening", timeout=STEP_TIMEOUT_S)
                common = ["--relay", f"{l.relay_ip}:{RELAY_PORT}", "--token", TOKEN, "--json"]
                share = os.path.join(self.tmp, "share")
                os.makedirs(share, exist_ok=True)
                a = self.start(l, "a", [harness.PEERTUN, *common, "p2p", share,
                                        "--send", self.src])
                code = a.wait_event("join_code", timeout=STEP_TIMEOUT_S)["code"]
                b = self.start(l, "b", [harness.PEERTUN, *common, "p2p-join", code,
                                        "--receive", inbox])
                self.assertEqual(b.wait_event("punch", timeout=STEP_TIMEOUT_S)["result"],
                                 "succeeded")
                b.wait_event("quic", timeout=STEP_TIMEOUT_S)
                # From here on the relay must see nothing on its UDP port.
                udp_before = fetch_metrics(l)["stun_received_total"]
                if rebind_side:
                    # Mid-transfer, that side's NAT forgets every mapping and hands out
                    # new ports: the other side must follow without QUIC noticing.
                    target = os.path.join(inbox, "one-gib.bin")
                    deadline = time.monotonic() + TRANSFER_TIMEOUT_S
                    while (not os.path.exists(target) or
                           os.path.getsize(target) < SIZE // 8):
                        self.assertLess(time.monotonic(), deadline, "no bytes arrived")
                        time.sleep(0.05)
                    l.rebind(rebind_side)
                    follower = b if rebind_side == "a" else a
                    follower.wait_event("path_moved", timeout=STEP_TIMEOUT_S)
                got = b.wait_event("transfer", timeout=TRANSFER_TIMEOUT_S)
                sent = a.wait_event("transfer", timeout=STEP_TIMEOUT_S)
                udp_after = fetch_metrics(l)["stun_received_total"]
                self.assertEqual(b.wait_exit(timeout=STEP_TIMEOUT_S), 0)
            self.assertEqual(got["bytes"], SIZE)
            self.assertEqual(got["sha256"], self.digest)
            self.assertEqual(sent["sha256"], self.digest)
            h = hashlib.sha256()
            with open(os.path.join(inbox, "one-gib.bin"), "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    h.update(block)
            self.assertEqual(h.hexdigest(), self.digest)
            self.assertEqual(udp_after, udp_before, "the relay's UDP port saw tunnel traffic")
            return got
        finally:
            shutil.rmtree(inbox, ignore_errors=True)

    def test_one_gib_on_clean_links(self):
        got = self.push()
        print(f"\n  clean: {got['mb_per_s']:.1f} MB/s", file=sys.stderr)

    def test_one_gib_across_a_nat_rebinding(self):
        got = self.push(rebind_side="a")
        print(f"\n  rebinding A's NAT mid-transfer: {got['mb_per_s']:.1f} MB/s", file=sys.stderr)

    def test_one_gib_at_50ms_rtt_and_1pct_loss(self):
        if not lab.default_delay_line():
            self.skipTest("natlab_delay_line not built")
        # 12.5 ms each way on each WAN link is 50 ms between the peers; 1% loss each way
        # on A's link.
        got = self.push(delay_ms=13, loss_pct={"a": 1})
        print(f"\n  50 ms / 1%: {got['mb_per_s']:.1f} MB/s", file=sys.stderr)


if __name__ == "__main__":
    lab.unittest_main()
