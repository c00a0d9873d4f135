#!/usr/bin/python3
"""make bench-fleet: fleet propagation, one etcd and N VMs (network namespaces), each with its own
fwenforcer-etcd-watch and `fwenforcerd run` (docs/benchmarks.md, "Fleet propagation").

A round replaces members of the AMQP group every VM's rules reference (one etcd put per member,
the same key with a new address) and measures, per VM, the time from just before the first write
until that VM's kernel holds every new element (its nf_tables NEWSETELEM notification), and the CPU
the round cost: etcd's, the watchers' (with the etcdctl and `fwenforcerd check` they run), the
daemons', and the whole machine's. The watchers' --trace lines give each stage of the way.

  sudo bench/fleet/fleet.py [--vms 10,30,100] [--rounds 5] [--output bench] [--quick]

Needs root (namespaces), etcd and etcdctl, and a built fwenforcerd (--fwenforcerd).
"""

import argparse
import csv
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleet_netlink import Listener  # noqa: E402
from fleet_setup import GROUP, MEMBERS, PREFIX, SET, WATCHER, Fleet, machine_busy, member_address  # noqa: E402

# The watcher's --trace stages, in order; "kernel" (the daemon's part) follows the rename. The
# directory's fsync after it ("installed") runs while the daemon already reads the new file.
STAGES = ["event", "quiet", "read", "written", "checked", "renamed"]
STAGE_NAMES = {"event": "put → watcher woken", "quiet": "debounce", "read": "etcdctl get (or the events applied)",
               "written": "render + write + fsync", "checked": "fwenforcerd check",
               "renamed": "rename", "kernel": "renamed → kernel (daemon)"}


def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def traces(fleet, i, revision):
    """The stage times of VM i's first install at or after `revision`."""
    with open(fleet.watcher_log(i), errors="replace") as f:
        for line in f:
            m = re.search(r"trace revision=(\d+) (.*)", line)
            if m and int(m.group(1)) >= revision:
                return {k: float(v) for k, v in (pair.split("=") for pair in m.group(2).split())}
    return {}


def installs(fleet, i):
    with open(fleet.watcher_log(i), errors="replace") as f:
        return sum(1 for line in f if "fwenforcer-etcd-watch: installed " in line)


def round_of(fleet, listener, members, settle):
    """Replaces `members` members at once; returns the round's figures."""
    new = [member_address(m, fleet.generation) for m in members]
    listener.expect([(SET, socket.inet_aton(a)) for a in new])
    before_installs = [installs(fleet, i) for i in range(fleet.vms)]
    cpu0, busy0, wall0 = fleet.cpu(), machine_busy(), time.monotonic()
    # One writer per member, as independent provisioning replacing VMs at the same moment: each
    # thread waits for the start, then sends its put.
    go, revisions, writers = threading.Event(), {}, []
    for m, a in zip(members, new):
        def write(m=m, a=a):
            go.wait()
            revisions[m] = fleet.put(f"{PREFIX}/members/{GROUP}/{GROUP.lower()}-{m + 1}", a)
        writers.append(threading.Thread(target=write))
        writers[-1].start()
    t0 = time.monotonic()
    go.set()
    for w in writers:
        w.join()
    t_written = time.monotonic()
    if len(revisions) != len(members):
        raise RuntimeError("an etcd put failed")
    deadline = t0 + 60
    while not listener.done() and time.monotonic() < deadline:
        time.sleep(0.002)
    t_done = time.monotonic()
    time.sleep(settle)  # what the round set off and is still running (fsyncs, the daemons' wrap-up)
    cpu1, busy1, wall1 = fleet.cpu(), machine_busy(), time.monotonic()
    fleet.generation += 1
    arrived, missing = listener.arrivals()
    if any(missing.values()):
        late = {i: len(p) for i, p in missing.items() if p}
        i = next(iter(late))
        listed = fleet.run(["ip", "netns", "exec", fleet.namespaces[i], "nft", "list", "set", "inet", "fwenforcer", SET])
        raise RuntimeError(f"not seen in the kernel after 60 s (VM: elements missing): {late}; expected {new}; "
                           f"listener overruns {listener.overruns}; VM {i}: {listed}\nwatcher: "
                           f"{fleet.tail(fleet.watcher_log(i), 1500)}\ndaemon: {fleet.tail(f'{fleet.dir}/vm-{i}/daemon.log', 1500)}")
    latencies = [max(a.values()) - t0 for _, a in sorted(arrived.items())]
    stages = []
    for i in range(fleet.vms):
        t = traces(fleet, i, min(revisions.values()))
        t["kernel"] = max(arrived[i].values())
        t["put"] = t0
        stages.append(t)
    hz = os.sysconf("SC_CLK_TCK")
    return {"latencies": latencies, "stages": stages, "last": t_done - t0, "writes": t_written - t0,
            "cpu": {k: cpu1[k] - cpu0[k] for k in cpu0},
            "machine": (busy1[0] - busy0[0]) / hz, "window": wall1 - wall0,
            "installs": [installs(fleet, i) - b for i, b in enumerate(before_installs)]}


def kernel_holds(fleet, wanted):
    """Cross-check outside the timing: `nft list set` in every namespace shows the new members."""
    for ns in fleet.namespaces:
        out = fleet.run(["ip", "netns", "exec", ns, "nft", "list", "set", "inet", "fwenforcer", SET])
        missing = [a for a in wanted if not re.search(rf"\b{re.escape(a)}\b", out)]
        if missing:
            raise RuntimeError(f"{ns}: nft list set {SET} lacks {missing}: {out}")


def summary(vms, case, rounds):
    """One result row from a size's rounds."""
    lat = [x * 1000 for r in rounds for x in r["latencies"]]
    row = {"vms": vms, "case": case, "rounds": len(rounds), "samples": len(lat),
           "median_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat),
           "last_vm_median_ms": percentile([r["last"] * 1000 for r in rounds], 50),
           "writes_ms": max(r["writes"] for r in rounds) * 1000}
    for k in ("etcd", "watchers", "daemons"):
        row[f"{k}_cpu_ms"] = sum(r["cpu"][k] for r in rounds) / len(rounds) * 1000
    row["machine_cpu_ms"] = sum(r["machine"] for r in rounds) / len(rounds) * 1000
    row["window_ms"] = sum(r["window"] for r in rounds) / len(rounds) * 1000
    row["installs_per_vm"] = sum(sum(r["installs"]) for r in rounds) / len(rounds) / vms
    previous = "put"
    for stage in STAGES + ["kernel"]:
        spans = [(s[stage] - s[previous]) * 1000 for r in rounds for s in r["stages"] if stage in s and previous in s]
        row[f"{stage}_median_ms"] = percentile(spans, 50) if spans else None
        row[f"{stage}_max_ms"] = max(spans) if spans else None
        if spans:
            previous = stage
    return row


def write(rows, output, load, command):
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "fleet-results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: "–" if v is None else (f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}")  # noqa: E731
    lines = ["# Fleet propagation", "", f"`{command}`; load average before each size: {load}.",
             "Times from just before the first etcd write until the VM's kernel holds every new element",
             "(its NEWSETELEM notification); CPU per round (ms), etcd / watchers with their etcdctl and",
             "`fwenforcerd check` / daemons / the whole machine over the round and 1 s after.", "",
             "| VMs | replaced | samples | puts took ms | median ms | p99 ms | max ms | etcd CPU | watchers CPU | daemons CPU | machine CPU (window ms) | installs/VM |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['vms']} | {r['case']} | {r['samples']} | {fmt(r['writes_ms'])} | {fmt(r['median_ms'])} | "
                     f"{fmt(r['p99_ms'])} | {fmt(r['max_ms'])} | {fmt(r['etcd_cpu_ms'])} | {fmt(r['watchers_cpu_ms'])} | "
                     f"{fmt(r['daemons_cpu_ms'])} | {fmt(r['machine_cpu_ms'])} ({fmt(r['window_ms'])}) | {r['installs_per_vm']:.1f} |")
    lines += ["", "Where the time goes (median per VM, ms; max in brackets): each stage from the one before.", "",
              "| VMs | replaced | " + " | ".join(STAGE_NAMES[s] for s in STAGES + ["kernel"]) + " |",
              "|---:|---|" + "---:|" * (len(STAGES) + 1)]
    for r in rows:
        lines.append(f"| {r['vms']} | {r['case']} | " + " | ".join(
            f"{fmt(r[f'{s}_median_ms'])} ({fmt(r[f'{s}_max_ms'])})" for s in STAGES + ["kernel"]) + " |")
    with open(os.path.join(output, "fleet-results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vms", default="10,30,100", help="fleet sizes, comma-separated (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of each case per size (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="one round of each case (the smoke test: --vms 3 --quick)")
    p.add_argument("--fwenforcerd", required=True, help="the fwenforcerd binary the daemons and watchers run")
    p.add_argument("--watcher", default=WATCHER, help="fwenforcer-etcd-watch to run (default: the repository's)")
    p.add_argument("--watcher-debounce", type=float, help="the watchers' --debounce, seconds (default: theirs)")
    p.add_argument("--daemon-debounce-ms", type=int, help="the daemons' --debounce-ms (default: theirs)")
    p.add_argument("--etcd", default="etcd")
    p.add_argument("--etcdctl", default="etcdctl")
    p.add_argument("--ns-prefix", default="fwe-fleet", help="namespace names: PREFIX-PID-N (default: %(default)s)")
    p.add_argument("--output", default="bench", help="directory for fleet-results.md and .csv (default: %(default)s)")
    args = p.parse_args()
    rounds = 1 if args.quick else args.rounds
    # ^C, SIGTERM and SIGHUP end the run: the finally blocks stop everything and clean up, and
    # a second signal does not cut that short.
    def stop(*_):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        sys.exit(130)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, stop)
    # Unblocked explicitly: a parent (a test runner) may have left them blocked in the inherited
    # mask, and the processes started here inherit it.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    rows, loads = [], []
    fwenforcerd = os.path.abspath(args.fwenforcerd)
    for vms in [int(v) for v in args.vms.split(",")]:
        with open("/proc/loadavg") as f:
            loads.append(f"{vms} VMs: {' '.join(f.read().split()[:3])}")
        print(f"fleet: {vms} VMs: starting", file=sys.stderr, flush=True)
        fleet = Fleet(vms, fwenforcerd, os.path.abspath(args.watcher), args.etcd, args.etcdctl, args.ns_prefix,
                      args.watcher_debounce, args.daemon_debounce_ms)
        listener = None
        try:
            started = time.monotonic()
            fleet.start_vms()
            listener = Listener(fleet.namespaces)
            print(f"fleet: {vms} VMs ready in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
            time.sleep(0.5)
            for case, members in (("1 member", [0]), (f"{MEMBERS} members", list(range(MEMBERS)))):
                results = []
                for _ in range(rounds):
                    results.append(round_of(fleet, listener, members, settle=1.0))
                kernel_holds(fleet, [member_address(m, fleet.generation - 1) for m in members])
                row = summary(vms, case, results)
                print(f"fleet: {vms} VMs, {case}: median {row['median_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, "
                      f"max {row['max_ms']:.0f} ms", file=sys.stderr, flush=True)
                rows.append(row)
        finally:
            if listener:
                listener.close()
            fleet.close()
    command = "bench/fleet/fleet.py " + " ".join(os.path.basename(a) if a.startswith("/") else a for a in sys.argv[1:])
    print(write(rows, args.output, "; ".join(loads), command))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
