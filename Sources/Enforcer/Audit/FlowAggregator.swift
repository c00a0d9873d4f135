import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// What identifies a would-be-dropped flow in the audit report.
public struct AuditFlowKey: Sendable, Hashable {
    public var direction: Direction
    public var source: IPAddress
    public var destination: IPAddress
    /// IANA protocol number.
    public var proto: UInt8
    /// Destination port (TCP, UDP, SCTP, ...).
    public var port: UInt16?
    /// ICMP/ICMPv6 type.
    public var icmpType: UInt8?

    public init(direction: Direction, headers h: PacketHeaders) {
        self.init(direction: direction, source: h.source, destination: h.destination, proto: h.proto, port: h.port, icmpType: h.icmpType)
    }

    public init(direction: Direction, source: IPAddress, destination: IPAddress, proto: UInt8, port: UInt16? = nil, icmpType: UInt8? = nil) {
        self.direction = direction
        self.source = source
        self.destination = destination
        self.proto = proto
        self.port = port
        self.icmpType = icmpType
    }

    /// The peer's end: the source of an incoming packet, the destination of an outgoing one.
    public var remote: IPAddress { direction == .ingress ? source : destination }
}

/// Counts would-be-dropped packets into flows, in bounded memory.
///
/// At most `maxFlows` distinct flows are kept. Once full, packets of flows already kept are still
/// counted, and packets of new flows are left out of the report: they are counted, and the number
/// of distinct flows left out is estimated (linear counting over a fixed 128 KiB bitmap; exact
/// within a few percent up to millions of flows). The first flows seen are kept rather than the
/// busiest, so a flood of new flows cannot push out what was already learned.
public final class FlowAggregator {
    public struct Record: Sendable, Hashable {
        public var packets: UInt64
        public var firstSeen: Date
        public var lastSeen: Date
        /// The interface the last packet came in on (ingress) or went out of (egress).
        public var interface: String?
    }

    public let maxFlows: Int
    /// When counting started; kept across config reloads.
    public let since: Date
    public private(set) var flows: [AuditFlowKey: Record] = [:]
    /// Would-be-dropped packets seen, per direction, kept or left out.
    public private(set) var packets: [Direction: UInt64] = [:]
    public private(set) var leftOutPackets: UInt64 = 0
    private var leftOutBitmap: [UInt64] = []
    static let bitmapBits = 1 << 20

    public init(maxFlows: Int, since: Date = Date()) {
        precondition(maxFlows >= 1)
        self.maxFlows = maxFlows
        self.since = since
    }

    /// Counts one packet.
    public func record(_ key: AuditFlowKey, interface: String? = nil, at time: Date = Date()) {
        packets[key.direction, default: 0] += 1
        if var r = flows[key] {
            r.packets += 1
            r.lastSeen = time
            if interface != nil { r.interface = interface }
            flows[key] = r
        } else if flows.count < maxFlows {
            flows[key] = Record(packets: 1, firstSeen: time, lastSeen: time, interface: interface)
        } else {
            leftOutPackets += 1
            if leftOutBitmap.isEmpty { leftOutBitmap = [UInt64](repeating: 0, count: Self.bitmapBits / 64) }
            // Hasher mixes well enough for linear counting; its per-process seed does not matter
            // since the bitmap lives as long as the process.
            let bit = Int(truncatingIfNeeded: UInt64(bitPattern: Int64(key.hashValue))) & (Self.bitmapBits - 1)
            leftOutBitmap[bit >> 6] |= 1 << UInt64(bit & 63)
        }
    }

    /// The estimated number of distinct flows left out (0 when none were).
    public var leftOutFlowsEstimate: UInt64 {
        guard !leftOutBitmap.isEmpty else { return 0 }
        let set = leftOutBitmap.reduce(0) { $0 + $1.nonzeroBitCount }
        let m = Double(Self.bitmapBits)
        // A full bitmap only says "at least about m ln m".
        let zeros = max(Double(Self.bitmapBits - set), 1)
        return UInt64((-m * Glibc.log(zeros / m)).rounded())
    }

    /// The flows kept, in the report's order: most packets first, then by direction, protocol,
    /// port, ICMP type, source and destination, so equal input gives an equal report.
    public var sortedFlows: [(key: AuditFlowKey, record: Record)] {
        flows.map { (key: $0.key, record: $0.value) }.sorted { a, b in
            if a.record.packets != b.record.packets { return a.record.packets > b.record.packets }
            return Self.order(a.key, b.key)
        }
    }

    static func order(_ a: AuditFlowKey, _ b: AuditFlowKey) -> Bool {
        if a.direction != b.direction { return a.direction == .ingress }
        if a.proto != b.proto { return a.proto < b.proto }
        if a.port != b.port { return (a.port.map(Int.init) ?? -1) < (b.port.map(Int.init) ?? -1) }
        if a.icmpType != b.icmpType { return (a.icmpType.map(Int.init) ?? -1) < (b.icmpType.map(Int.init) ?? -1) }
        if a.source != b.source { return a.source < b.source }
        return a.destination < b.destination
    }
}

/// Which configured groups hold an address, for naming the remote end of a flow.
public struct GroupMembership: Sendable {
    private let groups: [(name: String, v4: AddressSet, v6: AddressSet)]

    public init(_ groups: [String: [IPPrefix]]) {
        self.groups = groups.keys.sorted().map { name in
            (name, AddressSet(family: .ipv4, prefixes: groups[name]!), AddressSet(family: .ipv6, prefixes: groups[name]!))
        }
    }

    /// The groups holding `address`, sorted by name.
    public func groups(of address: IPAddress) -> [String] {
        groups.filter { (address.family == .ipv4 ? $0.v4 : $0.v6).contains(address) }.map(\.name)
    }
}
