import Foundation
import Logging
import Testing
@testable import Enforcer

/// The daemon's retry path after a refused batch, on the kernel-like fake with refusals injected
/// and the retry timer replaced by the test's own clock: the waits are 1, 2, 4, 8, 16, 30, 30 s,
/// the pass that finally goes through is a full replace (delete table, add table, everything),
/// and a success brings the next failure's wait back to 1 s.
@Suite struct DaemonRetryBackoffTests {
    static let a = DaemonRunTests.config
    static let b = a.replacingOccurrences(of: "198.18.0.30", with: "198.18.0.31")

    @Test func refusedPassesBackOffFromOneToThirtySecondsAndEndInAFullReplace() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let backend = FakeBackend()
        let loop = try EventLoop()
        defer { loop.close() }
        var options = DaemonOptions(configPath: dir("fwenforcer.conf"))
        options.requireSecureConfig = false
        options.statePath = .init(dir("state.json"))
        let daemon = ReconcileLoop(options: options, loop: loop, backend: backend, monitor: nil,
                                   notifier: SystemdNotifier(environment: [:]), logger: Logger(label: "test"))
        var scheduled: [Duration] = []
        daemon.scheduleRetry = { scheduled.append($0) }

        try daemonWriteInPlace(dir("fwenforcer.conf"), Self.a)
        daemon.reload(force: true, reason: .start)
        #expect(scheduled.isEmpty, "the first config applied cleanly")
        #expect(backend.log.last?.committed == true)

        // Config b meets a kernel that refuses seven batches in a row; each timer firing is a retry.
        backend.refuseNextApplies = (7, .noMemory)
        try daemonWriteInPlace(dir("fwenforcer.conf"), Self.b)
        daemon.reload(force: false, reason: .configChanged)
        while scheduled.count < 7 && backend.log.count < 20 { daemon.retry() }
        #expect(scheduled == [1, 2, 4, 8, 16, 30, 30].map { Duration.seconds($0) })
        #expect(daemon.reconciler.knowledge == .mustReplace)

        // The eighth pass goes through, as a full replace, and leaves b in the kernel; no retry follows.
        let refused = backend.log.count
        let before = scheduled.count
        daemon.retry()
        #expect(scheduled.count == before, "a retry was scheduled after a pass that succeeded")
        let last = try #require(backend.log.last)
        #expect(backend.log.count == refused + 1 && last.committed)
        #expect(Array(last.transaction.operations.prefix(2)) == [.deleteTable, .addTable], "\(last.transaction)")
        let plan = Compiler.compile(config: try Config.parse(text: Self.b, file: "b.conf"), roles: ["CCO"]).ruleset
        #expect(try backend.read(table: "fwenforcer").ruleset == plan.canonical)

        // After a success, the next failure waits 1 s again.
        backend.refuseNextApplies = (1, .noMemory)
        try daemonWriteInPlace(dir("fwenforcer.conf"), Self.a)
        daemon.reload(force: false, reason: .configChanged)
        #expect(scheduled.dropFirst(before) == [.seconds(1)])
    }
}
