"""`--send FILE` / `--receive DIR`: a file pushed over QUIC on the punched path, on
loopback. Byte-exact (SHA-256), refusals are clear on both sides, nothing partial stays.
"""
import hashlib
import os
import random
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import PeertunTestCase  # noqa: E402

SIZE = 24 * 1024 * 1024 + 123  # several flow-control windows, not a round number


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class TransferTest(PeertunTestCase):
    def make_file(self, name, size):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(os.urandom(size))
        return path

    @staticmethod
    def wait_until(condition, timeout):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(0.05)

    def pair(self, relay, send, receive_dir, extra_a=(), extra_b=()):
        a = self.peer("p2p", self.share_dir(), "--send", send, *extra_a, relay=relay)
        code = a.wait_event("join_code")["code"]
        b = self.peer("p2p-join", code, "--receive", receive_dir, *extra_b, relay=relay)
        return a, b

    def test_a_file_arrives_byte_exact_and_both_sides_say_so(self):
        relay = self.relay()
        src = self.make_file("data file.bin", SIZE)
        dest = os.path.join(self.tmp, "inbox")
        os.makedirs(dest)
        a, b = self.pair(relay, src, dest)
        self.assertEqual(a.wait_event("quic", timeout=20)["state"], "connected")
        got = b.wait_event("transfer", timeout=120)
        sent = a.wait_event("transfer", timeout=30)
        digest = sha256_of(src)
        self.assertEqual(got["direction"], "received")
        self.assertEqual(got["name"], "data file.bin")
        self.assertEqual(got["bytes"], SIZE)
        self.assertEqual(got["sha256"], digest)
        self.assertEqual(sent["direction"], "sent")
        self.assertEqual(sent["sha256"], digest)
        self.assertEqual(sha256_of(os.path.join(dest, "data file.bin")), digest)
        # The receiver ends the session when done; the sender then sees it leave.
        self.assertEqual(b.wait_exit(timeout=20), 0)
        a.wait_event("peer_left", timeout=20)
        self.assertEqual(a.wait_exit(timeout=20), 0)

    def test_an_existing_file_is_never_overwritten(self):
        relay = self.relay()
        src = self.make_file("report.txt", 4096)
        dest = os.path.join(self.tmp, "inbox")
        os.makedirs(dest)
        with open(os.path.join(dest, "report.txt"), "w") as f:
            f.write("keep me")
        a, b = self.pair(relay, src, dest)
        self.assertEqual(b.wait_exit(timeout=60), 1)
        self.assertIn("already exists", b.err[-1])
        self.assertEqual(a.wait_exit(timeout=30), 1)
        self.assertIn("refused", a.err[-1])
        with open(os.path.join(dest, "report.txt")) as f:
            self.assertEqual(f.read(), "keep me")

    def test_empty_file(self):
        relay = self.relay()
        src = self.make_file("empty", 0)
        dest = os.path.join(self.tmp, "inbox")
        os.makedirs(dest)
        a, b = self.pair(relay, src, dest)
        got = b.wait_event("transfer", timeout=60)
        self.assertEqual(got["bytes"], 0)
        self.assertEqual(got["sha256"], hashlib.sha256(b"").hexdigest())
        self.assertEqual(os.path.getsize(os.path.join(dest, "empty")), 0)
        self.assertEqual(b.wait_exit(timeout=20), 0)

    def test_bad_arguments_are_usage_errors(self):
        relay = self.relay()
        p = self.peer("p2p", self.share_dir(), "--send", os.path.join(self.tmp, "nope"),
                      relay=relay)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("cannot send", p.err[0])
        p = self.peer("p2p-join", "pt-p2p-2A91-7XKP-Q4L9", "--receive",
                      os.path.join(self.tmp, "nodir"), relay=relay)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("cannot receive into", p.err[0])
        p = self.peer("p2p", self.share_dir(), "--quic-cc", "warp", relay=relay)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("--quic-cc", p.err[0])

    def test_the_sender_can_choose_another_congestion_control(self):
        relay = self.relay()
        src = self.make_file("cc.bin", 4 * 1024 * 1024)
        dest = os.path.join(self.tmp, "inbox")
        os.makedirs(dest)
        a, b = self.pair(relay, src, dest, extra_a=("--quic-cc", "bbr2"))
        got = b.wait_event("transfer", timeout=60)
        self.assertEqual(got["sha256"], sha256_of(src))
        self.assertEqual(b.wait_exit(timeout=20), 0)

    def test_garbage_sprayed_at_both_data_sockets_does_no_harm(self):
        relay = self.relay()
        src = self.make_file("payload.bin", SIZE)
        dest = os.path.join(self.tmp, "inbox")
        os.makedirs(dest)
        a, b = self.pair(relay, src, dest)
        a_addr = b.wait_event("punch", timeout=20)["remote"]
        b_addr = a.wait_event("punch", timeout=20)["remote"]
        a.wait_event("quic", timeout=20)
        rng = random.Random(7)
        sprayer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sprayer.close)
        stun_cookie = bytes([0x21, 0x12, 0xA4, 0x42])
        for i in range(3000):
            kind = i % 4
            n = rng.randrange(1, 1400)
            body = bytes(rng.getrandbits(8) for _ in range(n))
            if kind == 1:  # looks like STUN: type, length, cookie, junk
                body = bytes([0, 1, 0, 8]) + stun_cookie + body[:20]
            elif kind == 2:  # looks like a QUIC short header
                body = bytes([0x40 | (body[0] & 0x3f)]) + body[1:]
            elif kind == 3:  # looks like a QUIC long header (Initial)
                body = bytes([0xc0, 0, 0, 0, 1]) + body[5:]
            host, port = (a_addr if i % 2 else b_addr).rsplit(":", 1)
            sprayer.sendto(body, (host, int(port)))
        got = b.wait_event("transfer", timeout=120)
        self.assertEqual(got["sha256"], sha256_of(src))
        self.assertEqual(b.wait_exit(timeout=20), 0)

    def test_sender_vanishing_mid_transfer_leaves_no_partial_file(self):
        relay = self.relay()
        src = self.make_file("big.bin", 200 * 1024 * 1024)
        dest = os.path.join(self.tmp, "inbox")
        os.makedirs(dest)
        a, b = self.pair(relay, src, dest)
        a.wait_event("quic", timeout=20)
        # Kill A hard once bytes are flowing (the file exists on B's side).
        target = os.path.join(dest, "big.bin")
        self.wait_until(lambda: os.path.exists(target) and os.path.getsize(target) > 0, 30)
        a.signal(9)
        self.assertEqual(b.wait_exit(timeout=60), 1)
        self.assertFalse(os.path.exists(target))


if __name__ == "__main__":
    unittest.main()
