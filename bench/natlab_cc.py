#!/usr/bin/env python3
"""QUIC congestion control on lab links: the same file pushed A -> B over the punched path
with `--send/--receive --quic-cc X`, for BBR, BBR2 and Cubic, on a clean link and on
lossy ones; prints MB/s per run and the median. The reference in the same run is the
clean link (the namespaces' own ceiling on this machine).

Needs root. Usage:
    sudo python3 bench/natlab_cc.py --build build/release [--mib 64] [--reps 2]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from common import EventLog  # noqa: E402
from natlab import lab  # noqa: E402

TOKEN = "bench-token"
PORT = 4040
# (label, lab options): RTT between the peers is 4x delay_ms (two WAN links, both ways).
LINKS = [
    ("clean", {}),
    ("20 ms RTT, 1% loss", {"delay_ms": 5, "loss_pct": {"a": 1}}),
    ("50 ms RTT, 1% loss", {"delay_ms": 13, "loss_pct": {"a": 1}}),
]
CCS = ["bbr", "bbr2", "cubic"]


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    proc.stdout.close()


def one_run(build, src, cc, options, timeout):
    peertun = os.path.join(build, "app/peertun/peertun")
    with lab.Lab("full-cone", "full-cone", **options) as l, \
            tempfile.TemporaryDirectory() as inbox, tempfile.TemporaryDirectory() as share:
        relay = l.popen("relay", [os.path.join(build, "app/peertun-relay/peertun-relay"),
                                  "--listen", f"{l.relay_ip}:{PORT}", "--token", TOKEN],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        relay.stdout.readline()
        common = ["--relay", f"{l.relay_ip}:{PORT}", "--token", TOKEN, "--json"]
        a = l.popen("a", [peertun, *common, "p2p", share, "--send", src, "--quic-cc", cc],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        b = None
        try:
            joined = EventLog(a).wait("join_code", 20)
            if joined is None:
                return None
            b = l.popen("b", [peertun, *common, "p2p-join", joined[1]["code"], "--receive",
                              inbox],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            got = EventLog(b).wait("transfer", timeout)
            return got[1]["mb_per_s"] if got else None
        finally:
            for p in (b, a, relay):
                if p is not None:
                    stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("PEERTUN_BUILD_DIR", "build/release"))
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120.0, help="per transfer, seconds")
    args = ap.parse_args()
    ok, why = lab.available()
    if not ok:
        sys.exit(f"natlab: {why}")
    lab.cleanup_stale()
    if not lab.default_delay_line():
        os.environ["PEERTUN_NATLAB_DELAY_LINE"] = os.path.join(
            args.build, "tests/natlab/natlab_delay_line")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "payload.bin")
        with open(src, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        print(f"{args.mib} MiB A -> B, full-cone NATs, median of {args.reps}; "
              f"'timeout' = not done in {args.timeout:.0f} s")
        print(f"{'link':<20} {'cc':<6} {'MB/s (median)':>14}  runs")
        for label, options in LINKS:
            for cc in CCS:
                runs = [one_run(args.build, src, cc, options, args.timeout)
                        for _ in range(args.reps)]
                done = [r for r in runs if r is not None]
                median = f"{statistics.median(done):.1f}" if done else "timeout"
                text = ", ".join("timeout" if r is None else f"{r:.1f}" for r in runs)
                print(f"{label:<20} {cc:<6} {median:>14}  {text}", flush=True)


if __name__ == "__main__":
    main()
