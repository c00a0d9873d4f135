import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The real `fwenforcerd run` against what the host throws at it: a config that is not UTF-8,
/// interface address churn, an inotify watch table that is full. Each test in namespaces of its own.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonHardeningTests {
    typealias Setup = DaemonRunTests.Setup
    static let config = DaemonRunTests.config


    func setHas(_ ns: DaemonRunTests.Namespace, _ set: String, _ element: String) throws -> Bool {
        let r = try ns.exec(["nft", "list", "set", "inet", "fwenforcer", set])
        return r.status == 0 && r.stdout.contains(element)
    }

    /// The daemon read non-UTF-8 bytes as U+FFFD and enforced them, while `check` refused the file.
    /// Now both refuse it, with the same message, and the last good ruleset stays.
    @Test func aConfigThatIsNotUTF8IsRefusedByTheDaemonAsByCheck() throws {
        let setup = try Setup("utf8", config: Self.config)
        defer { setup.close() }
        let (ns, path) = (setup.ns, setup.path)
        let daemon = try setup.start()
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.30") }, "\(daemon.logText)")

        let text = Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31") + "\n# caf"
        try (Data(text.utf8) + Data([0xE9]) + Data("\n".utf8)).write(to: path)
        let message = "fwenforcer.conf:7: config file is not UTF-8 text (invalid bytes on this line)"
        #expect(eventually { daemon.logText.contains(message) }, "\(daemon.logText)")
        #expect(try setHas(ns, "AMQP_v4", "198.18.0.30") && !setHas(ns, "AMQP_v4", "198.18.0.31"))
        let check = try run([fwenforcerdPath, "check", "--config", path.path])
        #expect(check.status != 0 && check.stderr.contains(message), "\(check)")
    }

    /// IPv6 router advertisements refresh address lifetimes (RTM_NEWADDR each time) and unrelated
    /// interfaces come and go with their link-local addresses: none of it changes which roles this
    /// host has, so none of it may cost a re-plan. A real new address does, once.
    @Test func addressChurnReplansOnlyForARealChange() throws {
        let auto = Self.config.replacingOccurrences(of: "roles = [\"CCO\"]", with: "roles = \"auto\"") + "\nCCO = [\"198.18.0.20\", \"198.18.0.21\"]\n"
        let setup = try Setup("addr", config: auto)
        defer { setup.close() }
        let ns = setup.ns
        let ip = { (args: [String]) throws in
            let r = try run(["ip", "-n", ns.name] + args)
            try #require(r.status == 0, "ip \(args): \(r.stderr)")
        }
        try ip(["link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        try ip(["link", "add", "u0", "type", "veth", "peer", "name", "u1"])
        try ip(["link", "set", "v0", "up"])
        try ip(["link", "set", "v1", "up"])
        try ip(["addr", "add", "198.18.0.20/24", "dev", "v0"])
        try ip(["addr", "add", "fd00::20/64", "dev", "v0", "nodad", "valid_lft", "3600", "preferred_lft", "1800"])
        let daemon = try setup.start()
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.30") }, "\(daemon.logText)")
        // Let the start's own events settle before counting.
        usleep(600_000)
        let replans = { daemon.logText.components(separatedBy: "reconcile (interface addresses changed)").count - 1 }
        let before = replans()

        // 40 lifetime refreshes, as RAs do, and 5 up/down cycles of an unrelated veth pair.
        for i in 0..<40 {
            try ip(["addr", "change", "fd00::20/64", "dev", "v0", "valid_lft", "\(3600 - i)", "preferred_lft", "\(1800 - i)"])
            if i % 8 == 0 {
                for state in ["up", "down"] {
                    try ip(["link", "set", "u0", state])
                    try ip(["link", "set", "u1", state])
                }
            }
        }
        usleep(1_500_000)
        #expect(replans() == before, "churn re-planned: \(daemon.logText)")

        // A second address of this host in the CCO group: one re-plan, however many events.
        try ip(["addr", "add", "198.18.0.21/24", "dev", "v0"])
        #expect(eventually { replans() == before + 1 }, "\(daemon.logText)")
        usleep(800_000)
        #expect(replans() == before + 1, "\(daemon.logText)")
    }

    /// inotify's watch table full (ENOSPC, as when systemd and containerd share
    /// `max_user_watches`): the daemon kept exiting, and restarting into the same error. Now it
    /// warns, counts it in a metric, polls, and still enforces a changed config.
    ///
    /// The limit is made real, not simulated: the daemon runs in a user namespace of its own
    /// (with a network namespace owned by it) whose `user.max_inotify_watches` (ENOSPC) or
    /// `user.max_inotify_instances` (EMFILE) is 0. The host's limits are not touched.
    @Test(arguments: [
        ("max_inotify_watches", "inotify_add_watch DIR: No space left on device"),
        ("max_inotify_instances", "inotify_init1: Too many open files"),
    ])
    func aFullInotifyTableDegradesToPolling(_ knob: String, _ refusal: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-enospc-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("fwenforcer.conf")
        try DaemonRunTests.writeConfig(Self.config, to: path)
        let metrics = dir.appendingPathComponent("fwenforcer.prom").path
        let log = dir.appendingPathComponent("daemon.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        process.arguments = ["--user", "--map-root-user", "--net", "--", "/bin/sh", "-c",
                             "echo 0 > /proc/sys/user/\(knob) && ip link set lo up && exec \"$0\" \"$@\"",
                             fwenforcerdPath, "run", "--config", path.path,
                             "--state-file", dir.appendingPathComponent("state.json").path,
                             "--lock-file", dir.appendingPathComponent("lock").path,
                             "--metrics-file", metrics, "--metrics-interval", "0"]
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "NOTIFY_SOCKET")
        process.environment = env
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let pid = process.processIdentifier
        defer {
            kill(pid, SIGTERM)
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
        let logText = { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        // The daemon's network namespace, entered by pid (it exists only as long as the daemon).
        let setHas = { (set: String, element: String) throws -> Bool in
            let r = try run(["nsenter", "--target", "\(pid)", "--net", "nft", "list", "set", "inet", "fwenforcer", set])
            return r.status == 0 && r.stdout.contains(element)
        }
        #expect(try eventually(5) { try setHas("AMQP_v4", "198.18.0.30") }, "\(logText())")
        #expect(logText().contains("config watch: \(refusal.replacingOccurrences(of: "DIR", with: dir.path)); polling"), "\(logText())")
        let metricsText = { (try? String(contentsOfFile: metrics, encoding: .utf8)) ?? "" }
        #expect(eventually { metricsText().contains("fwenforcer_config_watch_polling 1\n") && metricsText().contains("fwenforcer_config_watch_fallbacks_total 1\n") },
                "\(metricsText())")

        // A change is found by polling (every 3 s), not by inotify, and enforced.
        try DaemonRunTests.writeConfig(Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31"), to: path)
        #expect(try eventually(8) { try setHas("AMQP_v4", "198.18.0.31") }, "\(logText())")
        #expect(process.isRunning, "\(logText())")
    }
}

/// `ct state related` against the kernel. Most ICMP errors about a connection travel in its reply
/// direction and are accepted as replies; the related rule is for the ones that travel in the
/// original direction: an error about one of this host's replies (a peer or router refusing it,
/// or IPv4's "fragmentation needed" for path MTU). Such an error must still get in.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct KernelRelatedICMPTests {
    @Test func anICMPErrorAboutAReplyOfAnAllowedConnectionIsAccepted() throws {
        let host = try DaemonRunTests.Namespace("rel")
        defer { host.close() }
        let peer = try DaemonRunTests.Namespace("rel-peer")
        defer { peer.close() }
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let veth = "fwr\(UInt16.random(in: 0...UInt16.max))"
        try run(["ip", "link", "add", "\(veth)a", "netns", host.name, "type", "veth", "peer", "name", "\(veth)b", "netns", peer.name])
        try run(["ip", "-n", host.name, "addr", "add", "198.18.0.20/24", "dev", "\(veth)a"])
        try run(["ip", "-n", peer.name, "addr", "add", "198.18.0.10/24", "dev", "\(veth)b"])
        try run(["ip", "-n", host.name, "link", "set", "\(veth)a", "up"])
        try run(["ip", "-n", peer.name, "link", "set", "\(veth)b", "up"])
        // CCO (the host) lets CCM_SA (the peer) open 8443.
        let config = dir("fwenforcer.conf")
        try daemonWriteInPlace(config, DaemonRunTests.config)
        #expect(try host.exec([fwenforcerdPath, "apply", "--config", config]).status == 0)
        // Behind fwenforcer's chain (priority 0), a table of the test's own counts the related ICMP
        // errors that fwenforcer let through: an accept there does not end the other base chains.
        let probe = "table inet probe {\n chain input {\n type filter hook input priority 10; icmp type destination-unreachable ct state related counter\n }\n}\n"
        #expect(try host.exec(["nft", "-f", "-"], input: probe).status == 0)
        // The peer refuses the host's data segments with an ICMP port-unreachable: an error about
        // the connection's reply direction, so it reaches the host in the original direction.
        let reject = "table inet peer {\n chain input {\n type filter hook input priority 0; tcp sport 8443 tcp flags & psh == psh reject with icmpx type port-unreachable\n }\n}\n"
        #expect(try peer.exec(["nft", "-f", "-"], input: reject).status == 0)

        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        server.arguments = ["netns", "exec", host.name, "python3", "-c", """
            import socket, time
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("198.18.0.20", 8443)); s.listen(1); print("listening", flush=True)
            c, _ = s.accept()
            for _ in range(5):
                c.send(b"data"); time.sleep(0.1)
            """]
        let ready = Pipe()
        server.standardOutput = ready
        try server.run()
        defer {
            if server.isRunning { kill(server.processIdentifier, SIGKILL) }
            server.waitUntilExit()
        }
        _ = ready.fileHandleForReading.availableData
        let client = try peer.exec(["python3", "-c", """
            import socket, time
            c = socket.create_connection(("198.18.0.20", 8443), timeout=2); time.sleep(0.8); c.close()
            """])
        #expect(client.status == 0, "\(client.stderr)")
        let counted = try host.exec(["nft", "list", "chain", "inet", "probe", "input"]).stdout
        let packets = counted.split(separator: " ").drop { $0 != "packets" }.dropFirst().first.flatMap { Int($0) } ?? 0
        #expect(packets > 0, "fwenforcer dropped the ICMP errors about its replies: \(counted)")
    }
}
