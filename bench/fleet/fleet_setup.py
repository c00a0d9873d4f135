"""The fleet under test: one etcd, and per VM a network namespace, a watcher and a daemon.

etcd and the watchers run in the root namespace and talk over its loopback: they program no
netfilter, and on a real VM the watcher's traffic to etcd leaves over the VM's own interface, which
a namespace on this host would only replace by a veth hop. Each daemon runs inside its VM's
namespace (`ip netns exec`), where one end of a veth pair (both ends inside) carries the VM's address so `roles = "auto"`
finds its role, and only there is netfilter programmed. Every process is started in a session of
its own and stopped by its process group id; `close()` stops them all, deletes the namespaces and
the scratch directory, whatever failed before.
"""

import base64
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

PREFIX = "/fwenforcer/fleet"
SHARED = """[host]
roles = "auto"
catalog = "cloudcenter"
version = "4.10"

[enforce]
ingress = "enforce"
egress = "enforce"
"""
# The replaced members: AMQP, a role group every CCO's rules reference (its AMQP_v4 set).
GROUP, SET = "AMQP", "AMQP_v4"
MEMBERS = 10
WATCHER = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "etcd", "fwenforcer-etcd-watch"))


def vm_address(i):
    return f"198.18.{1 + i // 250}.{1 + i % 250}"


def member_address(member, generation):
    """Member `member`'s address in replacement `generation`: 198.19.<generation>.<member>."""
    return f"198.19.{generation % 250}.{1 + member}"


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cpu_seconds(pid):
    """CPU seconds a live process's threads have run (schedstat: nanoseconds, not 10 ms ticks),
    plus its reaped children's (utime + stime ticks: they are gone), 0 when it is gone."""
    total = 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
    except (FileNotFoundError, ProcessLookupError, IndexError):
        pass
    return total


def session_cpu(sid):
    """cpu_seconds of every live process in session `sid`."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[3]) == sid:
                total += cpu_seconds(int(entry))
    return total


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Fleet:
    def __init__(self, vms, fwenforcerd, watcher=WATCHER, etcd="etcd", etcdctl="etcdctl", ns_prefix="fwe-fleet", debounce=None,
                 daemon_debounce_ms=None):
        self.vms, self.fwenforcerd, self.watcher, self.etcdctl = vms, fwenforcerd, watcher, etcdctl
        self.debounce = [] if debounce is None else ["--debounce", str(debounce)]
        self.daemon_debounce = [] if daemon_debounce_ms is None else ["--debounce-ms", str(daemon_debounce_ms)]
        self.dir = tempfile.mkdtemp(prefix="fwe-fleet.")
        self.namespaces, self.watchers, self.daemons, self.etcd = [], [], [], None
        self.notify = []
        self.ns_prefix = f"{ns_prefix}-{os.getpid()}"
        self.generation = 1
        self.closing = False
        try:
            self.start_etcd(etcd)
        except BaseException:
            self.close()
            raise

    # --- etcd -------------------------------------------------------------------------------

    def start_etcd(self, etcd):
        client, peer = free_ports(2)
        self.endpoint = f"127.0.0.1:{client}"
        url, peer_url = f"http://{self.endpoint}", f"http://127.0.0.1:{peer}"
        self.etcd = self.spawn([etcd, "--name", "fleet", "--data-dir", f"{self.dir}/etcd-data",
                                "--listen-client-urls", url, "--advertise-client-urls", url,
                                "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                                "--initial-cluster", f"fleet={peer_url}", "--log-level", "warn"],
                               f"{self.dir}/etcd.log")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.request("/v3/kv/range", {"key": self.b64("/")})
                return
            except OSError:
                if time.monotonic() > deadline or self.etcd.poll() is not None:
                    raise RuntimeError(f"etcd did not start: {self.tail(f'{self.dir}/etcd.log')}")
                time.sleep(0.1)

    @staticmethod
    def b64(text):
        return base64.b64encode(text.encode()).decode()

    def request(self, path, body):
        """One call of etcd's JSON gateway: no process start between the clock and the write."""
        r = urllib.request.Request(f"http://{self.endpoint}{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(r, timeout=10) as reply:
            return json.loads(reply.read())

    def put(self, key, value):
        """Puts key; returns etcd's revision of the write."""
        reply = self.request("/v3/kv/put", {"key": self.b64(key), "value": self.b64(value)})
        return int(reply["header"]["revision"])

    def replace(self, member):
        """The member's VM replaced: its key gets the next address. Returns (address, revision)."""
        address = member_address(member, self.generation)
        return address, self.put(f"{PREFIX}/members/{GROUP}/{GROUP.lower()}-{member + 1}", address)

    # --- the VMs ----------------------------------------------------------------------------

    def start_vms(self):
        self.put(f"{PREFIX}/config", SHARED)
        for m in range(MEMBERS):
            self.replace(m)
        self.put(f"{PREFIX}/members/CCM_SA/ccm-1", "198.19.250.1")
        for i in range(self.vms):
            self.put(f"{PREFIX}/members/CCO/vm-{i + 1}", vm_address(i))
        for i in range(self.vms):
            ns = f"{self.ns_prefix}-{i}"
            self.run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            for command in (["link", "set", "lo", "up"], ["link", "add", "v0", "type", "veth", "peer", "name", "v1"],
                            ["addr", "add", f"{vm_address(i)}/32", "dev", "v0"]):
                self.run(["ip", "-n", ns] + command)
            os.makedirs(f"{self.dir}/vm-{i}")
        for i in range(self.vms):
            self.watchers.append(self.spawn(
                ["/usr/bin/python3", self.watcher,
                 "--endpoints", self.endpoint, "--prefix", PREFIX, "--output", self.config(i),
                 "--host-address", vm_address(i), "--fwenforcerd", self.fwenforcerd, "--etcdctl", self.etcdctl, "--trace"] + self.debounce,
                self.watcher_log(i)))
        self.wait_for(lambda: all(os.path.exists(self.config(i)) for i in range(self.vms)), 30 + self.vms,
                      "the watchers' first render")
        for i in range(self.vms):
            self.start_daemon(i)
        self.wait_ready()
        # Each daemon goes on sending STATUS= after every reconcile; as under systemd, someone
        # must read it, or its queue fills and the daemon blocks in sendto.
        threading.Thread(target=self.drain_notify, daemon=True).start()
        self.generation += 1

    def config(self, i):
        return f"{self.dir}/vm-{i}/fwenforcer.conf"

    def watcher_log(self, i):
        return f"{self.dir}/vm-{i}/watcher.log"

    def start_daemon(self, i):
        d = f"{self.dir}/vm-{i}"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(f"{d}/notify.sock")
        self.notify.append(notify)
        self.daemons.append(self.spawn(
            ["ip", "netns", "exec", self.namespaces[i], "setpriv", "--pdeathsig", "KILL", "--",
             self.fwenforcerd, "run", "--config", self.config(i), "--allow-insecure-config",
             "--state-file", f"{d}/state.json", "--lock-file", f"{d}/fwenforcerd.lock", "--pending-file", f"{d}/pending.json"] + self.daemon_debounce,
            f"{d}/daemon.log", env=dict(os.environ, NOTIFY_SOCKET=f"{d}/notify.sock")))

    def wait_ready(self):
        """Until every daemon has sent READY=1 (its first plan enforced)."""
        waiting = set(range(self.vms))
        deadline = time.monotonic() + 60 + self.vms
        while waiting:
            for i in list(waiting):
                try:
                    if b"READY=1" in self.notify[i].recv(4096, socket.MSG_DONTWAIT).split(b"\n"):
                        waiting.discard(i)
                except BlockingIOError:
                    pass
                if self.daemons[i].poll() is not None:
                    raise RuntimeError(f"daemon {i} exited: {self.tail(f'{self.dir}/vm-{i}/daemon.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(waiting)} daemons not ready")
            time.sleep(0.05)

    def drain_notify(self):
        selector = selectors.DefaultSelector()
        for s in self.notify:
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
        while not self.closing:
            for key, _ in selector.select(0.2):
                try:
                    while key.fileobj.recv(4096):
                        pass
                except OSError:
                    pass
        selector.close()

    # --- what it costs ----------------------------------------------------------------------

    def cpu(self):
        """CPU seconds so far: etcd, the watchers (with etcdctl and fwenforcerd check), the daemons."""
        return {"etcd": cpu_seconds(self.etcd.pid),
                "watchers": sum(session_cpu(w.pid) for w in self.watchers),
                "daemons": sum(cpu_seconds(d.pid) for d in self.daemons)}

    # --- processes --------------------------------------------------------------------------

    def spawn(self, argv, log, env=None):
        with open(log, "ab") as f:
            return subprocess.Popen(argv, stdout=f, stderr=f, stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
        return r.stdout

    @staticmethod
    def wait_for(condition, timeout, what):
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    @staticmethod
    def tail(path, size=2000):
        try:
            with open(path, errors="replace") as f:
                return f.read()[-size:]
        except FileNotFoundError:
            return ""

    @staticmethod
    def stop(processes, timeout=5):
        """SIGTERM to each process group, SIGKILL to what is left after timeout, then reap."""
        for p in processes:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for p in processes:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in processes:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # the group: also an etcdctl a watcher left
            except ProcessLookupError:
                pass
            p.wait()

    def close(self):
        self.closing = True
        self.stop(self.watchers)
        self.stop(self.daemons)
        if self.etcd:
            self.stop([self.etcd])
        time.sleep(0.3)  # the drain thread's last select
        for s in self.notify:
            s.close()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
