import Foundation
import Logging
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// Provisional apply against the real kernel, with the real binary, each test in namespaces of its
/// own: a change that cuts the administrators' SSH ("management") connection is rolled back unless
/// `fwenforcerd confirm` arrives in time, whether `apply` or the daemon made it.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct ProvisionalApplyTests {
    typealias Setup = DaemonRunTests.Setup
    typealias Namespace = DaemonRunTests.Namespace

    /// The administrators sit in 198.19.0.0/24; the host is 198.19.0.20.
    static let config = DaemonRunTests.config
    /// A mistyped admin_ssh: the change an operator locks themselves out with.
    static let lockout = config.replacingOccurrences(of: "198.19.0.0/24", with: "198.19.10.0/24")

    /// An SSH-like TCP service on port 22 of the host, and an administrator in a peer namespace
    /// holding one connection that sends a byte every 50 ms and prints what comes back
    /// (`connected` once, then `ok`, `timeout` or `closed` per byte).
    final class ManagementLink {
        let peer: Namespace
        let server = Process()
        let client = Process()
        let output: URL

        init(host: Namespace, dir: URL) throws {
            peer = try Namespace("admin")
            output = dir.appendingPathComponent("client.out")
            do {
                let veth = "fwc\(UInt16.random(in: 0...UInt16.max))"
                try run(["ip", "link", "add", "\(veth)a", "netns", host.name, "type", "veth", "peer", "name", "\(veth)b", "netns", peer.name])
                try run(["ip", "-n", host.name, "addr", "add", "198.19.0.20/24", "dev", "\(veth)a"])
                try run(["ip", "-n", peer.name, "addr", "add", "198.19.0.9/24", "dev", "\(veth)b"])
                try run(["ip", "-n", host.name, "link", "set", "\(veth)a", "up"])
                try run(["ip", "-n", peer.name, "link", "set", "\(veth)b", "up"])
                server.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
                server.arguments = ["netns", "exec", host.name, "python3", "-c", HeldConnection.echoServer(port: 22)]
                try server.run()
                _ = FileManager.default.createFile(atPath: output.path, contents: nil)
                client.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
                client.arguments = ["netns", "exec", peer.name, "python3", "-u", "-c", HeldConnection.client(host: "198.19.0.20", port: 22)]
                client.standardOutput = try FileHandle(forWritingTo: output)
                try client.run()
            } catch {
                close()
                throw error
            }
        }

        var lines: [Substring] { ((try? String(contentsOf: output, encoding: .utf8)) ?? "").split(separator: "\n") }

        /// Whether the held connection's last `count` bytes after line `mark` all timed out.
        func cut(after mark: Int, count: Int = 3) -> Bool {
            let tail = lines.dropFirst(mark).suffix(count)
            return tail.count == count && tail.allSatisfy { $0 == "timeout" }
        }

        /// A new connection from the administrator, opened and closed.
        func canConnect() throws -> Bool {
            try peer.exec(["python3", "-c", "import socket; socket.create_connection(('198.19.0.20', 22), timeout=0.5).close()"]).status == 0
        }

        func close() {
            // SIGKILL: children of the test runner inherit a thread signal mask that blocks SIGTERM.
            for p in [client, server] where p.isRunning {
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
            }
            peer.close()
        }
    }


    /// The table as nft lists it, without counter values (traffic moves them).
    func table(_ ns: Namespace) throws -> String {
        try ns.exec(["nft", "--stateless", "list", "table", "inet", "fwenforcer"]).stdout
    }

    /// Kills a waiter a failed test left behind, so nothing outlives the test's namespaces.
    func reapWaiter(_ pending: URL) {
        if let r = try? PendingFile(path: .init(pending.path)).read(), r.owner == .apply, r.ownerIsAlive { kill(r.pid, SIGKILL) }
    }

    @Test func unconfirmedApplyIsRolledBackAndTheManagementConnectionWorksAgain() throws {
        let setup = try Setup("confirm-cli", config: Self.config)
        defer { setup.close() }
        let (host, dir) = (setup.ns, setup.dir)
        let pending = dir.appendingPathComponent("pending.json")
        defer { reapWaiter(pending) }
        let lockout = dir.appendingPathComponent("lockout.conf")
        try DaemonRunTests.writeConfig(Self.lockout, to: lockout)

        #expect(try host.exec([fwenforcerdPath, "apply", "--config", setup.path.path]).status == 0)
        let before = try table(host)
        let link = try ManagementLink(host: host, dir: dir)
        defer { link.close() }
        #expect(eventually(5) { link.lines.filter { $0 == "ok" }.count >= 5 }, "the management connection never worked: \(link.lines)")

        let apply = try host.exec([fwenforcerdPath, "apply", "--config", lockout.path, "--confirm-within", "2", "--pending-file", pending.path])
        let appliedAt = Date()
        #expect(apply.status == 0, "\(apply.stderr)")
        #expect(apply.stdout.contains("PROVISIONALLY: admin_ssh_v4 +1 -1, rules unchanged"), "\(apply.stdout)")
        #expect(apply.stdout.contains("run within 2 s") && apply.stdout.contains("fwenforcerd confirm --pending-file \(pending.path)"), "\(apply.stdout)")
        #expect(try table(host) != before)
        let record = try #require(try PendingFile(path: .init(pending.path)).read())
        #expect(record.state == .pending && record.owner == .apply && record.previous != nil)
        #expect(record.configSHA256 == SHA256.hex(of: Array(Self.lockout.utf8)))

        // The change cuts the held connection and new ones.
        let mark = link.lines.count
        #expect(eventually(2) { link.cut(after: mark + 2) }, "the lockout did not cut the connection: \(link.lines.suffix(10))")
        #expect(try !link.canConnect())

        // Nobody confirms: within the window and a margin, the old table is back, byte for byte.
        #expect(try eventually(5) { try table(host) == before }, "not rolled back: \((try? table(host)) ?? "")")
        let rolledBackAfter = Date().timeIntervalSince(appliedAt)
        #expect(rolledBackAfter >= 1.9 && rolledBackAfter < 4, "rolled back after \(rolledBackAfter) s")
        #expect(try eventually { try PendingFile(path: .init(pending.path)).read()?.state == .rolledBack })
        let log = (try? String(contentsOf: dir.appendingPathComponent("provisional.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("not confirmed within the window") && log.contains("restored table inet fwenforcer as it was"), "\(log)")

        // The administrator gets in again, and the held connection passes data again (TCP retransmits).
        #expect(try link.canConnect())
        let cutAt = link.lines.count
        #expect(eventually(10) { link.lines.dropFirst(cutAt).contains("ok") }, "the held connection stays cut: \(link.lines.suffix(10))")
        #expect(link.lines.filter { $0 == "connected" }.count == 1)

        // A confirmation now is too late, and says so.
        let late = try host.exec([fwenforcerdPath, "confirm", "--pending-file", pending.path])
        #expect(late.status == 1 && late.stderr.contains("too late: the window ended at"), "\(late.stderr)")
    }

    @Test func confirmedApplyStaysAfterTheDeadline() throws {
        let setup = try Setup("confirm-ok", config: Self.config)
        defer { setup.close() }
        let (host, dir) = (setup.ns, setup.dir)
        let pending = dir.appendingPathComponent("pending.json")
        defer { reapWaiter(pending) }
        let changed = dir.appendingPathComponent("changed.conf")
        try DaemonRunTests.writeConfig(Self.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31"), to: changed)

        #expect(try host.exec([fwenforcerdPath, "apply", "--config", setup.path.path]).status == 0)
        let apply = try host.exec([fwenforcerdPath, "apply", "--config", changed.path, "--confirm-within", "2", "--pending-file", pending.path])
        #expect(apply.status == 0, "\(apply.stderr)")
        let after = try table(host)
        #expect(after.contains("198.18.0.31"))
        let record = try #require(try PendingFile(path: .init(pending.path)).read())
        let status = try host.exec([fwenforcerdPath, "status", "--pending-file", pending.path, "--state-file", dir.appendingPathComponent("none.json").path])
        #expect(status.stdout.contains("provisional: config sha256 \(record.configSHA256.prefix(16)) (AMQP_v4 +1 -1, rules unchanged); confirm before"), "\(status.stdout)")

        let confirm = try host.exec([fwenforcerdPath, "confirm", "--pending-file", pending.path])
        #expect(confirm.status == 0 && confirm.stdout.contains("confirmed: the ruleset of \(changed.path)"), "\(confirm.stdout)\(confirm.stderr)")
        #expect(try PendingFile(path: .init(pending.path)).read() == nil)

        // Past the deadline, the confirmed table stays.
        usleep(useconds_t(max(0, record.deadline.timeIntervalSinceNow + 1) * 1_000_000))
        #expect(try table(host) == after)
        let log = (try? String(contentsOf: dir.appendingPathComponent("provisional.log"), encoding: .utf8)) ?? ""
        #expect(log.contains("confirmed: the ruleset of config \(changed.path)") && !log.contains("restored"), "\(log)")

        // Applying what the kernel holds is no provisional change.
        let again = try host.exec([fwenforcerdPath, "apply", "--config", changed.path, "--confirm-within", "2", "--pending-file", pending.path])
        #expect(again.status == 0 && again.stdout.contains("nothing to confirm"), "\(again.stdout)")
        #expect(try PendingFile(path: .init(pending.path)).read() == nil)
    }

    /// With no table before, what comes back is no table.
    @Test func unconfirmedFirstApplyDeletesTheTable() throws {
        let setup = try Setup("confirm-first", config: Self.config)
        defer { setup.close() }
        let (host, dir) = (setup.ns, setup.dir)
        let pending = dir.appendingPathComponent("pending.json")
        defer { reapWaiter(pending) }
        let apply = try host.exec([fwenforcerdPath, "apply", "--config", setup.path.path, "--confirm-within", "1", "--pending-file", pending.path])
        #expect(apply.status == 0 && apply.stdout.contains("restores no table inet fwenforcer (it is deleted)"), "\(apply.stdout)\(apply.stderr)")
        #expect(try host.exec(["nft", "list", "tables"]).stdout.contains("fwenforcer"))
        #expect(try eventually(4) { try host.exec(["nft", "list", "tables"]).stdout.isEmpty })
        #expect(try eventually { try PendingFile(path: .init(pending.path)).read()?.outcome == "table inet fwenforcer deleted (there was none before)" })
    }

    @Test func daemonRollsBackAnUnconfirmedConfigAndRefusesItUntilTheFileChanges() throws {
        let setup = try Setup("confirm-run", config: Self.config)
        defer { setup.close() }
        let (host, dir, path) = (setup.ns, setup.dir, setup.path)
        let pending = dir.appendingPathComponent("pending.json")
        let daemon = try setup.start(extra: ["--confirm-within", "2", "--pending-file", pending.path, "--backstop-seconds", "1"])
        #expect(try eventually { try table(host).contains("198.19.0.0/24") }, "\(daemon.logText)")
        let before = try table(host)
        let link = try ManagementLink(host: host, dir: dir)
        defer { link.close() }
        #expect(try eventually(5) { try link.canConnect() })

        // The lockout goes in provisionally: the state file and the record say so.
        try DaemonRunTests.writeConfig(Self.lockout, to: path)
        #expect(try eventually { try table(host).contains("198.19.10.0/24") }, "\(daemon.logText)")
        #expect(try !link.canConnect())
        let state = try StateFile(path: .init(dir.appendingPathComponent("state.json").path)).read()
        #expect(state?.confirmBy != nil)
        #expect(try PendingFile(path: .init(pending.path)).read()?.owner == .daemon)

        // Not confirmed: the previous ruleset is back, the error names both configs.
        let (old, new) = (SHA256.hex(of: Array(Self.config.utf8)).prefix(12), SHA256.hex(of: Array(Self.lockout.utf8)).prefix(12))
        #expect(try eventually(5) { try table(host) == before }, "\(daemon.logText)")
        #expect(try link.canConnect())
        #expect(daemon.logText.contains("(sha256 \(new)) not confirmed within 2 s: restoring the ruleset of config sha256 \(old); sha256 \(new) is refused until the file changes"),
                "\(daemon.logText)")
        #expect(try StateFile(path: .init(dir.appendingPathComponent("state.json").path)).read()?.refusedConfigSHA256 == SHA256.hex(of: Array(Self.lockout.utf8)))

        // Neither SIGHUP nor the backstop (every second here) puts the refused config back.
        daemon.signal(SIGHUP)
        #expect(eventually { daemon.logText.contains("stays refused") }, "\(daemon.logText)")
        usleep(2_500_000)
        #expect(try table(host) == before, "\(daemon.logText)")

        // A changed file is a new change: provisional again, and confirmed this time it stays.
        let fixed = Self.lockout.replacingOccurrences(of: "198.19.10.0/24", with: "198.19.0.0/24\", \"198.19.10.0/24")
        try DaemonRunTests.writeConfig(fixed, to: path)
        #expect(try eventually { try table(host).contains("198.19.10.0/24") }, "\(daemon.logText)")
        let confirm = try host.exec([fwenforcerdPath, "confirm", "--pending-file", pending.path])
        #expect(confirm.status == 0, "\(confirm.stderr)")
        #expect(eventually { daemon.logText.contains("confirmed: config \(path.path)") }, "\(daemon.logText)")
        let kept = try table(host)
        usleep(3_000_000)
        #expect(try table(host) == kept, "\(daemon.logText)")
        #expect(try link.canConnect())
        #expect(try StateFile(path: .init(dir.appendingPathComponent("state.json").path)).read()?.confirmBy == nil)
    }

    @Test func confirmWithNothingPendingFails() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-confirm-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pending = dir.appendingPathComponent("pending.json")
        let none = try run([fwenforcerdPath, "confirm", "--pending-file", pending.path])
        #expect(none.status == 1 && none.stderr.contains("nothing to confirm: no provisional change is pending (no record at \(pending.path))"), "\(none.stderr)")

        // A record whose owner is gone (never signalled: the pid may belong to someone else now).
        var stale = PendingConfirmation(owner: .apply, table: "fwenforcer", deadline: Date().addingTimeInterval(60),
                                        configPath: "x.conf", configSHA256: "00", applied: "", previous: nil)
        stale.pid = Int32.max
        try PendingFile(path: .init(pending.path)).write(stale)
        let gone = try run([fwenforcerdPath, "confirm", "--pending-file", pending.path])
        #expect(gone.status == 1 && gone.stderr.contains("is gone, so nothing will roll back"), "\(gone.stderr)")
        #expect(!FileManager.default.fileExists(atPath: pending.path))
    }
}

/// The pending-confirmation record keeps the previous ruleset exactly.
@Suite struct PendingConfirmationTests {
    @Test func recordRoundTripsARuleset() throws {
        let config = try Config.parse(text: CompilerTests.standard, file: "deploy.conf")
        let ruleset = Compiler.compile(config: config, roles: ["AMQP"]).ruleset
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-pending-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = PendingFile(path: .init(dir.appendingPathComponent("pending.json").path))
        let record = PendingConfirmation(owner: .daemon, table: "fwenforcer", deadline: PendingConfirmation.deadline(after: .seconds(60)),
                                         configPath: "deploy.conf", configSHA256: "ab", applied: "x", previous: ruleset)
        try file.write(record)
        let read = try #require(try file.read())
        #expect(read.previous == ruleset)
        #expect(read.owner == .daemon && read.state == .pending && read.pid == getpid() && read.configSHA256 == "ab")
        #expect(read.deadline.timeIntervalSinceNow > 59)
        // Interval and IPv6 elements survive as text.
        #expect(ruleset.set(named: "workers_v4")?.interval == true)
        #expect(String(decoding: try Data(contentsOf: URL(fileURLWithPath: file.path.string)), as: UTF8.self).contains("198.18.128.0-198.18.255.255"))
    }
}

/// The daemon's confirmation windows, driven in-process against the fake kernel (the kernel test
/// above covers signals, timers and the real table).
@Suite struct ProvisionalDaemonTests {
    struct Harness {
        let dir: DaemonTemporaryDirectory
        let backend: FakeBackend
        let loop: EventLoop
        let daemon: ReconcileLoop
        var pending: PendingFile { PendingFile(path: .init(dir("pending.json"))) }

        init() throws {
            dir = try DaemonTemporaryDirectory()
            backend = FakeBackend()
            loop = try EventLoop()
            var options = DaemonOptions(configPath: dir("fwenforcer.conf"))
            options.requireSecureConfig = false
            options.confirmWithin = .seconds(60)
            options.statePath = .init(dir("state.json"))
            options.pendingPath = .init(dir("pending.json"))
            daemon = ReconcileLoop(options: options, loop: loop, backend: backend, monitor: nil,
                                   notifier: SystemdNotifier(environment: [:]), logger: Logger(label: "test"))
        }

        func write(_ text: String, reason: ReconcileReason = .configChanged) throws {
            try daemonWriteInPlace(dir("fwenforcer.conf"), text)
            daemon.reload(force: reason != .configChanged, reason: reason)
        }

        func admins() throws -> [String] {
            try backend.read(table: "fwenforcer").ruleset?.set(named: "admin_ssh_v4")?.elements.ranges.map(\.description) ?? []
        }

        func close() {
            loop.close()
            dir.remove()
        }
    }

    static let a = ProvisionalApplyTests.config
    static let b = ProvisionalApplyTests.lockout
    static let c = ProvisionalApplyTests.lockout.replacingOccurrences(of: "198.19.10.0/24", with: "198.19.20.0/24")

    @Test func theStartIsNotProvisionalAndAChangeIs() throws {
        let h = try Harness()
        defer { h.close() }
        try h.write(Self.a, reason: .start)
        #expect(try h.pending.read() == nil)
        try h.write(Self.b)
        #expect(try h.admins() == ["198.19.10.0/24"])
        let record = try #require(try h.pending.read())
        #expect(record.owner == .daemon && record.previousConfigSHA256 == SHA256.hex(of: Array(Self.a.utf8)))
        #expect(h.daemon.statusLine().contains("provisional config sha256 \(SHA256.hex(of: Array(Self.b.utf8)).prefix(12))"))
    }

    @Test func aSecondChangeKeepsTheConfirmedRulesetAsRollbackTarget() throws {
        let h = try Harness()
        defer { h.close() }
        try h.write(Self.a, reason: .start)
        try h.write(Self.b)
        try h.write(Self.c)
        #expect(try h.admins() == ["198.19.20.0/24"])
        #expect(try h.pending.read()?.previousConfigSHA256 == SHA256.hex(of: Array(Self.a.utf8)))
        h.daemon.rollBack(reason: "not confirmed")
        #expect(try h.admins() == ["198.19.0.0/24"])
        #expect(try h.pending.read()?.state == .rolledBack)
        #expect(h.daemon.refusedHash == SHA256.hex(of: Array(Self.c.utf8)))
    }

    @Test func theRefusedConfigStaysOutUntilTheFileChanges() throws {
        let h = try Harness()
        defer { h.close() }
        try h.write(Self.a, reason: .start)
        try h.write(Self.b)
        h.daemon.rollBack(reason: "not confirmed")
        for reason in [ReconcileReason.sighup, .backstop] {
            h.daemon.reload(force: true, reason: reason)
            #expect(try h.admins() == ["198.19.0.0/24"], "\(reason)")
        }
        // The refusal survives a restart (it is in the state file).
        let restarted = try Harness(sharing: h)
        restarted.daemon.reload(force: true, reason: .start)
        #expect(try h.admins() == ["198.19.0.0/24"])
        restarted.loop.close()
        // A changed file is a new change; confirmed, it stays.
        try h.write(Self.c)
        #expect(try h.admins() == ["198.19.20.0/24"])
        // A plain SIGUSR1, or one naming another change, keeps nothing.
        h.daemon.confirm(token: nil, from: 0)
        h.daemon.confirm(token: (try h.pending.read()?.token ?? 1) &+ 1, from: 0)
        #expect(try h.pending.read()?.state == .pending)
        h.daemon.confirm(token: try h.pending.read()?.token, from: 0)
        #expect(try h.pending.read() == nil)
        h.daemon.rollBack(reason: "not confirmed") // nothing pending: no effect
        #expect(try h.admins() == ["198.19.20.0/24"])
    }

    @Test func stoppingWithinTheWindowRollsBackFirst() throws {
        let h = try Harness()
        defer { h.close() }
        try h.write(Self.a, reason: .start)
        try h.write(Self.b)
        h.daemon.handle(signal: SIGTERM)
        #expect(try h.admins() == ["198.19.0.0/24"])
        #expect(try StateFile(path: .init(h.dir("state.json"))).read()?.refusedConfigSHA256 == SHA256.hex(of: Array(Self.b.utf8)))
    }

    @Test func changingBackToTheConfirmedRulesetClosesTheWindow() throws {
        let h = try Harness()
        defer { h.close() }
        try h.write(Self.a, reason: .start)
        try h.write(Self.b)
        try h.write(Self.a + "\n# same ruleset, other bytes\n")
        #expect(try h.pending.read() == nil)
        #expect(try h.admins() == ["198.19.0.0/24"])
    }
}

extension ProvisionalDaemonTests.Harness {
    /// A second daemon over the same files and fake kernel, as after a restart.
    init(sharing other: ProvisionalDaemonTests.Harness) throws {
        dir = other.dir
        backend = other.backend
        loop = try EventLoop()
        var options = other.daemon.options
        options.statePath = .init(dir("state.json"))
        daemon = ReconcileLoop(options: options, loop: loop, backend: other.backend, monitor: nil,
                               notifier: SystemdNotifier(environment: [:]), logger: Logger(label: "test"))
    }
}
