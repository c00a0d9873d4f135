import Testing
@testable import Enforcer

/// fwenforcer's netlink encoding against the bytes nft itself sends for the same nft statements
/// (NetlinkGoldens.swift, captured by docs/netlink-capture/goldens.py). Equal bytes mean the
/// kernel holds the same expressions and userdata, so `nft list` decompiles our rules to the text
/// an operator would have written.
@Suite struct NetlinkGoldenTests {
    /// Message type and every byte after the netlink header (sequence numbers and request flags
    /// differ by design: fwenforcer asks for an ACK of every message).
    static func describe(_ m: Batch.Message) -> String {
        let names: [UInt16: String] = [0: "NEWTABLE", 2: "DELTABLE", 3: "NEWCHAIN", 5: "DELCHAIN", 6: "NEWRULE", 8: "DELRULE",
                                       9: "NEWSET", 11: "DELSET", 12: "NEWSETELEM", 14: "DELSETELEM"]
        return (names[m.type & 0xff] ?? "?") + " " + m.bytes.dropFirst(16).map { String($0, radix: 16).leftPadded(2) }.joined()
    }

    static func compare(_ ours: [String], _ nft: [String], _ what: String) {
        #expect(ours.count == nft.count, "\(what): \(ours.count) messages, nft sent \(nft.count)")
        for (i, (a, b)) in zip(ours, nft).enumerated() {
            #expect(a == b, "\(what): message \(i) differs")
        }
    }

    @Test(arguments: NetlinkGoldens.rules)
    func ruleEncodedAsNftEncodesIt(_ c: NetlinkGoldens.Case) throws {
        var ops: [Transaction.Operation] = [
            .addTable, .addChain(BaseChain(name: c.hook.rawValue, hook: c.hook, priority: 0, policy: .drop)),
        ]
        if let s = c.set { ops.append(.addSet(SetDefinition(s))) }
        ops.append(.addRule(chain: c.hook.rawValue, c.rule))
        let batch = try Batch.encode(Transaction(table: "fwenforcer", operations: ops), builder: MessageBuilder())
        Self.compare(batch.messages.map(Self.describe), c.messages, c.nft)
        // Every golden rule is written in canonical form, so reading it back gives it unchanged.
        #expect(KernelForm.canonical(c.rule) == c.rule, "\(c.nft) does not read back as written")
    }

    @Test func tableChainsSetsAndElementsEncodedAsNftEncodesThem() throws {
        func set(_ name: String, _ family: AddressFamily, interval: Bool, _ items: [String], comment: String? = nil) throws -> NamedSet {
            let prefixes = try items.map { try IPPrefix.parse($0) }
            var ranges = prefixes.map(\.range)
            if name == "CCM_v4" { ranges.append(AddressRange(family: .ipv4, first: IPAddress("198.18.3.1")!.value, last: IPAddress("198.18.3.9")!.value)) }
            return NamedSet(name: name, family: family, interval: interval, elements: AddressSet(family: family, ranges: ranges), comment: comment)
        }
        let sets = [
            try set("CCM_v4", .ipv4, interval: true, ["198.18.0.7", "198.18.1.0/24"]),
            try set("CCM_v6", .ipv6, interval: true, ["fd00::1", "2001:db8::/64"], comment: "CCM hosts"),
            try set("H_v4", .ipv4, interval: false, ["198.18.0.7", "198.18.0.9"]),
            try set("H_v6", .ipv6, interval: false, ["fd00::1", "2001:db8::5"]),
            try set("Z_v4", .ipv4, interval: true, ["198.18.0.0/15"]),
        ]
        var ops: [Transaction.Operation] = [
            .addTable,
            .addChain(BaseChain(name: "input", hook: .input, priority: 0, policy: .drop)),
            .addChain(BaseChain(name: "output", hook: .output, priority: 0, policy: .accept)),
        ]
        for s in sets { ops += [.addSet(SetDefinition(s)), .addElements(Diff.elements(of: s))] }
        let batch = try Batch.encode(Transaction(table: "fwenforcer", operations: ops), builder: MessageBuilder())
        Self.compare(batch.messages.map(Self.describe), NetlinkGoldens.objects, "objects")
    }
}

extension NetlinkGoldens.Case: CustomTestStringConvertible {
    var testDescription: String { nft }
}
