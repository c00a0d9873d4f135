import CNftables

/// Turns a dumped rule's expressions back into a `Rule`: the inverse of `Linearize`.
///
/// Expressions are first grouped into the pieces `Linearize` writes (a `meta`/`cmp` pair, a
/// `payload` with its `cmp` or `lookup` ...); dependency checks come back as explicit `family` /
/// `transport` matches and `Match.canonical` then drops the ones the encoder would insert itself.
/// Finally the result is linearized again and must give the same expressions: anything fwenforcer
/// would not have written exactly so (a rule added by someone else) is reported as unrepresentable
/// rather than read back approximately.
enum Delinearize {
    /// The contents of the anonymous sets a table holds, by kernel name (`__set0`).
    typealias AnonymousSets = [String: AnonymousSet]

    static func rule(_ dumped: DumpedRule, anonymousSets: AnonymousSets) throws(BackendError) -> Rule {
        let what = "a rule in chain \(dumped.chain)"
        func fail(_ why: String) -> BackendError {
            .unrepresentable("\(what): \(why): \(dumped.expressions.map(\.description).joined(separator: " "))")
        }
        var matches: [Match] = []
        var statements: [Statement] = []
        var verdict: Verdict?
        var state = DependencyState()
        var pendingICMPFamily: AddressFamily?   // set by `meta l4proto icmp|icmpv6`, consumed by the ICMP match
        let e = dumped.expressions
        let r1 = Expression.register1
        var i = 0

        func next(_ k: Int) -> Expression? { i + k < e.count ? e[i + k] : nil }

        while i < e.count {
            guard verdict == nil else { throw fail("expressions after the verdict") }
            let matchCount = matches.count
            let inStatements = !statements.isEmpty
            switch (e[i], next(1)) {
            case (.meta(let key, r1), .cmp(.eq, r1, let data)) where !inStatements:
                switch key {
                case .nfproto where data.count == 1:
                    guard let f = [UInt8(NFPROTO_IPV4): AddressFamily.ipv4, UInt8(NFPROTO_IPV6): .ipv6][data[0]] else { throw fail("meta nfproto \(data[0])") }
                    matches.append(.family(f))
                case .l4proto where data.count == 1:
                    switch data[0] {
                    case TransportProtocol.tcp.number: matches.append(.transport(.tcp))
                    case TransportProtocol.udp.number: matches.append(.transport(.udp))
                    case ipProtocolICMP: pendingICMPFamily = .ipv4
                    case ipProtocolICMPv6: pendingICMPFamily = .ipv6
                    default: throw fail("meta l4proto \(data[0])")
                    }
                    state.l4 = data[0]
                    i += 2
                    continue
                case .iifname, .oifname:
                    guard data.count == Linearize.ifnameSize, data.last == 0 else { throw fail("interface name match") }
                    let name = String(decoding: data.prefix { $0 != 0 }, as: UTF8.self)
                    matches.append(.interface(key == .iifname ? .input : .output, name))
                default:
                    throw fail("meta \(key)")
                }
                i += 2
            case (.ct(.state, r1), .bitwise(r1, 4, let mask, [0, 0, 0, 0])) where !inStatements && mask.count == 4:
                guard next(2) == .cmp(.neq, register: r1, data: [0, 0, 0, 0]) else { throw fail("ct state test") }
                let bits = mask.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                let states = CtState.allCases.filter { bits & $0.bit != 0 }
                guard states.reduce(0, { $0 | $1.bit }) == bits else { throw fail("ct state bits \(bits)") }
                matches.append(.ctState(states))
                i += 3
            case (.ct(.direction, r1), .cmp(.eq, r1, [1])) where !inStatements:
                matches.append(.ctDirectionReply)
                i += 2
            case (.ct(.status, r1), .bitwise(r1, 4, let mask, [0, 0, 0, 0])) where !inStatements && mask == Linearize.hostBytes(conntrackStatusDNAT):
                switch next(2) {
                case .cmp(.neq, r1, [0, 0, 0, 0])?: matches.append(.ctStatusDNAT(true))
                case .cmp(.eq, r1, [0, 0, 0, 0])?: matches.append(.ctStatusDNAT(false))
                default: throw fail("ct status test")
                }
                i += 3
            case (.ctOriginal(.protoDst, r1), _) where !inStatements:
                guard let proto = [TransportProtocol.tcp.number: TransportProtocol.tcp, TransportProtocol.udp.number: .udp][state.l4 ?? 0] else {
                    throw fail("ct original proto-dst without a tcp or udp protocol check")
                }
                switch (next(1), next(2)) {
                case (.cmp(.gte, r1, let lo), .cmp(.lte, r1, let hi)) where lo.count == 2 && hi.count == 2 && port(lo) <= port(hi):
                    matches.append(.originalDestinationPort(proto, PortRange(port(lo), port(hi))))
                    i += 3
                case (.cmp(.eq, r1, let p), _) where p.count == 2:
                    matches.append(.originalDestinationPort(proto, PortRange(port(p))))
                    i += 2
                default:
                    throw fail("ct original proto-dst match")
                }
            case (.payload(.network, let offset, let length, r1), .lookup(let set, _, r1)) where !inStatements:
                let field: (AddressFamily, PacketEnd)? = switch (offset, length) {
                case (12, 4): (.ipv4, .source)
                case (16, 4): (.ipv4, .destination)
                case (8, 16): (.ipv6, .source)
                case (24, 16): (.ipv6, .destination)
                default: nil
                }
                guard let (family, end) = field else { throw fail("network header field at \(offset)") }
                guard anonymousSets[set] == nil else { throw fail("address lookup in an anonymous set") }
                matches.append(.addressInSet(end, family, set: set))
                i += 2
            case (.payload(.transport, 0, 4, r1), .cmp(.eq, r1, let both)) where !inStatements && both.count == 4:
                // nft merged `sport == a` and `dport == b` into one 4-byte compare (stmt_reduce).
                guard let proto = [TransportProtocol.tcp.number: TransportProtocol.tcp, TransportProtocol.udp.number: .udp][state.l4 ?? 0] else {
                    throw fail("port match without a tcp or udp protocol check")
                }
                matches.append(.ports(.source, proto, [PortRange(port(Array(both[0..<2])))]))
                state.advance(over: matches.last!)
                matches.append(.ports(.destination, proto, [PortRange(port(Array(both[2..<4])))]))
                i += 2
            case (.payload(.transport, let offset, 2, r1), _) where !inStatements && (offset == 0 || offset == 2):
                guard let proto = [TransportProtocol.tcp.number: TransportProtocol.tcp, TransportProtocol.udp.number: .udp][state.l4 ?? 0] else {
                    throw fail("port match without a tcp or udp protocol check")
                }
                let end: PacketEnd = offset == 0 ? .source : .destination
                switch (next(1), next(2)) {
                case (.cmp(.gte, r1, let lo), .cmp(.lte, r1, let hi)) where lo.count == 2 && hi.count == 2:
                    guard port(lo) <= port(hi) else { throw fail("empty port range") }
                    matches.append(.ports(end, proto, [PortRange(port(lo), port(hi))]))
                    i += 3
                case (.cmp(.eq, r1, let p), _) where p.count == 2:
                    matches.append(.ports(end, proto, [PortRange(port(p))]))
                    i += 2
                case (.lookup(let set, _, r1), _):
                    guard let s = anonymousSets[set], s.keyType == .inetService else { throw fail("port lookup in set \(set)") }
                    matches.append(.ports(end, proto, s.ranges.map { PortRange(UInt16($0.first), UInt16($0.last)) }))
                    i += 2
                default:
                    throw fail("port match")
                }
            case (.payload(.transport, 0, 1, r1), _) where !inStatements:
                guard let family = pendingICMPFamily else { throw fail("ICMP type match without an icmp protocol check") }
                let numbers: [UInt8]
                switch next(1) {
                case .cmp(.eq, r1, let d)? where d.count == 1:
                    numbers = d
                case .lookup(let set, _, r1)?:
                    guard let s = anonymousSets[set], s.keyType == (family == .ipv4 ? .icmpType : .icmpv6Type) else {
                        throw fail("ICMP type lookup in set \(set)")
                    }
                    numbers = s.ranges.flatMap { r in (r.first...r.last).map { UInt8($0) } }
                default:
                    throw fail("ICMP type match")
                }
                let types = try numbers.map { (n) throws(BackendError) -> ICMPType in
                    guard let t = ICMPType.allCases.first(where: { $0.family == family && $0.number == n }) else {
                        throw fail("ICMP type \(n)")
                    }
                    return t
                }
                matches.append(.icmpTypes(family, types))
                pendingICMPFamily = nil
                i += 2
            case (.counter, _):
                statements.append(.counter)
                i += 1
            case (.limit(let rate, let unitSeconds, let burst, let type, 0), _) where type == NFT_LIMIT_PKTS.rawValue:
                guard let unit = RateLimit.Unit.allKnown.first(where: { $0.seconds == unitSeconds }) else { throw fail("limit unit \(unitSeconds)") }
                statements.append(.limit(RateLimit(rate: rate, per: unit, burst: burst ?? 0)))
                i += 1
            case (.log(let prefix?, let level, let group, let snaplen), _):
                if let group, level == nil {
                    statements.append(.log(prefix: prefix, level: .warn, group: group, snaplen: snaplen))
                } else if let level, group == nil, snaplen == nil, let l = LogLevel.allCases.first(where: { $0.syslogValue == level }) {
                    statements.append(.log(prefix: prefix, level: l, group: nil))
                } else {
                    throw fail("log options")
                }
                i += 1
            case (.verdict(let v), _):
                verdict = v
                i += 1
            default:
                throw fail("expression \(e[i])")
            }
            if matches.count > matchCount, let last = matches.last { state.advance(over: last) }
        }
        guard pendingICMPFamily == nil else { throw fail("icmp protocol check without an ICMP type match") }

        let rule = Rule(matches: Match.canonical(matches), statements: statements, verdict: verdict,
                        comment: dumped.userdata?.ruleComment)
        // The faithfulness check: fwenforcer must write these very expressions for this rule. Set
        // ids are batch-local (the kernel does not dump them) and anonymous sets are compared by
        // contents, in lookup order, then by a common placeholder name.
        let again = try Linearize.rule(rule, namedSetID: { _ in 0 }, anonymousSetID: { 0 })
        var dumpedAnonymous: [AnonymousSet] = []
        func comparable(_ x: Expression) -> Expression {
            guard case .lookup(let name, _, let r) = x else { return x }
            if name == Linearize.anonymousSetName { return .lookup(set: name, setID: 0, register: r) }
            if let s = anonymousSets[name] {
                dumpedAnonymous.append(s)
                return .lookup(set: Linearize.anonymousSetName, setID: 0, register: r)
            }
            return .lookup(set: name, setID: 0, register: r)
        }
        let written = again.expressions.map(comparable)
        let read = e.map(comparable)
        guard written == read, dumpedAnonymous.count == again.anonymousSets.count,
              zip(dumpedAnonymous, again.anonymousSets).allSatisfy({ $0.sameContents($1) }) else {
            throw fail("not in the form fwenforcer writes")
        }
        return rule
    }

    private static func port(_ bytes: [UInt8]) -> UInt16 { UInt16(bytes[0]) << 8 | UInt16(bytes[1]) }
}

extension RateLimit.Unit {
    static let allKnown: [RateLimit.Unit] = [.second, .minute, .hour, .day]
}

/// What a rule looks like after a round trip through the kernel: linearized as fwenforcer writes
/// it and read back as fwenforcer reads it. Pure (no kernel), and the definition `Rule.canonical`
/// uses, so comparing canonical rules is comparing what the kernel would hold.
enum KernelForm {
    static func canonical(_ rule: Rule) -> Rule? {
        guard let linear = try? Linearize.rule(rule, namedSetID: { _ in 0 }, anonymousSetID: { 0 }) else { return nil }
        var anonymous: Delinearize.AnonymousSets = [:]
        var k = 0
        let expressions = linear.expressions.map { x -> Expression in
            guard case .lookup(Linearize.anonymousSetName, _, let r) = x else { return x }
            let name = "__set\(k)"
            anonymous[name] = linear.anonymousSets[k]
            k += 1
            return .lookup(set: name, setID: 0, register: r)
        }
        let dumped = DumpedRule(table: "", chain: "", expressions: expressions, userdata: linear.userdata)
        return try? Delinearize.rule(dumped, anonymousSets: anonymous)
    }
}
