#!/usr/bin/env python3
"""The folder share (`peertun p2p DIR` + `peertun p2p-join CODE --mount MNT`) against sshfs
over the same link, in the same run, interleaved so that noise hits both.

Rows, each on a fresh mount with the page cache of both sides dropped right before the
timed command (`sync; echo 3 > /proc/sys/vm/drop_caches`):
  seq-read   dd if=MNT/big1g.bin of=/dev/null bs=1M     (1 GiB)
  16k-files  cat MNT/f16k/*.bin > /dev/null              (1,000 files of 16 KiB)
  ls-lR      ls -lR MNT/tree > /dev/null                 (100 dirs x 100 files)
plus the raw QUIC throughput of the same link (`p2p DIR --send FILE` / `p2p-join CODE
--receive INBOX`, the receiver's `transfer` event; INBOX is on tmpfs so that the disk
does not set the pace), against which seq-read is compared.

Reference: sshd (a throwaway host key and user key, a non-default port) runs inside a
private mount namespace with its own tmpfs /run (these machines have no /run/sshd), and
sshfs mounts with -o ro,Ciphers=aes128-gcm@openssh.com,Compression=no (the fastest sshfs
setting measured here). With --lab the same rows also run between two NAT-lab
namespaces (tests/natlab/lab.py, no NAT on either side so that sshfs's TCP reaches A's
sshd; clean and with 20 ms RTT between the peers): sshd and peer A in A's namespace,
sshfs and peer B in B's; only the network namespace changes, so mounts stay visible here.

Prints every run, then per row the medians, the ratio sshfs/peertun (> 1: peertun
faster) and the aims (faster than sshfs on every row; seq-read >= 0.7 of raw QUIC).
Needs root (FUSE, drop_caches, namespaces). Usage:
    sudo python3 bench/share.py --build build/release [--reps 3] [--lab] [--data DIR]
"""
import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from common import (EventLog, GIB, cpu_seconds, free_port, loadavg, median,  # noqa: E402
                    start_relay, stop, wait_line)

TOKEN = "bench-token"
LAB_RELAY_PORT = 4040
LAB_SSH_PORT = 2222
SSHFS_OPTIONS = "ro,Ciphers=aes128-gcm@openssh.com,Compression=no"
BIG = "big1g.bin"
TREE_DIRS, TREE_FILES = 100, 100
SMALL_FILES, SMALL_SIZE = 1000, 16 * 1024
STEP_TIMEOUT_S = 30      # starting a mount, a session, sshd
COMMAND_TIMEOUT_S = 600  # one timed command (1 GiB at 20 ms RTT included)
ROWS = {
    # name: (shell command with {mnt}, bytes moved or None)
    "seq-read": ("dd if={mnt}/" + BIG + " of=/dev/null bs=1M", GIB),
    "16k-files": ("cat {mnt}/f16k/*.bin > /dev/null", SMALL_FILES * SMALL_SIZE),
    "ls-lR": ("ls -lR {mnt}/tree > /dev/null", None),
}
# (label, lab options): the peers' RTT is 4 x delay_ms (two WAN links, both ways).
LAB_LINKS = [("lab clean", {}), ("lab 20 ms RTT", {"delay_ms": 5})]


# ------------------------------------------------------------------ data
def make_data(root):
    """The data set (as /work/shared/notes/reference-tools/make_share_data.sh): BIG (1 GiB
    of random bytes), tree/ (100 dirs x 100 files of 0.5-4 KiB), f16k/ (1,000 x 16 KiB).
    Kept when complete, so --data DIR is made once."""
    marker = os.path.join(root, ".complete")
    if os.path.exists(marker):
        return
    os.makedirs(os.path.join(root, "f16k"), exist_ok=True)
    with open(os.path.join(root, BIG), "wb") as f:
        for _ in range(GIB >> 20):
            f.write(os.urandom(1 << 20))
    for d in range(TREE_DIRS):
        dp = os.path.join(root, "tree", f"d{d:03d}")
        os.makedirs(dp, exist_ok=True)
        for i in range(TREE_FILES):
            with open(os.path.join(dp, f"f{i:03d}.txt"), "wb") as f:
                f.write(os.urandom(512 + (d * TREE_FILES + i) % 3584))
    for i in range(SMALL_FILES):
        with open(os.path.join(root, "f16k", f"g{i:04d}.bin"), "wb") as f:
            f.write(os.urandom(SMALL_SIZE))
    os.sync()
    open(marker, "w").close()


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cpu_ticks():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v) - v[3] - v[4], sum(v)


# ------------------------------------------------------------- processes
def stop_proc(proc, timeout=5):
    """SIGTERM, then SIGKILL, by PID; closes our pipes. Returns the exit status."""
    stop(proc, timeout)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None:
            f.close()
    return proc.returncode


def mounted(path):
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == real for line in f)


def wait_until(predicate, timeout, what, proc=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout}s")
        time.sleep(0.05)


def unmount(path):
    """Unmounts our own mount point, lazily if a dead process left it behind."""
    if mounted(path):
        subprocess.run(["fusermount3", "-u", "-q", path], timeout=STEP_TIMEOUT_S, check=False)
    if mounted(path):
        subprocess.run(["umount", "-l", path], timeout=STEP_TIMEOUT_S, check=False)


class Link:
    """Where the two sides run: on loopback in this namespace, or in a NAT lab."""

    def __init__(self, label, build, lab=None):
        self.label = label
        self.build = build
        self.lab = lab
        self.relay = None
        if lab is None:
            self.relay, port = start_relay(build)
            self.relay_addr = f"127.0.0.1:{port}"
            self.ssh_host, self.ssh_port = "127.0.0.1", free_port()
        else:
            self.relay = lab.popen("relay", [os.path.join(build, "app/peertun-relay/peertun-relay"),
                                             "--listen", f"{lab.relay_ip}:{LAB_RELAY_PORT}",
                                             "--token", TOKEN, "--log-level", "warn"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            wait_line(self.relay, r"listening", STEP_TIMEOUT_S)
            self.relay_addr = f"{lab.relay_ip}:{LAB_RELAY_PORT}"
            self.ssh_host, self.ssh_port = lab.host_ip("a"), LAB_SSH_PORT

    def wrap(self, side, argv):
        return argv if self.lab is None else self.lab.wrap(side, argv)

    def peertun(self, side, *args, stderr):
        argv = [os.path.join(self.build, "app/peertun/peertun"), "--relay", self.relay_addr,
                "--token", TOKEN, "--json", *args]
        return subprocess.Popen(self.wrap(side, argv), stdout=subprocess.PIPE, stderr=stderr)

    def close(self):
        if self.relay is not None:
            stop_proc(self.relay)


class Session:
    """Peer A (`p2p DATA` + extra) and peer B (`p2p-join CODE` + extra): a fresh session."""

    def __init__(self, link, data, a_extra, b_extra, tmp):
        self.err = tempfile.TemporaryFile(dir=tmp)
        self.a = link.peertun("a", "p2p", data, *a_extra, stderr=self.err)
        self.b = None
        try:
            self.a_log = EventLog(self.a)
            joined = self.a_log.wait("join_code", STEP_TIMEOUT_S)
            if joined is None:
                raise RuntimeError(f"peer A gave no join code: {self.stderr()}")
            self.b = link.peertun("b", "p2p-join", joined[1]["code"], *b_extra,
                                  stderr=self.err)
            self.b_log = EventLog(self.b)
        except BaseException:
            self.close()
            raise

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-2000:]

    def cpu(self):
        """CPU seconds of A and B so far."""
        return cpu_seconds(self.a.pid), cpu_seconds(self.b.pid)

    def close(self):
        if self.b is not None:
            stop_proc(self.b, STEP_TIMEOUT_S)
        # A ends by itself once B has left; only a stuck A gets a signal.
        try:
            self.a.wait(STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        stop_proc(self.a)
        self.err.close()


@contextlib.contextmanager
def peertun_mount(link, data, tmp):
    mnt = tempfile.mkdtemp(prefix="mnt-peertun-", dir=tmp)
    session = None
    try:
        session = Session(link, data, [], ["--mount", mnt], tmp)
        if session.b_log.wait("mounted", STEP_TIMEOUT_S) is None:
            raise RuntimeError(f"peer B did not mount: {session.stderr()}")
        yield mnt, session
    finally:
        if session is not None:
            session.close()
        unmount(mnt)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


class Sshd:
    """sshd with throwaway keys in `tmp`, in a private mount namespace whose /run is a
    tmpfs of its own (sshd insists on /run/sshd; the host's /run stays untouched).
    `unshare`, `sh` and `nsenter` exec, so the Popen PID is sshd's: stopped by it."""

    def __init__(self, link, tmp):
        self.dir = tempfile.mkdtemp(prefix="ssh-", dir=tmp)  # mode 0700
        self.host_key = os.path.join(self.dir, "host_ed25519")
        self.user_key = os.path.join(self.dir, "id_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.log = os.path.join(self.dir, "sshd.log")
        for key in (self.host_key, self.user_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key],
                           check=True, timeout=STEP_TIMEOUT_S)
        shutil.copy(self.user_key + ".pub", os.path.join(self.dir, "authorized_keys"))
        config = os.path.join(self.dir, "sshd_config")
        with open(config, "w") as f:
            f.write(f"Port {link.ssh_port}\nListenAddress {link.ssh_host}\n"
                    f"HostKey {self.host_key}\nPidFile {self.dir}/sshd.pid\n"
                    f"AuthorizedKeysFile {self.dir}/authorized_keys\n"
                    "PubkeyAuthentication yes\nPasswordAuthentication no\n"
                    "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
                    "StrictModes no\nUsePAM no\nUseDNS no\nX11Forwarding no\nPrintMotd no\n"
                    "Subsystem sftp /usr/lib/openssh/sftp-server\n")
        script = ("mount -t tmpfs -o mode=755,size=1m peertun-bench-run /run && "
                  f"mkdir -m 755 /run/sshd && exec /usr/sbin/sshd -D -f {config} -E {self.log}")
        self.proc = subprocess.Popen(link.wrap("a", ["unshare", "-m", "--propagation", "private",
                                                     "sh", "-c", script]),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_until(lambda: "Server listening" in self._log_text(), STEP_TIMEOUT_S,
                   f"sshd ({self.log})", self.proc)

    def _log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def close(self):
        stop_proc(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def sshfs_mount(link, sshd, data, tmp):
    mnt = tempfile.mkdtemp(prefix="mnt-sshfs-", dir=tmp)
    options = (f"{SSHFS_OPTIONS},Port={link.ssh_port},IdentityFile={sshd.user_key},"
               f"UserKnownHostsFile={sshd.known_hosts},StrictHostKeyChecking=accept-new,"
               "BatchMode=yes")
    proc = subprocess.Popen(link.wrap("b", ["sshfs", "-f", f"root@{link.ssh_host}:{data}", mnt,
                                            "-o", options]),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: mounted(mnt), STEP_TIMEOUT_S, "sshfs mount", proc)
        yield mnt, proc
    finally:
        unmount(mnt)
        try:
            proc.wait(STEP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_proc(proc)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


# ------------------------------------------------------------------ runs
def timed(command):
    """Drops the caches, runs `command` (sh), returns (seconds, machine busy %)."""
    drop_caches()
    b0, t0 = cpu_ticks()
    start = time.monotonic()
    r = subprocess.run(["sh", "-c", command], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, timeout=COMMAND_TIMEOUT_S)
    seconds = time.monotonic() - start
    b1, t1 = cpu_ticks()
    if r.returncode != 0:
        raise RuntimeError(f"{command!r} failed ({r.returncode}): {r.stderr[-500:]}")
    return seconds, 100.0 * (b1 - b0) / max(1, t1 - t0)


def run_peertun(link, row, data, tmp):
    with peertun_mount(link, data, tmp) as (mnt, session):
        before = session.cpu()
        seconds, busy = timed(ROWS[row][0].format(mnt=mnt))
        after = session.cpu()
    return {"s": seconds, "busy": busy, "cpu_a": after[0] - before[0],
            "cpu_b": after[1] - before[1]}


def tree_cpu(pid):
    """CPU seconds of a process and all its descendants (0 for those already gone)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += cpu_seconds(p)
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def run_sshfs(link, sshd, row, data, tmp):
    with sshfs_mount(link, sshd, data, tmp) as (mnt, proc):
        # A's side: sshd's session processes and sftp-server (the listener idles); B's
        # side: sshfs and its ssh client. Same columns as peertun's A and B.
        before = tree_cpu(sshd.proc.pid), tree_cpu(proc.pid)
        seconds, busy = timed(ROWS[row][0].format(mnt=mnt))
        after = tree_cpu(sshd.proc.pid), tree_cpu(proc.pid)
    return {"s": seconds, "busy": busy, "cpu_a": after[0] - before[0],
            "cpu_b": after[1] - before[1]}


def run_raw_quic(link, data, inbox_root, tmp):
    """MB/s of `--send BIG` A -> B over a fresh session, as B's transfer event says."""
    inbox = tempfile.mkdtemp(prefix="peertun-bench-inbox-", dir=inbox_root)
    session = None
    try:
        drop_caches()
        session = Session(link, data, ["--send", os.path.join(data, BIG)],
                          ["--receive", inbox], tmp)
        got = session.b_log.wait("transfer", COMMAND_TIMEOUT_S)
        if got is None:
            raise RuntimeError(f"no transfer event: {session.stderr()}")
        return {"MBps": got[1]["mb_per_s"], "s": got[1]["seconds"]}
    finally:
        if session is not None:
            session.close()
        shutil.rmtree(inbox, ignore_errors=True)


def mbps(nbytes, seconds):
    rate = nbytes / seconds / 1e6
    return f"{rate:.0f} MB/s" if rate >= 10 else f"{rate:.2f} MB/s"


def fmt_run(row, r):
    text = f"{r['s']:.2f} s"
    if ROWS[row][1]:
        text += f" ({mbps(ROWS[row][1], r['s'])})"
    text += f", busy {r['busy']:.0f}%"
    if "cpu_a" in r:
        text += f", cpu A {r['cpu_a']:.2f} s B {r['cpu_b']:.2f} s"
    return text


def bench_link(link, args, data, inbox_root, tmp):
    """All rows on one link, reps interleaved; returns {row: (peertun runs, sshfs runs)}
    and the raw QUIC runs."""
    sshd = Sshd(link, tmp)
    results = {row: ([], []) for row in args.rows}
    raw = []
    try:
        for rep in range(args.reps):
            for row in args.rows:
                if row == "seq-read":
                    raw.append(run_raw_quic(link, data, inbox_root, tmp))
                    print(f"  [{link.label}] rep {rep + 1} raw QUIC --send: "
                          f"{raw[-1]['MBps']:.0f} MB/s", flush=True)
                # Alternate which tool goes first, so a drift in load hits both alike.
                order = ("peertun", "sshfs") if rep % 2 == 0 else ("sshfs", "peertun")
                for tool in order:
                    if tool == "peertun":
                        r = run_peertun(link, row, data, tmp)
                        results[row][0].append(r)
                    else:
                        r = run_sshfs(link, sshd, row, data, tmp)
                        results[row][1].append(r)
                    print(f"  [{link.label}] rep {rep + 1} {row:<9} {tool:<7} {fmt_run(row, r)}",
                          flush=True)
    finally:
        sshd.close()
    return results, raw


def summarise(label, results, raw):
    lines = []
    for row, (ours, theirs) in results.items():
        p = median([r["s"] for r in ours])
        s = median([r["s"] for r in theirs])
        nbytes = ROWS[row][1]
        rate = (lambda t: f" ({mbps(nbytes, t)})") if nbytes else (lambda t: "")
        ratio = s / p
        lines.append(f"| {label} | {row} | {p:.2f} s{rate(p)} | {s:.2f} s{rate(s)} | "
                     f"**{ratio:.2f}** | {'met' if ratio > 1 else 'missed'} |")
        if row == "seq-read" and raw:
            q = median([r["MBps"] for r in raw])
            share = nbytes / p / 1e6 / q
            lines.append(f"| {label} | seq-read / raw QUIC | {nbytes / p / 1e6:.0f} MB/s | "
                         f"raw QUIC {q:.0f} MB/s | **{share:.2f}** | "
                         f"{'met' if share >= 0.7 else 'missed'} (>= 0.7) |")
    return lines


def raise_keyboard_interrupt(_signum, _frame):
    raise KeyboardInterrupt()


def uptime():
    r = subprocess.run(["uptime"], capture_output=True, text=True, timeout=10)
    return r.stdout.strip() or f"load average: {loadavg()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("PEERTUN_BUILD_DIR", "build/release"),
                    help="build dir (or a copy) with app/peertun/peertun and "
                         "app/peertun-relay/peertun-relay")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rows", default=",".join(ROWS), help="comma-separated subset of rows")
    ap.add_argument("--lab", action="store_true", help="also over NAT-lab namespaces")
    ap.add_argument("--no-loopback", action="store_true", help="with --lab: the lab only")
    ap.add_argument("--data", default=None,
                    help="keep the 1.1 GB data set here (made once) instead of a temp dir")
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.rows = [r for r in args.rows.split(",") if r]
    unknown = set(args.rows) - set(ROWS)
    if unknown:
        sys.exit(f"unknown rows {sorted(unknown)}; rows: {', '.join(ROWS)}")
    if os.geteuid() != 0:
        sys.exit("bench/share.py needs root (FUSE mounts, drop_caches, namespaces)")
    for tool in ("sshfs", "/usr/sbin/sshd", "ssh-keygen", "fusermount3", "unshare"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed: run scripts/install-deps.sh")
    # SIGTERM unwinds like Ctrl-C: every finally below unmounts and stops what it started.
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)

    tmp = tempfile.mkdtemp(prefix="peertun-bench-share-")
    # The raw transfer lands on tmpfs when there is one: the disk is not what it measures.
    inbox_root = "/dev/shm" if os.path.isdir("/dev/shm") else tmp
    summary = []
    try:
        data = os.path.abspath(args.data) if args.data else os.path.join(tmp, "data")
        print(f"data set in {data} ...", flush=True)
        make_data(data)
        print(f"start: {uptime()}", flush=True)
        print(f"binaries: {args.build}; sshfs -o {SSHFS_OPTIONS}; median of {args.reps}; "
              "fresh mount and dropped caches per run", flush=True)
        links = [] if args.no_loopback else [("loopback", None)]
        if args.lab:
            links += LAB_LINKS
        for label, options in links:
            summary += bench_one(label, options, args, data, inbox_root, tmp)
        print(f"end: {uptime()}")
        print()
        print("| link | row | peertun | sshfs | sshfs/peertun | aim |")
        print("|---|---|---|---|---|---|")
        for line in summary:
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_one(label, options, args, data, inbox_root, tmp):
    if options is None:
        link = Link(label, args.build)
        try:
            return summarise(label, *bench_link(link, args, data, inbox_root, tmp))
        finally:
            link.close()
    from natlab import lab
    ok, why = lab.available()
    if not ok:
        print(f"natlab: skipped: {why}")
        return []
    if options.get("delay_ms") and not lab.default_delay_line():
        os.environ["PEERTUN_NATLAB_DELAY_LINE"] = os.path.join(
            args.build, "tests/natlab/natlab_delay_line")
    with lab.Lab("none", "none", **options) as l:
        link = Link(label, args.build, l)
        try:
            return summarise(label, *bench_link(link, args, data, inbox_root, tmp))
        finally:
            link.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: everything this bench started is stopped and unmounted")
