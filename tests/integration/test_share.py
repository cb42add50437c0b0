"""The folder share end to end on loopback: `peertun p2p DIR` on A, `peertun p2p-join
CODE` on B mounts A's folder with FUSE. B's view matches A's tree; links that leave the
tree are never followed on A; the mount is read-only; Ctrl-C, SIGTERM and A vanishing
unmount cleanly; a stale mount from a killed run is cleaned by the next one.
Needs root and /dev/fuse (skipped otherwise).
"""
import errno
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import PeertunTestCase, mounts_below  # noqa: E402
from share_tree import (THREE_MIB, assert_reader_fails_fast_when, assert_same_view,  # noqa: E402
                        make_tree, sha256_of)

CAN_MOUNT = os.geteuid() == 0 and os.path.exists("/dev/fuse")


@unittest.skipUnless(CAN_MOUNT, "needs root and /dev/fuse")
class ShareTest(PeertunTestCase):
    def make_tree(self, big=False, many=False):
        return make_tree(self.tmp, big=big, many=many)

    def share(self, root, *extra_b, relay=None):
        relay = relay or self.relay()
        a = self.peer("p2p", root, relay=relay)
        code = a.wait_event("join_code")["code"]
        mnt = os.path.join(self.tmp, "mnt")
        b = self.peer("p2p-join", code, "--mount", mnt, *extra_b, relay=relay)
        mounted = b.wait_event("mounted", timeout=30)
        self.assertEqual(mounted["mountpoint"], mnt)
        return a, b, mnt, code

    def test_bs_view_matches_as_tree(self):
        root = self.make_tree(big=True, many=True)
        a, b, mnt, _ = self.share(root)
        self.assertEqual(a.wait_event("sharing", timeout=10)["peer"], "B")
        assert_same_view(self, root, mnt)
        # The escaping links resolve on B, relative to B's mount: A's secret is not there.
        self.assertTrue(os.path.exists(os.path.join(root, "escape")))  # on A it would
        with self.assertRaises(FileNotFoundError):
            with open(os.path.join(mnt, "escape")) as f:
                f.read()
        self.assertEqual(os.readlink(os.path.join(mnt, "escape")), "../outside-secret")
        self.assertEqual(os.readlink(os.path.join(mnt, "absolute escape")),
                         os.path.join(self.tmp, "a-side", "outside-secret"))
        with open(os.path.join(mnt, "inside link"), "rb") as f:
            self.assertEqual(len(f.read()), THREE_MIB)

    def test_the_mount_is_read_only(self):
        root = self.make_tree()
        a, b, mnt, _ = self.share(root)
        for attempt in (lambda: open(os.path.join(mnt, "empty"), "w"),
                        lambda: open(os.path.join(mnt, "new file"), "w"),
                        lambda: os.mkdir(os.path.join(mnt, "new dir")),
                        lambda: os.unlink(os.path.join(mnt, "empty")),
                        lambda: os.rename(os.path.join(mnt, "empty"), os.path.join(mnt, "x"))):
            with self.assertRaises(OSError) as caught:
                attempt()
            self.assertEqual(caught.exception.errno, errno.EROFS)
        self.assertTrue(os.path.exists(os.path.join(root, "empty")))

    def test_concurrent_readers(self):
        root = self.make_tree()
        a, b, mnt, _ = self.share(root)
        target = os.path.join("nested", "deeper", "deepest", "three MiB.bin")
        want = sha256_of(os.path.join(root, target))
        results = []

        def reader(path):
            results.append(sha256_of(path))

        threads = [threading.Thread(target=reader, args=(os.path.join(mnt, p),))
                   for p in [target] * 6 + ["name with spaces.txt", "inside link"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(results), 8)
        self.assertEqual(results.count(want), 7)  # six readers of the file, one via the link

    def assert_unmounted(self, mnt, timeout=10):
        deadline = time.monotonic() + timeout
        while mounts_below(mnt):
            if time.monotonic() > deadline:
                raise AssertionError(f"{mnt} still mounted after {timeout}s")
            time.sleep(0.05)

    def test_ctrl_c_and_sigterm_unmount_cleanly(self):
        root = self.make_tree()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(signal=sig):
                a, b, mnt, _ = self.share(root)
                self.assertTrue(mounts_below(mnt))
                b.signal(sig)
                self.assertEqual(b.wait_exit(15), 0)
                self.assert_unmounted(mnt, 1)
                b.wait_event("unmounted", timeout=1)
                # A learns that B left and ends too.
                self.assertEqual(a.wait_exit(15), 0)

    def test_a_killed_mid_read_gives_eio_quickly_and_unmounts(self):
        root = self.make_tree(big=True)
        a, b, mnt, _ = self.share(root)
        assert_reader_fails_fast_when(self, os.path.join(mnt, "big.bin"), a.p.kill,
                                      (errno.EIO, errno.ENOTCONN, errno.ENXIO))
        self.assert_unmounted(mnt, 15)
        b.wait_exit(15)
        self.assertIn("left", " ".join(b.out + b.err))

    def test_a_stale_mount_from_a_killed_run_is_cleaned(self):
        root = self.make_tree()
        relay = self.relay()
        a, b, mnt, _ = self.share(root, relay=relay)
        b.p.kill()
        b.wait_exit(10)
        with self.assertRaises(OSError) as caught:
            os.stat(mnt)
        self.assertEqual(caught.exception.errno, errno.ENOTCONN)
        a.wait_exit(15)
        a2 = self.peer("p2p", root, relay=relay)
        code = a2.wait_event("join_code")["code"]
        b2 = self.peer("p2p-join", code, "--mount", mnt, relay=relay)
        b2.wait_event("mounted", timeout=30)
        self.assertTrue(os.path.exists(os.path.join(mnt, "empty")))

    def test_a_crashed_runs_default_mountpoint_is_cleaned_by_the_next_run(self):
        root = self.make_tree()
        relay = self.relay()
        a = self.peer("p2p", root, relay=relay)
        code = a.wait_event("join_code")["code"]
        b = self.peer("p2p-join", code, relay=relay, mount_here=False)
        ours = [f"/tmp/p2p-{code}"]  # default mountpoints this test makes
        try:
            b.wait_event("mounted", timeout=30)
            b.p.kill()
            b.wait_exit(10)
            a.wait_exit(15)
            self.assertEqual(mounts_below(ours[0]), [ours[0]])  # left behind, dead
            # The next run (another code, another mountpoint) cleans it up.
            a2 = self.peer("p2p", root, relay=relay)
            code2 = a2.wait_event("join_code")["code"]
            ours.append(f"/tmp/p2p-{code2}")
            b2 = self.peer("p2p-join", code2, relay=relay, mount_here=False)
            b2.wait_event("mounted", timeout=30)
            self.assertEqual(mounts_below(ours[0]), [])
            self.assertFalse(os.path.exists(ours[0]))
            b2.signal(signal.SIGTERM)
            self.assertEqual(b2.wait_exit(15), 0)
        finally:
            for point in ours:
                if mounts_below(point):
                    os.system(f"umount -l '{point}'")

    def test_a_live_mount_is_never_taken_over(self):
        root = self.make_tree()
        relay = self.relay()
        a, b, mnt, _ = self.share(root, relay=relay)
        a2 = self.peer("p2p", root, relay=relay)
        code2 = a2.wait_event("join_code")["code"]
        b2 = self.peer("p2p-join", code2, "--mount", mnt, relay=relay)
        self.assertEqual(b2.wait_exit(30), 1)
        self.assertIn("cannot mount", " ".join(b2.err))
        self.assertTrue(os.path.exists(os.path.join(mnt, "empty")), "the first mount was lost")

    def test_default_mountpoint_is_tmp_p2p_code(self):
        root = self.make_tree()
        relay = self.relay()
        a = self.peer("p2p", root, relay=relay)
        code = a.wait_event("join_code")["code"]
        b = self.peer("p2p-join", code, relay=relay, mount_here=False)
        mnt = f"/tmp/p2p-{code}"
        try:
            self.assertEqual(b.wait_event("mounted", timeout=30)["mountpoint"], mnt)
            self.assertTrue(os.path.exists(os.path.join(mnt, "name with spaces.txt")))
            b.signal(signal.SIGTERM)
            self.assertEqual(b.wait_exit(15), 0)
            self.assertFalse(os.path.exists(mnt), "the mount point we created stays behind")
        finally:
            if mounts_below(mnt):
                os.system(f"umount -l '{mnt}'")

    def test_human_output_has_the_four_lines_and_a_hint(self):
        root = self.make_tree()
        relay = self.relay()
        a = self.peer("p2p", root, relay=relay)
        code = a.wait_event("join_code")["code"]
        b = self.peer("p2p-join", code, relay=relay, json_output=False)
        b.wait_line(r"Press Ctrl-C", timeout=30)
        lines = [l for l in b.out if l.startswith("\u2713")]
        self.assertEqual(len(lines), 4, b.out)
        self.assertRegex(lines[0], r"^✓ STUN: my public address is ")
        self.assertRegex(lines[1], r"^✓ Peer A is at ")
        self.assertRegex(lines[2], r"^✓ UDP hole-punch: succeeded \(RTT \d+ms\)")
        self.assertRegex(lines[3], r"^✓ Mounted .*shared folder at " + os.path.join(self.tmp, "mnt-"))


if __name__ == "__main__":
    unittest.main()
