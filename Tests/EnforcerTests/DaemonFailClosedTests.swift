import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The real daemon where a real deployment breaks naive ones: a boot before this host's address is
/// in its group, an invalid config at start, an operator's emergency `nft insert rule`, a PID
/// namespace (every container), a renamed table. Real kernel, real `nft`, real TCP connections.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonFailClosedTests {
    typealias Run = DaemonRunTests
    let helper = DaemonRunTests()

    static let autoConfig = DaemonRunTests.config.replacingOccurrences(of: "roles = [\"CCO\"]", with: "roles = \"auto\"")
        + "\nCCO = [\"198.18.0.20\"]\n"

    /// A listener on `ports` in `ns` (accepting and closing), killed by the returned closure.
    static func listen(_ ns: DaemonRunTests.Namespace, _ ports: [Int]) throws -> () -> Void {
        let script = """
        import socket, selectors
        sel = selectors.DefaultSelector()
        for p in \(ports):
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", p)); s.listen(16)
            sel.register(s, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                c, _ = key.fileobj.accept(); c.close()
        """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", ns.name, "python3", "-c", script]
        try p.run()
        usleep(300_000)
        return { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
    }

    /// One TCP connection attempt from `ns` (1 s timeout): true when it was accepted.
    static func connects(from ns: DaemonRunTests.Namespace, to host: String, _ port: Int) throws -> Bool {
        let code = "import socket,sys\ntry:\n socket.create_connection((\"\(host)\", \(port)), timeout=1).close()\nexcept OSError:\n sys.exit(1)\n"
        return try ns.exec(["python3", "-c", code]).status == 0
    }

    /// A peer namespace joined to `ns` by a veth: this host gets `hostAddresses`, the peer `peerAddress`.
    @discardableResult
    static func link(_ host: DaemonRunTests.Namespace, _ peer: DaemonRunTests.Namespace, hostAddresses: [String], peerAddress: String) throws -> String {
        let veth = "fc\(UInt16.random(in: 0...UInt16.max))"
        try run(["ip", "link", "add", "\(veth)a", "netns", host.name, "type", "veth", "peer", "name", "\(veth)b", "netns", peer.name])
        for a in hostAddresses { try run(["ip", "-n", host.name, "addr", "add", a, "dev", "\(veth)a"]) }
        try run(["ip", "-n", peer.name, "addr", "add", peerAddress, "dev", "\(veth)b"])
        try run(["ip", "-n", host.name, "link", "set", "\(veth)a", "up"])
        try run(["ip", "-n", peer.name, "link", "set", "\(veth)b", "up"])
        // Both ends on one segment and both networks routed over it.
        try run(["ip", "-n", host.name, "route", "add", "198.19.0.0/24", "dev", "\(veth)a"])
        try run(["ip", "-n", peer.name, "route", "add", "198.18.0.0/24", "dev", "\(veth)b"])
        return "\(veth)a"
    }

    /// Defect 2: with `roles = "auto"` and this host's address in no group yet, the baseline is in
    /// the kernel when READY=1 arrives: administrators reach TCP 22, nothing else passes in or out.
    /// When the address appears, the real plan replaces the baseline in one batch.
    @Test func baselineBeforeReadyUntilTheAddressAppears() throws {
        let setup = try Run.Setup("base", config: Self.autoConfig)
        defer { setup.close() }
        let (ns, dir) = (setup.ns, setup.dir)
        let admin = try Run.Namespace("adm")
        defer { admin.close() }
        let device = try Self.link(ns, admin, hostAddresses: ["198.18.0.21/24"], peerAddress: "198.19.0.5/24")
        let stopListening = try Self.listen(ns, [22, 8443])
        defer { stopListening() }
        let stopPeer = try Self.listen(admin, [9000])
        defer { stopPeer() }

        let receiver = try NotifySocket(path: dir.appendingPathComponent("notify.sock").path)
        let metrics = dir.appendingPathComponent("fwenforcer.prom")
        let daemon = try setup.start(environment: ["NOTIFY_SOCKET": receiver.path], extra: ["--metrics-file", metrics.path])
        let ready = receiver.wait(for: "READY=1")
        #expect(ready?.contains("STATUS=fail-closed baseline enforced") == true, "\(ready ?? "no READY=1"): \(daemon.logText)")
        // Already in the kernel when READY=1 came.
        let table = try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout
        #expect(table.contains("policy drop") && table.contains(Baseline.adminRuleComment), "\(table)")
        #expect(daemon.logText.contains("fail-closed baseline enforced (no valid plan: "), "\(daemon.logText)")
        #expect(((try? String(contentsOf: metrics, encoding: .utf8)) ?? "").contains("fwenforcer_baseline_active 1"))
        let state = try StateFile(path: .init(dir.appendingPathComponent("state.json").path)).read()
        #expect(state?.baseline?.contains("no role group holds one of this host's addresses") == true)

        #expect(try Self.connects(from: admin, to: "198.18.0.21", 22), "administrators' SSH must pass the baseline")
        #expect(try !Self.connects(from: admin, to: "198.18.0.21", 8443), "the baseline let 8443 in")
        #expect(try !Self.connects(from: ns, to: "198.19.0.5", 9000), "the baseline let the host out")

        // The address appears: the plan replaces the baseline.
        try run(["ip", "-n", ns.name, "addr", "add", "198.18.0.20/24", "dev", device])
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.30") }, "\(daemon.logText)")
        #expect(daemon.logText.contains("a valid plan exists: it replaces the fail-closed baseline"))
        #expect(try !ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout.contains(Baseline.adminRuleComment))
        #expect(eventually { ((try? String(contentsOf: metrics, encoding: .utf8)) ?? "").contains("fwenforcer_baseline_active 0") })
        #expect(try Self.connects(from: admin, to: "198.18.0.20", 22), "the plan keeps administrators' SSH")
    }

    /// Defect 2: an invalid config at start is a baseline too, with the admin_ssh group it still
    /// gives; `[enforce] unresolved = "open"` opts out.
    @Test func invalidConfigAtStartIsTheBaselineUnlessOptedOut() throws {
        let broken = DaemonRunTests.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.300")
        let setup = try Run.Setup("inval", config: broken)
        defer { setup.close() }
        let daemon = try setup.start()
        #expect(try eventually { try setup.ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout.contains(Baseline.adminRuleComment) },
                "\(daemon.logText)")
        let listed = try setup.ns.exec(["nft", "list", "set", "inet", "fwenforcer", "admin_ssh_v4"]).stdout
        #expect(listed.contains("198.19.0.0/24"), "\(listed)")
        daemon.stop()

        let open = try Run.Setup("open", config: broken + "\n[enforce]\nunresolved = \"open\"\n")
        defer { open.close() }
        let d2 = try open.start()
        #expect(eventually { d2.logText.contains("[enforce] unresolved = \"open\": nothing is enforced") }, "\(d2.logText)")
        #expect(try open.ns.exec(["nft", "list", "tables"]).stdout.isEmpty)
    }

    /// Defect 3: inside a PID namespace (a container) the kernel names the committing process by
    /// its pid outside the namespace; the daemon tells its own commits by the netlink port id, so
    /// 20 config changes cost no drift repair.
    @Test func ownCommitsInAPIDNamespaceAreNotDrift() throws {
        let setup = try Run.Setup("pidns", config: DaemonRunTests.config)
        defer { setup.close() }
        let (ns, path) = (setup.ns, setup.path)
        let daemon = try setup.start(wrapper: ["unshare", "--pid", "--fork", "--kill-child=SIGTERM"])
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.30") }, "\(daemon.logText)")
        for i in 1...20 {
            let address = "198.18.0.\(100 + i)"
            let next = path.deletingLastPathComponent().appendingPathComponent("next.conf")
            try Run.writeConfig(DaemonRunTests.config.replacingOccurrences(of: "198.18.0.30", with: address), to: next)
            #expect(rename(next.path, path.path) == 0)
            #expect(try eventually { try helper.setHas(ns, "AMQP_v4", address) }, "change \(i): \(daemon.logText)")
        }
        usleep(300_000)
        let log = daemon.logText
        #expect(!log.contains("drift:"), "own commits taken for drift: \(log)")
        #expect(!log.contains("reconcile (drift repair)"))
    }

    /// Defect 1, in the daemon: an emergency rule is removed at once and named in the log.
    @Test func handInsertedRuleIsRemovedAndNamed() throws {
        let setup = try Run.Setup("foreign", config: DaemonRunTests.config)
        defer { setup.close() }
        let ns = setup.ns
        let daemon = try setup.start()
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.30") })
        let planned = try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout
        #expect(try ns.exec(["nft", "insert", "rule", "inet", "fwenforcer", "input", "ip", "saddr", "198.18.9.9", "tcp", "dport", "2222", "accept"]).status == 0)
        #expect(try eventually(1) { try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout == planned }, "\(daemon.logText)")
        #expect(eventually { daemon.logText.contains("removed 1 object fwenforcer did not write: rule in chain input: ip saddr 198.18.9.9 tcp dport 2222 accept") },
                "\(daemon.logText)")
    }

    /// Defect 4: `[enforce] table` renamed while running, then again across a restart: exactly
    /// one table each time; and `table = "filter"` next to Debian's stock table is refused.
    @Test func renamedTableLeavesExactlyOneAndForeignTablesAreRefused() throws {
        let setup = try Run.Setup("rename", config: DaemonRunTests.config)
        defer { setup.close() }
        let (ns, path) = (setup.ns, setup.path)
        func tables() throws -> [String] {
            try ns.exec(["nft", "list", "tables"]).stdout.split(separator: "\n").map { String($0.split(separator: " ").last!) }.sorted()
        }
        var daemon = try setup.start()
        #expect(try eventually { try tables() == ["fwenforcer"] })
        try Run.writeConfig(DaemonRunTests.config + "\n[enforce]\ntable = \"fw_two\"\n", to: path)
        #expect(try eventually { try tables() == ["fw_two"] }, "\(daemon.logText)")
        daemon.stop()
        try Run.writeConfig(DaemonRunTests.config + "\n[enforce]\ntable = \"fw_three\"\n", to: path)
        daemon = try setup.start()
        #expect(try eventually { try tables() == ["fw_three"] }, "\(daemon.logText)")
        daemon.stop()

        // Debian's stock table under the configured name: refused, untouched, the daemon waits.
        _ = try ns.exec(["nft", "-f", "-"], input: EngineHarness.debianStockTable)
        let stock = try ns.exec(["nft", "list", "table", "inet", "filter"]).stdout
        try Run.writeConfig(DaemonRunTests.config + "\n[enforce]\ntable = \"filter\"\n", to: path)
        daemon = try setup.start()
        #expect(eventually { daemon.logText.contains("table inet filter exists and was not created by fwenforcer") }, "\(daemon.logText)")
        usleep(300_000)
        #expect(try ns.exec(["nft", "list", "table", "inet", "filter"]).stdout == stock)
        #expect(try tables() == ["filter", "fw_three"], "the old table is kept while the new one is refused")
    }
}
