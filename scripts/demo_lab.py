#!/usr/bin/env python3
"""`make demo` as root: the relay and two peers in the NAT lab (tests/natlab), peer A
behind a restricted-cone NAT and peer B behind a symmetric one: the case that needs the
synchronised punch and peer-reflexive learning. B mounts A's folder with FUSE and the
demo lists it. Everything is removed on exit (B unmounts on SIGTERM)."""
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
        os.makedirs(os.path.join(shared, "photos"))
        with open(os.path.join(shared, "photos", "beach.jpg"), "wb") as f:
            f.write(os.urandom(3_000_000))
        os.symlink("hello.txt", os.path.join(shared, "greeting"))
        relay = l.popen("relay", [relay_bin, "--listen", f"{l.relay_ip}:4040", "--alt-ip",
                                  l.relay_ips[1], "--token", token],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print("== relay: " + wait_line(relay, "listening", []).string)
        common = ["--relay", f"{l.relay_ip}:4040", "--token", token]
        print(f"== machine A (behind a restricted-cone NAT), in {work}: peertun p2p ./shared")
        a = l.popen("a", [os.path.abspath(peertun_bin), *common, "p2p", "./shared"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=work)
        a_lines = []
        code = wait_line(a, r"Join code: (pt-p2p-\S+)", a_lines).group(1)
        print(f"== machine B (behind a symmetric NAT): peertun p2p-join {code}")
        b = l.popen("b", [os.path.abspath(peertun_bin), *common, "p2p-join", code],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT)
        b_lines = []
        mnt = wait_line(b, r"Mounted .* at (/\S+)", b_lines).group(1)
        wait_line(b, r"Press Ctrl-C", b_lines)
        wait_line(a, r"Sharing", a_lines)
        print("-- B says:")
        for line in b_lines:
            print("   " + line)
        print("-- A says:")
        for line in a_lines:
            print("   " + line)
        # The mount is B's, in the host's mount namespace (the lab changes only the
        # network namespace), so it can be listed from here.
        print(f"== on machine B: ls -lR {mnt}")
        listing = subprocess.run(["ls", "-lR", mnt], capture_output=True, text=True, timeout=30)
        for line in listing.stdout.splitlines():
            print("   " + line)
        with open(os.path.join(mnt, "greeting")) as f:
            print(f"== on machine B: cat {mnt}/greeting\n   " + f.read().rstrip())
        sums = subprocess.run(["sha256sum", os.path.join(shared, "photos", "beach.jpg"),
                               os.path.join(mnt, "photos", "beach.jpg")],
                              capture_output=True, text=True, timeout=30)
        print("== sha256 of beach.jpg on A and through B's mount:")
        for line in sums.stdout.splitlines():
            print("   " + line)
        print("== done: the relay saw only sealed signalling; the peers talk QUIC directly.")
        b.terminate()  # B unmounts before it exits
        b.wait(10)


if __name__ == "__main__":
    main()
