#!/usr/bin/env python3
"""STUN Binding responses per second on one core: our relay against coturn under the
same load, interleaved in one run. Each server is pinned to CPU 1 (coturn with one
relay thread), the load generator to CPU 0. Prints each run and the ratio of medians.

usage: bench/stun_rps.py [--seconds 5] [--reps 3] [--window 256]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import build_dir, cpu_seconds, free_port, median, start_relay, stop  # noqa: E402


def load(bdir, port, seconds, window):
    out = subprocess.run(["taskset", "-c", "0", os.path.join(bdir, "bench/stun_load"),
                          "127.0.0.1", str(port), str(seconds), str(window), "4"],
                         capture_output=True, text=True, timeout=seconds + 30)
    return json.loads(out.stdout)


def measure(server_pid, bdir, port, seconds, window):
    c0 = cpu_seconds(server_pid)
    t0 = time.monotonic()
    result = load(bdir, port, seconds, window)
    result["server_cpu_pct"] = round(100 * (cpu_seconds(server_pid) - c0) /
                                     (time.monotonic() - t0), 1)
    return result


def run_ours(bdir, seconds, window):
    relay, port = start_relay(bdir, cpu=1)
    try:
        time.sleep(0.3)
        return measure(relay.pid, bdir, port, seconds, window)
    finally:
        stop(relay)


def run_coturn(bdir, seconds, window):
    port = free_port()
    work = tempfile.mkdtemp(prefix="coturn-bench-")
    p = subprocess.Popen(["taskset", "-c", "1", "turnserver", "-n", "--no-tls", "--no-dtls",
                          "--no-cli", "-p", str(port), "-L", "127.0.0.1", "-m", "1",
                          "--no-auth", "-b", os.path.join(work, "db.sqlite"),
                          "--log-file", os.path.join(work, "log"), "--simple-log",
                          "--no-stdout-log"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(["timeout", "2", "turnutils_stunclient", "-p", str(port),
                                    "127.0.0.1"], capture_output=True)
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        return measure(p.pid, bdir, port, seconds, window)
    finally:
        stop(p)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--window", type=int, default=256)
    args = ap.parse_args()
    if not shutil.which("turnserver"):
        sys.exit("coturn (turnserver) is not installed: run scripts/install-deps.sh")
    bdir = build_dir()
    ours, theirs = [], []
    for rep in range(args.reps):
        o = run_ours(bdir, args.seconds, args.window)
        c = run_coturn(bdir, args.seconds, args.window)
        print(f"rep {rep + 1}: peertun-relay {o['responses_per_s']:.0f}/s "
              f"(cpu {o['server_cpu_pct']}%)  coturn {c['responses_per_s']:.0f}/s "
              f"(cpu {c['server_cpu_pct']}%)")
        ours.append(o["responses_per_s"])
        theirs.append(c["responses_per_s"])
    mo, mc = median(ours), median(theirs)
    print(f"median responses/s: peertun-relay {mo:.0f}, coturn {mc:.0f}, "
          f"ratio {mo / mc:.2f}")


if __name__ == "__main__":
    main()
