import Foundation
import Testing
@testable import Enforcer

/// Large sets: 100,000 elements go in one atomic batch (one commit, one generation step), split
/// into many NEWSETELEM messages, and read back whole.
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelScaleTests {
    /// `count` IPv6 hosts, none adjacent to another (fd00::/8).
    static func hosts(_ count: Int, offset: UInt128 = 0) -> AddressSet {
        let base = UInt128(0xfd00) << 112
        return AddressSet(family: .ipv6, ranges: (0..<count).map { i in
            let v = base + offset + 2 * UInt128(i)
            return AddressRange(family: .ipv6, first: v, last: v)
        })
    }

    static func ms(_ d: Duration) -> String { String(format: "%.1f ms", Double(d.components.attoseconds) / 1e15 + Double(d.components.seconds) * 1e3) }

    @Test(arguments: [false, true])
    func hundredThousandElementsInOneAtomicBatch(_ interval: Bool) throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            let set = NamedSet(name: "peers_v6", family: .ipv6, interval: interval, elements: Self.hosts(100_000))
            let rule = Rule(matches: [.addressInSet(.source, .ipv6, set: "peers_v6"), .ports(.destination, .tcp, [PortRange(443)])], verdict: .accept)
            let ruleset = Ruleset(sets: [set], chains: [Chain(name: "input", hook: .input, policy: .accept, rules: [rule])])
            let e0 = ContinuousClock.now
            let encoded = try Batch.encode(Diff.replacement(ruleset), builder: MessageBuilder())
            print("encode: \(Self.ms(ContinuousClock.now - e0)) for \(encoded.messages.count) messages")
            let before = try backend.generation()
            let report = try backend.apply(Diff.replacement(ruleset))
            #expect(try backend.generation() == before &+ 1, "one commit")
            // 100,000 IPv6 hash elements of 28 bytes: 1,820 per message; interval: start + end elements.
            #expect(report.messages > (interval ? 100 : 40))
            let t0 = ContinuousClock.now
            let back = try backend.read(table: "fwenforcer").ruleset
            let readTime = ContinuousClock.now - t0
            #expect(back == ruleset.canonical)
            // One peer replaced in the big set: one element message each way.
            var changed = ruleset
            changed.sets[0] = NamedSet(name: "peers_v6", family: .ipv6, interval: interval,
                                       elements: AddressSet(family: .ipv6, ranges: Self.hosts(99_999).ranges + Self.hosts(1, offset: 1_000_000).ranges))
            let tx = Diff.transaction(from: ruleset, to: changed)
            let small = try backend.apply(tx)
            #expect(small.messages == 2 && small.added == 1 && small.removed == 1)
            print("""
                100,000-host \(interval ? "interval" : "hash") set: apply \(Self.ms(report.duration)) in \(report.messages) messages, \
                \(report.bytes) bytes; read back \(Self.ms(readTime)); one peer replaced \(Self.ms(small.duration))
                """)
        }
    }

    /// A batch of 100,000 elements whose last operation fails changes nothing.
    @Test func largeFailingBatchChangesNothing() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            var tx = Diff.replacement(Ruleset(sets: [NamedSet(name: "peers_v6", family: .ipv6, interval: false, elements: Self.hosts(100_000))]))
            tx.operations.append(.deleteSet("nonexistent"))
            #expect(throws: BackendError.rejected([Rejection(object: "set nonexistent", code: .noSuchFileOrDirectory)])) {
                _ = try backend.apply(tx)
            }
            #expect(try backend.read(table: "fwenforcer").ruleset == nil)
        }
    }
}
