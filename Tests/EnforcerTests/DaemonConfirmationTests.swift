import Foundation
import Testing
import SystemPackage
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The real daemon's provisional windows where fleet automation and crashes meet them: a change
/// replaced by a newer one before the operator's `confirm` lands, and a daemon killed within its
/// window. Real kernel in a namespace, the real `fwenforcerd confirm`.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonConfirmationTests {
    typealias Run = DaemonRunTests
    let helper = DaemonRunTests()

    static func config(amqp: String) -> String { DaemonRunTests.config.replacingOccurrences(of: "198.18.0.30", with: amqp) }

    /// Writes `text` as the config the way automation does (write, then rename).
    static func install(_ text: String, at path: URL) throws {
        let next = path.deletingLastPathComponent().appendingPathComponent("next.conf")
        try Run.writeConfig(text, to: next)
        guard rename(next.path, path.path) == 0 else { throw NamespaceError("rename failed") }
    }

    /// Defect 1: the operator verified change B, but automation installed C before `confirm`
    /// landed. A confirmation that names B does not keep C; `confirm --change B` refuses and says
    /// what is pending; a plain `confirm` then keeps C and says it was C.
    @Test func aConfirmationKeepsOnlyTheChangeItNames() throws {
        let setup = try Run.Setup("confirm", config: Self.config(amqp: "198.18.0.30"))
        defer { setup.close() }
        let (ns, dir, path) = (setup.ns, setup.dir, setup.path)
        let pending = dir.appendingPathComponent("pending.json")
        let file = PendingFile(path: FilePath(pending.path))
        let daemon = try setup.start(extra: ["--confirm-within", "60", "--pending-file", pending.path])
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.30") })

        try Self.install(Self.config(amqp: "198.18.0.31"), at: path)
        #expect(try eventually { try file.read()?.applied.contains("AMQP_v4 +1 -1") == true }, "\(daemon.logText)")
        let b = try #require(try file.read())
        try Self.install(Self.config(amqp: "198.18.0.32"), at: path)
        #expect(try eventually { try file.read().map { $0.configSHA256 != b.configSHA256 } == true }, "\(daemon.logText)")
        let c = try #require(try file.read())

        // What a confirm that read B's record sends: B's token. C stays provisional.
        try #require(b.ownerIdentity).signal(SIGUSR1, value: try #require(b.token))
        #expect(eventually { daemon.logText.contains("names another change than the pending one") }, "\(daemon.logText)")
        #expect(try file.read()?.configSHA256 == c.configSHA256 && file.read()?.state == .pending)
        // A plain kill -USR1 confirms nothing either.
        kill(b.pid, SIGUSR1)
        #expect(eventually { daemon.logText.contains("names no change") })
        #expect(try file.read()?.state == .pending)

        let named = try ns.exec([fwenforcerdPath, "confirm", "--pending-file", pending.path, "--change", String(b.configSHA256.prefix(12))])
        #expect(named.status == 1 && named.stderr.contains("the pending change is config sha256 \(c.configSHA256.prefix(12))"), "\(named.stderr)")
        #expect(try file.read()?.state == .pending)

        let plain = try ns.exec([fwenforcerdPath, "confirm", "--pending-file", pending.path])
        #expect(plain.status == 0 && plain.stdout.contains("sha256 \(c.configSHA256.prefix(12))"), "\(plain.stdout)\(plain.stderr)")
        #expect(try file.read() == nil)
        #expect(try helper.setHas(ns, "AMQP_v4", "198.18.0.32"))
    }

    /// Defect 2: a daemon killed within its window (a crash, the watchdog) does not make the
    /// change permanent: the restarted daemon restores the previous ruleset and refuses that config.
    @Test func aCrashWithinTheWindowRollsBackAtRestart() throws {
        let setup = try Run.Setup("crash", config: Self.config(amqp: "198.18.0.30"))
        defer { setup.close() }
        let (ns, dir, path) = (setup.ns, setup.dir, setup.path)
        let pending = dir.appendingPathComponent("pending.json")
        let file = PendingFile(path: FilePath(pending.path))
        let extra = ["--confirm-within", "60", "--pending-file", pending.path]
        var daemon = try setup.start(extra: extra)
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.30") })
        try Self.install(Self.config(amqp: "198.18.0.31"), at: path)
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.31") && file.read()?.state == .pending }, "\(daemon.logText)")
        let unconfirmed = try #require(try file.read())

        daemon.signal(SIGKILL)
        daemon.stop()
        daemon = try setup.start(extra: extra)
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.30") && !helper.setHas(ns, "AMQP_v4", "198.18.0.31") },
                "\(daemon.logText)")
        #expect(daemon.logText.contains("was provisional when the daemon owning its window (pid \(unconfirmed.pid)) stopped without a confirmation"),
                "\(daemon.logText)")
        #expect(try file.read()?.state == .rolledBack)
        // Refused until the file changes, also across the reload at start.
        daemon.signal(SIGHUP)
        usleep(300_000)
        #expect(try helper.setHas(ns, "AMQP_v4", "198.18.0.30"))
        try Self.install(Self.config(amqp: "198.18.0.33"), at: path)
        #expect(try eventually { try helper.setHas(ns, "AMQP_v4", "198.18.0.33") }, "\(daemon.logText)")
    }
}

/// Defect 3 of issue 12: a catalog file decides the firewall as much as the config does. It gets
/// the config's security check, a watch, and a place in the content hash the provisional window and
/// refusals are keyed on.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonCatalogFileTests {
    let helper = DaemonRunTests()

    static let config = """
    [host]
    roles = ["MANAGER"]
    catalog = "site-catalog.toml"
    [groups]
    AGENT = ["198.18.0.50"]
    admin_ssh = ["198.19.0.0/24"]
    """

    static func catalog(restPort: Int) -> String {
        Catalog.builtInText("cloudify")!.replacingOccurrences(of: "53333", with: "\(restPort)")
    }

    func inputRules(_ ns: DaemonRunTests.Namespace) throws -> String {
        try ns.exec(["nft", "list", "chain", "inet", "fwenforcer", "input"]).stdout
    }

    @Test func catalogFileIsCheckedWatchedAndProvisional() throws {
        let setup = try DaemonRunTests.Setup("catalog", config: Self.config)
        defer { setup.close() }
        let (ns, dir) = (setup.ns, setup.dir)
        let catalog = dir.appendingPathComponent("site-catalog.toml")
        let pending = dir.appendingPathComponent("pending.json")
        // Writable by others: refused like such a config (the daemon starts on the baseline).
        try Self.catalog(restPort: 53333).write(to: catalog, atomically: false, encoding: .utf8)
        chmod(catalog.path, 0o666)
        let daemon = try setup.start(extra: ["--confirm-within", "60", "--pending-file", pending.path])
        #expect(eventually { daemon.logText.contains("refusing config") && daemon.logText.contains(catalog.path) }, "\(daemon.logText)")
        #expect(try inputRules(ns).contains(Baseline.adminRuleComment))

        // Made safe: picked up by the watch, no SIGHUP.
        chmod(catalog.path, 0o600)
        try DaemonRunTests.writeConfig(Self.catalog(restPort: 53333), to: catalog)
        #expect(try eventually { try inputRules(ns).contains("53333") }, "\(daemon.logText)")

        // An edit of the catalog alone is a change like a config edit: provisional, keyed on both.
        try DaemonRunTests.writeConfig(Self.catalog(restPort: 53334), to: catalog)
        #expect(try eventually { try inputRules(ns).contains("53334") }, "\(daemon.logText)")
        let file = PendingFile(path: FilePath(pending.path))
        let record = try #require(try file.read())
        let configOnly = SHA256.hex(of: Array(Self.config.utf8))
        #expect(record.state == .pending && record.configSHA256 != configOnly)
        // Not confirmed: the rollback restores 53333 and refuses that content of the two files.
        daemon.signal(SIGTERM)
        daemon.stop()
        #expect(try !inputRules(ns).contains("53334") && inputRules(ns).contains("53333"))
        let restarted = try setup.start(extra: ["--confirm-within", "60", "--pending-file", pending.path])
        #expect(eventually { restarted.logText.contains("stays refused") }, "\(restarted.logText)")
        #expect(try !inputRules(ns).contains("53334"))
    }
}
