import Testing
@testable import Enforcer

/// The pure diff: what it sends for each kind of change, and in which order.
@Suite struct DiffTests {
    typealias F = NetlinkFixtures

    @Test func fromNothingCreatesEverything() {
        let tx = Diff.transaction(from: nil, to: F.a)
        #expect(tx.operations.first == .addTable)
        #expect(tx.operations.filter { if case .addRule = $0 { return true } else { return false } }.count == F.a.chains.map(\.rules.count).reduce(0, +))
        // Sets before the rules that look them up.
        let firstRule = tx.operations.firstIndex { if case .addRule = $0 { return true } else { return false } }!
        let lastSet = tx.operations.lastIndex { if case .addSet = $0 { return true } else { return false } }!
        #expect(lastSet < firstRule)
    }

    /// The kernel appends a new set to the table's list: the plan's role sets arriving over the
    /// baseline re-create the baseline's admin_ssh_v4 behind them, so the sets end in plan order.
    @Test func newSetsSortingFirstRecreateTheKeptSetsAfterThem() {
        let config = try! Config.parse(text: """
            [host]
            roles = ["CCO"]
            [groups]
            AMQP = ["198.18.0.30"]
            admin_ssh = ["198.19.0.0/24"]
            """, file: "t.conf")
        let baseline = Baseline.ruleset(Baseline.Inputs(config))
        let plan = Compiler.compile(config: config, roles: ["CCO"]).ruleset
        let tx = Diff.transaction(from: baseline, to: plan)
        let added = tx.operations.compactMap { op -> String? in if case .addSet(let s) = op { return s.name } else { return nil } }
        #expect(added == plan.sets.map(\.name))
        #expect(tx.operations.contains(.deleteSet("admin_ssh_v4")))
        // A membership change still creates no set.
        #expect(Diff.transaction(from: F.a, to: F.aWithPeerReplaced).operations.allSatisfy { if case .addSet = $0 { false } else { true } })
    }

    /// Past the baseline, a group populated for the first time is one new set: the populated sets
    /// that sort after it are kept (re-creating them would restart their chains' counters).
    @Test func aGroupPopulatedLaterCreatesOnlyItsOwnSet() {
        func plan(_ groups: String) -> Ruleset {
            let config = try! Config.parse(text: "[host]\nroles = [\"CCO\"]\n[groups]\n" + groups, file: "t.conf")
            return Compiler.compile(config: config, roles: ["CCO"]).ruleset
        }
        let before = plan("CCM = [\"198.18.0.10\"]\nadmin_ssh = [\"198.19.0.0/24\"]")
        let after = plan("AMQP = [\"198.18.0.30\"]\nCCM = [\"198.18.0.10\"]\nadmin_ssh = [\"198.19.0.0/24\"]")
        let tx = Diff.transaction(from: before, to: after)
        let added = tx.operations.compactMap { op -> String? in if case .addSet(let s) = op { return s.name } else { return nil } }
        #expect(added == ["AMQP_v4"])
        #expect(!tx.operations.contains { if case .deleteSet = $0 { true } else { false } })
    }

    @Test func equalRulesetsNeedNothing() {
        #expect(Diff.transaction(from: F.a, to: F.a).operations.isEmpty)
        // Spelling differences that are the same bytes in the kernel are not changes.
        var spelled = F.a
        spelled.chains[0].rules[8].matches.insert(.family(.ipv4), at: 0)     // explicit `meta nfproto ipv4` before `ip saddr`
        spelled.chains[0].rules[4].matches = [.ctState([.related, .established, .related])]
        #expect(Diff.transaction(from: F.a, to: spelled).operations.isEmpty)
    }

    @Test func peerReplacedIsOneDeleteAndOneAdd() {
        let tx = Diff.transaction(from: F.a, to: F.aWithPeerReplaced, generation: 42)
        #expect(tx.generation == 42)
        #expect(tx.operations == [
            .deleteElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [F.range("198.18.5.3", "198.18.5.3")])),
            .addElements(SetElements(set: "MON_v4", family: .ipv4, interval: false, ranges: [F.range("198.18.5.4", "198.18.5.4")])),
        ])
    }

    /// A range that changes shape is deleted as it was stored and added as it is now; ranges that
    /// stay are not touched.
    @Test func rangeChangingShape() {
        let have = AddressSet(family: .ipv4, ranges: [F.range("198.18.0.7", "198.18.0.7"), F.range("198.18.3.1", "198.18.3.9")])
        let want = AddressSet(family: .ipv4, ranges: [F.range("198.18.0.7", "198.18.0.7"), F.range("198.18.3.1", "198.18.3.20")])
        let (deleted, added) = Diff.elementChanges(from: have, to: want)
        #expect(deleted == [F.range("198.18.3.1", "198.18.3.9")])
        #expect(added == [F.range("198.18.3.1", "198.18.3.20")])
    }

    /// Random sorted host sets changed at the ends, in the middle and everywhere: the walk over
    /// what is left between the equal head and tail gives exactly the two set differences.
    @Test func elementChangesAreTheSetDifferences() {
        var rng = SystemRandomNumberGenerator()
        for round in 0..<300 {
            let universe = UInt128(round % 3 == 0 ? 8 : 400)
            func hosts() -> [UInt128] {
                Array(Set((0..<Int.random(in: 0...60, using: &rng)).map { _ in UInt128.random(in: 0..<universe, using: &rng) })).sorted()
            }
            let before = hosts()
            var after = before
            // Mostly small edits of `before`, as a config change is; sometimes an unrelated set.
            switch round % 4 {
            case 0: after = hosts()
            default:
                for _ in 0..<Int.random(in: 0...3, using: &rng) {
                    if !after.isEmpty, Bool.random(using: &rng) { after.remove(at: Int.random(in: 0..<after.count, using: &rng)) }
                    let v = UInt128.random(in: 0..<universe, using: &rng)
                    if !after.contains(v) { after.append(v) }
                }
                after.sort()
            }
            func set(_ values: [UInt128]) -> AddressSet {
                // A hash set's layout: one element per host, neighbours not merged.
                AddressSet(family: .ipv6, hosts: values.map { IPAddress(family: .ipv6, value: $0) })
            }
            let (deleted, added) = Diff.elementChanges(from: set(before), to: set(after))
            #expect(deleted.map(\.first) == before.filter { !after.contains($0) }, "\(before) -> \(after)")
            #expect(added.map(\.first) == after.filter { !before.contains($0) }, "\(before) -> \(after)")
        }
    }

    @Test func setKindChangeRecreatesTheSetWithItsRules() {
        var c = F.a
        let i = c.sets.firstIndex { $0.name == "CCM_v6" }!
        c.sets[i] = F.set("CCM_v6", .ipv6, interval: false, ["fd00::1"])
        let ops = Diff.transaction(from: F.a, to: c).operations
        // Both chains look CCM_v6 up: both are flushed before the set goes, and rewritten after it is back.
        let flushIn = ops.firstIndex(of: .flushChain("input"))!, flushOut = ops.firstIndex(of: .flushChain("output"))!
        let delete = ops.firstIndex(of: .deleteSet("CCM_v6"))!
        let add = ops.firstIndex(of: .addSet(SetDefinition(name: "CCM_v6", family: .ipv6, interval: false)))!
        let firstRule = ops.firstIndex { if case .addRule = $0 { return true } else { return false } }!
        #expect(flushIn < delete && flushOut < delete && delete < add && add < firstRule)
        #expect(ops.filter { if case .addRule = $0 { return true } else { return false } }.count == F.a.chains.map(\.rules.count).reduce(0, +))
    }

    @Test func policyChangeIsAChainUpdateOnly() {
        var c = F.a
        c.chains[1].policy = .drop
        #expect(Diff.transaction(from: F.a, to: c).operations == [.addChain(BaseChain(name: "output", hook: .output, priority: 0, policy: .drop))])
    }

    @Test func onlyTheChainWhoseRulesChangedIsRewritten() {
        var c = F.a
        c.chains[1].rules.remove(at: 1)
        let ops = Diff.transaction(from: F.a, to: c).operations
        #expect(ops.first == .flushChain("output"))
        #expect(!ops.contains(.flushChain("input")))
        #expect(ops.count == 1 + c.chains[1].rules.count)
    }

    @Test func removedSetAndChainAreDeleted() {
        var c = F.a
        c.chains.removeLast()
        c.chains[0].rules.removeAll { $0.matches.first == .addressInSet(.source, .ipv4, set: "workers_v4") }
        c.sets.removeAll { $0.name == "workers_v4" }
        let ops = Diff.transaction(from: F.a, to: c).operations
        #expect(ops.contains(.deleteChain("output")))
        let flush = ops.firstIndex(of: .flushChain("input"))!, delete = ops.firstIndex(of: .deleteSet("workers_v4"))!
        #expect(flush < delete)
    }

    @Test func replacementDeletesAndRecreatesAnExistingTableCheckedAgainstTheRead() {
        let tx = Diff.replacement(F.a, existing: true, generation: 7)
        #expect(Array(tx.operations.prefix(2)) == [Transaction.Operation.deleteTable, .addTable])
        #expect(tx.generation == 7)
        #expect(!tx.description.contains("flush ruleset"))
        let fresh = Diff.replacement(F.a, existing: false, generation: 7)
        #expect(fresh.operations.first == .addTable && !fresh.operations.contains(.deleteTable))
    }

    @Test func transactionsReadAsNft() {
        let tx = Diff.transaction(from: F.a, to: F.aWithPeerReplaced)
        #expect(tx.description == "delete element MON_v4 { 198.18.5.3 }\nadd element MON_v4 { 198.18.5.4 }")
    }
}
