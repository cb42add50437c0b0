"""Shared helpers for the bench scripts: process control by PID, CPU and memory from
/proc, bounded waits. Benches print ratios against a reference run in the same
invocation, because these machines are noisy."""
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 1 << 30


def build_dir(default="build/release"):
    return os.environ.get("PEERTUN_BUILD_DIR", os.path.join(ROOT, default))


def busy_cpu_seconds():
    """CPU time every CPU spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    return (sum(fields[0:3]) + sum(fields[5:8])) / HZ


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid, tid=None):
    """utime+stime of a process (all its threads), or of one of its threads."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
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


def loadavg():
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pinned(cpu, argv):
    """argv run on one CPU (taskset execs it: the PID stays the program's)."""
    return argv if cpu is None else ["taskset", "-c", str(cpu), *argv]


class EventLog:
    """The --json event lines of a peertun process, read on a thread of their own and
    stamped with time.monotonic() as they arrive; with `cpu=True` each line also carries
    the process's CPU seconds read at that moment: {"total": all threads, "main": the main
    thread (peertun's io_context thread), "busy": busy_cpu_seconds(), "also": {pid: total}
    for the processes in `also`} (to tell other load on the machine apart)."""

    def __init__(self, proc, cpu=False, also=()):
        self.proc = proc
        self.cpu = cpu
        self.also = list(also)
        self.events = []  # (monotonic time, event dict, cpu seconds or None)
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            self._read_lines()
        except (ValueError, OSError):
            pass  # the owner closed the pipe after stopping the process
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def _read_lines(self):
        for line in iter(self.proc.stdout.readline, b""):
            stamp = time.monotonic()
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            cpu = None
            if self.cpu:
                try:
                    cpu = {"total": cpu_seconds(self.proc.pid),
                           "main": cpu_seconds(self.proc.pid, self.proc.pid),
                           "busy": busy_cpu_seconds(),
                           "also": {pid: cpu_seconds(pid) for pid in self.also}}
                except OSError:
                    pass
            with self._cond:
                self.events.append((stamp, event, cpu))
                self._cond.notify_all()

    def wait(self, name, timeout):
        """(time, event, cpu) of the first event called `name`, else None (bounded; also
        None once the process closed its output without it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for entry in self.events:
                    if entry[1].get("event") == name:
                        return entry
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self._cond.wait(left)


def run_iperf(nbytes, timeout, host="127.0.0.1", reverse=True, send_cpu=0, recv_cpu=1,
              popen_server=subprocess.Popen, wrap_client=lambda argv: argv, port=None):
    """One iperf3 TCP stream of `nbytes`, the sender on `send_cpu` and the receiver on
    `recv_cpu`. reverse=True: the server sends (-R). `popen_server` starts the server (e.g.
    inside a lab namespace), `wrap_client` prefixes the client's argv. Returns MB/s and
    each side's CPU seconds per GiB (from iperf3's own CPU figures)."""
    port = port or free_port()
    server_cpu, client_cpu = (send_cpu, recv_cpu) if reverse else (recv_cpu, send_cpu)
    server = popen_server(pinned(server_cpu, ["iperf3", "-s", "-B", host, "-p", str(port),
                                              "-1"]),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):  # bounded: the server needs a moment to listen
            argv = ["iperf3", "-c", host, "-p", str(port), "-n", str(nbytes), "-J"]
            if reverse:
                argv.append("-R")
            out = subprocess.run(wrap_client(pinned(client_cpu, argv)), capture_output=True,
                                 text=True, timeout=timeout)
            j = json.loads(out.stdout) if out.stdout.strip() else {}
            if "end" in j and "sum_received" in j["end"]:
                e = j["end"]
                seconds = e["sum_received"]["seconds"]
                cpu = e["cpu_utilization_percent"]
                send_pct = cpu["remote_total"] if reverse else cpu["host_total"]
                recv_pct = cpu["host_total"] if reverse else cpu["remote_total"]
                per_gib = seconds / 100 * GIB / e["sum_received"]["bytes"]
                return {"MBps": e["sum_received"]["bits_per_second"] / 8e6,
                        "send_cpu_pct": send_pct, "recv_cpu_pct": recv_pct,
                        "send_cpu_s_per_gib": send_pct * per_gib,
                        "recv_cpu_s_per_gib": recv_pct * per_gib}
            if server.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("iperf3 did not run")
    finally:
        stop(server)


def perf_record(pid, path, frequency=4000):
    """Starts `perf record -g` on a running process (all its threads) with the software
    cpu-clock event (these VMs have no hardware PMU). End it with perf_stop."""
    return subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(frequency),
                             "-g", "-p", str(pid), "-o", path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_stop(proc, timeout=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            stop(proc)


# Instructions that give away what a stripped library is doing (GnuTLS and nettle ship
# without symbols for their assembly).
_INSN_CLASSES = (("SHA-256 (SHA-NI)", re.compile(r"\bsha256")),
                 ("AES-GCM (AES-NI, PCLMUL)", re.compile(r"\bv?(aes|pclmul)")))


def _disassembly(path):
    """Sorted [(address, mnemonic)] of a shared object's code."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                         text=True, timeout=300).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(\S+)", line)
        if m:
            rows.append((int(m.group(1), 16), m.group(2)))
    return rows


def _classify(disassembly, address, window=96):
    import bisect
    i = bisect.bisect_left(disassembly, (address - window, ""))
    mnemonics = []
    while i < len(disassembly) and disassembly[i][0] <= address + window:
        mnemonics.append(disassembly[i][1])
        i += 1
    for name, rx in _INSN_CLASSES:
        if any(rx.match(m) for m in mnemonics):
            return name
    return None


def perf_profile(path, binary, limit=15):
    """Where a process's samples went: {"threads": {"io": %, "disk": % ...}, "classes":
    [(%, class)], "top": [(%, thread, dso, symbol)]}. The io thread is the main thread
    (tid == pid). Unresolved addresses in stripped libraries are named by the
    instructions around them (SHA-256, AES-GCM) or lumped per library."""
    out = subprocess.run(["perf", "report", "-i", path, "--stdio", "--no-children", "-g",
                          "none", "--sort", "pid,dso,sym", "--percent-limit", "0"],
                         capture_output=True, text=True, timeout=300).stdout
    libs = {}
    for line in subprocess.run(["ldd", binary], capture_output=True, text=True).stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m:
            libs[m.group(1)] = m.group(2)
    disassemblies = {}
    rows = []
    pids = set()
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\d+):\S+\s+(\S+)\s+\[[.kHg]\]\s+(.*)", line)
        if not m:
            continue
        pct, tid, dso = float(m.group(1)), int(m.group(2)), m.group(3)
        sym = re.sub(r"(\s+-)+\s*$", "", m.group(4)).strip()
        pids.add(tid)
        if re.fullmatch(r"0x[0-9a-f]+", sym):
            soname = next((k for k in libs if dso.startswith(k)), None)
            named = None
            if soname:
                if soname not in disassemblies:
                    disassemblies[soname] = _disassembly(libs[soname])
                named = _classify(disassemblies[soname], int(sym, 16))
            sym = named or f"(code without symbols in {dso})"
        rows.append((pct, tid, dso, sym))
    main_tid = min(pids) if pids else 0
    threads, classes, symbols = {}, {}, {}
    for pct, tid, dso, sym in rows:
        thread = "io" if tid == main_tid else "disk"
        threads[thread] = threads.get(thread, 0) + pct
        if sym.startswith(("SHA-256", "AES-GCM")):
            cls = sym
        elif dso == "[kernel.kallsyms]":
            cls = "kernel: copies" if "copy" in sym else "kernel: other (UDP/IP stack, files, scheduling)"
        elif "memmove" in sym or "memcpy" in sym:
            cls = "libc memcpy/memmove"
        elif dso.startswith("libngtcp2"):
            cls = "ngtcp2 (packet building and parsing)"
        elif dso.startswith("libgnutls") or dso.startswith("libnettle"):
            cls = "GnuTLS/nettle other"
        elif dso == os.path.basename(binary):
            cls = "peertun"
        else:
            cls = f"other ({dso})"
        classes[cls] = classes.get(cls, 0) + pct
        key = (thread, dso, sym)
        symbols[key] = symbols.get(key, 0) + pct
    return {"threads": threads,
            "classes": sorted(((v, k) for k, v in classes.items()), reverse=True),
            "top": sorted(((v, *k) for k, v in symbols.items()), reverse=True)[:limit]}
