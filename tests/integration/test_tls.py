"""The relay's control plane over TLS (wss): peers meet through it, clients refuse
certificates they cannot trust, and nothing a client sends to the TLS port (plain HTTP,
ws://, garbage, a stalled handshake) harms the relay."""
import os
import signal
import socket
import ssl
import sys
import time
import unittest
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import RELAY, TOKEN, PeertunTestCase, Pki, Proc, WsClient, hello  # noqa: E402

# The relay's default handshake bound (io::WebSocketOptions::handshake_timeout) is 10 s;
# waits on it are generous, never tight.
HANDSHAKE_BOUND_WAIT = 40.0


class TlsTest(PeertunTestCase):
    def setUp(self):
        super().setUp()
        self.pki = Pki(os.path.join(self.tmp, "pki"))

    def tls_relay(self, pki=None, *extra):
        return self.relay(*extra, tls=pki or self.pki)

    def trusted(self, *args, relay, address=None, **kw):
        """A peer that trusts the test CA (--relay-ca)."""
        return self.peer("--relay-ca", self.pki.ca, *args, relay=address or relay, **kw)

    def start_pair(self, relay, human=False, b_address=None):
        a = self.trusted("p2p", self.share_dir(), relay=relay, json_output=not human)
        if human:
            code = a.wait_line(r"Join code: (pt-p2p-\S+)").group(1)
        else:
            code = a.wait_event("join_code")["code"]
        b = self.trusted("p2p-join", code, relay=relay, address=b_address,
                         json_output=not human)
        return a, b, code

    def test_peers_meet_through_a_wss_relay(self):
        relay = self.tls_relay()
        self.assertEqual(relay.scheme, "wss")
        a, b, _ = self.start_pair(relay)
        a_public = a.wait_event("public_address")["address"]
        b_public = b.wait_event("public_address")["address"]
        self.assertEqual(b.wait_event("peer_address"),
                         {"event": "peer_address", "peer": "A", "address": a_public})
        self.assertEqual(a.wait_event("peer_address"),
                         {"event": "peer_address", "peer": "B", "address": b_public})
        b.signal(signal.SIGINT)
        self.assertEqual(b.wait_exit(), 0)
        a.wait_event("peer_left")
        self.assertEqual(a.wait_exit(), 0)
        m = relay.metrics()  # over https, trusting the test CA
        self.assertEqual(m["sessions_created_total"], 1)
        self.assertEqual(m["sessions_joined_total"], 1)
        self.assertEqual(m["tls_handshake_failures_total"], 0)

    def test_human_lines_by_host_name(self):
        # B connects by name: SNI and name verification against the DNS SAN.
        relay = self.tls_relay()
        a, b, code = self.start_pair(relay, human=True,
                                     b_address=f"wss://localhost:{relay.port}/v1/control")
        b.wait_line(r"^✓ STUN: my public address is 127\.0\.0\.1:\d+$")
        b.wait_line(r"^✓ Peer A is at 127\.0\.0\.1:\d+$")
        a.wait_line(r"^✓ Peer B is at 127\.0\.0\.1:\d+$")
        a.wait_line(r"peertun p2p-join " + code)

    def test_ca_from_the_environment(self):
        relay = self.tls_relay()
        a = self.peer("p2p", self.share_dir(), relay=None,
                      env={"PEERTUN_RELAY": relay.address, "PEERTUN_RELAY_CA": self.pki.ca})
        a.wait_event("join_code")

    def test_untrusted_certificate_is_one_clear_line(self):
        relay = self.tls_relay()
        p = self.peer("p2p", self.share_dir(), relay=relay)  # no --relay-ca
        self.assertEqual(p.wait_exit(), 1)
        self.assertEqual(len(p.err), 1, p.err)
        self.assertIn("the relay's TLS certificate", p.err[0])
        self.assertIn("is not trusted", p.err[0])
        self.assertIn("--relay-ca", p.err[0])
        self.assertFalse(any(TOKEN in line for line in p.out + p.err))

    def test_certificate_for_another_host_is_refused(self):
        other = Pki(os.path.join(self.tmp, "pki"), names=("relay.example.test",), ips=(),
                    tag="other")
        relay = self.relay(tls=other)
        p = self.trusted("p2p", self.share_dir(), relay=relay)
        self.assertEqual(p.wait_exit(), 1)
        self.assertTrue(any("is for another host" in line for line in p.err), p.err)

    def test_pin_replaces_the_ca(self):
        # A self-signed relay (its own CA, unknown to the client), trusted by pin only.
        own = Pki(os.path.join(self.tmp, "selfsigned"))
        relay = self.relay(tls=own)
        good = self.peer("--relay-pin", relay.pin, "p2p", self.share_dir(), relay=relay)
        good.wait_event("join_code")
        wrong_pin = "sha256:" + ("0" * 64)
        bad = self.peer("--relay-pin", wrong_pin, "p2p", self.share_dir(), relay=relay)
        self.assertEqual(bad.wait_exit(), 1)
        self.assertTrue(any("does not match the configured relay pin" in line
                            for line in bad.err), bad.err)
        malformed = self.peer("--relay-pin", "sha256:xyz", "p2p", self.share_dir(), relay=relay)
        self.assertEqual(malformed.wait_exit(), 2)
        plain = self.peer("--relay-pin", relay.pin, "p2p", self.share_dir(),
                          relay=f"127.0.0.1:{relay.port}")
        self.assertEqual(plain.wait_exit(), 2)
        self.assertTrue(any("wss://" in line for line in plain.err), plain.err)
        # A pin and a CA file together would make one of them silently unused.
        both = self.peer("--relay-pin", relay.pin, "--relay-ca", own.ca, "p2p",
                         self.share_dir(), relay=relay)
        self.assertEqual(both.wait_exit(), 2)
        self.assertTrue(any("--relay-pin" in line and "--relay-ca" in line
                            for line in both.err), both.err)
        # An empty CA file is a settings error, not "certificate not trusted".
        empty = os.path.join(self.tmp, "empty-ca.pem")
        open(empty, "w").close()
        bad_ca = self.peer("--relay-ca", empty, "p2p", self.share_dir(), relay=relay)
        self.assertEqual(bad_ca.wait_exit(), 2)
        self.assertTrue(any("empty-ca.pem" in line for line in bad_ca.err), bad_ca.err)

    def test_ws_client_against_wss_relay_gets_a_hint_and_relay_is_unharmed(self):
        relay = self.tls_relay()
        p = self.peer("p2p", self.share_dir(), relay=f"ws://127.0.0.1:{relay.port}")
        self.assertEqual(p.wait_exit(), 1)
        self.assertEqual(len(p.err), 1, p.err)
        self.assertIn("cannot reach the relay", p.err[0])
        self.assertIn("use wss://", p.err[0])
        a, b, _ = self.start_pair(relay)
        b.wait_event("peer_address")
        self.assertGreaterEqual(relay.metrics()["tls_handshake_failures_total"], 1)

    def test_wss_client_against_plain_relay_fails_clearly(self):
        relay = self.relay()
        p = self.trusted("p2p", self.share_dir(), relay=f"wss://127.0.0.1:{relay.port}")
        self.assertEqual(p.wait_exit(), 1)
        self.assertEqual(len(p.err), 1, p.err)
        self.assertIn("cannot reach the relay", p.err[0])

    def test_garbage_plain_http_and_stalls_leave_the_relay_serving(self):
        relay = self.tls_relay()
        # Plain HTTP to the TLS port: no HTTP answer (at most a TLS alert), then closed.
        with socket.create_connection((relay.host, relay.port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            data = recv_until_closed(s, 10)
            self.assertNotIn(b"HTTP/1.1", data)
            self.assertNotIn(b"peertun_relay_", data)
        # Random bytes.
        with socket.create_connection((relay.host, relay.port), timeout=10) as s:
            s.sendall(os.urandom(3000))
            recv_until_closed(s, 10)
        # A handshake that starts and stalls (the first bytes of a real ClientHello), and
        # a connection that never says anything: both are dropped by the handshake bound.
        partial = socket.create_connection((relay.host, relay.port), timeout=10)
        partial.sendall(client_hello()[:20])
        silent = socket.create_connection((relay.host, relay.port), timeout=10)
        # Meanwhile the relay serves others, over wss and with the Python WebSocket client.
        ws = WsClient("127.0.0.1", relay.port, tls_context=self.pki.client_context())
        self.assertEqual(hello(ws)["type"], "welcome")
        ws.close()
        a, b, _ = self.start_pair(relay)
        b.wait_event("peer_address")
        t0 = time.monotonic()
        for s in (partial, silent):
            s.settimeout(HANDSHAKE_BOUND_WAIT)
            recv_until_closed(s, HANDSHAKE_BOUND_WAIT)
            s.close()
        self.assertLess(time.monotonic() - t0, HANDSHAKE_BOUND_WAIT)
        m = relay.metrics()
        self.assertGreaterEqual(m["tls_handshake_failures_total"], 4)
        self.assertEqual(relay.p.poll(), None)

    def test_metrics_and_healthz_over_https(self):
        relay = self.tls_relay()
        ok = relay.http_get("/healthz")
        self.assertTrue(ok.startswith(b"HTTP/1.1 200"), ok)
        self.assertTrue(ok.endswith(b"ok\n"), ok)
        metrics = relay.http_get("/metrics")
        self.assertIn(b"# TYPE peertun_relay_tls_handshake_failures_total counter", metrics)
        # Python's own verifier agrees with ours about the certificate and the name.
        ctx = ssl.create_default_context()  # system store only: our CA is unknown
        with socket.create_connection((relay.host, relay.port), timeout=10) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        # Old protocol versions are refused.
        old = self.pki.client_context()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # that is the point
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        with socket.create_connection((relay.host, relay.port), timeout=10) as raw:
            with self.assertRaises((ssl.SSLError, ConnectionError)):
                old.wrap_socket(raw, server_hostname="127.0.0.1")
        self.assertTrue(relay.http_get("/healthz").startswith(b"HTTP/1.1 200"))

    def test_tls_settings_errors_are_clear(self):
        def start(*args):
            p = self.keep(Proc([RELAY, "--listen", "127.0.0.1:0", "--token", TOKEN, *args]))
            return p.wait_exit(), " ".join(p.err)

        rc, err = start("--tls-cert", self.pki.cert)
        self.assertEqual(rc, 2)
        self.assertIn("--tls-cert and --tls-key go together", err)
        missing = os.path.join(self.tmp, "missing.pem")
        rc, err = start("--tls-cert", missing, "--tls-key", self.pki.key)
        self.assertEqual(rc, 2)
        self.assertIn(missing, err)
        rc, err = start("--tls-cert", self.pki.key, "--tls-key", self.pki.key)
        self.assertEqual(rc, 2)
        self.assertIn(f"the certificate file {self.pki.key} holds no PEM certificate", err)
        rc, err = start("--tls-cert", self.pki.cert, "--tls-key", self.pki.cert)
        self.assertEqual(rc, 2)
        self.assertIn(self.pki.cert, err)
        other = Pki(os.path.join(self.tmp, "pki"), tag="second")
        rc, err = start("--tls-cert", self.pki.cert, "--tls-key", other.key)
        self.assertEqual(rc, 2)
        self.assertIn("does not belong to the certificate", err)
        cfg = os.path.join(self.tmp, "relay.toml")
        with open(cfg, "w") as f:
            f.write(f'tokens = ["{TOKEN}"]\ntls_cert = "{self.pki.cert}"\n'
                    f'tls_key = "{self.pki.key}"\nlisten = "127.0.0.1:0"\n')
        p = self.keep(Proc([RELAY, "--config", cfg]))
        p.wait_line(r"control wss://127\.0\.0\.1:\d+/v1/control")


def recv_until_closed(s, timeout):
    """Everything the peer sends until it closes (bounded by `timeout`)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except (ConnectionError, OSError):
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"connection still open after {timeout}s")


def client_hello():
    """The bytes of a real TLS ClientHello, from Python's ssl over memory BIOs."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        conn.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


if __name__ == "__main__":
    unittest.main()
