#!/usr/bin/env python3
"""Hole-punch matrix in the NAT lab: per NAT pair, the outcome and the time from the
relay's fire to the first pair proven both ways (each peer's `fire_to_path_ms`, the
slower of the two), at 0 ms and at 50 ms RTT per WAN link, median of N runs. For pairs
the verdicts rule out, the time from the candidate exchange (`peer_address`) to the
verdict line instead (no fire happens).

Aims (issue 3): direct pairs within 2 RTT + 50 ms of firing, RTT being the measured
peer-to-peer round trip; impossible pairs declared within 1.5 s.

Needs root. Usage:
    sudo python3 bench/natlab_matrix.py --build build/release [--reps 5] [--cells a:b,...]
"""
import argparse
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from natlab import lab  # noqa: E402

TYPES = ["none", "full-cone", "restricted", "port-restricted", "symmetric", "cgnat"]
TOKEN = "bench-token"
PORT = 4040
STEP_TIMEOUT_S = 20.0


class Peer:
    """A peertun process whose JSON events are read with their arrival times."""

    def __init__(self, argv):
        self.err = tempfile.TemporaryFile()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err)
        self.buf = b""
        self.events = []  # (monotonic seconds, event dict)

    def pump(self, timeout):
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self.p.stdout.fileno(), 65536)
        now = time.monotonic()
        if not chunk:
            raise RuntimeError(f"peertun exited {self.p.wait()}")
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            try:
                self.events.append((now, json.loads(line)))
            except ValueError:
                pass

    def wait(self, name, timeout=STEP_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            for t, e in self.events:
                if e.get("event") == name:
                    return t, e
            left = deadline - time.monotonic()
            if left <= 0:
                self.err.seek(0)
                raise RuntimeError(f"no {name} event within {timeout}s: {self.events} "
                                   f"stderr: {self.err.read().decode(errors='replace')}")
            self.pump(min(left, 0.2))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.p.stdout.close()
        self.err.close()


def one_run(l, build, share):
    peertun = os.path.join(build, "app/peertun/peertun")
    common = ["--relay", f"{l.relay_ip}:{PORT}", "--token", TOKEN, "--json"]
    a = Peer(l.wrap("a", [peertun, *common, "p2p", share]))
    b = None
    try:
        code = a.wait("join_code")[1]["code"]
        b = Peer(l.wrap("b", [peertun, *common, "p2p-join", code]))
        result = {}
        for who, peer in (("a", a), ("b", b)):
            t_exchange, _ = peer.wait("peer_address")
            t_punch, punch = peer.wait("punch")
            result[who] = (t_punch - t_exchange, punch)
        return result
    finally:
        for p in (b, a):
            if p is not None:
                p.stop()


def run_cell(kind_a, kind_b, delay_ms, reps, build):
    options = {"delay_ms": delay_ms} if delay_ms else {}
    rows = []
    with lab.Lab(kind_a, kind_b, **options) as l, tempfile.TemporaryDirectory() as share:
        relay = l.popen("relay", [os.path.join(build, "app/peertun-relay/peertun-relay"),
                                  "--listen", f"{l.relay_ip}:{PORT}", "--alt-ip",
                                  l.relay_ips[1], "--token", TOKEN],
                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = relay.stdout.readline()
        if b"listening" not in line:
            raise RuntimeError(f"relay did not start: {line!r}")
        for _ in range(reps):
            try:
                rows.append(one_run(l, build, share))
            except RuntimeError as e:
                print(f"  {kind_a} x {kind_b}: run failed: {e}", file=sys.stderr, flush=True)
                rows.append(None)
            for side in ("a", "b"):
                if l.nat_nodes(side):
                    l.flush_conntrack(side)
        relay.terminate()
        relay.wait(5)
        relay.stdout.close()
    return rows


def summarise(rows):
    failed = rows.count(None)
    rows = [r for r in rows if r is not None]
    if not rows:
        return f"error x{failed}", float("nan"), None, 0, False
    outcomes = {r["a"][1]["result"] for r in rows} | {r["b"][1]["result"] for r in rows}
    outcome = outcomes.pop() if len(outcomes) == 1 else "mixed:" + "/".join(sorted(outcomes))
    if failed:
        outcome += f" ({failed} err)"
    if outcome.startswith("succeeded"):
        times = [max(r["a"][1].get("fire_to_path_ms", -1), r["b"][1].get("fire_to_path_ms", -1))
                 for r in rows]
        rtts = [max(r["a"][1]["rtt_ms"], r["b"][1]["rtt_ms"]) for r in rows]
        median_t = statistics.median(times)
        median_rtt = statistics.median(rtts)
        aim = 2 * median_rtt + 50
        return outcome, median_t, median_rtt, aim, median_t <= aim
    times = [max(r["a"][0], r["b"][0]) * 1000 for r in rows]
    median_t = statistics.median(times)
    return outcome, median_t, None, 1500, median_t <= 1500


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("PEERTUN_BUILD_DIR", "build/release"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--delays", default="0,25", help="ms added per direction per WAN link")
    ap.add_argument("--cells", default="", help="a:b,... (default: the full matrix)")
    args = ap.parse_args()
    ok, why = lab.available()
    if not ok:
        sys.exit(f"natlab: {why}")
    lab.cleanup_stale()
    if not lab.default_delay_line():
        os.environ["PEERTUN_NATLAB_DELAY_LINE"] = os.path.join(
            args.build, "tests/natlab/natlab_delay_line")
    if args.cells:
        cells = [tuple(c.split(":")) for c in args.cells.split(",")]
    else:
        cells = [(a, b) for a in TYPES for b in TYPES]
        cells += [("same-nat", "same-nat"), ("udp-blocked", "full-cone")]
    print(f"{'A':<16} {'B':<16} {'RTT/link':>8} {'outcome':<11} {'median ms':>9} "
          f"{'p2p RTT':>7} {'aim ms':>6} met")
    for delay in [int(d) for d in args.delays.split(",")]:
        for kind_a, kind_b in cells:
            rows = run_cell(kind_a, kind_b, delay, args.reps, args.build)
            outcome, t, rtt, aim, met = summarise(rows)
            rtt_text = "-" if rtt is None else f"{rtt:.0f}"
            print(f"{kind_a:<16} {kind_b:<16} {2 * delay:>6}ms {outcome:<11} {t:>9.0f} "
                  f"{rtt_text:>7} {aim:>6.0f} {'yes' if met else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
