import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A Docker host as Docker programs the kernel, without a Docker engine: in the lab VM `host`, a
/// bridge `docker0`, a container (the lab VM `ctr`, moved off the lab segment onto `docker0`), IP
/// forwarding, and the rules `dockerd` writes through iptables-nft for `docker run -p 5000:5000`
/// with IPv6 enabled (ip6tables), loaded with Debian's `iptables-restore` / `ip6tables-restore`
/// (iptables-nft): the filter chains FORWARD (policy drop), DOCKER, DOCKER-USER and the isolation
/// stages; the nat chains DOCKER (the DNAT of the published port) and the masquerade.
///
/// Test addresses only: the container network is 198.18.200.0/24 and fd00:200::/64 (Docker's
/// defaults would be 172.17.0.0/16), inside the lab's on-link ranges, but more specific.
struct ContainerHost {
    static let hostVM = LabVMSpec(name: "host", addresses: ["198.18.0.60", "fd00::60"])
    static let bridge = (v4: "198.18.200.1", v6: "fd00:200::1")
    static let container = (v4: "198.18.200.2", v6: "fd00:200::2")
    static let published: UInt16 = 5000

    let lab: Lab

    /// The container VM's name in the lab; it must be the last VM of the lab's list.
    static let containerVM = "ctr"

    /// Builds the container network in `lab` (which holds `hostVM` and, last, a VM `ctr` without
    /// addresses). The container's own eth0 replaces its lab-segment link.
    init(lab: Lab, vmCount: Int) throws {
        self.lab = lab
        // The lab gave ctr a veth on the lab bridge (p<index>); a container is only on docker0.
        try lab.ipBatch(lab.bridgeNS, ["link del p\(vmCount - 1)"])
        try lab.ipBatch(lab.ns(Self.hostVM.name), [
            "link add docker0 type bridge", "link set docker0 up",
            "addr add \(Self.bridge.v4)/24 dev docker0", "addr add \(Self.bridge.v6)/64 dev docker0 nodad",
            "link add vethc type veth peer name eth0 netns \(lab.ns(Self.containerVM))",
            "link set vethc master docker0", "link set vethc up",
        ])
        try lab.ipBatch(lab.ns(Self.containerVM), [
            "link set eth0 up",
            "addr add \(Self.container.v4)/24 dev eth0", "addr add \(Self.container.v6)/64 dev eth0 nodad",
            "route add default via \(Self.bridge.v4)", "route add default via \(Self.bridge.v6)",
        ])
        // Per network namespace: these write the host VM's sysctls, not the machine's.
        try lab.check(Self.hostVM.name, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"])
        try lab.check(Self.hostVM.name, ["iptables-restore"], input: Data(Self.rules(v6: false).utf8))
        try lab.check(Self.hostVM.name, ["ip6tables-restore"], input: Data(Self.rules(v6: true).utf8))
    }

    /// What `iptables-save` shows on a Docker host with one container publishing 5000 (IPv6: the
    /// same with ip6tables).
    static func rules(v6: Bool) -> String {
        let subnet = v6 ? "fd00:200::/64" : "198.18.200.0/24"
        let addr = v6 ? container.v6 : container.v4
        let host = v6 ? "\(addr)/128" : "\(addr)/32"
        let target = v6 ? "[\(addr)]:\(published)" : "\(addr):\(published)"
        let loopback = v6 ? "::1/128" : "127.0.0.0/8"
        return """
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :DOCKER - [0:0]
        :DOCKER-ISOLATION-STAGE-1 - [0:0]
        :DOCKER-ISOLATION-STAGE-2 - [0:0]
        :DOCKER-USER - [0:0]
        -A FORWARD -j DOCKER-USER
        -A FORWARD -j DOCKER-ISOLATION-STAGE-1
        -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        -A FORWARD -o docker0 -j DOCKER
        -A FORWARD -i docker0 ! -o docker0 -j ACCEPT
        -A FORWARD -i docker0 -o docker0 -j ACCEPT
        -A DOCKER -d \(host) ! -i docker0 -o docker0 -p tcp -m tcp --dport \(published) -j ACCEPT
        -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
        -A DOCKER-ISOLATION-STAGE-1 -j RETURN
        -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
        -A DOCKER-ISOLATION-STAGE-2 -j RETURN
        -A DOCKER-USER -j RETURN
        COMMIT
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        :DOCKER - [0:0]
        -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
        -A OUTPUT ! -d \(loopback) -m addrtype --dst-type LOCAL -j DOCKER
        -A POSTROUTING -s \(subnet) ! -o docker0 -j MASQUERADE
        -A POSTROUTING -s \(host) -d \(host) -p tcp -m tcp --dport \(published) -j MASQUERADE
        -A DOCKER -i docker0 -j RETURN
        -A DOCKER ! -i docker0 -p tcp -m tcp --dport \(published) -j DNAT --to-destination \(target)
        COMMIT

        """
    }

    /// The tables iptables-nft made, as `nft -s list table` prints them (stateless: no counters),
    /// to compare before and after fwenforcer's applies.
    static let dockerTables = ["ip filter", "ip nat", "ip6 filter", "ip6 nat"]

    func dockerTablesText() throws -> String {
        try Self.dockerTables.map { t in
            try lab.check(Self.hostVM.name, ["nft", "-s", "list", "table"] + t.split(separator: " ").map(String.init)).stdout
        }.joined(separator: "\n")
    }

    /// A dual-stack TCP echo server (one byte back per byte), for the container and the peers.
    static func echoServer(port: UInt16) -> String {
        """
        import socket, threading
        s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.bind(("::", \(port))); s.listen(64)
        print("listening", flush=True)
        def echo(c):
            try:
                d = c.recv(1)
                if d: c.sendall(d)
            except OSError: pass
            c.close()
        while True:
            c, _ = s.accept()
            threading.Thread(target=echo, args=(c,), daemon=True).start()
        """
    }

    /// `count` TCP connections to `address`:`port` at once, each sending one byte and waiting for
    /// its echo; prints `ok N timeout N refused N` (a dropped SYN times out; a reset is refused).
    static let probe = """
    import socket, sys, threading
    addr, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    results = []
    def one():
        try:
            c = socket.create_connection((addr, port), timeout=timeout)
            c.sendall(b"x"); r = "ok" if c.recv(1) == b"x" else "closed"; c.close()
        except socket.timeout: r = "timeout"
        except ConnectionRefusedError: r = "refused"
        except OSError as e: r = "error"
        results.append(r)
    ts = [threading.Thread(target=one) for _ in range(count)]
    for t in ts: t.start()
    for t in ts: t.join()
    print(" ".join(f"{k} {results.count(k)}" for k in ["ok", "timeout", "refused", "closed", "error"]))
    """

    struct ProbeResult: CustomStringConvertible {
        var ok = 0, timeout = 0, refused = 0, other = 0
        var total: Int { ok + timeout + refused + other }
        var description: String { "\(ok) connected, \(timeout) timed out, \(refused) refused, \(other) other" }
    }

    /// Runs `probe` from `vm`.
    func probe(from vm: String, _ address: String, _ port: UInt16, count: Int = 20, timeout: Double = 1) throws -> ProbeResult {
        let r = try lab.check(vm, ["python3", "-c", Self.probe, address, "\(port)", "\(count)", "\(timeout)"], timeout: 30)
        let words = r.stdout.split(whereSeparator: \.isWhitespace).map(String.init)
        var counts: [String: Int] = [:]
        for i in stride(from: 0, to: words.count - 1, by: 2) { counts[words[i]] = Int(words[i + 1]) }
        return ProbeResult(ok: counts["ok"] ?? 0, timeout: counts["timeout"] ?? 0, refused: counts["refused"] ?? 0,
                           other: (counts["closed"] ?? 0) + (counts["error"] ?? 0))
    }
}
