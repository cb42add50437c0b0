"""Relay + peer A + peer B on loopback: the PAKE and the sealed address exchange, and
every way a user or a hostile party can make it fail."""
import os
import random
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import TOKEN, PeertunTestCase, WsClient, hello  # noqa: E402


class RendezvousTest(PeertunTestCase):
    def start_pair(self, relay, human=False):
        a = self.peer("p2p", self.share_dir(), relay=relay, json_output=not human)
        if human:
            code = a.wait_line(r"Join code: (pt-p2p-\S+)").group(1)
        else:
            code = a.wait_event("join_code")["code"]
        b = self.peer("p2p-join", code, relay=relay, json_output=not human)
        return a, b, code

    def test_peers_meet_and_learn_each_others_addresses(self):
        relay = self.relay()
        a, b, code = self.start_pair(relay)
        self.assertRegex(code, r"^pt-p2p-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-"
                               r"[0-9A-HJKMNP-TV-Z]{4}$")
        a_public = a.wait_event("public_address")["address"]
        b_public = b.wait_event("public_address")["address"]
        # On loopback the public address is the socket itself: 127.0.0.1:<its port>.
        self.assertTrue(a_public.startswith("127.0.0.1:"))
        peer_seen_by_b = b.wait_event("peer_address")
        peer_seen_by_a = a.wait_event("peer_address")
        self.assertEqual(peer_seen_by_b, {"event": "peer_address", "peer": "A",
                                          "address": a_public})
        self.assertEqual(peer_seen_by_a, {"event": "peer_address", "peer": "B",
                                          "address": b_public})
        # Both punch: on loopback the host candidates answer at once.
        punch_b = b.wait_event("punch")
        punch_a = a.wait_event("punch")
        self.assertEqual(punch_a["result"], "succeeded")
        self.assertEqual(punch_b["result"], "succeeded")
        self.assertEqual(punch_a["remote"], b_public)
        self.assertEqual(punch_b["remote"], a_public)
        self.assertEqual(punch_a["candidate"], "host")
        self.assertGreaterEqual(punch_a["fire_to_path_ms"], 0)
        # B stops (Ctrl-C); A hears that B left and ends cleanly.
        b.signal(signal.SIGINT)
        self.assertEqual(b.wait_exit(), 0)
        a.wait_event("peer_left")
        self.assertEqual(a.wait_exit(), 0)
        m = relay.metrics()
        self.assertEqual(m["sessions_created_total"], 1)
        self.assertEqual(m["sessions_joined_total"], 1)
        self.assertGreaterEqual(m["signals_forwarded_total"], 6)
        self.assertEqual(m["punches_fired_total"], 1)
        self.assertEqual(m['path_reports_total{outcome="direct"}'], 2)
        self.assertEqual(m['path_reports_total{outcome="failed"}'], 0)

    def test_human_output_has_the_design_lines(self):
        relay = self.relay()
        a, b, code = self.start_pair(relay, human=True)
        b.wait_line(r"^✓ STUN: my public address is 127\.0\.0\.1:\d+$")
        b.wait_line(r"^✓ Peer A is at 127\.0\.0\.1:\d+$")
        a.wait_line(r"^✓ STUN: my public address is 127\.0\.0\.1:\d+$")
        a.wait_line(r"^✓ Peer B is at 127\.0\.0\.1:\d+$")
        a.wait_line(r"peertun p2p-join " + code)
        b.wait_line(r"^✓ UDP hole-punch: succeeded \(RTT \d+ms\)$")
        a.wait_line(r"^✓ UDP hole-punch: succeeded \(RTT \d+ms\)$")

    def test_bad_attempt_timeout_is_a_usage_error(self):
        relay = self.relay()
        for bad in ("8", "soon", "-3s", "0s"):
            p = self.peer("p2p", self.share_dir(), "--p2p-attempt-timeout", bad, relay=relay)
            self.assertEqual(p.wait_exit(), 2, bad)
            self.assertIn("--p2p-attempt-timeout", p.err[0])

    def test_punch_messages_out_of_place_get_errors_not_crashes(self):
        relay = self.relay("--log-level", "info")
        ws = WsClient(relay.host, relay.port)
        self.addCleanup(ws.close)
        self.assertEqual(hello(ws)["type"], "welcome")
        # Not in a session: punch_ready is refused, the connection stays usable.
        ws.send_json({"v": 1, "type": "punch_ready"})
        self.assertEqual(ws.recv_json()["code"], "not_in_session")
        ws.send_json({"v": 1, "type": "path_report", "outcome": "direct", "reason": "",
                      "rtt_ms": -5})
        self.assertEqual(ws.recv_json()["code"], "bad_message")
        # Outside a session a report is refused and not counted.
        ws.send_json({"v": 1, "type": "path_report", "outcome": "teleported", "reason": "x"})
        self.assertEqual(ws.recv_json()["code"], "not_in_session")
        ws.send_json({"v": 1, "type": "create_session"})
        created = ws.recv_json()
        self.assertEqual(created["type"], "session_created")
        # Paired with a second raw peer: the first report counts (an outcome from a newer
        # peer is "unknown"), a repeat does not; a reason full of quotes and newlines
        # cannot forge log lines.
        b = WsClient(relay.host, relay.port)
        self.addCleanup(b.close)
        self.assertEqual(hello(b)["type"], "welcome")
        b.send_json({"v": 1, "type": "join_session", "nameplate": created["nameplate"]})
        self.assertEqual(b.recv_json()["type"], "session_joined")
        self.assertEqual(ws.recv_json()["type"], "peer_joined")
        for _ in range(3):
            ws.send_json({"v": 1, "type": "path_report", "outcome": "teleported",
                          "reason": "x\" forged=1\npath.report id=0"})
        ws.send_json({"v": 1, "type": "punch_ready"})
        b.send_json({"v": 1, "type": "punch_ready"})
        self.assertEqual(ws.recv_json()["type"], "fire")
        self.assertEqual(b.recv_json()["type"], "fire")
        m = relay.metrics()
        self.assertEqual(m['path_reports_total{outcome="unknown"}'], 1)
        self.assertEqual(m["punches_fired_total"], 1)
        relay.wait_line(r"punch\.fire", stream="err")
        reports = [line for line in relay.err if "path.report" in line]
        self.assertEqual(len(reports), 3, reports)  # no injected line
        for line in reports:
            self.assertEqual(line.count('"'), 2, line)  # the reason stays one quoted value

    def test_wrong_code_fails_on_both_sides_and_burns_the_nameplate(self):
        relay = self.relay()
        a = self.peer("p2p", self.share_dir(), relay=relay)
        code = a.wait_event("join_code")["code"]
        secret = code[12:]
        wrong_secret = "0000-0000" if secret != "0000-0000" else "1111-1111"
        wrong = code[:12] + wrong_secret
        b = self.peer("p2p-join", wrong, relay=relay)
        self.assertEqual(b.wait_exit(), 1)
        self.assertEqual(a.wait_exit(), 1)
        self.assertIn("peertun: wrong join code", b.err)
        self.assertIn("peertun: wrong join code", a.err)
        # One guess per code: the right code no longer works either.
        c = self.peer("p2p-join", code, relay=relay)
        self.assertEqual(c.wait_exit(), 1)
        self.assertTrue(any("already used" in l for l in c.err), c.err)

    def test_code_is_tolerant_of_case_spaces_and_prefix(self):
        relay = self.relay()
        a = self.peer("p2p", self.share_dir(), relay=relay)
        code = a.wait_event("join_code")["code"]
        sloppy = " " + code[len("pt-p2p-"):].lower().replace("-", " ") + " "
        b = self.peer("p2p-join", sloppy, relay=relay)
        b.wait_event("peer_address")
        a.wait_event("peer_address")

    def test_bad_token_is_one_clear_line(self):
        relay = self.relay()
        b = self.peer("p2p-join", "pt-p2p-2A91-7XKP-Q4L9", relay=relay, token="wrong-token")
        self.assertEqual(b.wait_exit(), 1)
        self.assertEqual(len(b.err), 1, b.err)
        self.assertIn("does not accept this token", b.err[0])
        self.assertNotIn("wrong-token", b.err[0])
        self.assertEqual(relay.metrics()["auth_failures_total"], 1)

    def test_missing_token_and_relay_are_usage_errors(self):
        relay = self.relay()
        p = self.peer("p2p-join", "pt-p2p-2A91-7XKP-Q4L9", relay=relay, token=None)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("no token given", p.err[0])
        p = self.peer("p2p-join", "pt-p2p-2A91-7XKP-Q4L9", relay=None)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("no relay given", p.err[0])

    def test_no_relay_listening(self):
        # A port that was just free; nothing listens there now.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        b = self.peer("p2p-join", "pt-p2p-2A91-7XKP-Q4L9", relay=f"127.0.0.1:{port}")
        self.assertEqual(b.wait_exit(), 1)
        self.assertIn(f"cannot reach the relay at 127.0.0.1:{port}", b.err[0])

    def test_unknown_nameplate(self):
        relay = self.relay()
        b = self.peer("p2p-join", "pt-p2p-ZZZZ-7XKP-Q4L9", relay=relay)
        self.assertEqual(b.wait_exit(), 1)
        self.assertIn("unknown join code", b.err[0])

    def test_malformed_code_and_bad_dir_are_usage_errors(self):
        relay = self.relay()
        for bad in ("pt-p2p-2A91", "hello world!", "pt-p2p-UUUU-7XKP-Q4L9"):
            p = self.peer("p2p-join", bad, relay=relay)
            self.assertEqual(p.wait_exit(), 2, bad)
            self.assertIn("not a join code", p.err[0])
        p = self.peer("p2p", os.path.join(self.tmp, "missing"), relay=relay)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("no such directory", p.err[0])
        f = os.path.join(self.tmp, "file")
        open(f, "w").close()
        p = self.peer("p2p", f, relay=relay)
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("not a directory", p.err[0])

    def test_second_joiner_is_refused_and_the_pair_is_unharmed(self):
        relay = self.relay()
        a, b, code = self.start_pair(relay)
        b.wait_event("peer_address")
        c = self.peer("p2p-join", code, relay=relay)
        self.assertEqual(c.wait_exit(), 1)
        self.assertTrue(any("already used" in l for l in c.err), c.err)
        self.assertIsNone(a.p.poll())
        self.assertIsNone(b.p.poll())

    def test_a_vanishing_mid_handshake(self):
        relay = self.relay()
        fake_a = WsClient(relay.host, relay.port)
        self.assertEqual(hello(fake_a)["type"], "welcome")
        fake_a.send_json({"v": 1, "type": "create_session"})
        created = fake_a.recv_json()
        self.assertEqual(created["type"], "session_created")
        code = "pt-p2p-" + created["nameplate"] + "-7XKP-Q4L9"
        b = self.peer("p2p-join", code, relay=relay)
        self.assertEqual(fake_a.recv_json()["type"], "peer_joined")
        # B's share arrives; A then disappears without answering.
        self.assertEqual(fake_a.recv_json()["type"], "signal")
        fake_a.close()
        self.assertEqual(b.wait_exit(timeout=10), 1)
        self.assertIn("left before the handshake completed", b.err[-1])

    def test_a_that_never_answers_times_out_the_handshake_bound(self):
        # A peer that stays connected but silent is caught by the handshake bound; this
        # is long (30 s), so only check that B is still waiting well inside it and
        # leaves promptly on Ctrl-C.
        relay = self.relay()
        fake_a = WsClient(relay.host, relay.port)
        hello(fake_a)
        fake_a.send_json({"v": 1, "type": "create_session"})
        created = fake_a.recv_json()
        b = self.peer("p2p-join", "pt-p2p-" + created["nameplate"] + "-7XKP-Q4L9",
                      relay=relay)
        self.assertEqual(fake_a.recv_json()["type"], "peer_joined")
        time.sleep(1)
        self.assertIsNone(b.p.poll())
        b.signal(signal.SIGINT)
        self.assertEqual(b.wait_exit(timeout=5), 0)
        fake_a.close()

    def test_garbage_on_the_websocket_leaves_others_served(self):
        relay = self.relay()
        rogues = []
        # Before authenticating: garbage text, binary junk, a wrong first message.
        for payload, opcode in ((b"\x00\xffnot json", 0x1), (os.urandom(300), 0x2),
                                (b'{"v":1,"type":"create_session"}', 0x1),
                                (b'{"v":7,"type":"hello"}', 0x1)):
            ws = WsClient(relay.host, relay.port)
            ws.send_frame(opcode, payload)
            rogues.append(ws)
        # After authenticating: garbage gets an error answer, the connection stays.
        ws = WsClient(relay.host, relay.port)
        hello(ws)
        ws.send_frame(0x1, b"{{{{")
        self.assertEqual(ws.recv_json()["code"], "bad_message")
        ws.send_json({"v": 1, "type": "signal", "payload": "AAAA"})
        self.assertEqual(ws.recv_json()["code"], "not_in_session")
        ws.send_json({"v": 1, "type": "join_session", "nameplate": "!!"})
        self.assertEqual(ws.recv_json()["code"], "bad_message")
        # Meanwhile a real pair works.
        a, b, _ = self.start_pair(relay)
        b.wait_event("peer_address")
        a.wait_event("peer_address")
        for r in rogues:
            self.assertTrue(r.closed_within(5))
        self.assertGreaterEqual(relay.metrics()["bad_messages_total"], 5)

    def test_raw_tcp_garbage_and_non_upgrade_http(self):
        relay = self.relay()
        with socket.create_connection((relay.host, relay.port), timeout=5) as s:
            s.sendall(os.urandom(2000))
        with socket.create_connection((relay.host, relay.port), timeout=5) as s:
            s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"404", s.recv(1024))
        a, b, _ = self.start_pair(relay)
        b.wait_event("peer_address")

    def test_garbage_datagrams_are_counted_and_stun_keeps_working(self):
        relay = self.relay()
        rnd = random.Random(1234)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(500):
                size = rnd.choice([0, 1, 19, 20, 21, 100, 548, 1500])
                data = bytes(rnd.getrandbits(8) for _ in range(size))
                if i % 5 == 0 and size >= 20:
                    # Looks like STUN (cookie, sane length) but is not.
                    data = (b"\x00\x01" + (size - 20).to_bytes(2, "big") +
                            b"\x21\x12\xa4\x42" + data[8:])
                s.sendto(data, (relay.host, relay.port))
        d = self.peer("debug", "stun", relay=relay)
        ev = d.wait_event("stun")
        self.assertEqual(d.wait_exit(), 0)
        self.assertEqual(ev["mapped"], ev["alt_mapped"])
        m = relay.metrics()
        self.assertGreaterEqual(m["stun_malformed_total"], 300)
        self.assertGreaterEqual(m["stun_replied_total"], 2)

    def test_unauthenticated_connection_is_closed_after_hello_timeout(self):
        relay = self.relay()
        ws = WsClient(relay.host, relay.port)
        # The relay's hello timeout is 10 s.
        self.assertTrue(ws.closed_within(20))
        self.assertEqual(relay.metrics()["hello_timeouts_total"], 1)

    def test_unused_code_expires(self):
        relay = self.relay("--session-ttl", "1s")
        a = self.peer("p2p", self.share_dir(), relay=relay)
        code = a.wait_event("join_code")["code"]
        # The relay sweeps every 5 s.
        self.assertEqual(a.wait_exit(timeout=15), 1)
        self.assertIn("expired", a.err[-1])
        b = self.peer("p2p-join", code, relay=relay)
        self.assertEqual(b.wait_exit(), 1)
        self.assertIn("expired", b.err[-1])

    def test_environment_and_config_file(self):
        relay = self.relay()
        cfg_home = os.path.join(self.tmp, "cfg")
        os.makedirs(os.path.join(cfg_home, "peertun"))
        with open(os.path.join(cfg_home, "peertun", "config.toml"), "w") as f:
            f.write(f'relay = "{relay.address}"\ntoken = "{TOKEN}"\n')
        a = self.peer("p2p", self.share_dir(), relay=None, token=None,
                      env={"XDG_CONFIG_HOME": cfg_home})
        code = a.wait_event("join_code")["code"]
        b = self.peer("p2p-join", code, relay=None, token=None,
                      env={"PEERTUN_RELAY": relay.address, "PEERTUN_TOKEN": TOKEN})
        b.wait_event("peer_address")
        # Flags win over the environment.
        c = self.peer("p2p-join", code, relay=None, token="flag-token",
                      env={"PEERTUN_RELAY": relay.address, "PEERTUN_TOKEN": TOKEN})
        self.assertEqual(c.wait_exit(), 1)
        self.assertIn("does not accept this token", c.err[0])

    def test_peers_meet_through_an_ipv6_relay(self):
        relay = self.relay(listen="[::1]:0")
        a, b, _ = self.start_pair(relay)
        self.assertTrue(b.wait_event("public_address")["address"].startswith("[::1]:"))
        self.assertTrue(b.wait_event("peer_address")["address"].startswith("[::1]:"))
        a.wait_event("peer_address")

    def test_dead_connections_are_reaped_and_live_ones_kept(self):
        cfg = os.path.join(self.tmp, "relay.toml")
        with open(cfg, "w") as f:
            f.write('ping_interval = "1s"\n')
        relay = self.relay("--config", cfg)
        # This one answers pings (it keeps reading); that one never reads again.
        alive = WsClient(relay.host, relay.port)
        dead = WsClient(relay.host, relay.port)
        hello(alive)
        hello(dead)
        self.assertEqual(relay.metrics()["authenticated_active"], 2)
        deadline = time.monotonic() + 10
        alive.s.settimeout(0.5)
        while time.monotonic() < deadline and relay.metrics()["authenticated_active"] != 1:
            try:
                alive.recv_frame()  # answers the relay's pings
            except (socket.timeout, TimeoutError):
                pass
        self.assertEqual(relay.metrics()["authenticated_active"], 1)
        # The silent one was closed by the relay; the live one still works.
        self.assertTrue(dead.closed_within(5))
        alive.s.settimeout(5)
        alive.send_json({"v": 1, "type": "create_session"})
        while True:
            msg = alive.recv_json()
            if msg["type"] == "session_created":
                break
        alive.close()
        dead.close()

    def test_relay_config_errors_are_clear(self):
        bad = os.path.join(self.tmp, "relay.toml")
        with open(bad, "w") as f:
            f.write('listen = "0.0.0.0:4040"\ntokenz = ["x"]\n')
        from harness import RELAY, Proc
        p = self.keep(Proc([RELAY, "--config", bad]))
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn('unknown key "tokenz"', p.err[0])
        p = self.keep(Proc([RELAY, "--listen", "127.0.0.1:0"]))
        self.assertEqual(p.wait_exit(), 2)
        self.assertIn("no token configured", p.err[0])


if __name__ == "__main__":
    unittest.main()
