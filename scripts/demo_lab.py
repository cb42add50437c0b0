#!/usr/bin/env python3
"""`make demo` as root: the relay and two peers in the NAT lab (tests/natlab), peer A
behind a restricted-cone NAT and peer B behind a symmetric one: the case that needs the
synchronised punch and peer-reflexive learning. Everything is removed on exit."""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from natlab import lab  # noqa: E402

TIMEOUT_S = 30


def wait_line(proc, pattern, lines):
    deadline = time.monotonic() + TIMEOUT_S
    rx = re.compile(pattern)
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        line = line.decode(errors="replace").rstrip("\n")
        lines.append(line)
        m = rx.search(line)
        if m:
            return m
    sys.exit(f"demo: timed out waiting for {pattern!r}; got {lines}")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
    relay_bin = os.path.join(build, "app/peertun-relay/peertun-relay")
    peertun_bin = os.path.join(build, "app/peertun/peertun")
    token = "demo-" + os.urandom(6).hex()
    lab.cleanup_stale()
    with lab.Lab("restricted", "symmetric") as l, tempfile.TemporaryDirectory() as work:
        d = l.describe()
        print(f"== NAT lab: relay at {', '.join(d['relay']['ips'])}")
        for side in ("a", "b"):
            p = d["peers"][side]
            print(f"   machine {side.upper()}: {p['ip']} behind a {p['nat']} NAT "
                  f"(public {p['public_ip']})")
        shared = os.path.join(work, "shared")
        os.makedirs(shared)
        with open(os.path.join(shared, "hello.txt"), "w") as f:
            f.write("hello from machine A\n")
        relay = l.popen("relay", [relay_bin, "--listen", f"{l.relay_ip}:4040", "--alt-ip",
                                  l.relay_ips[1], "--token", token],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print("== relay: " + wait_line(relay, "listening", []).string)
        common = ["--relay", f"{l.relay_ip}:4040", "--token", token]
        print(f"== machine A (behind a restricted-cone NAT): peertun p2p {shared}")
        a = l.popen("a", [peertun_bin, *common, "p2p", shared], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
        a_lines = []
        code = wait_line(a, r"Join code: (pt-p2p-\S+)", a_lines).group(1)
        print(f"== machine B (behind a symmetric NAT): peertun p2p-join {code}")
        b = l.popen("b", [peertun_bin, *common, "p2p-join", code], stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
        b_lines = []
        wait_line(b, r"QUIC: connected", b_lines)
        wait_line(a, r"QUIC: connected", a_lines)
        print("-- B says:")
        for line in b_lines:
            print("   " + line)
        print("-- A says:")
        for line in a_lines:
            print("   " + line)
        print("== done: the relay saw only sealed signalling; the peers talk QUIC directly.")


if __name__ == "__main__":
    main()
