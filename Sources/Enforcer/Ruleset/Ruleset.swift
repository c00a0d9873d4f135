/// The default name of the one `inet` table fwenforcer owns.
public let defaultTableName = "fwenforcer"

/// The whole desired (or read-back) state of fwenforcer's table: a plain value, so it can be
/// rendered, diffed and compared without a kernel.
///
/// Order is part of the value: sets are sorted by name, chains are `input` then `output`, and rules
/// keep the order the compiler gives them (first match wins in a chain).
///
/// It is `Codable` so that a provisional apply can keep the ruleset it would restore on disk
/// (`PendingConfirmation`), for the process that restores it.
public struct Ruleset: Sendable, Hashable, Codable {
    public var tableName: String
    public var sets: [NamedSet]
    public var chains: [Chain]

    public init(tableName: String = defaultTableName, sets: [NamedSet] = [], chains: [Chain] = []) {
        self.tableName = tableName
        self.sets = sets.sorted { $0.name < $1.name }
        self.chains = chains
    }

    public func set(named name: String) -> NamedSet? { sets.first { $0.name == name } }
    public func chain(named name: String) -> Chain? { chains.first { $0.name == name } }
}

/// A named set of addresses of one family, one per (group, family).
/// `interval` sets hold ranges and prefixes, merged where they touch; the others (a hash set in the
/// kernel) hold single addresses, each its own element, adjacent ones included (`AddressSet`'s
/// hosts layout). Which of the two a set is follows from the config, never from the addresses'
/// values (`Compiler.groupSet`).
public struct NamedSet: Sendable, Hashable, Codable {
    public var name: String
    public var family: AddressFamily
    public var interval: Bool
    public var elements: AddressSet
    public var comment: String?

    public init(name: String, family: AddressFamily, interval: Bool, elements: AddressSet, comment: String? = nil) {
        precondition(elements.family == family)
        precondition(interval ? elements.isMerged : elements.hostsOnly,
                     interval ? "an interval set holds merged ranges" : "a non-interval set holds single addresses only")
        self.name = name
        self.family = family
        self.interval = interval
        self.elements = elements
        self.comment = comment
    }
}

/// The netfilter hooks fwenforcer attaches to. `forward` only ever holds the published-port chain
/// (connections to this host that DNAT sent on to a local container; see `Compiler.publishedPortsChain`).
public enum Hook: String, Sendable, Hashable, Codable {
    case input
    case forward
    case output
}

public enum Verdict: String, Sendable, Hashable, Codable {
    case accept
    case drop
}

/// A base chain of type `filter` on `hook`.
public struct Chain: Sendable, Hashable, Codable {
    public var name: String
    public var hook: Hook
    /// Netfilter priority; 0 is nft's `filter`.
    public var priority: Int32
    public var policy: Verdict
    public var rules: [Rule]

    public init(name: String, hook: Hook, priority: Int32 = 0, policy: Verdict, rules: [Rule]) {
        self.name = name
        self.hook = hook
        self.priority = priority
        self.policy = policy
        self.rules = rules
    }
}

/// One rule: all `matches` must hold; then `statements` run in order; then `verdict` (if any) ends
/// the packet's walk of the chain.
public struct Rule: Sendable, Hashable, Codable {
    public var matches: [Match]
    public var statements: [Statement]
    public var verdict: Verdict?
    public var comment: String?

    public init(matches: [Match] = [], statements: [Statement] = [], verdict: Verdict?, comment: String? = nil) {
        self.matches = matches
        self.statements = statements
        self.verdict = verdict
        self.comment = comment
    }
}

public enum PacketEnd: String, Sendable, Hashable, Codable {
    case source
    case destination
}

public enum TransportProtocol: String, Sendable, Hashable, Comparable, Codable, CaseIterable {
    case tcp
    case udp

    /// IANA protocol number, as `meta l4proto` compares it.
    public var number: UInt8 { self == .tcp ? 6 : 17 }

    public static func < (a: TransportProtocol, b: TransportProtocol) -> Bool { a.number < b.number }
}

/// Connection-tracking states, with the kernel's bit values (`NF_CT_STATE_*_BIT`).
public enum CtState: String, Sendable, Hashable, Comparable, Codable, CaseIterable {
    case invalid
    case established
    case related
    case new
    case untracked

    public var bit: UInt32 {
        switch self {
        case .invalid: return 1 << 0
        case .established: return 1 << 1
        case .related: return 1 << 2
        case .new: return 1 << 3
        case .untracked: return 1 << 6
        }
    }

    public static func < (a: CtState, b: CtState) -> Bool { a.bit < b.bit }
}

/// A closed port range; a single port has `first == last`.
public struct PortRange: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public let first: UInt16
    public let last: UInt16

    public init(_ first: UInt16, _ last: UInt16) {
        precondition(first <= last)
        self.first = first
        self.last = last
    }

    public init(_ port: UInt16) { self.init(port, port) }

    public var description: String { first == last ? "\(first)" : "\(first)-\(last)" }

    public static func < (a: PortRange, b: PortRange) -> Bool { (a.first, a.last) < (b.first, b.last) }

    /// Sorts and merges overlapping or adjacent ranges.
    public static func normalize(_ input: [PortRange]) -> [PortRange] {
        var out: [PortRange] = []
        for r in input.sorted() {
            if let last = out.last, Int(r.first) <= Int(last.last) + 1 {
                out[out.count - 1] = PortRange(last.first, max(last.last, r.last))
            } else {
                out.append(r)
            }
        }
        return out
    }
}

/// ICMP and ICMPv6 message types the compiler lets through, with their type numbers.
public enum ICMPType: String, Sendable, Hashable, Comparable, Codable, CaseIterable {
    // ICMP (IPv4)
    case echoReply = "echo-reply"
    case destinationUnreachable = "destination-unreachable"
    case echoRequest = "echo-request"
    case timeExceeded = "time-exceeded"
    case parameterProblem = "parameter-problem"
    // ICMPv6
    case v6DestinationUnreachable = "v6:destination-unreachable"
    case packetTooBig = "packet-too-big"
    case v6TimeExceeded = "v6:time-exceeded"
    case v6ParameterProblem = "v6:parameter-problem"
    case v6EchoRequest = "v6:echo-request"
    case v6EchoReply = "v6:echo-reply"
    case mldListenerQuery = "mld-listener-query"
    case mldListenerReport = "mld-listener-report"
    case mldListenerDone = "mld-listener-done"
    case routerSolicit = "nd-router-solicit"
    case routerAdvert = "nd-router-advert"
    case neighborSolicit = "nd-neighbor-solicit"
    case neighborAdvert = "nd-neighbor-advert"
    case mld2ListenerReport = "mld2-listener-report"

    public var family: AddressFamily {
        switch self {
        case .echoReply, .destinationUnreachable, .echoRequest, .timeExceeded, .parameterProblem: return .ipv4
        default: return .ipv6
        }
    }

    public var number: UInt8 {
        switch self {
        case .echoReply: return 0
        case .destinationUnreachable: return 3
        case .echoRequest: return 8
        case .timeExceeded: return 11
        case .parameterProblem: return 12
        case .v6DestinationUnreachable: return 1
        case .packetTooBig: return 2
        case .v6TimeExceeded: return 3
        case .v6ParameterProblem: return 4
        case .v6EchoRequest: return 128
        case .v6EchoReply: return 129
        case .mldListenerQuery: return 130
        case .mldListenerReport: return 131
        case .mldListenerDone: return 132
        case .routerSolicit: return 133
        case .routerAdvert: return 134
        case .neighborSolicit: return 135
        case .neighborAdvert: return 136
        case .mld2ListenerReport: return 143
        }
    }

    /// The name nft uses (without our `v6:` disambiguation).
    public var nftName: String {
        rawValue.hasPrefix("v6:") ? String(rawValue.dropFirst(3)) : rawValue
    }

    public static func < (a: ICMPType, b: ICMPType) -> Bool { (a.family, a.number) < (b.family, b.number) }
}

/// What a rule matches on. Each case is one nft match and a fixed expression sequence on the wire;
/// implicit protocol dependencies (`meta nfproto`, `meta l4proto`) are the encoder's business.
public enum Match: Sendable, Hashable, Codable {
    /// `iifname "lo"` (input) or `oifname "lo"` (output).
    case interface(Hook, String)
    /// `ct state established,related`: true when any listed state holds.
    case ctState([CtState])
    /// `ct direction reply`.
    case ctDirectionReply
    /// `meta nfproto ipv4|ipv6`.
    case family(AddressFamily)
    /// `meta l4proto tcp|udp`.
    case transport(TransportProtocol)
    /// `ip saddr @CCM_v4`.
    case addressInSet(PacketEnd, AddressFamily, set: String)
    /// `tcp dport 8443`, `tcp dport { 80, 443 }`, `udp dport 5405`, `tcp dport 1000-2000`.
    case ports(PacketEnd, TransportProtocol, [PortRange])
    /// `icmp type { ... }` / `icmpv6 type { ... }`; all listed types share one family.
    case icmpTypes(AddressFamily, [ICMPType])
    /// `ct status dnat` (true) or `ct status ! dnat` (false): whether the packet's connection had
    /// its destination rewritten. Like every `ct` match it fails for a packet without a conntrack
    /// entry (invalid or untracked), in both forms.
    case ctStatusDNAT(Bool)
    /// `meta l4proto tcp ct original proto-dst 5000` (or a range): the destination port the
    /// connection's first packet carried, before any DNAT rewrote it. One range per match: nft 1.0.6
    /// cannot print a port set under this key (`0x50 [invalid type]`), and `nft list` must read.
    case originalDestinationPort(TransportProtocol, PortRange)
}

public enum LogLevel: String, Sendable, Hashable, Codable, CaseIterable {
    case emerg, alert, crit, err, warn, notice, info, debug

    public var syslogValue: UInt32 {
        UInt32(LogLevel.allCases.firstIndex(of: self)!)
    }
}

/// A rate for `limit rate N/unit burst B packets`.
public struct RateLimit: Sendable, Hashable, Codable {
    public enum Unit: String, Sendable, Hashable, Codable {
        case second, minute, hour, day
        public var seconds: UInt64 {
            switch self { case .second: return 1; case .minute: return 60; case .hour: return 3600; case .day: return 86400 }
        }
    }
    public var rate: UInt64
    public var unit: Unit
    public var burst: UInt32

    public init(rate: UInt64, per unit: Unit, burst: UInt32) {
        self.rate = rate
        self.unit = unit
        self.burst = burst
    }
}

/// Non-terminal statements of a rule.
public enum Statement: Sendable, Hashable, Codable {
    /// `counter`. Its packet/byte values are kernel state and are not part of the model.
    case counter
    /// `limit rate N/unit burst B packets`: the rest of the rule runs only under the rate.
    case limit(RateLimit)
    /// `log prefix "..." level L` (syslog), or `log prefix "..." group G` (nfnetlink_log) when `group` is set;
    /// `snaplen N` (group form only) copies at most N bytes of each packet, from its network header,
    /// to the listener.
    case log(prefix: String, level: LogLevel, group: UInt16?, snaplen: UInt32? = nil)
}
