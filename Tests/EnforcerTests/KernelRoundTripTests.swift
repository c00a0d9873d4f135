import Foundation
import Testing
@testable import Enforcer

/// The kernel round trip, audited by nft: what fwenforcer writes over netlink must be what `nft -f`
/// of the same ruleset (rendered by NftRenderer) leaves in the kernel.
///
/// Normalisation: both sides go through the kernel and are printed by the same nft decompiler, so
/// layout, element order, defaults nft omits (`burst 5`, `level warn`) and counter values (zero on
/// both sides) cannot differ; what is compared is `nft list table` text and the raw expressions of
/// `nft --debug=netlink list table` (every register load, compare and lookup, every set element
/// with its flags). Our own read-back must give the applied ruleset exactly (canonical form).
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelRoundTripTests {
    /// `nft list table` and `nft --debug=netlink list table` of fwenforcer's table. A hash set
    /// dumps its elements in hash order, which depends on a per-set random seed, so element lines
    /// are sorted within each set.
    static func audit(_ ns: NetworkNamespace) throws -> (text: String, netlink: String) {
        let raw = try ns.nftOutput(["--debug=netlink", "list", "table", "inet", "fwenforcer"])
        var lines: [String] = [], elements: [String] = []
        for line in raw.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("\telement ") { elements.append(line); continue }
            lines += elements.sorted()
            elements = []
            lines.append(line)
        }
        lines += elements.sorted()
        return (try ns.nftOutput(["list", "table", "inet", "fwenforcer"]), lines.joined(separator: "\n"))
    }

    /// Applies `ruleset` over netlink in one namespace and with `nft -f` in another, and compares.
    static func compareWithNft(_ ruleset: Ruleset, _ label: String) throws {
        try NetworkNamespace.with { ours in
            try NetworkNamespace.with { theirs in
                let backend = try ours.backend()
                defer { backend.close() }
                _ = try backend.replace(with: ruleset)
                try theirs.nft(NftRenderer.render(ruleset))
                let a = try audit(ours), b = try audit(theirs)
                #expect(a.text == b.text, "\(label): nft lists a different table")
                #expect(a.netlink == b.netlink, "\(label): the kernel holds different expressions or elements")
                if a.text != b.text { print("ours:\n\(a.text)\nnft -f:\n\(b.text)") }
                #expect(try backend.read(table: ruleset.tableName).ruleset == ruleset.canonical, "\(label): read-back differs")
                // And nothing left to do.
                #expect(try backend.reconcile(to: ruleset).transaction.operations.isEmpty, "\(label): not idempotent")
            }
        }
    }

    @Test func representativeRulesetsMatchNft() throws {
        try Self.compareWithNft(NetlinkFixtures.a, "A")
        try Self.compareWithNft(NetlinkFixtures.b, "B")
    }

    /// Every role of both catalogs over a representative topology (IPv4 and IPv6, hosts, CIDRs,
    /// overlapping ranges, every feature on).
    @Test(arguments: PlanNftCheckTests.all)
    func everyRoleMatchesNft(_ catalogName: String, _ role: String) throws {
        let cfg = try PlanNftCheckTests.representativeConfig(try Catalog.load(catalogName))
        let ruleset = Compiler.compile(config: cfg, roles: [role]).ruleset
        try Self.compareWithNft(ruleset, "\(catalogName)/\(role)")
    }

    /// Every group of `catalog` populated as a deployment's would be: two hosts, a /28 and an
    /// IPv6 host each, administrators' SSH from one /24, version 4.8 (issue 22's finding 9).
    static func populatedConfig(_ catalog: Catalog) throws -> Config {
        var lines = ["[host]", "roles = \"auto\"", "catalog = \"\(catalog.name)\"", "version = \"4.8\"", "[groups]",
                     "admin_ssh = [\"198.18.200.0/24\"]"]
        for (n, g) in (catalog.roles.map(\.name) + catalog.groups.map(\.name)).enumerated() where g != "admin_ssh" {
            lines.append("\(g) = [\"198.18.\(n + 1).1\", \"198.18.\(n + 1).5\", \"198.18.\(n + 1).16/28\", \"fd00::\(n + 1)\"]")
        }
        return try Config.parse(text: lines.joined(separator: "\n"), file: "populated.conf")
    }

    /// The kernel lists sets in the order they were added. A plan applied over the table a host
    /// already holds (the baseline enforced before the config arrived) must list as `nft -f` of
    /// the plan does, not keep the baseline's admin_ssh set first; and so from an empty table.
    @Test(arguments: PlanNftCheckTests.all)
    func everyRoleWithEveryGroupPopulatedListsAsNftFromBaselineAndEmpty(_ catalogName: String, _ role: String) throws {
        let cfg = try Self.populatedConfig(try Catalog.load(catalogName))
        let plan = Compiler.compile(config: cfg, roles: [role]).ruleset
        for start in [Baseline.ruleset(Baseline.Inputs(cfg)), nil] {
            try NetworkNamespace.with { ours in
                try NetworkNamespace.with { theirs in
                    let backend = try ours.backend()
                    defer { backend.close() }
                    if let start { _ = try backend.replace(with: start) }
                    _ = try backend.reconcile(to: plan)
                    try theirs.nft(NftRenderer.render(plan))
                    let a = try Self.audit(ours), b = try Self.audit(theirs)
                    let label = "\(catalogName)/\(role) from \(start == nil ? "an empty table" : "the baseline")"
                    #expect(a.text == b.text, "\(label): apply lists a different table than nft -f")
                    if a.text != b.text { print("ours:\n\(a.text)\nnft -f:\n\(b.text)") }
                    // Over the baseline, rule handles and anonymous set ids carry the table's
                    // history: the expressions are compared from an empty table only.
                    let firstDifference = zip(a.netlink.split(separator: "\n"), b.netlink.split(separator: "\n")).first { $0 != $1 }
                    #expect(start != nil || a.netlink == b.netlink,
                            "\(label): the kernel holds different expressions or elements: \(firstDifference.map { "\($0) vs \($1)" } ?? "lengths")")
                }
            }
        }
    }

    /// A rejected batch leaves the previous ruleset whole: every set element, every rule.
    @Test func rejectedBatchLeavesPreviousRulesetElementForElement() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            // A with a 5,000-host set, so the failed transaction spans several element messages.
            var a = NetlinkFixtures.a
            let big = (0..<5_000).map { i in IPAddress(family: .ipv6, value: (UInt128(0xfd00) << 112) | UInt128(2 * i + 1)) }
            a.sets.append(NamedSet(name: "big_v6", family: .ipv6, interval: true,
                                   elements: AddressSet(family: .ipv6, ranges: big.map { AddressRange(family: .ipv6, first: $0.value, last: $0.value) })))
            a = Ruleset(tableName: a.tableName, sets: a.sets, chains: a.chains)
            _ = try backend.replace(with: a)
            let before = try Self.audit(ns)
            let elementsBefore = try backend.storedElements(table: "fwenforcer", set: "big_v6")

            // B's whole diff, plus all of big_v6 replaced, then one rule that cannot be added.
            var tx = Diff.transaction(from: a, to: NetlinkFixtures.b)
            tx.operations.insert(.deleteElements(SetElements(set: "big_v6", family: .ipv6, interval: true,
                                                             ranges: big.map { AddressRange(family: .ipv6, first: $0.value, last: $0.value) })), at: 0)
            tx.operations.append(.addRule(chain: "input", Rule(matches: [.addressInSet(.source, .ipv4, set: "MISSING_v4")], verdict: .accept)))
            do {
                _ = try backend.apply(tx)
                Issue.record("the batch was accepted")
            } catch BackendError.rejected(let list) {
                #expect(list.map(\.description) == ["rule \"ip saddr @MISSING_v4 accept\" in chain input: No such file or directory"])
            }
            let after = try Self.audit(ns)
            #expect(after.text == before.text)
            #expect(after.netlink == before.netlink)
            let elementsAfter = try backend.storedElements(table: "fwenforcer", set: "big_v6")
            #expect(elementsAfter.count == elementsBefore.count)
            #expect(zip(elementsAfter, elementsBefore).allSatisfy { $0.key == $1.key && $0.isEnd == $1.isEnd })
            #expect(try backend.read(table: "fwenforcer").ruleset == a.canonical)
        }
    }

    /// An error deep inside a large element list names the very element, through the extended
    /// ACK's attribute offset.
    @Test func errorInLaterElementMessageNamesTheElement() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            let hosts = (0..<12_000).map { i in AddressRange(family: .ipv4, first: IPAddress("198.18.0.0")!.value + UInt128(2 * i), last: IPAddress("198.18.0.0")!.value + UInt128(2 * i)) }
            let set = NamedSet(name: "peers_v4", family: .ipv4, interval: false, elements: AddressSet(family: .ipv4, ranges: Array(hosts.prefix(1))))
            _ = try backend.replace(with: Ruleset(sets: [set]))
            // 12,000 hosts: three messages; the one already there (the first) is re-added last.
            var list = Array(hosts.dropFirst())
            list.append(hosts[0])
            do {
                _ = try backend.apply(Transaction(table: "fwenforcer", operations: [
                    .addElements(SetElements(set: "peers_v4", family: .ipv4, interval: false, ranges: list)),
                ]))
                Issue.record("the duplicate was accepted")
            } catch BackendError.rejected(let rejections) {
                #expect(rejections.map(\.description) == ["set peers_v4 element 198.18.0.0: File exists"])
            }
            #expect(try backend.read(table: "fwenforcer").ruleset?.set(named: "peers_v4")?.elements.ranges.count == 1)
        }
    }

    /// With no generation of its own, a transaction that loses the race to another writer (ERESTART)
    /// is sent again with the new generation.
    @Test func erestartWithoutOwnGenerationIsRetried() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            var raced = false
            backend.beforeSend = {
                guard !raced else { return }
                raced = true
                try? ns.nft("add table inet racer_\(UInt32.random(in: 0...UInt32.max))\n")
            }
            let report = try backend.apply(Transaction(table: "fwenforcer", operations: [.addTable] + Diff.creation(of: NetlinkFixtures.a)))
            #expect(report.retries == 1)
            #expect(try backend.read(table: "fwenforcer").ruleset == NetlinkFixtures.a.canonical)
            // With a generation of its own, the same race is the caller's to handle.
            raced = false
            let snapshot = try backend.read(table: "fwenforcer")
            var tx = Diff.transaction(from: snapshot.ruleset, to: NetlinkFixtures.b, generation: snapshot.generation)
            tx.generation = snapshot.generation
            #expect(throws: BackendError.generationChanged(expected: snapshot.generation)) { _ = try backend.apply(tx) }
        }
    }

    /// Someone else's rule in our table is not read back approximately: the read names it as
    /// foreign, and the engine replaces the table in the same pass, checked against the read.
    @Test func foreignRuleIsReportedAndTheEngineReplacesIt() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            _ = try backend.replace(with: NetlinkFixtures.a)
            try ns.nft("insert rule inet fwenforcer input ip saddr 198.18.9.9 tcp dport 2222 accept\n")
            let snapshot = try backend.read(table: "fwenforcer")
            #expect(snapshot.marked)
            #expect(snapshot.foreign == ["rule in chain input: ip saddr 198.18.9.9 tcp dport 2222 accept"])
            let out = try backend.reconcile(to: NetlinkFixtures.a)
            #expect(out.transaction.operations.first == .deleteTable)
            let again = try backend.read(table: "fwenforcer")
            #expect(again.ruleset == NetlinkFixtures.a.canonical && again.foreign.isEmpty && again.marked)
        }
    }
}
