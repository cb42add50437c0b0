#!/usr/bin/env python3
"""The folder share through the lab's NATs: B mounts A's folder over the punched QUIC
path and sees A's tree exactly, on clean links and at 50 ms RTT with 1% loss; the
relay's UDP port sees none of it; A vanishing mid-read gives B's reader EIO within a
few seconds and the mount goes away. Needs root and /dev/fuse; exits 77 (ctest's skip
code) when the lab cannot run here.

    sudo PEERTUN_BUILD_DIR=build/release python3 tests/natlab/test_share_lab.py -v
"""
import errno
import os
import shutil
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import harness  # noqa: E402
from natlab import lab  # noqa: E402
from share_tree import assert_reader_fails_fast_when, assert_same_view, make_tree  # noqa: E402
from test_punch import RELAY_PORT, TOKEN, fetch_metrics  # noqa: E402

STEP_TIMEOUT_S = 30.0


@unittest.skipUnless(os.path.exists("/dev/fuse"), "needs /dev/fuse")
class ShareLab(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="peertun-natlab-share-")
        # 300 small files rather than 10,000: at 50 ms RTT every directory page and
        # open costs round trips; the loopback test covers the full size.
        cls.root = make_tree(cls.tmp, big=True, many=True, small_files=300)

    @classmethod
    def tearDownClass(cls):
        harness.unmount_below(cls.tmp)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        harness.unmount_below(self.tmp)

    def start(self, l, node, argv):
        proc = harness.Proc(l.wrap(node, argv))
        self.procs.append(proc)
        return proc

    def mount(self, l):
        """Relay, A sharing the tree, B mounting it: (a, b, mountpoint, seconds from
        B's start to mounted)."""
        relay = self.start(l, "relay", [harness.RELAY, "--listen", f"{l.relay_ip}:{RELAY_PORT}",
                                        "--alt-ip", l.relay_ips[1], "--token", TOKEN])
        relay.wait_line(r"peertun-relay listening", timeout=STEP_TIMEOUT_S)
        common = ["--relay", f"{l.relay_ip}:{RELAY_PORT}", "--token", TOKEN, "--json"]
        a = self.start(l, "a", [harness.PEERTUN, *common, "p2p", self.root])
        code = a.wait_event("join_code", timeout=STEP_TIMEOUT_S)["code"]
        mnt = tempfile.mkdtemp(prefix="mnt-", dir=self.tmp)
        started = time.monotonic()
        b = self.start(l, "b", [harness.PEERTUN, *common, "p2p-join", code, "--mount", mnt])
        self.assertEqual(b.wait_event("punch", timeout=STEP_TIMEOUT_S)["result"], "succeeded")
        self.assertEqual(b.wait_event("mounted", timeout=STEP_TIMEOUT_S)["mountpoint"], mnt)
        return a, b, mnt, time.monotonic() - started

    def check_tree(self, **lab_options):
        with lab.Lab("restricted", "symmetric", **lab_options) as l:
            a, b, mnt, to_mount = self.mount(l)
            udp_before = fetch_metrics(l)["stun_received_total"]
            started = time.monotonic()
            assert_same_view(self, self.root, mnt)
            walked = time.monotonic() - started
            # Everything B read came over the direct path, none through the relay.
            self.assertEqual(fetch_metrics(l)["stun_received_total"], udp_before)
            b.stop()
            a.wait_exit(STEP_TIMEOUT_S)
        print(f"\n  join to mounted {to_mount:.2f} s; full compare (200 MiB + 300 files) "
              f"{walked:.1f} s", file=sys.stderr)

    def test_tree_matches_on_clean_links(self):
        self.check_tree()

    def test_tree_matches_at_50ms_rtt_and_1pct_loss(self):
        if not lab.default_delay_line():
            self.skipTest("natlab_delay_line not built")
        self.check_tree(delay_ms=13, loss_pct={"a": 1})

    def test_a_vanishing_mid_read_gives_eio_and_unmounts(self):
        with lab.Lab("port-restricted", "restricted") as l:
            a, b, mnt, _ = self.mount(l)
            assert_reader_fails_fast_when(self, os.path.join(mnt, "big.bin"), a.p.kill,
                                          (errno.EIO, errno.ENOTCONN))
            b.wait_exit(STEP_TIMEOUT_S)
            self.assertEqual(harness.mounts_below(mnt), [])


if __name__ == "__main__":
    lab.unittest_main()
