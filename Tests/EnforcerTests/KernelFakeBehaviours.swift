import Foundation
import Testing
@testable import Enforcer

/// Behaviour every `Backend` must show, written once and run against the fake (always) and the
/// kernel (in a namespace, when root): `FakeBehaviourTests` and `KernelBehaviourTests` below.
struct BackendHarness {
    var backend: any Backend
    /// Commits something outside fwenforcer's table, as another process would.
    var foreignCommit: () throws -> Void
    /// Names of all inet tables.
    var tableNames: () throws -> [String]
}

enum BackendKind: String, Sendable {
    case fake, kernel

    func run(_ body: (BackendHarness) throws -> Void) throws {
        switch self {
        case .fake:
            let fake = FakeBackend()
            var n = 0
            try body(BackendHarness(backend: fake, foreignCommit: { n += 1; fake.addForeignTable("somebody_else_\(n)") },
                                    tableNames: { fake.tableNames }))
        case .kernel:
            try NetworkNamespace.with { ns in
                let backend = try ns.backend()
                defer { backend.close() }
                var n = 0
                try body(BackendHarness(
                    backend: backend,
                    foreignCommit: { n += 1; try ns.nft("add table inet somebody_else_\(n)\n") },
                    tableNames: {
                        try ns.nftOutput(["list", "tables", "inet"]).split(separator: "\n").map { String($0.split(separator: " ").last!) }.sorted()
                    }))
            }
        }
    }
}

enum Behaviours {
    static let table = defaultTableName

    static func readTable(_ b: any Backend) throws -> Ruleset? { try b.read(table: table).ruleset }

    static func rejection(_ body: () throws -> Void) -> [Rejection] {
        do {
            try body()
        } catch let BackendError.rejected(list) {
            return list
        } catch {
            Issue.record("expected a rejection, got \(error)")
            return []
        }
        Issue.record("expected a rejection, the transaction went through")
        return []
    }

    /// A full replace creates the table; reading it back gives the applied ruleset exactly; a
    /// second reconcile has nothing to do.
    static func applyReadBackIdempotent(_ kind: BackendKind) throws {
        try kind.run { h in
            #expect(try readTable(h.backend) == nil)
            let report = try h.backend.replace(with: NetlinkFixtures.a)
            let snapshot = try h.backend.read(table: table)
            #expect(snapshot.ruleset == NetlinkFixtures.a.canonical)
            #expect(report.generation == snapshot.generation, "the report names the generation the commit produced")
            let again = try h.backend.reconcile(to: NetlinkFixtures.a)
            #expect(again.transaction.operations.isEmpty)
            #expect(again.apply == nil)
        }
    }

    /// The diff of (A → B) applied to a table holding A leaves B, exactly; and the reverse.
    static func diffAppliedGivesTarget(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let ab = try h.backend.reconcile(to: NetlinkFixtures.b)
            #expect(!ab.transaction.operations.isEmpty)
            #expect(try readTable(h.backend) == NetlinkFixtures.b.canonical)
            _ = try h.backend.reconcile(to: NetlinkFixtures.a)
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
        }
    }

    /// Replacing one peer of a set is one element deleted and one added, nothing else.
    static func onePeerChangeIsTwoElementOperations(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let r = try h.backend.reconcile(to: NetlinkFixtures.aWithPeerReplaced)
            let old = NetlinkFixtures.range("198.18.5.3", "198.18.5.3"), new = NetlinkFixtures.range("198.18.5.4", "198.18.5.4")
            #expect(r.transaction.operations == [
                .deleteElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [old])),
                .addElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [new])),
            ])
            #expect(r.apply?.added == 1 && r.apply?.removed == 1)
            if kind == .kernel { #expect(r.apply?.messages == 2) }
            #expect(try readTable(h.backend) == NetlinkFixtures.aWithPeerReplaced.canonical)
        }
    }

    /// A rule looking up a set that does not exist is refused, named, and nothing changes.
    static func ruleWithMissingSetRejected(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let bad = Rule(matches: [.addressInSet(.source, .ipv4, set: "NOPE_v4"), .ports(.destination, .tcp, [PortRange(22)])], verdict: .accept)
            let tx = Transaction(table: table, operations: [
                .addElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [NetlinkFixtures.range("198.18.5.77", "198.18.5.77")])),
                .addRule(chain: "input", bad),
            ])
            let rejections = rejection { _ = try h.backend.apply(tx) }
            #expect(rejections.map(\.object) == ["rule \"ip saddr @NOPE_v4 tcp dport 22 accept\" in chain input"])
            #expect(rejections.map(\.code) == [.noSuchFileOrDirectory])
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
        }
    }

    /// Adding an element that is already there is EEXIST, named by the element; nothing changes,
    /// not even the other, valid elements of the same transaction.
    static func duplicateElementRejected(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let tx = Transaction(table: table, operations: [
                .addElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [NetlinkFixtures.range("198.18.5.77", "198.18.5.77")])),
                .addElements(SetElements(set: "CCM_v4", family: .ipv4, interval: true, ranges: [NetlinkFixtures.range("198.18.0.7", "198.18.0.7")])),
            ])
            let rejections = rejection { _ = try h.backend.apply(tx) }
            #expect(rejections.map(\.description) == ["set CCM_v4 element 198.18.0.7: File exists"])
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
        }
    }

    /// An interval overlapping a stored one is refused (the kernel reports it as EEXIST).
    static func overlappingIntervalRejected(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let inside = NetlinkFixtures.range("198.18.1.10", "198.18.1.20")
            let rejections = rejection {
                _ = try h.backend.apply(Transaction(table: table, operations: [
                    .addElements(SetElements(set: "CCM_v4", family: .ipv4, interval: true, ranges: [inside])),
                ]))
            }
            #expect(rejections.map(\.description) == ["set CCM_v4 element 198.18.1.10-198.18.1.20: File exists"])
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
        }
    }

    /// Deleting an element that is not there is ENOENT, named by the element.
    static func missingElementDeleteRejected(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let rejections = rejection {
                _ = try h.backend.apply(Transaction(table: table, operations: [
                    .deleteElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [NetlinkFixtures.range("198.18.5.2", "198.18.5.2")])),
                ]))
            }
            #expect(rejections.map(\.description) == ["set MON_v4 element 198.18.5.2: No such file or directory"])
        }
    }

    /// A set a rule looks up cannot be deleted (EBUSY); after flushing the chain it can, in the
    /// same transaction.
    static func setInUseCannotBeDeleted(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let rejections = rejection {
                _ = try h.backend.apply(Transaction(table: table, operations: [.deleteSet("MON_v4")]))
            }
            #expect(rejections.map(\.object) == ["set MON_v4"])
            #expect(rejections.map(\.code) == [.resourceBusy])
            _ = try h.backend.apply(Transaction(table: table, operations: [.flushChain("input"), .flushChain("output"), .deleteSet("MON_v4")]))
            #expect(try readTable(h.backend)?.set(named: "MON_v4") == nil)
        }
    }

    /// Objects that do not exist: ENOENT, named.
    static func missingObjectsRejected(_ kind: BackendKind) throws {
        try kind.run { h in
            let none = rejection { _ = try h.backend.apply(Transaction(table: table, operations: [.deleteTable])) }
            #expect(none.map(\.description) == ["table inet fwenforcer: No such file or directory"])
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let chain = rejection { _ = try h.backend.apply(Transaction(table: table, operations: [.flushChain("forward")])) }
            #expect(chain.map(\.description) == ["chain forward: No such file or directory"])
            let set = rejection { _ = try h.backend.apply(Transaction(table: table, operations: [.addSet(SetDefinition(name: "CCM_v4", family: .ipv4, interval: true))])) }
            #expect(set.map(\.description) == ["set CCM_v4: File exists"])
        }
    }

    /// An IPv4 address looked up in an IPv6 set reads register bytes nothing wrote: the kernel
    /// refuses it (ENODATA). The other way round the kernel compares 4 of 16 bytes and accepts it,
    /// which is why the compiler, not the backend, must keep families apart.
    static func familyMismatchRejected(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let rule = Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v6")], verdict: .accept)
            let rejections = rejection { _ = try h.backend.apply(Transaction(table: table, operations: [.addRule(chain: "input", rule)])) }
            #expect(rejections.map(\.object) == ["rule \"ip saddr @CCM_v6 accept\" in chain input"])
            #expect(rejections.map(\.code) == [.noData])
            let wide = Rule(matches: [.addressInSet(.source, .ipv6, set: "CCM_v4")], verdict: .accept)
            _ = try h.backend.apply(Transaction(table: table, operations: [.addRule(chain: "input", wide)]))
        }
    }

    /// A base chain cannot move to another hook or priority by re-adding it.
    static func chainCannotChangeHook(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let rejections = rejection {
                _ = try h.backend.apply(Transaction(table: table, operations: [.addChain(BaseChain(name: "input", hook: .output, priority: 0, policy: .drop))]))
            }
            #expect(rejections.map(\.object) == ["chain input"])
            #expect(rejections.count == 1)
            // The policy of an existing chain can be changed that way.
            _ = try h.backend.apply(Transaction(table: table, operations: [.addChain(BaseChain(name: "output", hook: .output, priority: 0, policy: .drop))]))
            #expect(try readTable(h.backend)?.chain(named: "output")?.policy == .drop)
        }
    }

    /// `check` validates without changing anything, and reports what `apply` would.
    static func checkChangesNothing(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let good = Diff.transaction(from: NetlinkFixtures.a, to: NetlinkFixtures.b)
            try h.backend.check(good)
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
            var bad = good
            bad.operations.append(.deleteChain("forward"))
            let rejections = rejection { try h.backend.check(bad) }
            #expect(rejections.map(\.description) == ["chain forward: No such file or directory"])
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
        }
    }

    /// Compare-and-swap: a transaction computed before another writer's commit is refused; the
    /// reconcile loop re-reads and succeeds.
    static func staleGenerationRefusedAndReconcileRetries(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            let snapshot = try h.backend.read(table: table)
            let tx = Diff.transaction(from: snapshot.ruleset, to: NetlinkFixtures.b, generation: snapshot.generation)
            try h.foreignCommit()
            do {
                _ = try h.backend.apply(tx)
                Issue.record("a stale transaction went through")
            } catch BackendError.generationChanged(let expected) {
                #expect(expected == snapshot.generation)
            }
            #expect(try readTable(h.backend) == NetlinkFixtures.a.canonical)
            let r = try h.backend.reconcile(to: NetlinkFixtures.b)
            #expect(r.restarts == 0)
            #expect(try readTable(h.backend) == NetlinkFixtures.b.canonical)
        }
    }

    /// Replacing, diffing and deleting fwenforcer's table leave other tables alone.
    static func otherTablesUntouched(_ kind: BackendKind) throws {
        try kind.run { h in
            try h.foreignCommit()
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            _ = try h.backend.replace(with: NetlinkFixtures.b)
            _ = try h.backend.reconcile(to: NetlinkFixtures.a)
            #expect(try h.tableNames() == ["fwenforcer", "somebody_else_1"])
            _ = try h.backend.apply(Transaction(table: table, operations: [.deleteTable]))
            #expect(try h.tableNames() == ["somebody_else_1"])
        }
    }

    /// A transaction naming the full set of changes, including re-creating a set in the same
    /// batch as the rules using it, applied from empty.
    static func setKindChangeInOneBatch(_ kind: BackendKind) throws {
        try kind.run { h in
            _ = try h.backend.replace(with: NetlinkFixtures.a)
            var c = NetlinkFixtures.a
            let i = c.sets.firstIndex { $0.name == "CCM_v4" }!
            c.sets[i] = NetlinkFixtures.set("CCM_v4", .ipv4, interval: false, ["198.18.0.7", "198.18.0.9"])
            let r = try h.backend.reconcile(to: c)
            #expect(r.transaction.operations.contains(.deleteSet("CCM_v4")))
            #expect(r.transaction.operations.contains(.flushChain("input")))
            #expect(!r.transaction.operations.contains(.flushChain("output")))
            #expect(try readTable(h.backend) == c.canonical)
        }
    }
}

@Suite struct FakeBehaviourTests {
    @Test func applyReadBackIdempotent() throws { try Behaviours.applyReadBackIdempotent(.fake) }
    @Test func diffAppliedGivesTarget() throws { try Behaviours.diffAppliedGivesTarget(.fake) }
    @Test func onePeerChangeIsTwoElementOperations() throws { try Behaviours.onePeerChangeIsTwoElementOperations(.fake) }
    @Test func ruleWithMissingSetRejected() throws { try Behaviours.ruleWithMissingSetRejected(.fake) }
    @Test func duplicateElementRejected() throws { try Behaviours.duplicateElementRejected(.fake) }
    @Test func overlappingIntervalRejected() throws { try Behaviours.overlappingIntervalRejected(.fake) }
    @Test func missingElementDeleteRejected() throws { try Behaviours.missingElementDeleteRejected(.fake) }
    @Test func setInUseCannotBeDeleted() throws { try Behaviours.setInUseCannotBeDeleted(.fake) }
    @Test func missingObjectsRejected() throws { try Behaviours.missingObjectsRejected(.fake) }
    @Test func familyMismatchRejected() throws { try Behaviours.familyMismatchRejected(.fake) }
    @Test func chainCannotChangeHook() throws { try Behaviours.chainCannotChangeHook(.fake) }
    @Test func checkChangesNothing() throws { try Behaviours.checkChangesNothing(.fake) }
    @Test func staleGenerationRefusedAndReconcileRetries() throws { try Behaviours.staleGenerationRefusedAndReconcileRetries(.fake) }
    @Test func otherTablesUntouched() throws { try Behaviours.otherTablesUntouched(.fake) }
    @Test func setKindChangeInOneBatch() throws { try Behaviours.setKindChangeInOneBatch(.fake) }
}

@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelBehaviourTests {
    @Test func applyReadBackIdempotent() throws { try Behaviours.applyReadBackIdempotent(.kernel) }
    @Test func diffAppliedGivesTarget() throws { try Behaviours.diffAppliedGivesTarget(.kernel) }
    @Test func onePeerChangeIsTwoElementOperations() throws { try Behaviours.onePeerChangeIsTwoElementOperations(.kernel) }
    @Test func ruleWithMissingSetRejected() throws { try Behaviours.ruleWithMissingSetRejected(.kernel) }
    @Test func duplicateElementRejected() throws { try Behaviours.duplicateElementRejected(.kernel) }
    @Test func overlappingIntervalRejected() throws { try Behaviours.overlappingIntervalRejected(.kernel) }
    @Test func missingElementDeleteRejected() throws { try Behaviours.missingElementDeleteRejected(.kernel) }
    @Test func setInUseCannotBeDeleted() throws { try Behaviours.setInUseCannotBeDeleted(.kernel) }
    @Test func missingObjectsRejected() throws { try Behaviours.missingObjectsRejected(.kernel) }
    @Test func familyMismatchRejected() throws { try Behaviours.familyMismatchRejected(.kernel) }
    @Test func chainCannotChangeHook() throws { try Behaviours.chainCannotChangeHook(.kernel) }
    @Test func checkChangesNothing() throws { try Behaviours.checkChangesNothing(.kernel) }
    @Test func staleGenerationRefusedAndReconcileRetries() throws { try Behaviours.staleGenerationRefusedAndReconcileRetries(.kernel) }
    @Test func otherTablesUntouched() throws { try Behaviours.otherTablesUntouched(.kernel) }
    @Test func setKindChangeInOneBatch() throws { try Behaviours.setKindChangeInOneBatch(.kernel) }
}
