/// A packet as a chain sees it, for walking it through a `Ruleset` without a kernel.
public struct TracedPacket: Sendable, Hashable {
    /// Conntrack's view of the packet.
    public enum Conntrack: Sendable, Hashable {
        case new
        /// A later packet of a connection, in the direction of its first packet.
        case establishedOriginal
        /// A packet going back the other way.
        case reply
        case related
        case invalid
    }

    public var source: IPAddress
    public var destination: IPAddress
    /// nil for ICMP.
    public var transport: TransportProtocol?
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var icmpType: ICMPType?
    public var conntrack: Conntrack
    /// The interface the packet came in on (input) or goes out of (output).
    public var interface: String
    /// For a connection DNAT rewrote (a published container port): the destination port its first
    /// packet carried. `destination` and `destinationPort` are then the rewritten ones, as the
    /// forward hook sees them.
    public var originalDestinationPort: UInt16?

    public init(from source: IPAddress, to destination: IPAddress, _ transport: TransportProtocol? = .tcp,
                sourcePort: UInt16 = 40000, port: UInt16 = 0, icmpType: ICMPType? = nil,
                conntrack: Conntrack = .new, interface: String = "eth0", originalDestinationPort: UInt16? = nil) {
        precondition(source.family == destination.family)
        self.source = source
        self.destination = destination
        self.transport = transport
        self.sourcePort = sourcePort
        self.destinationPort = port
        self.icmpType = icmpType
        self.conntrack = conntrack
        self.interface = interface
        self.originalDestinationPort = originalDestinationPort
    }

    /// Has a conntrack entry: `ct` matches fail (the rule does not match) for a packet without one.
    var tracked: Bool { conntrack != .invalid }

    public var family: AddressFamily { source.family }
}

/// Walks packets through a ruleset the way netfilter walks a base chain: rules in order, first
/// verdict wins, the chain policy when none matches; no chain for a hook means accept.
/// (`forward` is the hook a connection DNATed to a local container crosses, instead of `input`.)
public struct Tracer {
    public let ruleset: Ruleset

    public init(_ ruleset: Ruleset) { self.ruleset = ruleset }

    public struct Result: Sendable, Hashable {
        public let verdict: Verdict
        /// Index of the deciding rule in the chain, nil when the policy decided.
        public let ruleIndex: Int?
        public let comment: String?
    }

    public func trace(_ p: TracedPacket, hook: Hook) -> Result {
        guard let chain = ruleset.chains.first(where: { $0.hook == hook }) else {
            return Result(verdict: .accept, ruleIndex: nil, comment: "no chain")
        }
        for (i, rule) in chain.rules.enumerated() where rule.verdict != nil {
            if rule.matches.allSatisfy({ matches($0, p, hook: hook) }) {
                return Result(verdict: rule.verdict!, ruleIndex: i, comment: rule.comment)
            }
        }
        return Result(verdict: chain.policy, ruleIndex: nil, comment: "policy")
    }

    /// Shorthand: is the packet accepted at `hook`?
    public func accepts(_ p: TracedPacket, at hook: Hook) -> Bool { trace(p, hook: hook).verdict == .accept }

    func matches(_ m: Match, _ p: TracedPacket, hook: Hook) -> Bool {
        switch m {
        case .interface(let h, let name):
            return h == hook && p.interface == name
        case .ctState(let states):
            let s: CtState
            switch p.conntrack {
            case .new: s = .new
            case .establishedOriginal, .reply: s = .established
            case .related: s = .related
            case .invalid: s = .invalid
            }
            return states.contains(s)
        case .ctDirectionReply:
            return p.conntrack == .reply
        case .family(let f):
            return p.family == f
        case .transport(let t):
            return p.transport == t
        case .addressInSet(let end, let family, let setName):
            guard p.family == family, let set = ruleset.set(named: setName) else { return false }
            return set.elements.contains(end == .source ? p.source : p.destination)
        case .ports(let end, let proto, let ranges):
            guard p.transport == proto else { return false }
            let port = end == .source ? p.sourcePort : p.destinationPort
            return ranges.contains { $0.first <= port && port <= $0.last }
        case .icmpTypes(let family, let types):
            guard p.family == family, p.transport == nil, let t = p.icmpType else { return false }
            return types.contains(t)
        case .ctStatusDNAT(let dnat):
            return p.tracked && (p.originalDestinationPort != nil) == dnat
        case .originalDestinationPort(let proto, let range):
            guard p.transport == proto, p.tracked else { return false }
            // Without DNAT the original destination port is the packet's own.
            let port = p.originalDestinationPort ?? p.destinationPort
            return range.first <= port && port <= range.last
        }
    }
}
