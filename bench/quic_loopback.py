#!/usr/bin/env python3
"""QUIC bulk throughput on loopback against iperf3 TCP, interleaved in one run.

Each rep runs iperf3 (-R: the server sends, like our peer A) and then bench/quic_loopback
once per congestion controller, with the sender pinned to CPU 0 and the receiver to CPU 1.
Prints each run, CPU seconds per GiB on each side, the share of wall time each QUIC side
spent runnable but waiting for a CPU (runq: other load on the machine, not our driver),
and the ratio of medians to iperf3. Speed is never asserted: these machines are noisy,
so compare within one run.

--priority renices this session's scheduler autogroup to -20 for the run (root only;
restored at the end), so that other people's builds on the same two CPUs stop setting
the pace. Without it a busy machine measures CPU contention, not the transport.

usage: bench/quic_loopback.py [--bytes 1073741824] [--reps 3] [--cc bbr,bbr2,cubic]
                              [--priority]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import GIB, build_dir, median, run_iperf, stop  # noqa: E402


def run_quic(bdir, cc, nbytes, timeout):
    tool = os.path.join(bdir, "bench/quic_loopback")
    server = subprocess.Popen(["taskset", "-c", "0", tool, "server", "--cc", cc,
                               "--bytes", str(nbytes)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = subprocess.Popen(["taskset", "-c", "1", tool, "client", "--cc", cc],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        s_ready = server.stdout.readline().split()
        c_ready = client.stdout.readline().split()
        if len(s_ready) != 3 or len(c_ready) != 3:
            raise RuntimeError(f"no ready line: {s_ready} {c_ready}")
        server.stdin.write(f"{c_ready[1]} {c_ready[2]}\n")
        server.stdin.flush()
        client.stdin.write(f"{s_ready[1]} {s_ready[2]}\n")
        client.stdin.flush()
        c_out, _ = client.communicate(timeout=timeout)
        s_out, _ = server.communicate(timeout=30)
        c = json.loads(c_out.strip().splitlines()[-1])
        s = json.loads(s_out.strip().splitlines()[-1])
        if c["error"] or c["bytes"] != nbytes:
            raise RuntimeError(f"quic run failed: {c} {s}")
        return {"MBps": c["MBps"], "send_cpu_s_per_gib": s["cpu_s"] * GIB / nbytes,
                "recv_cpu_s_per_gib": c["cpu_s"] * GIB / nbytes, "gso": s["gso"],
                "send_runq": runq_share(s), "recv_runq": runq_share(c)}
    finally:
        stop(client)
        stop(server)


def runq_share(side):
    """Share of the transfer's wall time spent waiting for a CPU (0 when unknown)."""
    wall = side.get("seconds", 0)
    return min(side.get("runq_wait_s", 0) / wall, 1.0) if wall > 0 else 0.0


AUTOGROUP = "/proc/self/autogroup"


def set_autogroup_nice(nice):
    """Returns the previous nice value of this session's autogroup."""
    with open(AUTOGROUP) as f:
        previous = int(f.read().split("nice")[1])
    with open(AUTOGROUP, "w") as f:
        f.write(str(nice))
    return previous


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bytes", type=int, default=GIB)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cc", default="bbr,bbr2,cubic")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--priority", action="store_true",
                    help="renice this session's autogroup to -20 for the run (root)")
    args = ap.parse_args()
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is not installed: run scripts/install-deps.sh")
    bdir = build_dir()
    previous_nice = set_autogroup_nice(-20) if args.priority else None
    try:
        bench(args, bdir)
    finally:
        if previous_nice is not None:
            set_autogroup_nice(previous_nice)


def bench(args, bdir):
    ccs = args.cc.split(",")
    tcp, quic = [], {cc: [] for cc in ccs}
    for rep in range(args.reps):
        t = run_iperf(args.bytes, args.timeout)
        tcp.append(t["MBps"])
        line = f"rep {rep + 1}: iperf3 TCP {t['MBps']:.0f} MB/s"
        for cc in ccs:
            q = run_quic(bdir, cc, args.bytes, args.timeout)
            quic[cc].append(q)
            line += (f" | quic {cc} {q['MBps']:.0f} MB/s (cpu s/GiB send "
                     f"{q['send_cpu_s_per_gib']:.2f} recv {q['recv_cpu_s_per_gib']:.2f}, "
                     f"runq send {q['send_runq']:.0%} recv {q['recv_runq']:.0%})")
        print(line, flush=True)
    mt = median(tcp)
    print(f"median iperf3 TCP: {mt:.0f} MB/s")
    for cc in ccs:
        mq = median([q["MBps"] for q in quic[cc]])
        ms = median([q["send_cpu_s_per_gib"] for q in quic[cc]])
        mr = median([q["recv_cpu_s_per_gib"] for q in quic[cc]])
        mw = median([max(q["send_runq"], q["recv_runq"]) for q in quic[cc]])
        print(f"median quic {cc}: {mq:.0f} MB/s, ratio to TCP {mq / mt:.2f}, "
              f"cpu s/GiB send {ms:.2f} recv {mr:.2f}, runq wait {mw:.0%}")


if __name__ == "__main__":
    main()
