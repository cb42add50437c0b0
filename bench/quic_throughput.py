#!/usr/bin/env python3
"""peertun's direct transfer against iperf3 TCP on the same path, in one run.

For each rep, on loopback and then over the NAT lab's veth path (both peers of type
`none`, so TCP can take exactly the path QUIC takes: A's namespace, the internet router,
B's namespace), it runs:
  - iperf3 TCP, one stream of --mib MiB from A's side to B's side;
  - `peertun p2p --send FILE` (A) and `peertun p2p-join --receive DIR` (B) through a relay:
    the punch, QUIC, the same number of bytes, SHA-256 on both sides.
The sender is pinned to CPU 0 and the receiver to CPU 1 in both (--no-pin: free). The file
and the inbox live on tmpfs (/dev/shm), so the disk is not what is measured; the SHA-256
and the copies are. Throughput is the receiver's `transfer` event (first byte to stored,
fsynced and acknowledged); CPU seconds per GiB is each peertun process's utime+stime (all
threads) between its `quic` and `transfer` events, read from /proc as the lines arrive,
and of its network (io_context) thread alone: the rest is the disk thread's (file I/O and
SHA-256). "other CPU use" is the share of all CPUs busy with anything but the two peers
while B received (other load on the machine, and softirq work charged to no process).

Then the time from the relay's fire to QUIC's handshake being complete at 50 ms RTT
between the peers (A port-restricted, B restricted: 13 ms each way on A's WAN link and 12
on B's), per side: the `punch` event's fire_to_path_ms plus the time between the `punch`
and `quic` lines as this script reads them (stamped by a reader thread per process, so
within a millisecond or so of being printed).

--baseline DIR: also run the transfer with the binaries in DIR in every rep (an older
build), so a change is measured against what it replaced in the same run.

--perf DIR: one more loopback transfer with `perf record -g` attached to both peertun
processes from `quic` to `transfer`; prints each side's CPU by thread and by cost
(SHA-256, AES-GCM, kernel, copies, ngtcp2, ...) and its top symbols (self time), and
keeps the perf.data files in DIR.

Needs root for the lab (without it, or with --no-lab, only loopback runs). Speed is never
asserted: these machines are noisy, compare within one run (the load average is printed
with every section).

usage: sudo python3 bench/quic_throughput.py [--build DIR] [--mib 1024] [--reps 3]
           [--handshake-reps 5] [--no-lab] [--no-loopback] [--baseline DIR] [--perf DIR]
           [--json FILE]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from common import (GIB, EventLog, build_dir, loadavg, median, perf_record, perf_stop,  # noqa: E402
                    perf_profile, pinned, run_iperf, start_relay, stop)
from natlab import lab  # noqa: E402

TOKEN = "bench-token"
LAB_RELAY_PORT = 4040
IPERF_PORT = 5201
SEND_CPU, RECV_CPU = 0, 1
STEP_TIMEOUT_S = 30.0


def write_payload(path, nbytes):
    """Pseudo-random bytes, no two MiB alike (one random block with a counter)."""
    block = bytearray(os.urandom(1 << 20))
    with open(path, "wb") as f:
        left = nbytes
        i = 0
        while left > 0:
            block[:8] = i.to_bytes(8, "big")
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            i += 1


def transfer(bdir, relay, src, inbox, share, timeout, popen=subprocess.Popen, cpus=(None, None),
             on_quic=None):
    """One `--send` / `--receive` pair through `relay` (host:port). `popen(side, argv, **kw)`
    starts a peer. Returns the receiver's MB/s, each side's CPU seconds for the transfer
    and its fire -> path and fire -> QUIC times in ms. `on_quic(pid_a, pid_b)`, if given,
    runs once both sides report QUIC (returns a callable run after the transfer)."""
    peertun = os.path.join(bdir, "app/peertun/peertun")
    common = ["--relay", relay, "--token", TOKEN, "--json"]
    procs = []
    errs = [tempfile.TemporaryFile() for _ in range(2)]
    try:
        a = popen("a", pinned(cpus[0], [peertun, *common, "p2p", share, "--send", src]),
                  stdout=subprocess.PIPE, stderr=errs[0])
        procs.append(a)
        log_a = EventLog(a, cpu=True)
        joined = log_a.wait("join_code", STEP_TIMEOUT_S)
        if joined is None:
            raise RuntimeError(f"A printed no join code: {tail(errs[0])}")
        b = popen("b", pinned(cpus[1], [peertun, *common, "p2p-join", joined[1]["code"],
                                        "--receive", inbox]),
                  stdout=subprocess.PIPE, stderr=errs[1])
        procs.append(b)
        log_b = EventLog(b, cpu=True, also=[a.pid])
        out = {}
        for side, log in (("a", log_a), ("b", log_b)):
            punch = log.wait("punch", STEP_TIMEOUT_S)
            quic = log.wait("quic", STEP_TIMEOUT_S)
            if punch is None or quic is None or punch[1].get("result") != "succeeded":
                raise RuntimeError(f"{side}: no direct QUIC path: "
                                   f"{[e[1] for e in log.events]} {tail(errs[0 if side == 'a' else 1])}")
            path_ms = punch[1].get("fire_to_path_ms")
            out[side] = {"fire_to_path_ms": path_ms,
                         "fire_to_quic_ms": None if path_ms is None
                         else path_ms + (quic[0] - punch[0]) * 1000,
                         "cpu_at_quic": quic[2]}
        after = on_quic(a.pid, b.pid) if on_quic else None
        got = log_b.wait("transfer", timeout)
        sent = log_a.wait("transfer", STEP_TIMEOUT_S) if got else None
        if after:
            after()
        if got is None or sent is None:
            raise RuntimeError(f"no transfer within {timeout:.0f} s: B {tail(errs[1])} "
                               f"A {tail(errs[0])}")
        nbytes = got[1]["bytes"]
        for side, entry in (("a", sent), ("b", got)):
            begin, end = out[side].pop("cpu_at_quic"), entry[2]
            if begin is None or end is None:
                raise RuntimeError(f"{side}: no CPU figures from /proc")
            per_gib = GIB / max(nbytes, 1)
            out[side]["cpu_s"] = end["total"] - begin["total"]
            out[side]["cpu_s_per_gib"] = out[side]["cpu_s"] * per_gib
            # The io_context thread (QUIC, sockets) alone; the rest is the disk thread.
            out[side]["net_cpu_s_per_gib"] = (end["main"] - begin["main"]) * per_gib
        # CPU the machine spent on anything but the two peers while B received: other
        # people's load, and kernel work no process is charged for (softirq).
        begin, end = log_b.wait("quic", 0), got
        others = ((end[2]["busy"] - begin[2]["busy"]) - (end[2]["total"] - begin[2]["total"]) -
                  (end[2]["also"][a.pid] - begin[2]["also"][a.pid]))
        out["other_cpu_share"] = max(others, 0) / (os.cpu_count() * max(end[0] - begin[0], 1e-3))
        out["MBps"] = got[1]["mb_per_s"]
        out["bytes"] = nbytes
        out["sha256_match"] = got[1]["sha256"] == sent[1]["sha256"]
        for p in reversed(procs):  # B ends by itself after the transfer, then A
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return out
    finally:
        for p in reversed(procs):
            stop(p)
        for f in errs:
            f.close()


def tail(f, n=400):
    f.seek(0)
    return f.read().decode(errors="replace")[-n:].strip()


def fresh_inbox(inbox):
    shutil.rmtree(inbox, ignore_errors=True)
    os.makedirs(inbox)


class Loopback:
    """The relay and both peers on 127.0.0.1, iperf3 on 127.0.0.1."""
    name = "loopback"

    def __init__(self, bdir):
        self.relay, port = start_relay(bdir)
        self.address = f"127.0.0.1:{port}"

    def close(self):
        stop(self.relay)

    def iperf(self, nbytes, timeout, pin):
        return run_iperf(nbytes, timeout, reverse=False, send_cpu=SEND_CPU if pin else None,
                         recv_cpu=RECV_CPU if pin else None)

    @staticmethod
    def popen(_side, argv, **kw):
        return subprocess.Popen(argv, **kw)


class LabPath:
    """Both peers of NAT type `none` in the lab: A 198.51.100.2 and B 192.0.2.2, routed
    by the internet router's namespace over two veth pairs; the relay at 203.0.113.10."""
    name = "lab veth"

    def __init__(self, bdir, **options):
        self.lab = lab.Lab("none", "none", **options)
        self.lab.start()
        relay = self.lab.popen("relay", [os.path.join(bdir, "app/peertun-relay/peertun-relay"),
                                         "--listen", f"{self.lab.relay_ip}:{LAB_RELAY_PORT}",
                                         "--alt-ip", self.lab.relay_ips[1], "--token", TOKEN],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        relay.stdout.readline()  # listening
        self.address = f"{self.lab.relay_ip}:{LAB_RELAY_PORT}"

    def close(self):
        self.lab.close()

    def iperf(self, nbytes, timeout, pin):
        return run_iperf(nbytes, timeout, host=self.lab.host_ip("b"), reverse=False,
                         send_cpu=SEND_CPU if pin else None, recv_cpu=RECV_CPU if pin else None,
                         popen_server=lambda argv, **kw: self.lab.popen("b", argv, **kw),
                         wrap_client=lambda argv: self.lab.wrap("a", argv), port=IPERF_PORT)

    def popen(self, side, argv, **kw):
        return self.lab.popen(side, argv, **kw)


def throughput(args, bdir, src, inbox, share, paths):
    results = {}
    cpus = (None, None) if args.no_pin else (SEND_CPU, RECV_CPU)
    for path in paths:
        rows = []
        print(f"== {path.name}: {args.mib} MiB A -> B, load {loadavg()}", flush=True)
        for rep in range(args.reps):
            tcp = path.iperf(args.mib << 20, args.timeout, not args.no_pin)
            fresh_inbox(inbox)
            q = transfer(bdir, path.address, src, inbox, share, args.timeout, popen=path.popen,
                         cpus=cpus)
            if not q["sha256_match"] or q["bytes"] != args.mib << 20:
                raise RuntimeError(f"transfer not byte-exact: {q}")
            row = {"tcp": tcp, "quic": q, "load": loadavg()}
            line = (f"rep {rep + 1}: iperf3 TCP {tcp['MBps']:.0f} MB/s (cpu s/GiB send "
                    f"{tcp['send_cpu_s_per_gib']:.2f} recv {tcp['recv_cpu_s_per_gib']:.2f}) | "
                    f"peertun {q['MBps']:.0f} MB/s, ratio {q['MBps'] / tcp['MBps']:.2f} "
                    f"(cpu s/GiB send {q['a']['cpu_s_per_gib']:.2f} [net "
                    f"{q['a']['net_cpu_s_per_gib']:.2f}] recv {q['b']['cpu_s_per_gib']:.2f} "
                    f"[net {q['b']['net_cpu_s_per_gib']:.2f}], other CPU use "
                    f"{q['other_cpu_share']:.0%})")
            if args.baseline:
                fresh_inbox(inbox)
                b = transfer(args.baseline, path.address, src, inbox, share, args.timeout,
                             popen=path.popen, cpus=cpus)
                row["baseline"] = b
                line += (f" | baseline {b['MBps']:.0f} MB/s, ratio {b['MBps'] / tcp['MBps']:.2f} "
                         f"(cpu s/GiB send {b['a']['cpu_s_per_gib']:.2f} recv "
                         f"{b['b']['cpu_s_per_gib']:.2f})")
            rows.append(row)
            print(f"{line} | load {row['load']}", flush=True)
        mt = median([r["tcp"]["MBps"] for r in rows])
        mq = median([r["quic"]["MBps"] for r in rows])
        summary = {
            "tcp_MBps": mt, "peertun_MBps": mq, "ratio": mq / mt,
            "ratio_per_rep": [r["quic"]["MBps"] / r["tcp"]["MBps"] for r in rows],
            "peertun_send_cpu_s_per_gib": median([r["quic"]["a"]["cpu_s_per_gib"] for r in rows]),
            "peertun_recv_cpu_s_per_gib": median([r["quic"]["b"]["cpu_s_per_gib"] for r in rows]),
            "peertun_send_net_cpu_s_per_gib": median(
                [r["quic"]["a"]["net_cpu_s_per_gib"] for r in rows]),
            "peertun_recv_net_cpu_s_per_gib": median(
                [r["quic"]["b"]["net_cpu_s_per_gib"] for r in rows]),
            "tcp_send_cpu_s_per_gib": median([r["tcp"]["send_cpu_s_per_gib"] for r in rows]),
            "tcp_recv_cpu_s_per_gib": median([r["tcp"]["recv_cpu_s_per_gib"] for r in rows]),
            "load": loadavg(), "reps": rows}
        if args.baseline:
            summary["baseline_MBps"] = median([r["baseline"]["MBps"] for r in rows])
            summary["baseline_send_cpu_s_per_gib"] = median(
                [r["baseline"]["a"]["cpu_s_per_gib"] for r in rows])
            summary["baseline_recv_cpu_s_per_gib"] = median(
                [r["baseline"]["b"]["cpu_s_per_gib"] for r in rows])
            print(f"median baseline ({args.baseline}) {path.name}: "
                  f"{summary['baseline_MBps']:.0f} MB/s, ratio {summary['baseline_MBps'] / mt:.2f}, "
                  f"cpu s/GiB send {summary['baseline_send_cpu_s_per_gib']:.2f} recv "
                  f"{summary['baseline_recv_cpu_s_per_gib']:.2f}", flush=True)
        results[path.name] = summary
        print(f"median {path.name}: iperf3 TCP {mt:.0f} MB/s, peertun {mq:.0f} MB/s, "
              f"ratio {mq / mt:.2f} (per rep {', '.join(f'{x:.2f}' for x in summary['ratio_per_rep'])}); "
              f"cpu s/GiB peertun send {summary['peertun_send_cpu_s_per_gib']:.2f} "
              f"(network thread {summary['peertun_send_net_cpu_s_per_gib']:.2f}) recv "
              f"{summary['peertun_recv_cpu_s_per_gib']:.2f} (network thread "
              f"{summary['peertun_recv_net_cpu_s_per_gib']:.2f}), TCP send "
              f"{summary['tcp_send_cpu_s_per_gib']:.2f} recv {summary['tcp_recv_cpu_s_per_gib']:.2f}"
              f"; load {summary['load']}", flush=True)
    return results


def handshake(args, bdir, share, tmp):
    """Fire -> QUIC handshake complete at 50 ms RTT between the peers."""
    small = os.path.join(tmp, "small.bin")
    write_payload(small, 1 << 20)
    inbox = os.path.join(tmp, "hs-inbox")
    rows = []
    print(f"== fire -> QUIC handshake at 50 ms RTT (A port-restricted, B restricted), "
          f"load {loadavg()}", flush=True)
    for rep in range(args.handshake_reps):
        with lab.Lab("port-restricted", "restricted", delay_ms={"a": 13, "b": 12}) as l:
            relay = l.popen("relay", [os.path.join(bdir, "app/peertun-relay/peertun-relay"),
                                      "--listen", f"{l.relay_ip}:{LAB_RELAY_PORT}", "--alt-ip",
                                      l.relay_ips[1], "--token", TOKEN],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            relay.stdout.readline()
            fresh_inbox(inbox)
            q = transfer(bdir, f"{l.relay_ip}:{LAB_RELAY_PORT}", small, inbox, share,
                         args.timeout, popen=l.popen)
        rows.append(q)
        print(f"rep {rep + 1}: A (QUIC server) path {q['a']['fire_to_path_ms']} ms, handshake "
              f"{q['a']['fire_to_quic_ms']:.0f} ms | B (client) path "
              f"{q['b']['fire_to_path_ms']} ms, handshake {q['b']['fire_to_quic_ms']:.0f} ms",
              flush=True)
    out = {side: {"fire_to_path_ms": median([r[side]["fire_to_path_ms"] for r in rows]),
                  "fire_to_quic_ms": median([r[side]["fire_to_quic_ms"] for r in rows])}
           for side in ("a", "b")}
    out["load"] = loadavg()
    out["reps"] = rows
    print(f"median: A path {out['a']['fire_to_path_ms']:.0f} ms, handshake "
          f"{out['a']['fire_to_quic_ms']:.0f} ms; B path {out['b']['fire_to_path_ms']:.0f} ms, "
          f"handshake {out['b']['fire_to_quic_ms']:.0f} ms; load {out['load']}", flush=True)
    return out


def profile(args, bdir, src, inbox, share):
    os.makedirs(args.perf, exist_ok=True)
    files = {"send": os.path.join(args.perf, "send.perf.data"),
             "recv": os.path.join(args.perf, "recv.perf.data")}
    path = Loopback(bdir)
    try:
        def attach(pid_a, pid_b):
            recorders = [perf_record(pid_a, files["send"]), perf_record(pid_b, files["recv"])]
            return lambda: [perf_stop(r) for r in recorders]
        fresh_inbox(inbox)
        cpus = (None, None) if args.no_pin else (SEND_CPU, RECV_CPU)
        q = transfer(bdir, path.address, src, inbox, share, args.timeout, popen=path.popen,
                     cpus=cpus, on_quic=attach)
    finally:
        path.close()
    print(f"== perf profile (loopback, {q['MBps']:.0f} MB/s under perf; self time; the io "
          f"thread runs QUIC, the disk thread reads or writes and hashes), load {loadavg()}",
          flush=True)
    out = {}
    for side, f in files.items():
        prof = perf_profile(f, os.path.join(bdir, "app/peertun/peertun"))
        out[side] = prof
        threads = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(prof["threads"].items()))
        print(f"{side} ({threads}):")
        for pct, cls in prof["classes"]:
            if pct >= 0.5:
                print(f"  {pct:5.1f}%  {cls}")
        print("  top symbols:")
        for pct, thread, dso, sym in prof["top"]:
            print(f"  {pct:5.1f}%  {thread:<4} {dso:<22} {sym[:90]}")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=None, help="build dir (default $PEERTUN_BUILD_DIR)")
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--handshake-reps", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300.0, help="per transfer, seconds")
    ap.add_argument("--no-lab", action="store_true")
    ap.add_argument("--no-loopback", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not pin sender/receiver CPUs")
    ap.add_argument("--baseline", metavar="DIR", help="also run this build's transfer each rep")
    ap.add_argument("--perf", metavar="DIR", help="also profile a loopback transfer")
    ap.add_argument("--json", metavar="FILE", help="write every figure there")
    args = ap.parse_args()
    if not shutil.which("iperf3"):
        sys.exit("iperf3 is not installed: run scripts/install-deps.sh")
    if args.perf and not shutil.which("perf"):
        sys.exit("perf is not installed: run scripts/install-deps.sh (linux-perf)")
    bdir = args.build or build_dir()
    use_lab = not args.no_lab
    if use_lab:
        ok, why = lab.available()
        if not ok:
            print(f"natlab unavailable ({why}): loopback only", file=sys.stderr)
            use_lab = False
        else:
            lab.cleanup_stale()
            if not lab.default_delay_line():
                os.environ["PEERTUN_NATLAB_DELAY_LINE"] = os.path.join(
                    bdir, "tests/natlab/natlab_delay_line")
    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "binaries": bdir, "mib": args.mib}
    # tmpfs: the disk is not what this measures.
    with tempfile.TemporaryDirectory(dir="/dev/shm", prefix="peertun-bench-") as tmp:
        src = os.path.join(tmp, "payload.bin")
        write_payload(src, args.mib << 20)
        inbox = os.path.join(tmp, "inbox")
        share = os.path.join(tmp, "share")
        os.makedirs(share)
        paths = []
        try:
            if not args.no_loopback:
                paths.append(Loopback(bdir))
            if use_lab:
                paths.append(LabPath(bdir))
            if paths:
                results["throughput"] = throughput(args, bdir, src, inbox, share, paths)
        finally:
            for p in paths:
                p.close()
        if use_lab and args.handshake_reps > 0:
            results["handshake_50ms"] = handshake(args, bdir, share, tmp)
        if args.perf:
            results["perf"] = profile(args, bdir, src, inbox, share)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
