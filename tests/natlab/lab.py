#!/usr/bin/env python3
"""The NAT lab: an "internet", a relay with two public IPs, and two peers behind NATs of
chosen types, built from Linux network namespaces, veth pairs and nftables.

    from natlab import lab            # with tests/ on sys.path
    with lab.Lab(a="symmetric", b="port-restricted", delay_ms=25) as l:
        s = l.socket("a")             # a UDP socket that lives in peer A's namespace
        p = l.popen("relay", [relay_binary, "--listen", "203.0.113.10:4040"])

Everything the lab creates lives in namespaces whose names start with a per-run prefix
(`ptl-<pid>-<hex>-`), and is removed on exit, on an exception, on SIGINT/SIGTERM, and by
`cleanup_stale()` after a crash. The topology, the address plan and how each NAT type is
emulated are in docs/testing/natlab.md. Needs root; stdlib only.

CLI:  python3 tests/natlab/lab.py up --a symmetric --b port-restricted [--delay-ms 25 ...]
      python3 tests/natlab/lab.py cleanup [--all]
"""
import argparse
import atexit
import ctypes
import json
import os
import random
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

NAT_TYPES = ("none", "full-cone", "restricted", "port-restricted", "symmetric", "cgnat",
             "udp-blocked", "same-nat")
SIDES = ("a", "b")
PREFIX = "ptl-"

RELAY_IPS = ("203.0.113.10", "203.0.113.11")
RELAY_GW = "203.0.113.1"
# Per side: the WAN link between the internet router and the side's outermost box.
LINKS = {
    "a": {"net": "198.51.100.0/24", "inet": "198.51.100.1", "wan": "198.51.100.2"},
    "b": {"net": "192.0.2.0/24", "inet": "192.0.2.1", "wan": "192.0.2.2"},
}
LANS = {"a": "192.168.1", "b": "192.168.2"}
# cgnat: the subscriber link between the home NAT and the carrier NAT (RFC 6598 space).
CARRIER_LANS = {"a": "100.64.1", "b": "100.64.2"}

# IPv6 (Lab(ipv6=True) only), all in the documentation prefix 2001:db8::/32, every
# subnet a /64. Routed end to end: no NAT66; the NAT boxes only filter (see _nat6_rules).
RELAY_IPS6 = ("2001:db8:0:1::10", "2001:db8:0:1::11")
RELAY_GW6 = "2001:db8:0:1::1"
LINKS6 = {
    "a": {"inet": "2001:db8:1::1", "wan": "2001:db8:1::2"},
    "b": {"inet": "2001:db8:2::1", "wan": "2001:db8:2::2"},
}
LANS6 = {"a": "2001:db8:a::", "b": "2001:db8:b::"}
CARRIER_LANS6 = {"a": "2001:db8:ca::", "b": "2001:db8:cb::"}

# What each NAT type is made of: (mapping, filtering) of each NAT box, innermost first.
# eim = endpoint-independent mapping, apdm = address-and-port-dependent mapping;
# eif / adf / apdf = endpoint-independent / address-dependent / address-and-port-
# dependent filtering (RFC 4787 terms).
BOXES = {
    "none": [],
    "full-cone": [("eim", "eif")],
    "restricted": [("eim", "adf")],
    "port-restricted": [("eim", "apdf")],
    "symmetric": [("apdm", "apdf")],
    "cgnat": [("eim", "apdf"), ("apdm", "apdf")],
    "udp-blocked": [("eim", "apdf")],
    "same-nat": [("eim", "apdf")],
}

# How long an idle EIM mapping (and an ADF permission) lives; conntrack's own UDP
# timeouts (30 s unreplied, 120 s assured) govern the flows themselves.
MAPPING_TIMEOUT_S = 120
# The EIM external port is a keyed hash of the internal (address, port); see _nat_rules.
EIM_PORT_BASE = 20000
EIM_PORT_SPAN = 40000
# Delay-line NFQUEUE numbers in the internet router: (ingress from side, egress to side).
QUEUES = {"a": (1, 2), "b": (3, 4)}

COMMAND_TIMEOUT_S = 30
STOP_TIMEOUT_S = 5
READY_TIMEOUT_S = 10

CLONE_NEWNET = 0x40000000


class LabError(Exception):
    """The lab could not be built or a lab operation was misused; the message says why."""


def _sh(argv, *, input_text=None, check=True, timeout=COMMAND_TIMEOUT_S):
    try:
        r = subprocess.run(argv, input=input_text, capture_output=True, text=True,
                           timeout=timeout)
    except FileNotFoundError as e:
        raise LabError(f"{argv[0]} not found (scripts/install-deps.sh installs it)") from e
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout}s") from e
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def _netns_list():
    r = _sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _kill_namespace_processes(ns):
    """SIGTERM then SIGKILL every process still inside namespace `ns` (all started by a lab)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [int(p) for p in _sh(["ip", "netns", "pids", ns], check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            if not _sh(["ip", "netns", "pids", ns], check=False).stdout.split():
                return
            time.sleep(0.05)


def _delete_namespace(ns):
    _kill_namespace_processes(ns)
    _sh(["ip", "netns", "del", ns], check=False)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale(all_runs=False):
    """Removes the namespaces (and the processes inside them) of labs whose process is
    gone, e.g. after a crash or a SIGKILL; with all_runs, of every lab. Returns the names
    removed. Safe while other labs run: a live lab's namespaces are left alone."""
    removed = []
    for ns in _netns_list():
        if not ns.startswith(PREFIX):
            continue
        parts = ns[len(PREFIX):].split("-")
        try:
            owner = int(parts[0])
        except (ValueError, IndexError):
            continue  # not one of ours after all
        if all_runs or not _pid_alive(owner):
            _delete_namespace(ns)
            removed.append(ns)
    return removed


def available():
    """(True, "") when this machine can run the lab, else (False, reason)."""
    if os.geteuid() != 0:
        return False, "the NAT lab needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "conntrack", "iptables", "nsenter", "tc"):
        if shutil.which(tool) is None:
            return False, f"{tool} is not installed (scripts/install-deps.sh)"
    probe = f"{PREFIX}{os.getpid()}-probe"
    r = _sh(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        return False, f"cannot create a network namespace: {r.stderr.strip()}"
    try:
        r = _sh(["ip", "netns", "exec", probe, "nft", "add", "table", "ip", "probe"],
                check=False)
        if r.returncode != 0:
            return False, f"nftables unusable in a namespace: {r.stderr.strip()}"
    finally:
        _sh(["ip", "netns", "del", probe], check=False)
    return True, ""


def unittest_main():
    """The __main__ of a lab test file: exits 77 (ctest's skip code) with the reason when
    the lab cannot run here, else clears stale labs and runs the file's unittest tests."""
    import unittest

    ok, why = available()
    if not ok:
        print(f"natlab: skipped: {why}")
        sys.exit(77)
    cleanup_stale()
    unittest.main(module="__main__")


def default_delay_line():
    """The natlab_delay_line binary: $PEERTUN_NATLAB_DELAY_LINE, else the build dir."""
    path = os.environ.get("PEERTUN_NATLAB_DELAY_LINE", "")
    if path:
        return path
    build = os.environ.get("PEERTUN_BUILD_DIR", "")
    if build:
        candidate = os.path.join(build, "tests", "natlab", "natlab_delay_line")
        if os.path.exists(candidate):
            return candidate
    return ""


def _per_side(value, name):
    """A number for both WAN links, or a dict {'a': x, 'b': y} (missing sides get 0)."""
    if isinstance(value, dict):
        unknown = set(value) - set(SIDES)
        if unknown:
            raise LabError(f"{name}: unknown side(s) {sorted(unknown)}; sides are a and b")
        out = {s: value.get(s, 0) or 0 for s in SIDES}
    else:
        out = {s: value or 0 for s in SIDES}
    for s, v in out.items():
        if not isinstance(v, (int, float)) or v < 0:
            raise LabError(f"{name} for side {s} must be a number >= 0, not {v!r}")
    return out


# Live labs, for the signal handler and atexit. Reentrant: the SIGTERM handler runs in
# the main thread, possibly while that thread holds the lock.
_live = []
_live_lock = threading.RLock()
_saved_handlers = {}


def _on_sigterm(signum, _frame):
    # Tear every lab down, then die of the signal as if we had no handler: a test runner
    # that catches exceptions (unittest records SystemExit as an error and goes on) cannot
    # keep a process that was told to terminate alive.
    _atexit_teardown()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _atexit_teardown():
    with _live_lock:
        labs = list(_live)
    for lab in labs:
        lab.close()


atexit.register(_atexit_teardown)


class Lab:
    """A NAT lab. Use as a context manager; `close()` is idempotent.

    a, b: NAT types from NAT_TYPES for peer A and peer B (b defaults to a). `same-nat`
        puts both peers on one LAN behind one NAT (port-restricted, plus hairpinning when
        `hairpin` is true); then both a and b must be `same-nat`.
    delay_ms: delay added to each direction of a side's WAN link (so the RTT between a
        peer and the relay grows by 2 * delay_ms); a number or {'a': x, 'b': y}.
        Needs the natlab_delay_line binary (`delay_line`, default_delay_line()).
    loss_pct: chance in percent (integer, 0..100) that a packet is dropped, per direction
        and per WAN link; a number or a per-side dict.
    rate_mbit: optional token-bucket rate limit on each direction of a WAN link.
    ipv6: also route IPv6 (2001:db8::/32): the relay gets relay_ips6, each peer a global
        address (host_ip6) routed through its NAT boxes without translation; the home NAT
        filters inbound IPv6 statefully (full-cone: not at all). Off: IPv6 is disabled.
    """

    def __init__(self, a="port-restricted", b=None, *, hairpin=False, delay_ms=0, loss_pct=0,
                 rate_mbit=None, delay_line=None, ipv6=False):
        b = a if b is None else b
        for side, kind in (("a", a), ("b", b)):
            if kind not in NAT_TYPES:
                raise LabError(f"unknown NAT type {kind!r} for peer {side}; "
                               f"known: {', '.join(NAT_TYPES)}")
        if (a == "same-nat") != (b == "same-nat"):
            raise LabError("same-nat puts both peers behind one NAT: give it for both a and b")
        if hairpin and a != "same-nat":
            raise LabError("hairpin applies to same-nat only")
        self.types = {"a": a, "b": b}
        self.same_nat = a == "same-nat"
        self.hairpin = bool(hairpin)
        self.delay_ms = _per_side(delay_ms, "delay_ms")
        self.loss_pct = _per_side(loss_pct, "loss_pct")
        for s, v in self.loss_pct.items():
            if v != int(v) or v > 100:
                raise LabError(f"loss_pct for side {s} must be a whole percent 0..100")
        self.rate_mbit = _per_side(rate_mbit, "rate_mbit")
        self.delay_line = delay_line if delay_line is not None else default_delay_line()
        if any(self.delay_ms.values()):
            if not self.delay_line or not os.access(self.delay_line, os.X_OK):
                raise LabError("delay needs the natlab_delay_line binary: build the "
                               "natlab_delay_line target and pass delay_line= (--delay-line) "
                               "or set PEERTUN_NATLAB_DELAY_LINE")
        self.prefix = f"{PREFIX}{os.getpid()}-{secrets.token_hex(2)}-"
        self.relay_ips = RELAY_IPS
        self.relay_ip = RELAY_IPS[0]
        self.ipv6 = bool(ipv6)
        self.relay_ips6 = RELAY_IPS6 if self.ipv6 else ()
        self.relay_ip6 = RELAY_IPS6[0] if self.ipv6 else None
        self._host_ip6 = {}
        self._nodes = {}      # node -> {"ns": name, "addrs": {ifname: "ip/len"}}
        self._nats = {}       # node -> NAT box parameters (see _plan)
        self._side_nats = {}  # side -> [nat node, innermost first]
        self._host_ip = {}
        self._wan_ip = {}
        self._procs = []
        self._delay_procs = []
        self._built = False
        self._closed = False
        self._nat6_done = set()
        self._plan()

    # ----------------------------------------------------------------- plan
    def _plan(self):
        self._add_node("inet", router=True)
        self._add_node("relay")
        self._links = []  # (node, ifname, peer node, peer ifname)
        self._addrs = []  # (node, ifname, "ip/len")
        self._routes = []  # (node, "default" or prefix, via)
        self._link("inet", "to-relay", "relay", "eth0")
        self._addr("inet", "to-relay", RELAY_GW + "/24")
        for ip in RELAY_IPS:
            self._addr("relay", "eth0", ip + "/24")
        self._routes.append(("relay", "default", RELAY_GW))
        if self.ipv6:
            self._addr("inet", "to-relay", RELAY_GW6 + "/64")
            for ip in RELAY_IPS6:
                self._addr("relay", "eth0", ip + "/64")
            self._routes.append(("relay", "::/0", RELAY_GW6))
        if self.same_nat:
            self._plan_same_nat()
        else:
            for side in SIDES:
                self._plan_side(side)

    def _add_node(self, node, router=False):
        self._nodes[node] = {"ns": self.prefix + node, "router": router, "addrs": {}}

    def _link(self, n1, if1, n2, if2):
        self._links.append((n1, if1, n2, if2))

    def _addr(self, node, ifname, cidr):
        self._addrs.append((node, ifname, cidr))
        self._nodes[node]["addrs"].setdefault(ifname, []).append(cidr)

    def _plan_uplink(self, side, node, ifname):
        """Connects `node` (the side's outermost box) to the internet router."""
        link = LINKS[side]
        self._link("inet", "to-" + side, node, ifname)
        self._addr("inet", "to-" + side, link["inet"] + "/24")
        self._addr(node, ifname, link["wan"] + "/24")
        self._routes.append((node, "default", link["inet"]))
        self._wan_ip[side] = link["wan"]
        if self.ipv6:
            link6 = LINKS6[side]
            self._addr("inet", "to-" + side, link6["inet"] + "/64")
            self._addr(node, ifname, link6["wan"] + "/64")
            self._routes.append((node, "::/0", link6["inet"]))

    def _add_nat(self, node, mapping, filtering, wan_ip, lan_net, hairpin=False):
        self._add_node(node, router=True)
        self._nats[node] = {"mapping": mapping, "filtering": filtering, "wan_ip": wan_ip,
                            "lan_net": lan_net, "hairpin": hairpin,
                            "seed": random.getrandbits(32)}

    def _plan_side(self, side):
        kind = self.types[side]
        host = side
        self._add_node(host)
        boxes = BOXES[kind]
        if not boxes:
            self._plan_uplink(side, host, "eth0")
            self._host_ip[side] = LINKS[side]["wan"]
            if self.ipv6:
                self._host_ip6[side] = LINKS6[side]["wan"]
            self._side_nats[side] = []
            return
        lan = LANS[side]
        home = "nat-" + side
        if kind == "cgnat":
            carrier = "cgn-" + side
            sub = CARRIER_LANS[side]
            (hm, hf), (cm, cf) = boxes
            self._add_nat(home, hm, hf, sub + ".2", lan + ".0/24")
            self._add_nat(carrier, cm, cf, LINKS[side]["wan"], sub + ".0/24")
            self._link(carrier, "lan", home, "wan")
            self._addr(carrier, "lan", sub + ".1/24")
            self._addr(home, "wan", sub + ".2/24")
            self._routes.append((home, "default", sub + ".1"))
            self._plan_uplink(side, carrier, "wan")
            if self.ipv6:
                # The carrier routes IPv6 natively: no NAT, no filter.
                sub6 = CARRIER_LANS6[side]
                self._addr(carrier, "lan", sub6 + "1/64")
                self._addr(home, "wan", sub6 + "2/64")
                self._routes.append((home, "::/0", sub6 + "1"))
                self._routes.append((carrier, LANS6[side] + "/64", sub6 + "2"))
                self._routes.append(("inet", sub6 + "/64", LINKS6[side]["wan"]))
            self._side_nats[side] = [home, carrier]
        else:
            (m, f), = boxes
            self._add_nat(home, m, f, LINKS[side]["wan"], lan + ".0/24")
            self._plan_uplink(side, home, "wan")
            self._side_nats[side] = [home]
        self._host_ip[side] = lan + ".2"
        self._link(home, "lan", host, "eth0")
        self._addr(home, "lan", lan + ".1/24")
        self._addr(host, "eth0", lan + ".2/24")
        self._routes.append((host, "default", lan + ".1"))
        if self.ipv6:
            lan6 = LANS6[side]
            self._addr(home, "lan", lan6 + "1/64")
            self._addr(host, "eth0", lan6 + "2/64")
            self._routes.append((host, "::/0", lan6 + "1"))
            self._routes.append(("inet", lan6 + "/64", LINKS6[side]["wan"]))
            self._host_ip6[side] = lan6 + "2"

    def _plan_same_nat(self):
        lan = LANS["a"]
        (m, f), = BOXES["same-nat"]
        self._add_nat("nat", m, f, LINKS["a"]["wan"], lan + ".0/24", hairpin=self.hairpin)
        self._addr("nat", "lan", lan + ".1/24")
        for i, side in enumerate(SIDES):
            self._add_node(side)
            self._link("nat", "lan-" + side, side, "eth0")
            ip = f"{lan}.{2 + i}"
            self._addr(side, "eth0", ip + "/24")
            self._routes.append((side, "default", lan + ".1"))
            self._host_ip[side] = ip
            self._side_nats[side] = ["nat"]
            if self.ipv6:
                ip6 = f"{LANS6['a']}{2 + i}"
                self._addr(side, "eth0", ip6 + "/64")
                self._routes.append((side, "::/0", LANS6["a"] + "1"))
                self._host_ip6[side] = ip6
        if self.ipv6:
            self._addr("nat", "lan", LANS6["a"] + "1/64")
            self._routes.append(("inet", LANS6["a"] + "/64", LINKS6["a"]["wan"]))
        self._plan_uplink("a", "nat", "wan")
        self._wan_ip["b"] = self._wan_ip["a"]

    # ------------------------------------------------------------ accessors
    def ns(self, node):
        """The namespace name of `node` ('inet', 'relay', 'a', 'b', 'nat-a', 'cgn-b', 'nat')."""
        try:
            return self._nodes[node]["ns"]
        except KeyError:
            raise LabError(f"no node {node!r} in this lab; nodes: {', '.join(self.nodes)}")

    @property
    def nodes(self):
        return list(self._nodes)

    def host_ip(self, side):
        """Peer `side`'s own address (its LAN address, or its public one for `none`)."""
        return self._host_ip[self._side(side)]

    def host_ip6(self, side):
        """Peer `side`'s global IPv6 address (on its LAN, or on the WAN link for `none`);
        the internet sees it unchanged (no NAT66). LabError unless the lab has ipv6=True."""
        side = self._side(side)
        if not self.ipv6:
            raise LabError("this lab has no IPv6: make it with ipv6=True (--ipv6)")
        return self._host_ip6[side]

    def wan_ip(self, side):
        """The public address the internet sees for peer `side` (its outermost NAT's WAN)."""
        return self._wan_ip[self._side(side)]

    def nat_type(self, side):
        return self.types[self._side(side)]

    def nat_nodes(self, side):
        """The NAT boxes in front of peer `side`, innermost first (empty for `none`)."""
        return list(self._side_nats[self._side(side)])

    def _side(self, side):
        if side not in SIDES:
            raise LabError(f"unknown side {side!r}; sides are a and b")
        return side

    def _link_side(self, side):
        # Both peers of same-nat share the one WAN link, which is link a.
        return "a" if self.same_nat else self._side(side)

    def describe(self):
        """A dict of everything a user or a script needs: namespaces and addresses."""
        return {
            "prefix": self.prefix,
            "types": dict(self.types),
            "hairpin": self.hairpin,
            "delay_ms": self.delay_ms, "loss_pct": self.loss_pct, "rate_mbit": self.rate_mbit,
            "ipv6": self.ipv6,
            "relay": {"ns": self.ns("relay"), "ips": list(self.relay_ips),
                      "ips6": list(self.relay_ips6)},
            "peers": {s: {"ns": self.ns(s), "ip": self.host_ip(s), "public_ip": self.wan_ip(s),
                          "ip6": self._host_ip6.get(s),
                          "nat": self.types[s], "nat_ns": [self.ns(n) for n in self.nat_nodes(s)]}
                      for s in SIDES},
            "namespaces": {n: v["ns"] for n, v in self._nodes.items()},
            "addresses": {n: v["addrs"] for n, v in self._nodes.items()},
        }

    # ------------------------------------------------------------- build
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        if self._closed:
            raise LabError("this lab is closed; make a new Lab")
        if self._built:
            return self
        cleanup_stale()
        with _live_lock:
            # SIGTERM tears the labs down, unless the program handles SIGTERM itself (the
            # CLI does: it turns it into KeyboardInterrupt, so `with` unwinds).
            if (not _live and threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
                _saved_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _on_sigterm)
            _live.append(self)
        self._built = True
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _ip_batch(self, node, lines):
        if lines:
            _sh(["ip", "-n", self.ns(node), "-batch", "-"], input_text="\n".join(lines) + "\n")

    def _exec(self, node, argv, **kw):
        return _sh(self.wrap(node, argv), **kw)

    def _nft(self, node, ruleset):
        self._exec(node, ["nft", "-f", "-"], input_text=ruleset)

    def _build(self):
        for node in self._nodes:
            _sh(["ip", "netns", "add", self.ns(node)])
            if self.ipv6:
                # Before any interface exists, so that every one inherits it: no duplicate
                # address detection (addresses are usable at once), no autoconfiguration.
                self._exec(node, ["sysctl", "-q", "-w"] + [
                    f"net.ipv6.conf.{c}.{k}=0" for c in ("all", "default")
                    for k in ("accept_dad", "accept_ra", "autoconf")])
        for n1, if1, n2, if2 in self._links:
            # Both ends are created inside their namespaces: nothing in the root namespace,
            # so concurrent labs cannot collide on interface names.
            _sh(["ip", "-n", self.ns(n1), "link", "add", if1, "type", "veth", "peer", "name",
                 if2, "netns", self.ns(n2)])
        if self.same_nat:
            self._ip_batch("nat", ["link add lan type bridge",
                                   "link set lan-a master lan", "link set lan-b master lan"])
        for node, spec in self._nodes.items():
            if self.ipv6:
                sysctls = []
            else:
                sysctls = ["net.ipv6.conf.all.disable_ipv6=1",
                           "net.ipv6.conf.default.disable_ipv6=1"]
            if spec["router"]:
                sysctls.append("net.ipv4.ip_forward=1")
                if self.ipv6:
                    sysctls.append("net.ipv6.conf.all.forwarding=1")
            if node == "nat":
                # Bridged LAN traffic must not enter the IP hooks (and conntrack) of the NAT.
                sysctls.append("net.bridge.bridge-nf-call-iptables=0")
                if self.ipv6:
                    sysctls.append("net.bridge.bridge-nf-call-ip6tables=0")
            if sysctls:
                self._exec(node, ["sysctl", "-q", "-w"] + sysctls)
        per_node = {n: ["link set lo up"] for n in self._nodes}
        for n1, if1, n2, if2 in self._links:
            per_node[n1].append(f"link set {if1} up")
            per_node[n2].append(f"link set {if2} up")
        if self.same_nat:
            per_node["nat"].append("link set lan up")
        for node, ifname, cidr in self._addrs:
            nodad = " nodad" if ":" in cidr else ""
            per_node[node].append(f"addr add {cidr} dev {ifname}{nodad}")
        for node, dst, via in self._routes:
            per_node[node].append(f"route add {dst} via {via}")
        for node, lines in per_node.items():
            self._ip_batch(node, lines)
        for node in self._nats:
            self._nft(node, self._nat_rules(node))
        if self.ipv6:
            for side in SIDES:
                nats = self._side_nats[side]
                if nats and nats[0] not in self._nat6_done:
                    # The home NAT filters IPv6; a carrier NAT (cgnat) passes it untouched.
                    self._nat6_done.add(nats[0])
                    self._nft(nats[0], self._nat6_rules(nats[0]))
        self._nft("inet", self._inet_rules())
        for side in SIDES:
            if self.types[side] == "udp-blocked":
                self.block_udp(side)
        for side in self._link_sides():
            if self.loss_pct[side]:
                self.set_loss(side, int(self.loss_pct[side]))
            if self.delay_ms[side]:
                self._start_delay_line(side)
            if self.rate_mbit[side]:
                self._set_rate(side, self.rate_mbit[side])
        if self.ipv6:
            self._wait_ipv6_ready()

    def _wait_ipv6_ready(self):
        """Readiness: every IPv6 address in every namespace has left the tentative state
        (immediate with DAD off; checked, not assumed)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        pending = list(self._nodes)
        while pending:
            pending = [n for n in pending if _sh(
                ["ip", "-n", self.ns(n), "-6", "addr", "show", "tentative"]).stdout.strip()]
            if not pending:
                return
            if time.monotonic() > deadline:
                raise LabError(f"IPv6 addresses still tentative in {', '.join(pending)}")
            time.sleep(0.02)

    def _link_sides(self):
        return ["a"] if self.same_nat else list(SIDES)

    # ------------------------------------------------------------ rules
    def _nat_rules(self, node):
        """The nftables ruleset of one NAT box (table ip natlab), see docs/testing/natlab.md."""
        nat = self._nats[node]
        wan, seed = nat["wan_ip"], nat["seed"]
        eim = nat["mapping"] == "eim"
        filtering = nat["filtering"]
        hairpin = nat["hairpin"]
        t = MAPPING_TIMEOUT_S
        # EIM: the external port is a keyed hash of the internal address and port only, so
        # every destination sees the same mapping; a new seed (rebind) moves it. The hash
        # register is read as a big-endian port, so mapped ports spread over 78..65535.
        eim_port = (f"jhash ip saddr . udp sport mod {EIM_PORT_SPAN} seed {seed:#x} "
                    f"offset {EIM_PORT_BASE}")
        sets, pre, post, track = [], [], [], []
        if eim:
            sets.append(f"map eim {{ type inet_service : ipv4_addr . inet_service; "
                        f"flags dynamic,timeout; timeout {t}s; size 65536; }}")
            # Remember external port -> internal endpoint, after SNAT (priority srcnat + 10),
            # from packets of outbound flows only: a reply to an admitted inbound flow has
            # the remote endpoint as its original source.
            track.append(f'oifname "wan" meta l4proto udp ct direction original '
                         f'update @eim {{ udp sport timeout {t}s : '
                         f'ct original ip saddr . ct original proto-src }}')
            post.append(f'oifname "wan" meta l4proto udp snat ip to {wan} : {eim_port}')
            if filtering == "eif":
                pre.append('iifname "wan" meta l4proto udp dnat ip to udp dport map @eim')
            elif filtering == "adf":
                sets.append(f"set adf {{ type inet_service . ipv4_addr; flags dynamic,timeout; "
                            f"timeout {t}s; size 65536; }}")
                track.append(f'oifname "wan" meta l4proto udp '
                             f'update @adf {{ udp sport . ip daddr timeout {t}s }}')
                pre.append('iifname "wan" meta l4proto udp udp dport . ip saddr @adf '
                           'dnat ip to udp dport map @eim')
            # apdf: no inbound rule at all; only conntrack's replies of outbound flows pass.
            if hairpin:
                pre.append(f'iifname "lan" ip daddr {wan} meta l4proto udp '
                           f'dnat ip to udp dport map @eim')
                # The hairpinned packet leaves with the sender's own public mapping as source.
                post.append(f'iifname "lan" oifname "lan" ct status dnat meta l4proto udp '
                            f'snat ip to {wan} : {eim_port}')
        else:
            post.append(f'oifname "wan" meta l4proto udp snat ip to {wan} : 1024-65535 '
                        f'fully-random')
        post.append(f'oifname "wan" snat ip to {wan}')
        input_rules = [
            # Nothing listens on a NAT box: unsolicited packets vanish silently, before
            # conntrack confirms an entry for them (which would take their port pair).
            'iifname "wan" ct state new drop',
        ]
        if not hairpin:
            input_rules.append(f'iifname "lan" ip daddr {wan} meta l4proto udp drop')

        def block(lines):
            return "\n    ".join(lines)

        return f"""
table ip natlab {{
  {block(sets)}
  chain prerouting {{
    type nat hook prerouting priority dstnat; policy accept;
    {block(pre)}
  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    {block(post)}
  }}
  chain track {{
    type filter hook postrouting priority srcnat + 10; policy accept;
    {block(track)}
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" accept
    iifname "wan" ct status dnat accept
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    {block(input_rules)}
  }}
}}
"""

    def _nat6_rules(self, node):
        """The IPv6 filter of a home NAT box (table ip6 natlab): routing, no NAT66; inbound
        only replies to flows the inside started (conntrack), or anything for full-cone."""
        nat = self._nats[node]
        inbound = ['iifname "wan" accept'] if nat["filtering"] == "eif" else []
        inbound_lines = "\n    ".join(inbound)
        return f"""
table ip6 natlab {{
  chain forward {{
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" accept
    {inbound_lines}
  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    iifname "wan" meta l4proto {{ tcp, udp }} ct state new drop
  }}
}}
"""

    def _inet_rules(self):
        chains = []
        jumps = []
        for side in self._link_sides():
            chains.append(f"chain block_{side} {{ }}")
            chains.append(f"chain loss_{side} {{ }}")
            jumps.append(f"jump block_{side}")
            jumps.append(f"jump loss_{side}")
        body = "\n  ".join(chains)
        jump_lines = "\n    ".join(jumps)
        # Stateless on purpose: the internet router tracks no connections, so queueing
        # (delay) and dropping here never interacts with NAT state.
        return f"""
table {self._inet_family} natlab {{
  {body}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    {jump_lines}
  }}
}}
"""

    @property
    def _inet_family(self):
        # The internet router's table: `inet` (IPv4 and IPv6) when the lab routes IPv6, so
        # that UDP blocking and loss apply to both.
        return "inet" if self.ipv6 else "ip"

    # --------------------------------------------------------- impairments
    def _replace_chain(self, node, chain, rules):
        fam = self._inet_family if node == "inet" else "ip"
        text = f"flush chain {fam} natlab {chain}\n" + "".join(
            f"add rule {fam} natlab {chain} {r}\n" for r in rules)
        self._nft(node, text)

    def block_udp(self, side):
        """Drops every UDP packet on side's WAN link, both ways (TCP and ICMP still pass)."""
        link = self._link_side(side)
        self._replace_chain("inet", f"block_{link}", [
            f'iifname "to-{link}" meta l4proto udp drop',
            f'oifname "to-{link}" meta l4proto udp drop'])

    def unblock_udp(self, side):
        link = self._link_side(side)
        self._replace_chain("inet", f"block_{link}", [])

    def set_loss(self, side, pct):
        """Drops `pct` percent (whole number) of packets in each direction of side's link."""
        if not isinstance(pct, int) or not 0 <= pct <= 100:
            raise LabError(f"loss must be a whole percent 0..100, not {pct!r}")
        link = self._link_side(side)
        rules = []
        if pct:
            rules = [f'iifname "to-{link}" numgen random mod 100 < {pct} drop',
                     f'oifname "to-{link}" numgen random mod 100 < {pct} drop']
        self._replace_chain("inet", f"loss_{link}", rules)
        self.loss_pct[link] = pct

    def _start_delay_line(self, side):
        q_in, q_out = QUEUES[side]
        argv = [self.delay_line, "--delay-ms", str(int(self.delay_ms[side])),
                "--queue", str(q_in), "--queue", str(q_out)]
        # stderr is inherited (its errors belong in the test's output) rather than a pipe
        # nobody reads, which could fill up and stall the delay line.
        proc = subprocess.Popen(self.wrap("inet", argv), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, text=True)
        self._delay_procs.append(proc)
        ready = _read_line_with_deadline(proc, READY_TIMEOUT_S)
        if not ready.startswith("ready"):
            try:
                status = proc.wait(1)
            except subprocess.TimeoutExpired:
                status = "still running"
            raise LabError(f"natlab_delay_line did not start (exit status {status}, "
                           f"output {ready!r}); its error is on stderr above")
        # Packets are queued only once the delay line listens: without a listener the
        # kernel would drop them (no --queue-bypass: a dead delay line must be visible).
        tools = ["iptables", "ip6tables"] if self.ipv6 else ["iptables"]
        for chain, flag, ifname, q in (("PREROUTING", "-i", f"to-{side}", q_in),
                                       ("POSTROUTING", "-o", f"to-{side}", q_out)):
            for tool in tools:
                self._exec("inet", [tool, "-t", "mangle", "-A", chain, flag, ifname,
                                    "-j", "NFQUEUE", "--queue-num", str(q)])

    def _set_rate(self, side, mbit):
        # Token bucket on both ends' egress: the internet router towards the side, and the
        # side's outermost box (or host) towards the internet.
        outer = self._outer_node(side)
        burst = max(int(mbit * 1e6 / 8 / 100), 16 * 1024)  # >= one 10 ms tick of data
        for node, ifname in (("inet", f"to-{side}"), (outer, "wan" if outer != side else "eth0")):
            self._exec(node, ["tc", "qdisc", "replace", "dev", ifname, "root", "tbf", "rate",
                              f"{mbit}mbit", "burst", str(burst), "latency", "200ms"])

    def _outer_node(self, side):
        nats = self._side_nats[side]
        return nats[-1] if nats else side

    # ------------------------------------------------------- NAT run-time
    def flush_conntrack(self, side):
        """Forgets every flow on the NATs in front of `side` (mappings of a symmetric NAT
        are re-drawn on the next packet; EIM mappings keep their port, see rebind)."""
        for node in self._side_nats[self._side(side)]:
            self._exec(node, ["conntrack", "-F"], check=False)

    def rebind(self, side):
        """NAT rebinding: the outermost NAT in front of `side` drops all its mappings and
        gives new external ports from now on (a new hash seed for EIM; fresh random ports
        for symmetric). Raises LabError for a peer with no NAT."""
        nats = self._side_nats[self._side(side)]
        if not nats:
            raise LabError(f"peer {side} has no NAT (type none): nothing to rebind")
        node = nats[-1]
        self._nats[node]["seed"] = random.getrandbits(32)
        # One transaction: the old table (rules, mapping and permission sets) goes, the
        # new one comes; then conntrack forgets the flows bound to the old ports.
        self._nft(node, "table ip natlab {}\ndelete table ip natlab\n" + self._nat_rules(node))
        for n in nats:
            self._exec(n, ["conntrack", "-F"], check=False)

    # ------------------------------------------------------------ processes
    def wrap(self, node, argv):
        """argv, prefixed so that it runs in `node`'s network namespace. Only the network
        namespace changes (nsenter --net, not `ip netns exec`, which also unshares the
        mount namespace): a FUSE mount made inside stays visible to the test. Processes
        started this way by hand are still stopped at teardown (every process left in a
        lab namespace is)."""
        return ["nsenter", f"--net=/run/netns/{self.ns(node)}", "--"] + list(argv)

    def popen(self, node, argv, **kwargs):
        """subprocess.Popen of argv inside `node`'s namespace; stopped at teardown."""
        if self._closed:
            raise LabError("this lab is closed")
        proc = subprocess.Popen(self.wrap(node, argv), **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, node, argv, *, check=True, timeout=60, **kwargs):
        """subprocess.run of argv inside `node`'s namespace (captures text output)."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        return subprocess.run(self.wrap(node, argv),
                              check=check, timeout=timeout, **kwargs)

    def socket(self, node, type=socket.SOCK_DGRAM, family=socket.AF_INET):
        """A socket created inside `node`'s namespace, usable from this process. The
        namespace is entered by a short-lived thread (setns affects one thread only)."""
        path = f"/run/netns/{self.ns(node)}"
        result = {}

        def make():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(path, os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({path}): {os.strerror(err)}")
                finally:
                    os.close(fd)
                result["sock"] = socket.socket(family, type)
            except BaseException as e:  # handed to the caller's thread below
                result["error"] = e

        t = threading.Thread(target=make, name="natlab-setns")
        t.start()
        t.join(READY_TIMEOUT_S)
        if "error" in result:
            raise LabError(f"cannot open a socket in {node}: {result['error']}")
        if "sock" not in result:
            raise LabError(f"opening a socket in {node} timed out")
        return result["sock"]

    # ------------------------------------------------------------- teardown
    def close(self):
        """Stops every process the lab started and removes its namespaces. Idempotent;
        SIGINT/SIGTERM are held back until it is done."""
        if self._closed:
            return
        self._closed = True
        # Signal masks and handlers belong to the main thread.
        blocked = threading.current_thread() is threading.main_thread()
        if blocked:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            for proc in self._procs + self._delay_procs:
                _stop(proc)
            if self._built:
                for node in self._nodes:
                    ns = self.ns(node)
                    if ns in _netns_list():
                        _delete_namespace(ns)
        finally:
            with _live_lock:
                if self in _live:
                    _live.remove(self)
                if not _live and signal.SIGTERM in _saved_handlers and blocked:
                    signal.signal(signal.SIGTERM, _saved_handlers.pop(signal.SIGTERM))
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None and not f.closed:
            f.close()


def _read_line_with_deadline(proc, timeout):
    """The first stdout line of proc, or "" when it exits or the time is up."""
    deadline = time.monotonic() + timeout
    buf = ""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(fd, 4096).decode(errors="replace")
        if not chunk:
            break
        buf += chunk
        if "\n" in buf:
            return buf.split("\n", 1)[0]
    return buf


# ------------------------------------------------------------------ CLI
def _print_human(lab):
    d = lab.describe()
    print(f"NAT lab {lab.prefix.rstrip('-')} is up: a={d['types']['a']} b={d['types']['b']}"
          + (" (hairpin)" if lab.hairpin else ""))
    print(f"  relay  ns {d['relay']['ns']:<24} {', '.join(d['relay']['ips'] + d['relay']['ips6'])}")
    for s in SIDES:
        p = d["peers"][s]
        via = " -> ".join(p["nat_ns"]) or "no NAT"
        ip6 = f", {p['ip6']}" if p["ip6"] else ""
        print(f"  {s}      ns {p['ns']:<24} {p['ip']}{ip6} (public {p['public_ip']}, {p['nat']}; "
              f"via {via})")
    for s in lab._link_sides():
        if lab.delay_ms[s] or lab.loss_pct[s] or lab.rate_mbit[s]:
            print(f"  link {s}: delay {lab.delay_ms[s]} ms each way, loss {lab.loss_pct[s]}%"
                  + (f", rate {lab.rate_mbit[s]} Mbit/s" if lab.rate_mbit[s] else ""))
    print(f"run a command inside:  ip netns exec {lab.ns('a')} <command>   "
          f"(or nsenter --net=/run/netns/{lab.ns('a')} -- <command>)")
    print("Ctrl-C (or SIGTERM) tears the lab down.")


def _raise_keyboard_interrupt(_signum, _frame):
    raise KeyboardInterrupt()


def main(argv=None):
    ap = argparse.ArgumentParser(prog="lab.py", description="peertun NAT lab")
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build a lab and keep it until Ctrl-C")
    up.add_argument("--a", default="port-restricted", choices=NAT_TYPES)
    up.add_argument("--b", default=None, choices=NAT_TYPES, help="default: the same as --a")
    up.add_argument("--hairpin", action="store_true", help="same-nat: NAT hairpins")
    up.add_argument("--delay-ms", type=int, default=0, help="per direction, per WAN link")
    up.add_argument("--loss", type=int, default=0, help="percent, per direction, per WAN link")
    up.add_argument("--rate-mbit", type=float, default=None)
    up.add_argument("--delay-line", default=None, help="path to natlab_delay_line")
    up.add_argument("--ipv6", action="store_true",
                    help="also route IPv6 (2001:db8::/32, no NAT66, stateful filtering)")
    up.add_argument("--json", action="store_true", help="print the layout as one JSON line")
    up.add_argument("--duration", type=float, default=None,
                    help="tear down after this many seconds (default: wait for a signal)")
    cl = sub.add_parser("cleanup", help="remove labs left behind by dead runs")
    cl.add_argument("--all", action="store_true", help="also labs of live runs")
    args = ap.parse_args(argv)

    if args.cmd == "cleanup":
        if os.geteuid() != 0:
            print("lab.py: cleanup needs root", file=sys.stderr)
            return 1
        removed = cleanup_stale(all_runs=args.all)
        names = (": " + " ".join(removed)) if removed else ""
        print(f"removed {len(removed)} namespace(s){names}")
        return 0

    ok, why = available()
    if not ok:
        print(f"lab.py: {why}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with Lab(args.a, args.b, hairpin=args.hairpin, delay_ms=args.delay_ms, loss_pct=args.loss,
                 rate_mbit=args.rate_mbit, delay_line=args.delay_line, ipv6=args.ipv6) as lab:
            if args.json:
                print(json.dumps(lab.describe()), flush=True)
            else:
                _print_human(lab)
                sys.stdout.flush()
            deadline = None if args.duration is None else time.monotonic() + args.duration
            # Until a signal (or --duration): the lab is for a person or a script to use.
            while deadline is None or time.monotonic() < deadline:
                left = 1.0 if deadline is None else deadline - time.monotonic()
                time.sleep(min(1.0, max(0.0, left)))
    except LabError as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    print("lab torn down", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
