import Foundation
import Testing
@testable import Enforcer

/// The set type from the config, in the kernel and audited by the nft CLI: adjacent host addresses
/// are a hash set of separate elements, and replacing one of them changes two elements and keeps
/// every rule (and its counter).
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelSetTypeTests {
    /// `nft list set` of AMQP_v4: whether it has `flags interval`, and its elements as nft prints
    /// them (sorted here: a hash set lists in hash order).
    static func listed(_ ns: NetworkNamespace, _ set: String = "AMQP_v4") throws -> (interval: Bool, elements: [String]) {
        let text = try ns.nftOutput(["list", "set", "inet", "fwenforcer", set])
        guard let open = text.range(of: "elements = {") else { return (text.contains("flags interval"), []) }
        let body = text[open.upperBound...].prefix { $0 != "}" }
        let elements = body.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return (text.contains("flags interval"), elements.sorted())
    }

    /// Datagrams to an address no rule allows, out of a veth inside the namespace: the output
    /// chain's default deny counts them.
    static func sendDropped(_ ns: NetworkNamespace, count: Int) throws {
        let send = """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(\(count)):
            try: s.sendto(b"x", ("198.18.77.2", 9))
            except OSError: pass
        """
        _ = try ns.exec(["python3", "-c", send])
    }

    /// The handles of the table's sets, chains and rules, as `nft -a` lists them: an object that
    /// is re-created, or a rule re-added, gets a new handle.
    static func objectHandles(_ ns: NetworkNamespace) throws -> [String] {
        try ns.nftOutput(["-a", "list", "table", "inet", "fwenforcer"]).split(separator: "\n")
            .compactMap { line in line.range(of: "# handle ").map { String(line[$0.upperBound...]) } }
    }

    static func defaultDenyPackets(_ backend: NetlinkBackend, chain: String) throws -> UInt64? {
        try backend.counters(table: "fwenforcer").first { $0.chain == chain && $0.comment == Compiler.denyRuleComment }?.packets
    }

    /// What fwenforcer writes for adjacent hosts (IPv4 and IPv6) is what `nft -f` of the rendered
    /// plan leaves, element for element; the read-back gives the plan back.
    @Test func adjacentHostsMatchNft() throws {
        let ruleset = try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.31", "198.18.0.32", "198.18.0.33", "fd00::30", "fd00::31"])
        try KernelRoundTripTests.compareWithNft(ruleset, "adjacent hosts")
    }

    /// The plan text is what `nft -s list table` shows once the plan is applied (the promise
    /// `fwenforcerd plan` makes): hash sets of adjacent hosts, element by element in nft's layout
    /// (IPv4 two to a line, IPv6 one), beside an interval set of several ranges.
    @Test func planTextIsWhatNftLists() throws {
        let ruleset = try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.31", "198.18.0.32", "198.18.0.33", "198.18.0.35",
                                                   "fd00::30", "fd00::31", "fd00::33"])
            .withSet(NamedSet(name: "X_v4", family: .ipv4, interval: true,
                              elements: AddressSet(family: .ipv4, prefixes: ["198.18.1.0/24", "198.18.3.7", "198.18.4.0/30"].map { try! IPPrefix.parse($0) })))
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            _ = try backend.replace(with: ruleset)
            let listed = try ns.nftOutput(["-s", "list", "table", "inet", "fwenforcer"])
            #expect(listed == NftRenderer.render(ruleset), "nft lists:\n\(listed)\nplan:\n\(NftRenderer.render(ruleset))")
        }
    }

    /// `nft list` of the table, fed back to `nft -f` in a fresh namespace, is the same table, and
    /// fwenforcer reads it as the plan: nothing to do.
    @Test func nftListingRoundTrips() throws {
        let ruleset = try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.31", "fd00::30", "fd00::31"])
        try NetworkNamespace.with { ours in
            try NetworkNamespace.with { theirs in
                let a = try ours.backend(), b = try theirs.backend()
                defer { a.close(); b.close() }
                _ = try a.replace(with: ruleset)
                let listing = try ours.nftOutput(["list", "table", "inet", "fwenforcer"])
                try theirs.nft(listing)
                #expect(try theirs.nftOutput(["list", "table", "inet", "fwenforcer"]) == listing)
                #expect(try Self.listed(theirs) == (false, ["198.18.0.30", "198.18.0.31"]))
                #expect(try b.read(table: "fwenforcer").ruleset == ruleset.canonical)
                #expect(try b.reconcile(to: ruleset).transaction.operations.isEmpty)
            }
        }
    }

    /// Two adjacent hosts, one replaced (by an address next to the other, and by one far away):
    /// two element messages, no set, chain or rule operation, and the rule counters keep counting.
    @Test func replacingAnAdjacentPeerKeepsRulesAndCounters() throws {
        try NetworkNamespace.with { ns in
            try run(["ip", "-n", ns.name, "link", "add", "m0", "type", "veth", "peer", "name", "m1"])
            try run(["ip", "-n", ns.name, "addr", "add", "198.18.77.1/24", "dev", "m0"])
            for link in ["m0", "m1"] { try run(["ip", "-n", ns.name, "link", "set", link, "up"]) }
            let backend = try ns.backend()
            defer { backend.close() }
            let reconciler = Reconciler(backend: backend, table: "fwenforcer")
            try reconciler.reconcile(to: try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.31"]))
            #expect(try Self.listed(ns) == (false, ["198.18.0.30", "198.18.0.31"]))
            let handles = try Self.objectHandles(ns)

            try Self.sendDropped(ns, count: 5)
            var expected: UInt64 = 5
            #expect(try Self.defaultDenyPackets(backend, chain: "output") == expected)
            for (step, amqp) in [["198.18.0.30", "198.18.0.29"], ["198.18.0.30", "198.18.0.31"], ["198.18.0.30", "198.18.0.90"]].enumerated() {
                let out = try reconciler.reconcile(to: try SetTypeTests.plan(amqp: amqp))
                #expect(out.transaction.operations.allSatisfy {
                    switch $0 { case .addElements, .deleteElements: return true; default: return false }
                }, "step \(step): \(out.transaction)")
                #expect(out.transaction.operations.count == 2 && out.apply?.messages == 2, "step \(step): \(out.summary)")
                #expect(try Self.listed(ns) == (false, amqp.sorted()), "step \(step)")
                // Rules untouched: the same handles, and the counter goes on from where it was.
                #expect(try Self.objectHandles(ns) == handles, "step \(step)")
                #expect(try Self.defaultDenyPackets(backend, chain: "output") == expected, "step \(step): the counter restarted")
                try Self.sendDropped(ns, count: 2)
                expected += 2
                #expect(try Self.defaultDenyPackets(backend, chain: "output") == expected, "step \(step)")
            }
            #expect(try backend.read(table: "fwenforcer").ruleset == (try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.90"])).canonical)
        }
    }

    /// A group with a prefix is an interval set in the kernel too; gaining or losing its prefix is
    /// a real type change (the set and the chains that look it up are rewritten in one batch).
    @Test func aPrefixMakesAnIntervalSetAndChangesTheType() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            let reconciler = Reconciler(backend: backend, table: "fwenforcer")
            let hosts = try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.31"])
            let withPrefix = try SetTypeTests.plan(amqp: ["198.18.0.30", "198.18.0.31", "198.18.0.64/28"])
            try reconciler.reconcile(to: hosts)
            var out = try reconciler.reconcile(to: withPrefix)
            #expect(out.transaction.operations.contains(.deleteSet("AMQP_v4")))
            #expect(try Self.listed(ns) == (true, ["198.18.0.30/31", "198.18.0.64/28"]))
            #expect(try backend.read(table: "fwenforcer").ruleset == withPrefix.canonical)
            out = try reconciler.reconcile(to: hosts)
            #expect(out.transaction.operations.contains(.deleteSet("AMQP_v4")))
            #expect(try Self.listed(ns) == (false, ["198.18.0.30", "198.18.0.31"]))
            #expect(try backend.read(table: "fwenforcer").ruleset == hosts.canonical)
        }
    }
}

extension Ruleset {
    /// The same ruleset with one more set (no rule looks it up).
    func withSet(_ set: NamedSet) -> Ruleset {
        Ruleset(tableName: tableName, sets: sets + [set], chains: chains)
    }
}
