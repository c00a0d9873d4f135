import Foundation
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// `fwenforcerd reload`, the unit's ExecReload (a minimal Debian has no /bin/kill): it signals the
/// real daemon, by --pid as systemd passes it or by the instance lock, and fails on a bad config.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonReloadCommandTests {
    func reloads(_ daemon: DaemonRunTests.Daemon) -> Int {
        daemon.logText.components(separatedBy: "reconcile (SIGHUP)").count - 1
    }

    @Test func reloadSignalsTheDaemonAndFailsOnABadConfig() throws {
        let setup = try DaemonRunTests.Setup("reload", config: DaemonRunTests.config)
        defer { setup.close() }
        let daemon = try setup.start()
        #expect(eventually(5) { daemon.logText.contains("reconcile (start)") }, "\(daemon.logText)")
        // `ip netns exec` execs the daemon: the process is fwenforcerd itself, as $MAINPID would be.
        let pid = String(daemon.process.processIdentifier)
        let config = setup.path.path

        let byPid = try run([fwenforcerdPath, "reload", "--config", config, "--pid", pid])
        #expect(byPid.status == 0, "\(byPid.stderr)")
        #expect(eventually(5) { reloads(daemon) == 1 }, "\(daemon.logText)")

        let lock = setup.dir.appendingPathComponent("lock").path
        let byLock = try run([fwenforcerdPath, "reload", "--config", config, "--lock-file", lock])
        #expect(byLock.status == 0, "\(byLock.stderr)")
        #expect(byLock.stdout.contains("pid \(pid)"))
        #expect(eventually(5) { reloads(daemon) == 2 }, "\(daemon.logText)")

        // A bad config: `systemctl reload` must fail and say where; the daemon keeps its ruleset.
        try DaemonRunTests.writeConfig(DaemonRunTests.config.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.300"),
                                       to: setup.path)
        let bad = try run([fwenforcerdPath, "reload", "--config", config, "--pid", pid])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("fwenforcer.conf:5: groups.AMQP"), "\(bad.stderr)")
        #expect(bad.stderr.contains("keeps enforcing its last good config"), "\(bad.stderr)")
        #expect(daemon.process.isRunning)

        let nobody = try run([fwenforcerdPath, "reload", "--config", config, "--lock-file", setup.dir.appendingPathComponent("no-lock").path])
        #expect(nobody.status == 1)
        #expect(nobody.stderr.contains("nothing to reload"), "\(nobody.stderr)")
    }
}
