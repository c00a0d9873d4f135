import Foundation
import Testing
@testable import Enforcer

/// `Backend.otherBaseChains`: the other tables' base chains on fwenforcer's hooks, as `status`
/// shows them; the fake and the kernel give the same answer for the same tables.
@Suite struct OtherTablesTests {
    /// Docker's iptables-nft filter table (ip and ip6) and Debian's stock `inet filter`, as they
    /// read back: the expected answer for both backends.
    static let dockerAndDebian: [OtherBaseChain] = [
        OtherBaseChain(family: .inet, table: "filter", chain: "input", hook: .input, policy: .accept),
        OtherBaseChain(family: .inet, table: "filter", chain: "forward", hook: .forward, policy: .accept),
        OtherBaseChain(family: .inet, table: "filter", chain: "output", hook: .output, policy: .accept),
    ] + [OtherBaseChain.Family.ip, .ip6].flatMap { f in [
        OtherBaseChain(family: f, table: "filter", chain: "INPUT", hook: .input, policy: .accept, tableDropRules: 1),
        OtherBaseChain(family: f, table: "filter", chain: "FORWARD", hook: .forward, policy: .drop, tableDropRules: 1),
        OtherBaseChain(family: f, table: "filter", chain: "OUTPUT", hook: .output, policy: .accept, tableDropRules: 1),
        OtherBaseChain(family: f, table: "nat", chain: "INPUT", type: "nat", hook: .input, priority: 100, policy: .accept),
        OtherBaseChain(family: f, table: "nat", chain: "OUTPUT", type: "nat", hook: .output, priority: -100, policy: .accept),
    ] }

    static func fake() throws -> FakeBackend {
        let b = FakeBackend()
        for c in dockerAndDebian where c.family != .inet { b.addOtherFamilyChain(c) }
        _ = try b.apply(Transaction(table: "filter", operations: [.addTable] + [Hook.input, .forward, .output].map {
            .addChain(BaseChain(name: $0.rawValue, hook: $0, priority: 0, policy: .accept))
        }))
        return b
    }

    @Test func theFakeListsOtherTablesButNotItsOwn() throws {
        let b = try Self.fake()
        let plan = try PublishedPortsTests.ruleset()
        _ = try b.replace(with: plan)
        #expect(try b.otherBaseChains(excluding: "fwenforcer") == Self.dockerAndDebian.sorted())
        #expect(try b.otherBaseChains(excluding: "filter").contains { $0.table == "fwenforcer" && $0.hook == .forward })
    }

    @Test func statusSaysWhichTablesDrop() throws {
        let lines = OtherBaseChain.statusLines(Self.dockerAndDebian)
        #expect(lines.first?.contains("each one's drop is final") == true)
        #expect(lines.contains("  table inet filter: input (filter hook input priority 0 policy accept), forward (filter hook forward priority 0 policy accept), output (filter hook output priority 0 policy accept); drops nothing"))
        #expect(lines.contains { $0.hasPrefix("  table ip filter: ") && $0.hasSuffix("; DROPS: a drop policy, 1 drop or reject rule") })
        #expect(lines.contains { $0.hasPrefix("  table ip6 nat: ") && $0.hasSuffix("drops nothing") })
        #expect(OtherBaseChain.statusLines([]) == ["other tables: none on the input, forward or output hooks"])
    }
}

@Suite(.enabled(if: kernelTestsAvailable && FileManager.default.isExecutableFile(atPath: "/usr/sbin/iptables-nft"),
                "needs root, nft and iptables-nft"))
struct OtherTablesKernelTests {
    @Test func theKernelGivesTheFakesAnswer() throws {
        try NetworkNamespace.with { ns in
            for (command, v6) in [("iptables-restore", false), ("ip6tables-restore", true)] {
                let r = try ns.exec([command], input: ContainerHost.rules(v6: v6))
                #expect(r.status == 0, "\(command): \(r.stderr)")
            }
            try ns.nft(ContainerHostTests.stockNftablesConf.replacingOccurrences(of: "flush ruleset", with: ""))
            let b = try ns.backend()
            defer { b.close() }
            _ = try b.replace(with: try PublishedPortsTests.ruleset())
            #expect(try b.otherBaseChains(excluding: "fwenforcer") == OtherTablesTests.dockerAndDebian.sorted())
            #expect(try b.otherBaseChains(excluding: "fwenforcer") == OtherTablesTests.fake().otherBaseChains(excluding: "fwenforcer"))
        }
    }
}
