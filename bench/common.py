"""Shared helpers for the bench scripts: process control by PID, CPU and memory from
/proc, bounded waits. Benches print ratios against a reference run in the same
invocation, because these machines are noisy."""
import os
import re
import select
import socket
import subprocess
import time

HZ = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_dir(default="build/release"):
    return os.environ.get("PEERTUN_BUILD_DIR", os.path.join(ROOT, default))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def wait_line(proc, pattern, timeout):
    """Reads proc.stdout until a line matches; returns the match (bounded)."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            break
        buf += chunk
        for line in buf.decode(errors="replace").splitlines():
            m = rx.search(line)
            if m:
                return m
    raise RuntimeError(f"no line matching {pattern!r} within {timeout}s: {buf[-500:]!r}")


def stop(proc, timeout=5):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def start_relay(bdir, extra=(), listen="127.0.0.1:0", cpu=None):
    cmd = [os.path.join(bdir, "app/peertun-relay/peertun-relay"), "--listen", listen,
           "--token", "bench-token", "--log-level", "warn", *extra]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    m = wait_line(p, r"STUN udp port (\d+)", 10)
    return p, int(m.group(1))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
