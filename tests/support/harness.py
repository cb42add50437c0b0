"""Runs real peertun binaries on loopback for integration tests.

Everything here is bounded: every wait has a deadline, every process started is
stopped by PID at the end of the test, ports come from the OS.
"""
import base64
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

BUILD_DIR = os.environ.get("PEERTUN_BUILD_DIR", "")
PEERTUN = os.path.join(BUILD_DIR, "app/peertun/peertun")
RELAY = os.path.join(BUILD_DIR, "app/peertun-relay/peertun-relay")
TOKEN = "integration-token"


class Proc:
    """A child process whose stdout/stderr are collected line by line."""

    def __init__(self, args, env=None):
        self.args = args
        full_env = dict(os.environ)
        full_env.pop("PEERTUN_RELAY", None)
        full_env.pop("PEERTUN_TOKEN", None)
        # Keep the user's own config file out of the tests.
        self.cfg_dir = tempfile.mkdtemp(prefix="peertun-cfg-")
        full_env["XDG_CONFIG_HOME"] = self.cfg_dir
        if env:
            full_env.update(env)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=full_env)
        self.out = []
        self.err = []
        self._buf = {self.p.stdout.fileno(): b"", self.p.stderr.fileno(): b""}

    def _pump(self, timeout):
        fds = [f for f in (self.p.stdout, self.p.stderr) if not f.closed]
        if not fds:
            time.sleep(min(timeout, 0.05))
            return
        ready, _, _ = select.select(fds, [], [], timeout)
        for f in ready:
            chunk = os.read(f.fileno(), 65536)
            if not chunk:
                f.close()
                continue
            data = self._buf[f.fileno()] + chunk
            *lines, rest = data.split(b"\n")
            self._buf[f.fileno()] = rest
            target = self.out if f is self.p.stdout else self.err
            target.extend(l.decode(errors="replace") for l in lines)

    def wait_line(self, pattern, timeout=10.0, stream="out"):
        """First line (stdout by default) matching regex `pattern`, else AssertionError."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            lines = self.out if stream == "out" else self.err
            for line in lines[seen:]:
                m = rx.search(line)
                if m:
                    return m
            seen = len(lines)
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s from "
                                     f"{self.args[0]}; out={self.out} err={self.err}")
            if self.p.poll() is not None and all(f.closed for f in (self.p.stdout, self.p.stderr)):
                raise AssertionError(f"{self.args[0]} exited {self.p.returncode} without "
                                     f"{pattern!r}; out={self.out} err={self.err}")
            self._pump(min(left, 0.2))

    def wait_event(self, name, timeout=10.0):
        """The next --json event named `name`."""
        m = self.wait_line(r'"event":"%s"' % re.escape(name), timeout)
        return json.loads(m.string)

    def wait_exit(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.p.poll() is None or not all(f.closed for f in (self.p.stdout, self.p.stderr)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.args[0]} did not exit within {timeout}s; "
                                     f"out={self.out} err={self.err}")
            self._pump(min(left, 0.2))
        return self.p.wait()

    def signal(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        for f in (self.p.stdout, self.p.stderr):
            if not f.closed:
                f.close()
        shutil.rmtree(self.cfg_dir, ignore_errors=True)


class Pki:
    """A throwaway CA and a server certificate signed by it, made with GnuTLS's certtool
    (Debian package gnutls-bin) in `directory`. `names`/`ips` become the certificate's
    subject alternative names."""

    def __init__(self, directory, names=("localhost",), ips=("127.0.0.1",), tag="server"):
        os.makedirs(directory, exist_ok=True)
        self.dir = directory
        self.ca = os.path.join(directory, "ca.pem")
        self.ca_key = os.path.join(directory, "ca.key")
        if not os.path.exists(self.ca):
            self._certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", self.ca_key)
            tmpl = self._template("ca", 'cn = "peertun test CA"\nca\ncert_signing_key\n'
                                        "expiration_days = 2\n")
            self._certtool("--generate-self-signed", "--load-privkey", self.ca_key,
                           "--template", tmpl, "--outfile", self.ca)
        self.key = os.path.join(directory, f"{tag}.key")
        self.cert = os.path.join(directory, f"{tag}.pem")
        lines = [f'cn = "{(list(names) + list(ips))[0]}"']
        lines += [f'dns_name = "{n}"' for n in names]
        lines += [f'ip_address = "{ip}"' for ip in ips]
        lines += ["tls_www_server", "signing_key", "encryption_key", "expiration_days = 2"]
        tmpl = self._template(tag, "\n".join(lines) + "\n")
        self._certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", self.key)
        self._certtool("--generate-certificate", "--load-privkey", self.key,
                       "--load-ca-certificate", self.ca, "--load-ca-privkey", self.ca_key,
                       "--template", tmpl, "--outfile", self.cert)

    def _template(self, name, text):
        path = os.path.join(self.dir, f"{name}.tmpl")
        with open(path, "w") as f:
            f.write(text)
        return path

    @staticmethod
    def _certtool(*args):
        if shutil.which("certtool") is None:
            raise unittest.SkipTest("certtool missing: run scripts/install-deps.sh (gnutls-bin)")
        r = subprocess.run(["certtool", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"certtool {args[0]} failed: {r.stderr.decode(errors='replace')}")

    def client_context(self):
        """An ssl.SSLContext that trusts this CA (and checks names)."""
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx


class Relay(Proc):
    def __init__(self, *extra, listen="127.0.0.1:0", tokens=(TOKEN,), tls=None):
        """`tls`: a Pki; the relay then serves wss with its certificate."""
        args = [RELAY, "--listen", listen]
        for t in tokens:
            args += ["--token", t]
        if tls is not None:
            args += ["--tls-cert", tls.cert, "--tls-key", tls.key]
        self.tls = tls
        super().__init__(args + list(extra))
        m = self.wait_line(r"control (wss?)://(\S+)/v1/control, STUN udp port (\d+) "
                           r"\(alternate port (\d+)")
        self.scheme = m.group(1)
        self.control = m.group(2)
        self.port = int(m.group(3))
        self.alt_port = int(m.group(4))
        host = self.control.rsplit(":", 1)[0]
        self.host = host.strip("[]")
        # What clients pass as --relay: wss relays need the scheme.
        self.address = self.control if self.scheme == "ws" else f"wss://{self.control}"
        self.pin = None
        if self.scheme == "wss":
            self.pin = self.wait_line(r"TLS key pin .*: (sha256:[0-9a-f]{64})").group(1)

    def http_get(self, target, timeout=5.0):
        """Raw HTTP/1.1 GET over TCP, or over TLS (trusting the relay's CA) for wss."""
        raw = socket.create_connection((self.host, self.port), timeout=timeout)
        s = raw
        if self.tls is not None:
            s = self.tls.client_context().wrap_socket(raw, server_hostname=self.host)
        with s:
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            data = b""
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    chunk = s.recv(65536)
                except ssl.SSLZeroReturnError:
                    break
                if not chunk:
                    break
                data += chunk
        return data

    def metrics(self):
        data = self.http_get("/metrics")
        values = {}
        for line in data.decode().splitlines():
            if line.startswith("peertun_relay_"):
                name, value = line.split()
                values[name[len("peertun_relay_"):]] = int(value)
        return values


def peertun(*args, relay=None, token=TOKEN, json_output=True, env=None):
    cmd = [PEERTUN]
    if relay is not None:
        cmd += ["--relay", relay.address if isinstance(relay, Relay) else relay]
    if token is not None:
        cmd += ["--token", token]
    if json_output:
        cmd += ["--json"]
    return Proc(cmd + list(args), env=env)


class WsClient:
    """A deliberately small RFC 6455 client, to act as a misbehaving peer. With
    `tls_context` (an ssl.SSLContext) it speaks wss."""

    def __init__(self, host, port, path="/v1/control", timeout=5.0, tls_context=None):
        self.s = socket.create_connection((host, port), timeout=timeout)
        if tls_context is not None:
            self.s = tls_context.wrap_socket(self.s, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                        f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during upgrade")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"upgrade refused: {status!r}")
        self.pending = head.split(b"\r\n\r\n", 1)[1]

    def send_frame(self, opcode, payload, fin=True):
        header = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(header + mask + masked)

    def send_json(self, obj):
        self.send_frame(0x1, json.dumps(obj).encode())

    def _read(self, n):
        while len(self.pending) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.pending += chunk
        data, self.pending = self.pending[:n], self.pending[n:]
        return data

    def recv_frame(self):
        """(opcode, payload); answers pings itself."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            return opcode, payload

    def recv_json(self):
        opcode, payload = self.recv_frame()
        if opcode == 0x8:
            raise ConnectionError(f"closed by server: {payload!r}")
        return json.loads(payload)

    def closed_within(self, timeout):
        """True if the server closes the connection (close frame or EOF) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                opcode, _ = self.recv_frame()
                if opcode == 0x8:
                    return True
        except (ConnectionError, OSError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def hello(ws, token=TOKEN):
    ws.send_json({"v": 1, "type": "hello", "token": token, "client": "test/1"})
    return ws.recv_json()


def mounts_below(directory):
    """Mount points at or below `directory` (from /proc/self/mountinfo)."""
    prefix = os.path.realpath(directory)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def unmount_below(directory):
    """Lazily unmounts what a test left mounted below `directory` (a peer killed with
    SIGKILL leaves its FUSE mount behind)."""
    for point in reversed(mounts_below(directory)):
        subprocess.run(["umount", "-l", point], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10, check=False)


class PeertunTestCase(unittest.TestCase):
    """Stops every process a test started, even when it fails."""

    def setUp(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="peertun-test-")

    def tearDown(self):
        for p in reversed(self.procs):
            p.stop()
        unmount_below(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def keep(self, proc):
        self.procs.append(proc)
        return proc

    def relay(self, *extra, **kw):
        return self.keep(Relay(*extra, **kw))

    def peer(self, *args, mount_here=True, **kw):
        """A peertun process. A joiner that neither receives a file nor names a mount
        point mounts under this test's temporary folder (torn down with it), unless
        mount_here=False (the default /tmp/p2p-CODE)."""
        if (mount_here and args and args[0] == "p2p-join" and "--mount" not in args
                and "--receive" not in args):
            self.mounts = getattr(self, "mounts", 0) + 1
            args = (*args, "--mount", os.path.join(self.tmp, f"mnt-{self.mounts}"))
        return self.keep(peertun(*args, **kw))

    def share_dir(self):
        d = os.path.join(self.tmp, "shared")
        os.makedirs(d, exist_ok=True)
        return d
