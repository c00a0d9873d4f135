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
            let encoded = try Batch.encode(Diff.replacement(ruleset, existing: false, generation: 1), builder: MessageBuilder())
            print("encode: \(Self.ms(ContinuousClock.now - e0)) for \(encoded.messages.count) messages")
            let before = try backend.generation()
            let report = try backend.replace(with: ruleset)
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

    /// Thousands of acknowledged messages in one batch: the receive buffer is raised so no ACK is
    /// lost; with a buffer too small for them, the backend says the outcome is unknown (the batch
    /// was in fact committed) rather than guessing.
    @Test func thousandsOfRulesInOneBatch() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            func ruleset(_ n: Int, port: UInt16) -> Ruleset {
                let rules = (0..<n).map { i in Rule(matches: [.ports(.destination, .tcp, [PortRange(port + UInt16(i))])], verdict: .accept) }
                return Ruleset(chains: [Chain(name: "input", hook: .input, policy: .accept, rules: rules)])
            }
            let big = ruleset(5_000, port: 10_000)
            let report = try backend.replace(with: big)
            #expect(report.messages == 5_002, "add table, add chain, 5,000 rules")
            #expect(try backend.read(table: "fwenforcer").ruleset == big.canonical)

            let ns2 = try NetworkNamespace()
            defer { ns2.delete() }
            let starved = try ns2.backend()
            defer { starved.close() }
            starved.receiveBufferPerMessage = 0
            do {
                _ = try starved.replace(with: ruleset(5_000, port: 20_000))
                Issue.record("5,000 ACKs fitted in the default receive buffer; the test no longer provokes a loss")
            } catch BackendError.outcomeUnknown(let why) {
                #expect(why.contains("not acknowledged"))
            }
            #expect(try starved.read(table: "fwenforcer").ruleset?.chain(named: "input")?.rules.count == 5_000)
        }
    }

    /// A batch of 100,000 elements whose last operation fails changes nothing.
    @Test func largeFailingBatchChangesNothing() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            var tx = Diff.replacement(Ruleset(sets: [NamedSet(name: "peers_v6", family: .ipv6, interval: false, elements: Self.hosts(100_000))]),
                                      existing: false, generation: try backend.generation())
            tx.operations.append(.deleteSet("nonexistent"))
            #expect(throws: BackendError.rejected([Rejection(object: "set nonexistent", code: .noSuchFileOrDirectory)])) {
                _ = try backend.apply(tx)
            }
            #expect(try backend.read(table: "fwenforcer").ruleset == nil)
        }
    }
}

/// Socket buffers where SO_SNDBUFFORCE is refused: a container whose network namespace belongs to
/// an unprivileged user namespace (CAP_NET_ADMIN there, not in the initial namespace). The test
/// binary re-runs itself under `unshare -Urn`, so the backend lives in a namespace that disappears
/// with the child process.
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelContainerBufferTests {
    @Test func batchLargerThanTheDefaultBufferGoesThroughWithoutForce() throws {
        let r = try run(["unshare", "-Urn", "env", "FWE_CONTAINER_CHILD=1", CommandLine.arguments[0],
                         "--testing-library", "swift-testing", "--filter", "KernelContainerChild"])
        #expect(r.status == 0, "child failed: \(r.stdout.suffix(2000)) \(r.stderr.suffix(2000))")
        #expect(r.stdout.contains("SO_SNDBUFFORCE refused"), "\(r.stdout.suffix(2000))")
        let output = r.stdout + r.stderr
        #expect(output.contains("Test run with 1 test") && output.contains("passed"), "the child ran nothing: \(output.suffix(2000))")
    }
}

/// The child side: only runs inside `unshare -Urn` started by the test above.
@Suite(.enabled(if: ProcessInfo.processInfo.environment["FWE_CONTAINER_CHILD"] == "1", "runs only as the child of KernelContainerBufferTests"))
struct KernelContainerChildTests {
    @Test func applyBigBatchWithPlainBuffers() throws {
        let backend = try NetlinkBackend()
        defer { backend.close() }
        // 35,000 IPv6 hosts: about 1 MB, more than four times the default 208 KiB buffer.
        let set = NamedSet(name: "peers_v6", family: .ipv6, interval: false, elements: KernelScaleTests.hosts(35_000))
        let report = try backend.replace(with: Ruleset(sets: [set]))
        #expect(report.bytes > 4 * 212_992)
        #expect(backend.socketBufferForceRefused)
        if backend.socketBufferForceRefused { print("SO_SNDBUFFORCE refused (EPERM), plain SO_SNDBUF used") }
        // 3,000 rules: 3,000 ACKs, more than the default receive buffer holds; raised without force.
        let rules = (0..<3_000).map { i in Rule(matches: [.ports(.destination, .udp, [PortRange(10_000 + UInt16(i))])], verdict: .accept) }
        _ = try backend.apply(Transaction(table: "fwenforcer", operations: [.addChain(BaseChain(name: "input", hook: .input, priority: 0, policy: .accept))]
                                          + rules.map { .addRule(chain: "input", $0) }))
        // Read straight after the insert, while the kernel may still be growing the hash table.
        let back = try backend.read(table: "fwenforcer").ruleset?.set(named: "peers_v6")?.elements
        #expect(back == set.elements, "read back \(back?.ranges.count ?? -1) of \(set.elements.ranges.count)")
    }
}
