#!/usr/bin/env python3
"""How many authenticated idle control sessions the relay holds, and the memory each
costs: starts a relay, measures its RSS, opens N sessions with bench/control_hold,
measures again. Aim (issue 2): 10,000 sessions in under 64 MiB of extra RSS.

usage: bench/control_sessions.py [--sessions 10000] [--tls]

--tls: the relay serves wss with a throwaway certificate (GnuTLS certtool, package
gnutls-bin) and the sessions are TLS sessions.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import build_dir, rss_kib, start_relay, stop, wait_line  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--tls", action="store_true", help="wss sessions")
    args = ap.parse_args()
    bdir = build_dir()
    tmp = tempfile.mkdtemp(prefix="peertun-bench-")
    extra, hold_extra = [], []
    if args.tls:
        ca, cert, key = make_certificate(tmp)
        extra = ["--tls-cert", cert, "--tls-key", key]
        hold_extra = [ca]
    relay, port = start_relay(bdir, extra)
    holder = None
    try:
        time.sleep(0.5)
        base_kib = rss_kib(relay.pid)
        t0 = time.monotonic()
        holder = subprocess.Popen([os.path.join(bdir, "bench/control_hold"), "127.0.0.1",
                                   str(port), "bench-token", str(args.sessions), *hold_extra],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        m = wait_line(holder, r"held (\d+) failed (\d+)", 300)
        held, failed = int(m.group(1)), int(m.group(2))
        setup_s = time.monotonic() - t0
        time.sleep(2)
        # Still alive after the settle: the relay answered pings and kept them.
        if holder.poll() is not None:
            raise RuntimeError("control_hold exited early")
        loaded_kib = rss_kib(relay.pid)
        extra_mib = (loaded_kib - base_kib) / 1024
        per_session = (loaded_kib - base_kib) * 1024 / max(1, held)
        print(f"{'wss' if args.tls else 'ws'} "
              f"sessions_held={held} failed={failed} setup_s={setup_s:.1f} "
              f"relay_rss_base_mib={base_kib / 1024:.1f} relay_rss_loaded_mib={loaded_kib / 1024:.1f} "
              f"extra_rss_mib={extra_mib:.1f} bytes_per_session={per_session:.0f}")
        aim_ok = held >= 10000 and extra_mib < 64
        print(f"aim (10000 sessions in < 64 MiB extra): {'met' if aim_ok else 'NOT met'}")
    finally:
        if holder:
            stop(holder)
        stop(relay)
        shutil.rmtree(tmp, ignore_errors=True)


def make_certificate(directory):
    """A CA and a certificate for 127.0.0.1 signed by it: (ca, cert, key) paths."""
    def certtool(*a):
        subprocess.run(["certtool", *a], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    p = lambda name: os.path.join(directory, name)  # noqa: E731
    with open(p("ca.tmpl"), "w") as f:
        f.write('cn = "bench CA"\nca\ncert_signing_key\nexpiration_days = 2\n')
    with open(p("relay.tmpl"), "w") as f:
        f.write('cn = "127.0.0.1"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\n'
                "expiration_days = 2\n")
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", p("ca.key"))
    certtool("--generate-self-signed", "--load-privkey", p("ca.key"), "--template",
             p("ca.tmpl"), "--outfile", p("ca.pem"))
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", p("relay.key"))
    certtool("--generate-certificate", "--load-privkey", p("relay.key"),
             "--load-ca-certificate", p("ca.pem"), "--load-ca-privkey", p("ca.key"),
             "--template", p("relay.tmpl"), "--outfile", p("relay.pem"))
    return p("ca.pem"), p("relay.pem"), p("relay.key")


if __name__ == "__main__":
    main()
