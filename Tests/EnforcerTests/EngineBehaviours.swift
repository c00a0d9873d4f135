import Foundation
import Testing
@testable import Enforcer

/// The reconcile engine in the situations a real host meets, written once and run against the fake
/// and the kernel (in a namespace): a rule inserted by hand in an emergency, Debian's own
/// `table inet filter` under the configured name, an empty table made by hand, a renamed table.
struct EngineHarness {
    var backend: any Backend
    /// `nft insert rule inet fwenforcer CHAIN RULE`, by hand.
    var insertRule: (_ chain: String, _ rule: String) throws -> Void
    /// Debian's stock /etc/nftables.conf table (without its `flush ruleset`).
    var loadDebianStockTable: () throws -> Void
    /// `nft add table inet NAME`: an empty table fwenforcer did not create.
    var addEmptyTable: (_ name: String) throws -> Void
    /// The whole listing of a table, to show it untouched (the fake: its read).
    var listing: (_ table: String) throws -> String
    var tableNames: () throws -> [String]

    static let debianStockTable = """
    table inet filter {
    \tchain input {
    \t\ttype filter hook input priority filter;
    \t}
    \tchain forward {
    \t\ttype filter hook forward priority filter;
    \t}
    \tchain output {
    \t\ttype filter hook output priority filter;
    \t}
    }

    """

    static func run(_ kind: BackendKind, _ body: (EngineHarness) throws -> Void) throws {
        switch kind {
        case .fake:
            let fake = FakeBackend()
            try body(EngineHarness(
                backend: fake,
                insertRule: { chain, rule in fake.insertForeignRule(table: "fwenforcer", chain: chain, rule) },
                loadDebianStockTable: {
                    fake.addForeignTable("filter", chains: ["input (type filter hook input priority 0; policy accept)",
                                                            "forward (type filter hook forward priority 0; policy accept)",
                                                            "output (type filter hook output priority 0; policy accept)"])
                },
                addEmptyTable: { fake.addForeignTable($0) },
                listing: { table in "\(try fake.read(table: table))" },
                tableNames: { fake.tableNames }))
        case .kernel:
            try NetworkNamespace.with { ns in
                let backend = try ns.backend()
                defer { backend.close() }
                try body(EngineHarness(
                    backend: backend,
                    insertRule: { chain, rule in try ns.nft("insert rule inet fwenforcer \(chain) \(rule)\n") },
                    loadDebianStockTable: { try ns.nft(debianStockTable) },
                    addEmptyTable: { try ns.nft("add table inet \($0)\n") },
                    listing: { try ns.nftOutput(["list", "table", "inet", $0]) },
                    tableNames: {
                        try ns.nftOutput(["list", "tables", "inet"]).split(separator: "\n").map { String($0.split(separator: " ").last!) }.sorted()
                    }))
            }
        }
    }
}

enum EngineBehaviours {
    static let emergencyRule = "ip saddr 198.18.9.9 tcp dport 2222 accept"

    static func renamed(_ r: Ruleset, _ table: String) -> Ruleset {
        var r = r
        r.tableName = table
        return r
    }

    /// Defect 1: a rule inserted by hand is replaced by the same pass of a fresh engine (what
    /// `fwenforcerd apply` runs), which names it; before, every apply failed with "File exists".
    static func handInsertedRuleRemovedByApply(_ kind: BackendKind) throws {
        try EngineHarness.run(kind) { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            try h.insertRule("input", emergencyRule)
            let out = try Reconciler(backend: h.backend, table: "fwenforcer").reconcile(to: NetlinkFixtures.a)
            #expect(out.basis == .replace && out.changed)
            #expect(out.foreign == ["rule in chain input: \(emergencyRule)"])
            #expect(out.summary.hasPrefix("removed 1 object fwenforcer did not write: rule in chain input: \(emergencyRule)"), "\(out.summary)")
            let after = try h.backend.read(table: "fwenforcer")
            #expect(after.ruleset == NetlinkFixtures.a.canonical && after.foreign.isEmpty && after.marked)
            #expect(try h.backend.reconcile(to: NetlinkFixtures.a).apply == nil, "idempotent afterwards")
        }
    }

    /// Defect 1, the rollback: a provisional change's rollback after an emergency edit restores the
    /// previous ruleset (the edit goes with it) instead of ending `rollback-failed`.
    static func handInsertedRuleRemovedByRollback(_ kind: BackendKind) throws {
        try EngineHarness.run(kind) { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            _ = try h.backend.reconcile(to: NetlinkFixtures.b)
            try h.insertRule("input", emergencyRule)
            let said = try Rollback.restore(NetlinkFixtures.a, table: "fwenforcer", backend: h.backend)
            #expect(said.contains("removed 1 object fwenforcer did not write"), "\(said)")
            let after = try h.backend.read(table: "fwenforcer")
            #expect(after.ruleset == NetlinkFixtures.a.canonical && after.foreign.isEmpty)
            // And a rollback to "no table" deletes a table it cannot represent.
            try h.insertRule("input", emergencyRule)
            _ = try Rollback.restore(nil, table: "fwenforcer", backend: h.backend)
            #expect(try h.tableNames().isEmpty)
        }
    }

    /// Defect 4: Debian's stock `table inet filter` under the configured name is refused with an
    /// error naming it, and left exactly as it was; nothing is sent.
    static func unmarkedTableRefusedAndUntouched(_ kind: BackendKind) throws {
        try EngineHarness.run(kind) { h in
            try h.loadDebianStockTable()
            let before = try h.listing("filter")
            let plan = renamed(NetlinkFixtures.a, "filter")
            do {
                _ = try Reconciler(backend: h.backend, table: "filter").reconcile(to: plan)
                Issue.record("an unmarked table was adopted")
            } catch BackendError.notOwned(let why) {
                #expect(why.hasPrefix("table inet filter exists and was not created by fwenforcer"), "\(why)")
                #expect(why.contains("forward"), "names what the table holds: \(why)")
            }
            #expect(throws: BackendError.self) { _ = try h.backend.replace(with: plan) }
            #expect(throws: BackendError.self) { try Reconciler(backend: h.backend, table: "filter").remove() }
            #expect(try h.listing("filter") == before)
        }
    }

    /// An empty table nobody marked loses nothing when taken: it is re-created with the mark.
    static func emptyUnmarkedTableAdopted(_ kind: BackendKind) throws {
        try EngineHarness.run(kind) { h in
            try h.addEmptyTable("fwenforcer")
            #expect(try h.backend.read(table: "fwenforcer").marked == false)
            let out = try h.backend.reconcile(to: NetlinkFixtures.a)
            #expect(out.apply != nil)
            let after = try h.backend.read(table: "fwenforcer")
            #expect(after.marked && after.ruleset == NetlinkFixtures.a.canonical)
        }
    }

    /// Defect 4, rename: the new table is created and the old one deleted in one batch.
    static func renameLeavesExactlyOneTable(_ kind: BackendKind) throws {
        try EngineHarness.run(kind) { h in
            _ = try h.backend.reconcile(to: NetlinkFixtures.a)
            let r = Reconciler(backend: h.backend, table: "fw2")
            r.retire(["fwenforcer"])
            let out = try r.reconcile(to: renamed(NetlinkFixtures.a, "fw2"))
            #expect(out.transaction.retiredTables == ["fwenforcer"])
            #expect(out.summary.contains("table inet fwenforcer (the earlier [enforce] table) deleted"), "\(out.summary)")
            #expect(try h.tableNames() == ["fw2"])
            // An unmarked table under the old name is never deleted.
            try h.loadDebianStockTable()
            let again = Reconciler(backend: h.backend, table: "fw2")
            again.retire(["filter"])
            _ = try again.reconcile(to: renamed(NetlinkFixtures.b, "fw2"))
            #expect(try h.tableNames() == ["filter", "fw2"])
        }
    }
}

@Suite struct EngineFakeTests {
    @Test func handInsertedRuleRemovedByApply() throws { try EngineBehaviours.handInsertedRuleRemovedByApply(.fake) }
    @Test func handInsertedRuleRemovedByRollback() throws { try EngineBehaviours.handInsertedRuleRemovedByRollback(.fake) }
    @Test func unmarkedTableRefusedAndUntouched() throws { try EngineBehaviours.unmarkedTableRefusedAndUntouched(.fake) }
    @Test func emptyUnmarkedTableAdopted() throws { try EngineBehaviours.emptyUnmarkedTableAdopted(.fake) }
    @Test func renameLeavesExactlyOneTable() throws { try EngineBehaviours.renameLeavesExactlyOneTable(.fake) }

    /// The fake skips the check for generation 0, as the kernel does, so it cannot hide a caller
    /// that sends 0; and the engine never does, across every kind of pass.
    @Test func generationZeroIsUncheckedAndNeverSent() throws {
        let fake = FakeBackend()
        fake.simulateForeignCommit()
        _ = try fake.apply(Transaction(table: "x", operations: [.addTable], generation: 0))
        let r = Reconciler(backend: fake, table: "fwenforcer")
        try r.reconcile(to: NetlinkFixtures.a)
        try r.reconcile(to: NetlinkFixtures.aWithPeerReplaced)
        fake.insertForeignRule(table: "fwenforcer", chain: "input", EngineBehaviours.emergencyRule)
        r.noteForeignChange()
        try r.reconcile(to: NetlinkFixtures.b)
        try r.remove()
        for (tx, _) in fake.log.dropFirst() {
            #expect(tx.generation != nil && tx.generation != 0, "\(tx)")
        }
    }

    /// Defect 6: the generation after a commit at 0xffffffff is 1 (the kernel skips 0), so the next
    /// incremental batch is still checked, and a foreign commit in between is caught.
    @Test func generationWrapSkipsZero() throws {
        let fake = FakeBackend()
        fake.setGeneration(.max)
        let r = Reconciler(backend: fake, table: "fwenforcer")
        try r.reconcile(to: NetlinkFixtures.a)
        #expect(fake.generation == 1 && r.generation == 1)
        var raced = false
        fake.beforeApply = { f in if !raced { raced = true; f.insertForeignRule(table: "fwenforcer", chain: "input", EngineBehaviours.emergencyRule) } }
        let out = try r.reconcile(to: NetlinkFixtures.aWithPeerReplaced)
        #expect(out.restarts == 1 && out.basis == .replace)
        #expect(try fake.read(table: "fwenforcer").foreign.isEmpty)
    }

    /// Defect 6: an ERESTART caused by another writer's commit to another table is retried on the
    /// model, without reading this table, when the monitor says the commit did not touch it.
    @Test func restartCausedByAnotherTableNeedsNoRead() throws {
        let b = ReconcilerTests.CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        try r.reconcile(to: NetlinkFixtures.a)
        var pending: [MonitorEvent] = []
        r.pendingCommits = { defer { pending = [] }; return pending }
        var raced = false
        b.inner.beforeApply = { f in
            guard !raced else { return }
            raced = true
            f.addForeignTable("fail2ban")
            pending = [.commit(RulesetCommit(generation: f.generation, pid: 7, process: "fail2ban", touchedTable: false, own: false))]
        }
        let reads = b.reads
        let out = try r.reconcile(to: NetlinkFixtures.aWithPeerReplaced)
        #expect(out.restarts == 1 && out.basis == .model && b.reads == reads)
        #expect(try b.inner.read(table: "fwenforcer").ruleset == NetlinkFixtures.aWithPeerReplaced.canonical)
    }

    /// An earlier fwenforcer's table (written before the mark existed) is adopted, not refused.
    @Test func earlierFwenforcerTableAdopted() throws {
        let fake = FakeBackend()
        let plan = try ReconcilerTests.plan()
        fake.load(plan, marked: false)
        let out = try fake.reconcile(to: plan)
        #expect(out.apply != nil)
        #expect(fake.isMarked("fwenforcer") == true)
    }
}

@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct EngineKernelTests {
    @Test func handInsertedRuleRemovedByApply() throws { try EngineBehaviours.handInsertedRuleRemovedByApply(.kernel) }
    @Test func handInsertedRuleRemovedByRollback() throws { try EngineBehaviours.handInsertedRuleRemovedByRollback(.kernel) }
    @Test func unmarkedTableRefusedAndUntouched() throws { try EngineBehaviours.unmarkedTableRefusedAndUntouched(.kernel) }
    @Test func emptyUnmarkedTableAdopted() throws { try EngineBehaviours.emptyUnmarkedTableAdopted(.kernel) }
    @Test func renameLeavesExactlyOneTable() throws { try EngineBehaviours.renameLeavesExactlyOneTable(.kernel) }

    /// The mark as the independent nft CLI shows it.
    @Test func nftListsTheOwnershipMark() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            _ = try backend.reconcile(to: NetlinkFixtures.a)
            let listed = try ns.nftOutput(["list", "table", "inet", "fwenforcer"])
            #expect(listed.contains("comment \"\(TableMarker.comment)\""), "\(listed)")
        }
    }
}

@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelBusyWriterTests {
    /// Defect 6: another writer committing to another table all the time (fail2ban, kube-proxy)
    /// must not make every read of this table fail; the monitor says its commits left it alone.
    @Test func readsSucceedWhileAnotherTableIsBusy() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            let set = NamedSet(name: "peers_v6", family: .ipv6, interval: false, elements: KernelScaleTests.hosts(20_000))
            let ruleset = Ruleset(sets: [set], chains: [Chain(name: "input", hook: .input, policy: .accept,
                                                           rules: [Rule(matches: [.addressInSet(.source, .ipv6, set: "peers_v6")], verdict: .accept, comment: "peers")])])
            _ = try backend.replace(with: ruleset)
            let monitor = try ns.entered { try NetlinkMonitor(table: "fwenforcer") }
            defer { monitor.close() }
            monitor.ownPortIDs = [backend.portID]
            backend.tableUntouched = { _, from, to in monitor.drainCheckingTable(after: from, upTo: to).untouched }

            let stop = ManagedAtomicFlag()
            let writer = Thread {
                guard let other = try? ns.entered({ try NetlinkBackend() }) else { return }
                defer { other.close() }
                var n = 0
                // 200 commits a second: busier than fail2ban under attack, and every dump of the
                    // 20,000 elements spans several of them.
                while !stop.isSet {
                    usleep(5_000)
                    n += 1
                    _ = try? other.apply(Transaction(table: "busy", operations: n % 2 == 0 ? [.deleteTable] : [.addTable]))
                }
            }
            writer.start()
            defer { stop.set(); while !writer.isFinished { usleep(1_000) } }
            usleep(100_000)
            for i in 0..<10 {
                let snapshot = try backend.read(table: "fwenforcer")
                #expect(snapshot.ruleset?.set(named: "peers_v6")?.elements.ranges.count == 20_000, "read \(i)")
            }
        }
    }
}

/// A flag shared with a writer thread.
final class ManagedAtomicFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
