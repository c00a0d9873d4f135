import Foundation
import Testing
@testable import Enforcer

/// A set's type follows from the config, never from which addresses happen to be adjacent: a
/// (group, family) whose members are all hosts is a hash set, one with any prefix an interval set.
/// So replacing a peer of a host-only group is element changes only, wherever the addresses fall.
@Suite struct SetTypeTests {
    static func plan(amqp: [String]) throws -> Ruleset {
        let list = amqp.map { "\"\($0)\"" }.joined(separator: ", ")
        return try ReconcilerTests.plan { $0.replacingOccurrences(of: "AMQP = [\"198.18.0.30\"]", with: "AMQP = [\(list)]") }
    }

    static func hosts(_ addresses: [String]) -> [AddressRange] {
        addresses.map { let a = IPAddress($0)!; return AddressRange(family: a.family, first: a.value, last: a.value) }
    }

    @Test func adjacentHostsAreAHashSetOfSeparateElements() throws {
        let set = try #require(try Self.plan(amqp: ["198.18.0.31", "198.18.0.30"]).set(named: "AMQP_v4"))
        #expect(!set.interval)
        #expect(set.elements.ranges == Self.hosts(["198.18.0.30", "198.18.0.31"]))
        // The plan says what the kernel will hold: two elements, no `flags interval`, no range.
        let text = NftRenderer.render(set: set)
        #expect(!text.contains("flags interval"))
        #expect(text.contains("elements = { 198.18.0.30, 198.18.0.31 }"))
    }

    /// The same for IPv6, and four adjacent hosts that would merge into a prefix (`.32/30`).
    @Test func hostsThatWouldMergeIntoAPrefixStayHosts() throws {
        let ruleset = try Self.plan(amqp: ["198.18.0.32", "198.18.0.33", "198.18.0.34", "198.18.0.35", "fd00::30", "fd00::31"])
        let v4 = try #require(ruleset.set(named: "AMQP_v4")), v6 = try #require(ruleset.set(named: "AMQP_v6"))
        #expect(!v4.interval && !v6.interval)
        #expect(v4.elements.ranges.count == 4 && v6.elements.ranges.count == 2)
        #expect(!NftRenderer.render(set: v4).contains("/30"))
    }

    @Test func aGroupWithAPrefixIsAnIntervalSet() throws {
        let ruleset = try Self.plan(amqp: ["198.18.0.30", "198.18.0.31", "198.18.0.64/28", "fd00::30"])
        let v4 = try #require(ruleset.set(named: "AMQP_v4"))
        #expect(v4.interval)
        // An interval set merges what touches: the two hosts are one range.
        #expect(v4.elements.ranges.map(\.description) == ["198.18.0.30/31", "198.18.0.64/28"])
        // The type is chosen per set: the group's IPv6 members are hosts only.
        #expect(try #require(ruleset.set(named: "AMQP_v6")).interval == false)
        // An explicit /32 is a host.
        #expect(try #require(try Self.plan(amqp: ["198.18.0.30/32", "198.18.0.31"]).set(named: "AMQP_v4")).interval == false)
    }

    /// Replacing a peer of a host-only group, whatever its neighbours: one delete and one add of
    /// one address each, and nothing else (no set, chain or rule operation).
    @Test(arguments: [
        (["198.18.0.30", "198.18.0.31"], ["198.18.0.30", "198.18.0.40"]),   // adjacency broken
        (["198.18.0.30", "198.18.0.40"], ["198.18.0.30", "198.18.0.31"]),   // the newcomer sits next to a member
        (["198.18.0.30", "198.18.0.31"], ["198.18.0.29", "198.18.0.30"]),   // one neighbour leaves, one comes on the other side
        (["198.18.0.30", "198.18.0.31", "198.18.0.32"], ["198.18.0.30", "198.18.0.32", "198.18.0.33"]),   // a run's middle leaves
    ])
    func replacingAPeerOfAHostOnlyGroupChangesTwoElements(_ before: [String], _ after: [String]) throws {
        let fake = FakeBackend()
        let reconciler = Reconciler(backend: fake, table: "fwenforcer")
        try reconciler.reconcile(to: try Self.plan(amqp: before))
        let out = try reconciler.reconcile(to: try Self.plan(amqp: after))
        let gone = Set(before).subtracting(after).sorted(), new = Set(after).subtracting(before).sorted()
        #expect(out.transaction.operations == [
            .deleteElements(SetElements(set: "AMQP_v4", family: .ipv4, interval: false, ranges: Self.hosts(gone))),
            .addElements(SetElements(set: "AMQP_v4", family: .ipv4, interval: false, ranges: Self.hosts(new))),
        ])
        #expect(fake.log.last?.committed == true)
        #expect(try fake.read(table: "fwenforcer").ruleset == (try Self.plan(amqp: after)).canonical)
    }

    /// The fake reads a hash set of adjacent addresses back as it holds them: separate elements.
    @Test func fakeReadsAdjacentHostsBack() throws {
        let fake = FakeBackend()
        let desired = try Self.plan(amqp: ["198.18.0.30", "198.18.0.31"])
        _ = try fake.replace(with: desired)
        #expect(try fake.read(table: "fwenforcer").ruleset == desired.canonical)
        // And, as the kernel does, it refuses the same address twice.
        #expect(throws: BackendError.self) {
            try fake.apply(Transaction(table: "fwenforcer", operations: [
                .addElements(SetElements(set: "AMQP_v4", family: .ipv4, interval: false, ranges: Self.hosts(["198.18.0.31"]))),
            ]))
        }
    }

    /// A group that gains a prefix changes type: a real type change, which the kernel cannot make
    /// in place. The set is deleted and re-created in the same batch, with the chains that look it
    /// up rewritten (their rule counters restart); going back is the same.
    @Test func gainingAPrefixChangesTheSetType() throws {
        let hostsOnly = try Self.plan(amqp: ["198.18.0.30", "198.18.0.31"])
        let withPrefix = try Self.plan(amqp: ["198.18.0.30", "198.18.0.31", "198.18.0.64/28"])
        #expect(try #require(withPrefix.set(named: "AMQP_v4")).interval)
        for (from, to) in [(hostsOnly, withPrefix), (withPrefix, hostsOnly)] {
            let ops = Diff.transaction(from: from, to: to).operations
            let want = try #require(to.set(named: "AMQP_v4"))
            #expect(ops.contains(.deleteSet("AMQP_v4")))
            #expect(ops.contains(.addSet(SetDefinition(want))))
            let usingChains = to.chains.filter { $0.rules.contains { $0.referencedSets.contains("AMQP_v4") } }.map(\.name)
            #expect(!usingChains.isEmpty)
            for chain in usingChains { #expect(ops.contains(.flushChain(chain))) }
            let fake = FakeBackend()
            _ = try fake.replace(with: from)
            _ = try fake.apply(Diff.transaction(from: from, to: to))
            #expect(try fake.read(table: "fwenforcer").ruleset == to.canonical)
        }
    }

    /// A ruleset kept on disk (a provisional apply's pending record) comes back with its hash
    /// set's adjacent hosts as separate elements, and its interval set merged, as it was.
    @Test func codingKeepsTheLayout() throws {
        let ruleset = try Self.plan(amqp: ["198.18.0.30", "198.18.0.31", "fd00::30", "fd00::31"])
        let back = try JSONDecoder().decode(Ruleset.self, from: try JSONEncoder().encode(ruleset))
        #expect(back == ruleset)
        #expect(back.set(named: "AMQP_v4")?.elements.ranges.count == 2)
        let interval = try Self.plan(amqp: ["198.18.0.30", "198.18.0.31", "198.18.0.64/28"])
        #expect(try JSONDecoder().decode(Ruleset.self, from: try JSONEncoder().encode(interval)) == interval)
    }

    /// The fail-closed baseline makes `admin_ssh` the set the plan makes: adjacent administrator
    /// hosts are a hash set of separate elements (merged, they tripped NamedSet's precondition).
    @Test func baselineAdminSetFollowsTheConfigToo() throws {
        var inputs = Baseline.Inputs()
        inputs.adminSSH = try ["198.19.0.1", "198.19.0.2", "fd00::1", "fd00::2/127"].map { try IPPrefix.parse($0) }
        let baseline = Baseline.ruleset(inputs)
        let v4 = try #require(baseline.set(named: "admin_ssh_v4")), v6 = try #require(baseline.set(named: "admin_ssh_v6"))
        #expect(!v4.interval && v4.elements.ranges == Self.hosts(["198.19.0.1", "198.19.0.2"]))
        #expect(v6.interval && v6.elements.ranges.map(\.description) == ["fd00::1-fd00::3"])
    }
}

