import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The real `fwenforcerd run` binary against the real kernel, each test in namespaces of its own.
/// State is asserted through the independent `nft` CLI, polling with deadlines (no fixed sleeps).
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonRunTests {
    /// A network namespace, deleted with everything in it by `close()`.
    final class Namespace {
        let name: String
        init(_ tag: String) throws {
            name = "fwe-run-\(getpid())-\(tag)-\(UInt16.random(in: 0...UInt16.max))"
            try run(["ip", "netns", "add", name])
            try run(["ip", "-n", name, "link", "set", "lo", "up"])
        }
        func exec(_ argv: [String], input: String? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
            try run(["ip", "netns", "exec", name] + argv, input: input)
        }
        func close() { _ = try? run(["ip", "netns", "del", name]) }
    }

    /// `fwenforcerd run` in a namespace, with its stderr in a file.
    final class Daemon {
        let process = Process()
        let log: URL
        /// `wrapper` runs the daemon through another command inside the namespace (`unshare --pid --fork`).
        init(in ns: Namespace, config: String, dir: URL, environment: [String: String] = [:], extra: [String] = [],
             wrapper: [String] = []) throws {
            log = dir.appendingPathComponent("daemon.log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            process.arguments = ["netns", "exec", ns.name] + wrapper + [fwenforcerdPath, "run", "--config", config,
                                 "--state-file", dir.appendingPathComponent("state.json").path,
                                 "--lock-file", dir.appendingPathComponent("lock").path] + extra
            var env = ProcessInfo.processInfo.environment
            env.removeValue(forKey: "NOTIFY_SOCKET")
            env.merge(environment) { $1 }
            process.environment = env
            process.standardError = try FileHandle(forWritingTo: log)
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }
        var logText: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        func signal(_ s: Int32) { kill(process.processIdentifier, s) }
        /// SIGTERM and wait; returns the exit status.
        @discardableResult
        func stop() -> Int32 {
            if process.isRunning { signal(SIGTERM) }
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { signal(SIGKILL) }
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    /// One test's namespace, scratch directory and config file; `close()` stops the daemon and
    /// removes them all.
    final class Setup {
        let ns: Namespace
        let dir: URL
        let path: URL
        var daemon: Daemon?

        /// `config` nil leaves the file to the test (a custom layout).
        init(_ tag: String, config: String?) throws {
            ns = try Namespace(tag)
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-run-\(UUID().uuidString)")
            path = dir.appendingPathComponent("fwenforcer.conf")
            do {
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                if let config { try DaemonRunTests.writeConfig(config, to: path) }
            } catch {
                close()
                throw error
            }
        }

        func start(environment: [String: String] = [:], extra: [String] = [], wrapper: [String] = []) throws -> Daemon {
            let d = try Daemon(in: ns, config: path.path, dir: dir, environment: environment, extra: extra, wrapper: wrapper)
            daemon = d
            return d
        }

        func close() {
            daemon?.stop()
            ns.close()
            try? FileManager.default.removeItem(at: dir)
        }
    }

    static let config = """
    [host]
    roles = ["CCO"]
    [groups]
    CCM_SA = ["198.18.0.10"]
    AMQP = ["198.18.0.30"]
    admin_ssh = ["198.19.0.0/24"]
    """


    func setHas(_ ns: Namespace, _ set: String, _ element: String) throws -> Bool {
        let r = try ns.exec(["nft", "list", "set", "inet", "fwenforcer", set])
        return r.status == 0 && r.stdout.contains(element)
    }

    static func writeConfig(_ text: String, to url: URL) throws {
        try text.write(to: url, atomically: false, encoding: .utf8)
        chmod(url.path, 0o600)
    }

    @Test func configChangesAreEnforcedWhateverWayTheFileIsWritten() throws {
        let setup = try Setup("watch", config: nil)
        defer { setup.close() }
        let (ns, dir, path) = (setup.ns, setup.dir, setup.path)
        // ConfigMap layout: fwenforcer.conf -> ..data/fwenforcer.conf, ..data -> ..v1
        let v1 = dir.appendingPathComponent("..v1")
        try FileManager.default.createDirectory(at: v1, withIntermediateDirectories: true)
        try Self.writeConfig(Self.config, to: v1.appendingPathComponent("fwenforcer.conf"))
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("..data").path, withDestinationPath: "..v1")
        try FileManager.default.createSymbolicLink(atPath: path.path, withDestinationPath: "..data/fwenforcer.conf")

        let daemon = try setup.start()
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.30") }, "\(daemon.logText)")

        // 1. In-place write through the symlinks.
        let inPlace = Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31")
        let handle = try FileHandle(forWritingTo: v1.appendingPathComponent("fwenforcer.conf"))
        try handle.truncate(atOffset: 0)
        try handle.write(contentsOf: Data(inPlace.utf8))
        try handle.close()
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.31") }, "in-place write not seen: \(daemon.logText)")

        // 2. Editor-style write to a temporary file and rename over the target.
        let renamed = Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.32")
        let tmp = v1.appendingPathComponent(".fwenforcer.conf.swp")
        try Self.writeConfig(renamed, to: tmp)
        #expect(rename(tmp.path, v1.appendingPathComponent("fwenforcer.conf").path) == 0)
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.32") }, "write-and-rename not seen: \(daemon.logText)")

        // 3. Symlink swap: a new version directory, ..data replaced atomically by rename.
        let v2 = dir.appendingPathComponent("..v2")
        try FileManager.default.createDirectory(at: v2, withIntermediateDirectories: true)
        try Self.writeConfig(Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.33"), to: v2.appendingPathComponent("fwenforcer.conf"))
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("..data_tmp").path, withDestinationPath: "..v2")
        #expect(rename(dir.appendingPathComponent("..data_tmp").path, dir.appendingPathComponent("..data").path) == 0)
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.33") }, "symlink swap not seen: \(daemon.logText)")

        // Each change was one element out, one in.
        #expect(daemon.logText.components(separatedBy: "AMQP_v4 +1 -1, rules unchanged").count - 1 == 3, "\(daemon.logText)")
    }

    @Test func invalidConfigKeepsTheLastGoodRuleset() throws {
        let setup = try Setup("invalid", config: Self.config)
        defer { setup.close() }
        let (ns, path) = (setup.ns, setup.path)
        let daemon = try setup.start()
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.30") })
        let before = try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout

        try Self.writeConfig(Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.300"), to: path)
        #expect(eventually { daemon.logText.contains("fwenforcer.conf:5: groups.AMQP: \"198.18.0.300\" is not an IPv4 or IPv6 address") }, "\(daemon.logText)")
        #expect(daemon.logText.contains("the last good ruleset stays enforced"))
        #expect(try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout == before)

        // A config others may write is refused in the same way.
        chmod(path.path, 0o666)
        try Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.34").write(to: path, atomically: false, encoding: .utf8)
        #expect(eventually { daemon.logText.contains("refusing config") && daemon.logText.contains("lets group and others write it") }, "\(daemon.logText)")
        #expect(try !setHas(ns, "AMQP_v4", "198.18.0.34"))

        // The daemon is still running and takes the next good version.
        chmod(path.path, 0o600)
        try Self.writeConfig(Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.35"), to: path)
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.35") }, "\(daemon.logText)")
    }

    @Test func driftIsRepairedWithinASecond() throws {
        let setup = try Setup("drift", config: Self.config)
        defer { setup.close() }
        let ns = setup.ns
        let daemon = try setup.start()
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.30") })
        let planned = try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout

        #expect(try ns.exec(["nft", "flush", "ruleset"]).status == 0)
        #expect(try eventually(1) { try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout == planned }, "\(daemon.logText)")

        #expect(try ns.exec(["nft", "delete", "element", "inet", "fwenforcer", "AMQP_v4", "{ 198.18.0.30 }"]).status == 0)
        #expect(try ns.exec(["nft", "add", "rule", "inet", "fwenforcer", "input", "tcp", "dport", "9999", "accept"]).status == 0)
        #expect(try eventually(1) { try ns.exec(["nft", "list", "table", "inet", "fwenforcer"]).stdout == planned }, "\(daemon.logText)")
        #expect(daemon.logText.contains("drift: table fwenforcer changed by nft["))
    }

    @Test func systemdNotificationsArriveOnTheSocket() throws {
        let setup = try Setup("notify", config: Self.config)
        defer { setup.close() }
        let (ns, dir) = (setup.ns, setup.dir)
        let socketPath = dir.appendingPathComponent("notify.sock").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in socketPath.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
        }

        let daemon = try setup.start(environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "400000"])
        var ready: String?
        for _ in 0..<5 where ready == nil {
            guard let m = receive() else { break }
            if m.contains("READY=1") { ready = m }
        }
        #expect(ready?.contains("STATUS=enforcing") == true, "\(ready ?? "no READY=1")")
        // The kernel already held the ruleset when READY=1 came.
        #expect(try setHas(ns, "AMQP_v4", "198.18.0.30"))
        // Watchdog pings at half the timeout.
        var sawWatchdog = false
        for _ in 0..<10 where !sawWatchdog { sawWatchdog = receive()?.contains("WATCHDOG=1") == true }
        #expect(sawWatchdog)

        daemon.signal(SIGHUP)
        var sawReloading = false, sawReadyAgain = false
        for _ in 0..<10 where !sawReadyAgain {
            guard let m = receive() else { break }
            if m.contains("RELOADING=1") { sawReloading = true }
            if sawReloading && m.contains("READY=1") { sawReadyAgain = true }
        }
        #expect(sawReloading && sawReadyAgain)

        daemon.signal(SIGTERM)
        var sawStopping = false
        for _ in 0..<10 where !sawStopping {
            guard let m = receive() else { break }
            sawStopping = m.contains("STOPPING=1")
        }
        #expect(sawStopping)
        #expect(daemon.stop() == 0)
        // Fail closed: the ruleset stays after the daemon stops.
        #expect(try setHas(ns, "AMQP_v4", "198.18.0.30"))
    }

    @Test func removeOnExitDeletesTheTableAndASecondInstanceIsRefused() throws {
        let setup = try Setup("exit", config: Self.config)
        defer { setup.close() }
        let (ns, dir, path) = (setup.ns, setup.dir, setup.path)
        let daemon = try setup.start(extra: ["--remove-on-exit"])
        #expect(try eventually { try setHas(ns, "AMQP_v4", "198.18.0.30") })
        let second = try ns.exec([fwenforcerdPath, "run", "--config", path.path, "--lock-file", dir.appendingPathComponent("lock").path,
                                  "--state-file", dir.appendingPathComponent("state2.json").path])
        #expect(second.status == 1 && second.stderr.contains("\(daemon.process.processIdentifier)"), "\(second.stderr)")
        #expect(daemon.stop() == 0)
        #expect(try ns.exec(["nft", "list", "tables"]).stdout.isEmpty)
    }

    /// A peer removed from its group loses its established connection, not only new ones.
    @Test func removedPeerLosesItsEstablishedConnection() throws {
        let setup = try Setup("srv", config: Self.config) // CCM_SA 198.18.0.10 may open 8443 on this CCO
        defer { setup.close() }
        let (server, dir, path) = (setup.ns, setup.dir, setup.path)
        let peer = try Namespace("peer")
        defer { peer.close() }
        let veth = "fwe\(UInt16.random(in: 0...UInt16.max))"
        try run(["ip", "link", "add", "\(veth)a", "netns", server.name, "type", "veth", "peer", "name", "\(veth)b", "netns", peer.name])
        try run(["ip", "-n", server.name, "addr", "add", "198.18.0.20/24", "dev", "\(veth)a"])
        try run(["ip", "-n", peer.name, "addr", "add", "198.18.0.10/24", "dev", "\(veth)b"])
        try run(["ip", "-n", server.name, "link", "set", "\(veth)a", "up"])
        try run(["ip", "-n", peer.name, "link", "set", "\(veth)b", "up"])

        let daemon = try setup.start()
        #expect(try eventually { try setHas(server, "CCM_SA_v4", "198.18.0.10") })

        // An echo server on 8443 and a client that sends a byte every 50 ms and prints what it gets back.
        let echo = Process()
        echo.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        echo.arguments = ["netns", "exec", server.name, "python3", "-c", HeldConnection.echoServer(port: 8443)]
        try echo.run()
        // SIGKILL: children of the test runner inherit a thread signal mask that blocks SIGTERM.
        defer { kill(echo.processIdentifier, SIGKILL); echo.waitUntilExit() }
        let out = dir.appendingPathComponent("client.out")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        client.arguments = ["netns", "exec", peer.name, "python3", "-u", "-c", HeldConnection.client(host: "198.18.0.20", port: 8443)]
        client.standardOutput = try FileHandle(forWritingTo: out)
        try client.run()
        defer { kill(client.processIdentifier, SIGKILL); client.waitUntilExit() }
        func lines() -> [Substring] { ((try? String(contentsOf: out, encoding: .utf8)) ?? "").split(separator: "\n") }
        #expect(eventually(5) { lines().filter { $0 == "ok" }.count >= 5 }, "the connection never worked: \(lines())")

        // The peer leaves the group: its established connection stops passing traffic.
        try Self.writeConfig(Self.config.replacingOccurrences(of: "CCM_SA = [\"198.18.0.10\"]", with: "CCM_SA = [\"198.18.0.11\"]"), to: path)
        #expect(try eventually { try setHas(server, "CCM_SA_v4", "198.18.0.11") }, "\(daemon.logText)")
        let mark = lines().count
        #expect(eventually(3) { lines().dropFirst(mark + 2).suffix(5).count == 5 && lines().dropFirst(mark + 2).suffix(5).allSatisfy { $0 == "timeout" } },
                "the removed peer's connection still passes: \(lines().suffix(10))")
    }
}
