/// The fields of a packet's IPv4/IPv6 and transport headers that an audit flow is keyed by, read
/// from the first bytes of the packet (what nfnetlink_log copies, up to the rule's snaplen).
///
/// Parsing is total: a truncated or malformed header yields what could be read (addresses without a
/// port) or nil, never a trap, since the bytes come from the network.
public struct PacketHeaders: Sendable, Hashable {
    public var source: IPAddress
    public var destination: IPAddress
    /// IANA protocol number of the transport (after IPv6 extension headers).
    public var proto: UInt8
    /// Destination port (TCP, UDP, UDP-Lite, SCTP, DCCP), when the copy reaches it.
    public var port: UInt16?
    /// ICMP or ICMPv6 type.
    public var icmpType: UInt8?

    public init(source: IPAddress, destination: IPAddress, proto: UInt8, port: UInt16? = nil, icmpType: UInt8? = nil) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.port = port
        self.icmpType = icmpType
    }

    /// Protocols whose header starts with 16-bit source and destination ports.
    static let portProtocols: Set<UInt8> = [6, 17, 33, 132, 136]
    /// IPv6 extension headers that are walked over to find the transport (hop-by-hop, routing,
    /// destination options; fragment and AH have their own layout).
    static let ipv6Extensions: Set<UInt8> = [0, 43, 60]

    /// Reads an IPv4 or IPv6 packet; the version nibble decides which.
    public static func parse(_ bytes: ArraySlice<UInt8>) -> PacketHeaders? {
        guard let first = bytes.first else { return nil }
        switch first >> 4 {
        case 4: return parseIPv4(bytes)
        case 6: return parseIPv6(bytes)
        default: return nil
        }
    }

    public static func parse(_ bytes: [UInt8]) -> PacketHeaders? { parse(bytes[...]) }

    static func parseIPv4(_ b: ArraySlice<UInt8>) -> PacketHeaders? {
        let s = b.startIndex
        guard b.count >= 20 else { return nil }
        let headerLength = Int(b[s] & 0x0f) * 4
        guard headerLength >= 20 else { return nil }
        var h = PacketHeaders(source: IPAddress(family: .ipv4, bytes: Array(b[(s + 12)..<(s + 16)])),
                              destination: IPAddress(family: .ipv4, bytes: Array(b[(s + 16)..<(s + 20)])),
                              proto: b[s + 9])
        // Only the first fragment carries the transport header.
        let fragmentOffset = (UInt16(b[s + 6]) << 8 | UInt16(b[s + 7])) & 0x1fff
        if fragmentOffset == 0 { h.readTransport(b, at: s + headerLength, icmp: 1) }
        return h
    }

    static func parseIPv6(_ b: ArraySlice<UInt8>) -> PacketHeaders? {
        let s = b.startIndex
        guard b.count >= 40 else { return nil }
        var h = PacketHeaders(source: IPAddress(family: .ipv6, bytes: Array(b[(s + 8)..<(s + 24)])),
                              destination: IPAddress(family: .ipv6, bytes: Array(b[(s + 24)..<(s + 40)])),
                              proto: b[s + 6])
        var offset = s + 40
        // Bounded: at most a handful of extension headers fit in a snaplen-sized copy anyway.
        for _ in 0..<8 {
            if ipv6Extensions.contains(h.proto) {
                guard offset + 2 <= b.endIndex else { return h }
                let next = b[offset]
                offset += (Int(b[offset + 1]) + 1) * 8
                h.proto = next
            } else if h.proto == 44 {
                // Fragment header: 8 bytes; later fragments carry no transport header.
                guard offset + 8 <= b.endIndex else { return h }
                let next = b[offset]
                let fragmentOffset = (UInt16(b[offset + 2]) << 8 | UInt16(b[offset + 3])) >> 3
                h.proto = next
                offset += 8
                if fragmentOffset != 0 { return h }
            } else if h.proto == 51 {
                // AH: its length field counts 4-byte units, minus 2.
                guard offset + 2 <= b.endIndex else { return h }
                let next = b[offset]
                offset += (Int(b[offset + 1]) + 2) * 4
                h.proto = next
            } else {
                break
            }
        }
        h.readTransport(b, at: offset, icmp: 58)
        return h
    }

    private mutating func readTransport(_ b: ArraySlice<UInt8>, at offset: Int, icmp: UInt8) {
        if Self.portProtocols.contains(proto), offset + 4 <= b.endIndex {
            port = UInt16(b[offset + 2]) << 8 | UInt16(b[offset + 3])
        } else if proto == icmp, offset + 1 <= b.endIndex {
            icmpType = b[offset]
        }
    }

    /// `tcp`, `udp`, `icmp`, `ipv6-icmp` (as /etc/protocols names them), or the number.
    public static func protocolName(_ number: UInt8) -> String {
        switch number {
        case 1: return "icmp"
        case 2: return "igmp"
        case 6: return "tcp"
        case 17: return "udp"
        case 33: return "dccp"
        case 47: return "gre"
        case 50: return "esp"
        case 58: return "icmpv6"
        case 132: return "sctp"
        case 136: return "udplite"
        default: return String(number)
        }
    }
}
