import CNftables
import SystemPackage

/// A constant anonymous set nft creates for `tcp dport { 80, 443 }` or `icmp type { a, b }`: it
/// belongs to its rule, is created in the same batch just before it, and goes away with it.
struct AnonymousSet: Hashable {
    /// nft's datatype of the key: inet_service, icmp_type or icmpv6_type.
    var keyType: KeyType
    var interval: Bool
    /// Closed ranges of key values; single values have first == last.
    var ranges: [KeyRange]

    struct KeyRange: Hashable {
        var first: UInt128
        var last: UInt128
    }

    /// nft datatype ids (src/datatype.c), with the key width and the `typeof` userdata nft writes
    /// (payload expression, protocol description id, header field index).
    enum KeyType: UInt32 {
        case inetService = 13
        case icmpType = 14
        case icmpv6Type = 29

        var byteCount: Int { self == .inetService ? 2 : 1 }
    }

    /// `typeof` userdata: nft records which header field the key came from (payload expression
    /// type 7, protocol description id, field index), so it can print the set by field name.
    var typeofUserdata: Typeof

    struct Typeof: Hashable {
        var protocolDescription: UInt32
        var field: UInt32
    }

    /// The elements as the kernel stores them: interval-encoded with nft's first segment, or one
    /// per value.
    var elements: [IntervalElement] {
        if interval {
            return Intervals.encode(ranges.map { ($0.first, $0.last) }, bits: keyType.byteCount * 8, firstSegment: true)
        }
        return ranges.enumerated().map { IntervalElement(key: $0.element.first, isEnd: false, rangeIndex: $0.offset) }
    }

    /// The size nft declares for a constant set (NFTA_SET_DESC_SIZE): its element count before
    /// interval encoding, plus, for an interval set, one per range and one for the first segment
    /// (nft counts an end element even for a range that runs to the top and has none).
    var declaredSize: Int {
        interval ? 2 * ranges.count + (ranges.first?.first == 0 ? 0 : 1) : ranges.count
    }

    /// Same key type, kind and elements (the `typeof` userdata aside).
    func sameContents(_ other: AnonymousSet) -> Bool {
        keyType == other.keyType && interval == other.interval && ranges == other.ranges
    }

    var userdata: Userdata {
        var u = Userdata()
        u.putU32(Int(NFTNL_UDATA_SET_KEYBYTEORDER.rawValue), Userdata.byteOrderBigEndian)
        if interval { u.putU32(Int(NFTNL_UDATA_SET_MERGE_ELEMENTS.rawValue), 1) }
        var data = Userdata()
        data.putU32(0, typeofUserdata.protocolDescription)   // NFTNL_UDATA_SET_KEY_PAYLOAD_DESC
        data.putU32(1, typeofUserdata.field)                 // NFTNL_UDATA_SET_KEY_PAYLOAD_TYPE
        var typeof = Userdata()
        typeof.putU32(NFTNL_UDATA_SET_TYPEOF_EXPR, 7)   // EXPR_PAYLOAD
        typeof.putNested(NFTNL_UDATA_SET_TYPEOF_DATA, data)
        u.putNested(Int(NFTNL_UDATA_SET_KEY_TYPEOF.rawValue), typeof)
        return u
    }
}

/// A rule in kernel form: its expressions, and the anonymous sets they look up (in lookup order).
struct LinearizedRule {
    var expressions: [Expression]
    var anonymousSets: [AnonymousSet]
    var userdata: Userdata?
}

/// Turns a `Rule` into the expressions nft writes for the same nft statement (`nft --debug=netlink`),
/// with the implicit dependencies nft adds in an inet table: `meta nfproto` before an address or
/// ICMP match, `meta l4proto` before a port or ICMP match, each only when not already established.
///
/// `namedSetID` gives the batch-local id of a named set created in the same batch (0 otherwise);
/// anonymous sets get their ids from `anonymousSetID` in the order they are looked up.
enum Linearize {
    static let anonymousSetName = "__set%d"
    static let ifnameSize = 16

    static func rule(_ rule: Rule, namedSetID: (String) -> UInt32, anonymousSetID: () -> UInt32) throws(BackendError) -> LinearizedRule {
        if let comment = rule.comment, comment.utf8.count > Userdata.commentMaxLength {
            throw .rejected([Rejection(object: Transaction.ruleSubject(chain: "?", rule), code: .invalidArgument,
                                       kernelMessage: "comment longer than \(Userdata.commentMaxLength) bytes")])
        }
        var out = LinearizedRule(expressions: [], anonymousSets: [], userdata: Userdata.rule(comment: rule.comment))
        // nft's statements: each match and each implicit dependency is one, and `payload == value`
        // statements are merged afterwards as nft's stmt_reduce does.
        var units: [Unit] = []
        var state = DependencyState()
        let r1 = Expression.register1

        func lookupAnonymous(_ set: AnonymousSet) -> Expression {
            out.anonymousSets.append(set)
            return .lookup(set: anonymousSetName, setID: anonymousSetID(), register: r1)
        }

        for m in rule.matches {
            if let f = m.impliedFamily, state.family != f {
                units.append(Unit(familyCheck(f)))
                state.family = f
            }
            if let p = m.impliedL4Protocol, state.l4 != p {
                units.append(Unit(l4Check(p)))
                state.l4 = p
            }
            switch m {
            case .interface(let hook, let name):
                let bytes = Array(name.utf8)
                guard bytes.count < ifnameSize, !bytes.contains(0) else {
                    throw .rejected([Rejection(object: Transaction.ruleSubject(chain: "?", rule), code: .invalidArgument,
                                               kernelMessage: "interface name \"\(name)\" is longer than \(ifnameSize - 1) bytes")])
                }
                units.append(Unit([.meta(hook == .input ? .iifname : .oifname, register: r1),
                                   .cmp(.eq, register: r1, data: bytes + Array(repeating: 0, count: ifnameSize - bytes.count))]))
            case .ctState(let states):
                let mask = states.reduce(UInt32(0)) { $0 | $1.bit }
                units.append(Unit([.ct(.state, register: r1),
                                   .bitwise(register: r1, length: 4, mask: hostBytes(mask), xor: [0, 0, 0, 0]),
                                   .cmp(.neq, register: r1, data: [0, 0, 0, 0])]))
            case .ctDirectionReply:
                units.append(Unit([.ct(.direction, register: r1), .cmp(.eq, register: r1, data: [1])]))  // IP_CT_DIR_REPLY
            case .ctStatusDNAT(let dnat):
                units.append(Unit([.ct(.status, register: r1),
                                   .bitwise(register: r1, length: 4, mask: hostBytes(conntrackStatusDNAT), xor: [0, 0, 0, 0]),
                                   .cmp(dnat ? .neq : .eq, register: r1, data: [0, 0, 0, 0])]))
            case .originalDestinationPort(_, let range):
                let load = Expression.ctOriginal(.protoDst, register: r1)
                if range.first == range.last {
                    units.append(Unit([load, .cmp(.eq, register: r1, data: bigEndian16(range.first))]))
                } else {
                    units.append(Unit([load, .cmp(.gte, register: r1, data: bigEndian16(range.first)),
                                       .cmp(.lte, register: r1, data: bigEndian16(range.last))]))
                }
            case .family(let f):
                units.append(Unit(familyCheck(f)))
            case .transport(let p):
                units.append(Unit(l4Check(p.number)))
            case .addressInSet(let end, let family, let set):
                let (offset, length) = addressField(family, end)
                units.append(Unit([.payload(.network, offset: offset, length: length, register: r1),
                                   .lookup(set: set, setID: namedSetID(set), register: r1)]))
            case .ports(let end, let proto, let ports):
                let ports = PortRange.normalize(ports)
                let offset: UInt32 = end == .source ? 0 : 2
                if ports.count == 1, ports[0].first == ports[0].last {
                    units.append(.payloadEquals(.transport, offset: offset, value: bigEndian16(ports[0].first)))
                } else if ports.count == 1 {
                    units.append(Unit([.payload(.transport, offset: offset, length: 2, register: r1),
                                       .cmp(.gte, register: r1, data: bigEndian16(ports[0].first)),
                                       .cmp(.lte, register: r1, data: bigEndian16(ports[0].last))]))
                } else {
                    let lookup = lookupAnonymous(AnonymousSet(
                        keyType: .inetService, interval: ports.contains { $0.first != $0.last },
                        ranges: ports.map { .init(first: UInt128($0.first), last: UInt128($0.last)) },
                        typeofUserdata: .init(protocolDescription: proto == .tcp ? protoDescTCP : protoDescUDP, field: end == .source ? 1 : 2)))
                    units.append(Unit([.payload(.transport, offset: offset, length: 2, register: r1), lookup]))
                }
            case .icmpTypes(let family, let types):
                let numbers = Array(Set(types.map(\.number))).sorted()
                if numbers.count == 1 {
                    units.append(.payloadEquals(.transport, offset: 0, value: [numbers[0]]))
                } else {
                    let lookup = lookupAnonymous(AnonymousSet(
                        keyType: family == .ipv4 ? .icmpType : .icmpv6Type, interval: false,
                        ranges: numbers.map { .init(first: UInt128($0), last: UInt128($0)) },
                        typeofUserdata: .init(protocolDescription: family == .ipv4 ? protoDescICMP : protoDescICMPv6, field: 1)))
                    units.append(Unit([.payload(.transport, offset: 0, length: 1, register: r1), lookup]))
                }
            }
            state.advance(over: m)
        }
        mergePayloadMatches(&units)
        out.expressions = units.flatMap(\.expressions)
        for s in rule.statements {
            switch s {
            case .counter:
                out.expressions.append(.counter)
            case .limit(let r):
                out.expressions.append(.limit(rate: r.rate, unitSeconds: r.unit.seconds, burst: r.burst > 0 ? r.burst : nil,
                                              type: NFT_LIMIT_PKTS.rawValue, flags: 0))
            case .log(let prefix, let level, let group, let snaplen):
                out.expressions.append(.log(prefix: prefix, level: group == nil ? level.syslogValue : nil, group: group,
                                            snaplen: group == nil ? nil : snaplen))
            }
        }
        if let v = rule.verdict { out.expressions.append(.verdict(v)) }
        return out
    }

    /// One nft statement's expressions; `payload == constant` statements keep their field so they
    /// can be merged.
    struct Unit {
        var expressions: [Expression]
        var field: (base: PayloadBase, offset: UInt32, value: [UInt8])?

        init(_ expressions: [Expression]) { self.expressions = expressions }

        static func payloadEquals(_ base: PayloadBase, offset: UInt32, value: [UInt8]) -> Unit {
            var u = Unit([.payload(base, offset: offset, length: UInt32(value.count), register: Expression.register1),
                          .cmp(.eq, register: Expression.register1, data: value)])
            u.field = (base, offset, value)
            return u
        }
    }

    /// nft's stmt_reduce (src/rule.c): `payload == constant` statements of a rule are sorted by
    /// header position, and each one that starts where the previous ends is folded into it while
    /// the pair fits a 32-bit register (`udp sport 67 udp dport 68` is one 4-byte load and compare).
    /// The merged statement stays where the lower-offset one was; the other disappears.
    static func mergePayloadMatches(_ units: inout [Unit]) {
        let candidates = units.indices.filter { units[$0].field != nil }
            .sorted { (units[$0].field!.base.rawValue, units[$0].field!.offset, $0) < (units[$1].field!.base.rawValue, units[$1].field!.offset, $1) }
        guard candidates.count > 1 else { return }
        var removed: Set<Int> = []
        var last = candidates[0]
        for this in candidates.dropFirst() {
            let a = units[last].field!, b = units[this].field!
            guard a.base == b.base, a.offset + UInt32(a.value.count) == b.offset, a.value.count + b.value.count <= 4 else {
                last = this
                continue
            }
            units[last] = .payloadEquals(a.base, offset: a.offset, value: a.value + b.value)
            removed.insert(this)
        }
        units = units.indices.filter { !removed.contains($0) }.map { units[$0] }
    }

    // nft's protocol description ids (enum proto_desc_id), as its set `typeof` userdata records them.
    static let protoDescICMP: UInt32 = 4
    static let protoDescUDP: UInt32 = 6
    static let protoDescTCP: UInt32 = 8
    static let protoDescICMPv6: UInt32 = 14

    static func familyCheck(_ f: AddressFamily) -> [Expression] {
        [.meta(.nfproto, register: Expression.register1),
         .cmp(.eq, register: Expression.register1, data: [f == .ipv4 ? UInt8(NFPROTO_IPV4) : UInt8(NFPROTO_IPV6)])]
    }

    static func l4Check(_ proto: UInt8) -> [Expression] {
        [.meta(.l4proto, register: Expression.register1), .cmp(.eq, register: Expression.register1, data: [proto])]
    }

    /// Offset and length of the source or destination address in the IPv4 or IPv6 header.
    static func addressField(_ family: AddressFamily, _ end: PacketEnd) -> (UInt32, UInt32) {
        switch (family, end) {
        case (.ipv4, .source): return (12, 4)
        case (.ipv4, .destination): return (16, 4)
        case (.ipv6, .source): return (8, 16)
        case (.ipv6, .destination): return (24, 16)
        }
    }

    static func bigEndian16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func hostBytes(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
}
