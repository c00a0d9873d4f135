import Foundation
import Testing
@testable import Enforcer

/// A small seeded generator (SplitMix64), so the property tests are the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Interval (and hash) sets written by fwenforcer hold exactly the elements `nft -f` of the same
/// addresses leaves in the kernel: randomly generated hosts, CIDRs and ranges (fixed seed),
/// overlapping and adjacent ones included, which nft merges with `auto-merge` and fwenforcer's
/// `AddressSet` merges itself.
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelIntervalTests {
    /// Items in nft syntax within the test ranges: 198.18.0.0/15, fd00::/8, 2001:db8::/32.
    static func randomItems(_ family: AddressFamily, count: Int, using g: inout SeededGenerator) -> [String] {
        (0..<count).map { _ in
            let roll = Int.random(in: 0..<10, using: &g)
            if family == .ipv4 {
                let base = IPAddress("198.18.0.0")!.value
                // A narrow window of the /15 so that items overlap and touch often.
                let a = base + UInt128.random(in: 0..<4096, using: &g)
                if roll < 5 { return IPAddress(family: .ipv4, value: a).description }
                if roll < 8 {
                    let length = Int.random(in: 20...31, using: &g)
                    return IPPrefix(address: IPAddress(family: .ipv4, value: a), length: length).normalized.description
                }
                let b = min(a + UInt128.random(in: 1..<300, using: &g), base + (1 << 17) - 1)
                return "\(IPAddress(family: .ipv4, value: a))-\(IPAddress(family: .ipv4, value: b))"
            } else {
                let base: UInt128 = Bool.random(using: &g) ? UInt128(0xfd00) << 112 : UInt128(0x2001_0db8) << 96
                let a = base + UInt128.random(in: 0..<4096, using: &g)
                if roll < 5 { return IPAddress(family: .ipv6, value: a).description }
                if roll < 8 {
                    let length = Int.random(in: 116...127, using: &g)
                    return IPPrefix(address: IPAddress(family: .ipv6, value: a), length: length).normalized.description
                }
                let b = a + UInt128.random(in: 1..<300, using: &g)
                return "\(IPAddress(family: .ipv6, value: a))-\(IPAddress(family: .ipv6, value: b))"
            }
        }
    }

    static func ranges(_ items: [String], _ family: AddressFamily) -> [AddressRange] {
        items.map { item in
            if item.contains("-") {
                let parts = item.split(separator: "-").map { IPAddress(String($0))! }
                return AddressRange(family: family, first: parts[0].value, last: parts[1].value)
            }
            return try! IPPrefix.parse(item).range
        }
    }

    /// Elements of set S as the kernel holds them after fwenforcer's apply and after `nft -f`.
    static func compare(_ family: AddressFamily, interval: Bool, items: [String], trial: Int) throws {
        let set = interval ? AddressSet(family: family, ranges: ranges(items, family))
            : AddressSet(family: family, hosts: items.map { IPAddress($0)! })
        let named = NamedSet(name: "S", family: family, interval: interval, elements: set)
        try NetworkNamespace.with { ours in
            try NetworkNamespace.with { theirs in
                let a = try ours.backend(), b = try theirs.backend()
                defer { a.close(); b.close() }
                _ = try a.replace(with: Ruleset(sets: [named]))
                let flags = interval ? "flags interval; auto-merge;" : ""
                try theirs.nft("table inet fwenforcer {\n set S {\n type \(family.nftKeyType); \(flags)\n elements = { \(items.joined(separator: ", ")) }\n }\n}\n")
                let mine = try a.storedElements(table: "fwenforcer", set: "S"), nfts = try b.storedElements(table: "fwenforcer", set: "S")
                #expect(mine.count == nfts.count, "trial \(trial): \(mine.count) elements, nft made \(nfts.count)")
                #expect(zip(mine, nfts).allSatisfy { $0.key == $1.key && $0.isEnd == $1.isEnd }, "trial \(trial): elements differ")
                // And both read back as the same addresses.
                #expect(try a.read(table: "fwenforcer").ruleset?.set(named: "S")?.elements == set)
                #expect(try b.read(table: "fwenforcer").ruleset?.set(named: "S")?.elements == set)
            }
        }
    }

    @Test func randomIntervalSetsHoldWhatNftWrites() throws {
        var g = SeededGenerator(seed: 0x5eed_f1e1_d5e7)
        for trial in 0..<24 {
            let family: AddressFamily = trial % 2 == 0 ? .ipv4 : .ipv6
            let items = Self.randomItems(family, count: Int.random(in: 1...400, using: &g), using: &g)
            try Self.compare(family, interval: true, items: items, trial: trial)
        }
    }

    @Test func randomHashSetsHoldWhatNftWrites() throws {
        var g = SeededGenerator(seed: 0xface_b00c)
        for trial in 0..<8 {
            let family: AddressFamily = trial % 2 == 0 ? .ipv4 : .ipv6
            let base = family == .ipv4 ? IPAddress("198.18.0.0")!.value : UInt128(0xfd00) << 112
            // A narrow window, so that many hosts are adjacent: each stays its own element.
            let hosts = Set((0..<Int.random(in: 1...500, using: &g)).map { _ in base + UInt128.random(in: 0..<1_000, using: &g) })
            let items = hosts.sorted().map { IPAddress(family: family, value: $0).description }
            try Self.compare(family, interval: false, items: items, trial: trial)
        }
    }

    /// Incremental element diffs on interval sets (ranges growing, shrinking, splitting, merging)
    /// applied one after the other keep the kernel equal to a fresh `nft -f` of the same set.
    @Test func randomIncrementalChangesMatchAFreshWrite() throws {
        var g = SeededGenerator(seed: 0xd1ff)
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            var current: Ruleset? = nil
            for step in 0..<20 {
                let family: AddressFamily = .ipv4
                let items = Self.randomItems(family, count: Int.random(in: 1...150, using: &g), using: &g)
                let desired = Ruleset(sets: [NamedSet(name: "S", family: family, interval: true,
                                                      elements: AddressSet(family: family, ranges: Self.ranges(items, family)))])
                let r = try backend.reconcile(to: desired)
                if current != nil {
                    #expect(!r.transaction.operations.contains(.deleteSet("S")), "step \(step): elements only")
                }
                #expect(try backend.read(table: "fwenforcer").ruleset == desired.canonical, "step \(step)")
                if step % 5 == 4 {
                    // Element for element what a fresh `nft -f` writes (the first segment stays).
                    try NetworkNamespace.with { theirs in
                        let b = try theirs.backend()
                        defer { b.close() }
                        let text = desired.sets[0].elements.ranges.map(\.description).joined(separator: ", ")
                        try theirs.nft("table inet fwenforcer {\n set S {\n type ipv4_addr; flags interval;\n elements = { \(text) }\n }\n}\n")
                        let mine = try backend.storedElements(table: "fwenforcer", set: "S"), nfts = try b.storedElements(table: "fwenforcer", set: "S")
                        #expect(mine.map(\.key) == nfts.map(\.key) && mine.map(\.isEnd) == nfts.map(\.isEnd), "step \(step)")
                    }
                }
                current = desired
            }
        }
    }
}
