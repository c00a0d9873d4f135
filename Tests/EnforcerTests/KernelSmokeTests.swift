import Foundation
import Testing
@testable import Enforcer

@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct KernelSmokeTests {
    @Test func applyAndReadBack() throws {
        try NetworkNamespace.with { ns in
            let backend = try ns.backend()
            defer { backend.close() }
            let v4 = AddressSet(family: .ipv4, prefixes: [try IPPrefix.parse("198.18.0.7"), try IPPrefix.parse("198.18.1.0/24")])
            let r = Ruleset(sets: [NamedSet(name: "CCM_v4", family: .ipv4, interval: true, elements: v4)], chains: [
                Chain(name: "input", hook: .input, policy: .drop, rules: [
                    Rule(matches: [.interface(.input, "lo")], verdict: .accept),
                    Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4"), .ports(.destination, .tcp, [PortRange(8443)])],
                         statements: [.counter], verdict: .accept, comment: "CCM to CCO 8443"),
                ]),
            ])
            let report = try backend.apply(Diff.replacement(r))
            print(report)
            print(try ns.nftOutput(["list", "ruleset"]))
            let back = try backend.read(table: "fwenforcer")
            #expect(back.ruleset == r.canonical)
        }
    }
}
