import Testing
@testable import Enforcer

/// The reconciler against the kernel-like fake: what it sends, when it reads, how it recovers.
@Suite struct ReconcilerTests {
    /// Counts reads, to show the hot path does not dump the kernel's sets.
    final class CountingBackend: Backend {
        let inner = FakeBackend()
        var reads = 0
        var failNext = false
        func read(table: String) throws(BackendError) -> Snapshot { reads += 1; return try inner.read(table: table) }
        func apply(_ tx: Transaction) throws(BackendError) -> ApplyReport {
            if failNext {
                failNext = false
                throw .outcomeUnknown("injected")
            }
            return try inner.apply(tx)
        }
        func check(_ tx: Transaction) throws(BackendError) { try inner.check(tx) }
        func counters(table: String) throws(BackendError) -> [RuleCounter] { try inner.counters(table: table) }
        func otherBaseChains(excluding table: String) throws(BackendError) -> [OtherBaseChain] { try inner.otherBaseChains(excluding: table) }
    }

    static func plan(_ edit: (String) -> String = { $0 }) throws -> Ruleset {
        let cfg = try Config.parse(text: edit(CompilerTests.standard), file: "deploy.conf")
        return Compiler.compile(config: cfg, roles: try cfg.resolveRoles(hostAddresses: [IPAddress("198.18.0.20")!])).ruleset
    }

    static let replaced: @Sendable (String) -> String = { $0.replacingOccurrences(of: "AMQP = [\"198.18.0.30\"]", with: "AMQP = [\"198.18.0.31\"]") }

    @Test func firstPassReadsThenBuildsTheTable() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        let desired = try Self.plan()
        let out = try r.reconcile(to: desired)
        #expect(out.basis == .kernel && out.changed)
        #expect(b.reads == 1)
        #expect(try b.inner.read(table: "fwenforcer").ruleset == desired.canonical)
    }

    @Test func peerReplacementIsOneDeleteAndOneAddWithoutReadingTheKernel() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        try r.reconcile(to: try Self.plan())
        let readsBefore = b.reads
        let out = try r.reconcile(to: try Self.plan(Self.replaced))
        #expect(b.reads == readsBefore)
        #expect(out.basis == .model)
        #expect(out.transaction.operations.count == 2)
        #expect(out.summary.hasPrefix("AMQP_v4 +1 -1, rules unchanged, 2 netlink messages"))
        #expect(try b.inner.read(table: "fwenforcer").ruleset == (try Self.plan(Self.replaced)).canonical)
    }

    @Test func unchangedConfigSendsNothing() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        try r.reconcile(to: try Self.plan())
        let sent = b.inner.log.count
        let out = try r.reconcile(to: try Self.plan())
        #expect(!out.changed && b.inner.log.count == sent)
    }

    /// A lost acknowledgement leaves the outcome unknown: the next pass reads the table and sends
    /// only what is missing, instead of rebuilding the table (forever, where ACKs are lost every time).
    @Test func anUnknownOutcomeIsReadNotRebuilt() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        try r.reconcile(to: try Self.plan())
        b.failNext = true
        #expect(throws: BackendError.self) { try r.reconcile(to: try Self.plan(Self.replaced)) }
        #expect(r.knowledge == .unknown)
        let out = try r.reconcile(to: try Self.plan(Self.replaced))
        #expect(out.basis == .kernel && out.transaction.operations.count == 2)
        #expect(try b.inner.read(table: "fwenforcer").ruleset == (try Self.plan(Self.replaced)).canonical)
        // And when the lost batch was in fact committed, the read finds nothing left to send.
        b.inner.loseNextAcknowledgements = true
        #expect(throws: BackendError.self) { try r.reconcile(to: try Self.plan()) }
        let after = try r.reconcile(to: try Self.plan())
        #expect(after.basis == .kernel && !after.changed)
    }

    /// A rejected batch makes the next pass a full replace, still read first and checked against
    /// the read's generation.
    @Test func aRejectionMakesTheNextPassAFullReplace() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        let good = try Self.plan()
        try r.reconcile(to: good)
        var bad = good
        bad.chains[0].rules.insert(Rule(matches: [.addressInSet(.source, .ipv4, set: "missing_v4")], verdict: .accept), at: 5)
        #expect(throws: BackendError.self) { try r.reconcile(to: bad) }
        #expect(r.knowledge == .mustReplace)
        let readsBefore = b.reads
        let out = try r.reconcile(to: try Self.plan(Self.replaced))
        #expect(out.basis == .replace && b.reads == readsBefore + 1)
        #expect(b.inner.log.last?.transaction.generation != nil)
        #expect(try b.inner.read(table: "fwenforcer").ruleset == (try Self.plan(Self.replaced)).canonical)
    }

    @Test func aRejectedChangeLeavesThePreviousRulesetWhole() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        let good = try Self.plan()
        try r.reconcile(to: good)
        // A rule that looks up a set nobody defines: the kernel refuses the whole batch.
        var bad = good
        bad.chains[0].rules.insert(Rule(matches: [.addressInSet(.source, .ipv4, set: "missing_v4")], verdict: .accept), at: 5)
        #expect(throws: BackendError.self) { try r.reconcile(to: bad) }
        #expect(try b.inner.read(table: "fwenforcer").ruleset == good.canonical)
    }

    @Test func driftIsRepaired() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        let desired = try Self.plan()
        try r.reconcile(to: desired)
        // Someone else deletes our table (as `nft flush ruleset` would).
        _ = try b.inner.apply(Transaction(table: "fwenforcer", operations: [.deleteTable]))
        r.noteForeignChange()
        let out = try r.repair()
        #expect(out?.basis == .kernel && out?.changed == true)
        #expect(try b.inner.read(table: "fwenforcer").ruleset == desired.canonical)
    }

    @Test func aForeignCommitBetweenReadAndApplyRestartsTheCycle() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        var raced = false
        b.inner.beforeApply = { fake in
            if !raced { raced = true; fake.simulateForeignCommit() }
        }
        let out = try r.reconcile(to: try Self.plan())
        #expect(out.restarts == 1)
        #expect(b.reads == 2)
    }

    @Test func monitorCommitsKeepTheGenerationForCompareAndSwap() throws {
        let b = CountingBackend()
        let r = Reconciler(backend: b, table: "fwenforcer")
        try r.reconcile(to: try Self.plan())
        #expect(r.generation == b.inner.generation)
        // Another writer commits to another table: the model stays good, the generation moves on.
        b.inner.addForeignTable("filter")
        r.note(RulesetCommit(generation: b.inner.generation, pid: 1, process: "nft", touchedTable: false, own: false))
        let out = try r.reconcile(to: try Self.plan(Self.replaced))
        #expect(out.basis == .model && out.restarts == 0)
        // Another writer touches our table: the next pass reads the kernel.
        r.note(RulesetCommit(generation: b.inner.generation &+ 1, pid: 1, process: "nft", touchedTable: true, own: false))
        #expect(r.knowledge == .unknown)
    }

    @Test func otherTablesAreNeverTouched() throws {
        let b = CountingBackend()
        b.inner.addForeignTable("filter")
        let r = Reconciler(backend: b, table: "fwenforcer")
        try r.reconcile(to: try Self.plan())
        try r.reconcile(to: try Self.plan(Self.replaced))
        try r.remove()
        #expect(b.inner.tableNames == ["filter"])
    }
}
