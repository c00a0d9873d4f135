/// One packet as nfnetlink_log delivers it (`NFULNL_MSG_PACKET`): the log rule's prefix, the hook,
/// the interfaces, the instance sequence number and the first bytes of the packet.
public struct NflogPacket: Sendable, Hashable {
    /// `NFPROTO_IPV4` (2) or `NFPROTO_IPV6` (10): the packet's family, also in an inet table.
    public var family: UInt8
    /// The log statement's prefix (`fwenforcer in audit: `).
    public var prefix: String?
    /// The netfilter hook (`NF_INET_LOCAL_IN` 1, `NF_INET_LOCAL_OUT` 3).
    public var hook: UInt8?
    public var inInterface: UInt32?
    public var outInterface: UInt32?
    /// Per-group sequence number (`NFULNL_CFG_F_SEQ`): a gap means the kernel dropped messages.
    public var sequence: UInt32?
    /// The copied bytes, from the network header on, at most the rule's snaplen.
    public var payload: [UInt8]

    public var headers: PacketHeaders? { PacketHeaders.parse(payload) }
}

/// The wire format of nfnetlink_log, from <linux/netfilter/nfnetlink_log.h> and
/// <linux/netfilter/nfnetlink.h>. Pure, so it is tested against recorded bytes.
enum NflogWire {
    static let subsystem: UInt16 = 4 // NFNL_SUBSYS_ULOG
    static let packetMessage: UInt16 = subsystem << 8 | 0 // NFULNL_MSG_PACKET
    static let configMessage: UInt16 = subsystem << 8 | 1 // NFULNL_MSG_CONFIG

    enum Attribute {
        static let packetHeader: UInt16 = 1 // NFULA_PACKET_HDR: __be16 hw_protocol, __u8 hook, pad
        static let inInterface: UInt16 = 4 // NFULA_IFINDEX_INDEV
        static let outInterface: UInt16 = 5 // NFULA_IFINDEX_OUTDEV
        static let payload: UInt16 = 9 // NFULA_PAYLOAD
        static let prefix: UInt16 = 10 // NFULA_PREFIX, NUL-terminated
        static let sequence: UInt16 = 12 // NFULA_SEQ
    }

    enum Config {
        static let command: UInt16 = 1 // NFULA_CFG_CMD: __u8 command
        static let mode: UInt16 = 2 // NFULA_CFG_MODE: __be32 copy_range, __u8 copy_mode, pad (packed, 6 bytes)
        static let bufferSize: UInt16 = 3 // NFULA_CFG_NLBUFSIZ: __be32
        static let timeout: UInt16 = 4 // NFULA_CFG_TIMEOUT: __be32, 1/100 s
        static let queueThreshold: UInt16 = 5 // NFULA_CFG_QTHRESH: __be32
        static let flags: UInt16 = 6 // NFULA_CFG_FLAGS: __be16
        static let bind: UInt8 = 1 // NFULNL_CFG_CMD_BIND
        static let copyPacket: UInt8 = 2 // NFULNL_COPY_PACKET
        static let flagSequence: UInt16 = 1 // NFULNL_CFG_F_SEQ
    }

    /// Parses one datagram. Packet messages are returned in order; anything else (NLMSG_DONE
    /// closing a batch of several packets, errors) is skipped. Truncated messages and attributes
    /// end the parse instead of being read past.
    static func packets(in data: ArraySlice<UInt8>) -> [NflogPacket] {
        var out: [NflogPacket] = []
        forEachPacket(in: data) { out.append($0) }
        return out
    }

    static func forEachPacket(in data: ArraySlice<UInt8>, _ body: (NflogPacket) -> Void) {
        var offset = data.startIndex
        while offset + 16 <= data.endIndex {
            let length = Int(data.u32le(at: offset))
            let type = data.u16le(at: offset + 4)
            guard length >= 16, offset + length <= data.endIndex else { return }
            defer { offset += (length + 3) & ~3 }
            guard type == packetMessage, length >= 20 else { continue }
            let message = data[offset..<(offset + length)]
            let attributes = NetlinkMonitor.attributes(message.dropFirst(20))
            func u32(_ a: UInt16) -> UInt32? {
                guard let v = attributes[a], v.count >= 4 else { return nil }
                return v.u32be(at: v.startIndex)
            }
            var packet = NflogPacket(family: message[message.startIndex + 16], payload: [])
            if let hdr = attributes[Attribute.packetHeader], hdr.count >= 3 { packet.hook = hdr[hdr.startIndex + 2] }
            packet.inInterface = u32(Attribute.inInterface)
            packet.outInterface = u32(Attribute.outInterface)
            packet.sequence = u32(Attribute.sequence)
            if let p = attributes[Attribute.prefix] { packet.prefix = String(decoding: p.prefix { $0 != 0 }, as: UTF8.self) }
            if let p = attributes[Attribute.payload] { packet.payload = Array(p) }
            body(packet)
        }
    }

    /// An `NFULNL_MSG_CONFIG` request for `group` with the given attributes, asking for an ACK.
    static func configRequest(group: UInt16, sequence: UInt32, attributes: [(UInt16, [UInt8])]) -> [UInt8] {
        var body: [UInt8] = [0 /* AF_UNSPEC */, 0 /* NFNETLINK_V0 */, UInt8(group >> 8), UInt8(group & 0xff)]
        for (type, value) in attributes {
            let length = 4 + value.count
            body += le16(UInt16(length)) + le16(type) + value
            body += [UInt8](repeating: 0, count: ((length + 3) & ~3) - length)
        }
        let flags: UInt16 = 0x1 | 0x4 // NLM_F_REQUEST | NLM_F_ACK
        return le32(UInt32(16 + body.count)) + le16(configMessage) + le16(flags) + le32(sequence) + le32(0) + body
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }

    /// The error code of an `NLMSG_ERROR` reply to `sequence` (0 is the ACK), nil if the datagram
    /// holds none.
    static func acknowledgement(in data: ArraySlice<UInt8>, sequence: UInt32) -> Int32? {
        var offset = data.startIndex
        while offset + 20 <= data.endIndex {
            let length = Int(data.u32le(at: offset))
            guard length >= 16, offset + length <= data.endIndex else { return nil }
            if data.u16le(at: offset + 4) == 2 /* NLMSG_ERROR */, data.u32le(at: offset + 8) == sequence {
                return Int32(bitPattern: data.u32le(at: offset + 16))
            }
            offset += (length + 3) & ~3
        }
        return nil
    }
}

/// Counts the packets nfnetlink_log numbered (`NFULA_SEQ`, per group) but never delivered: the
/// kernel increments the number when it builds a packet's message, so messages dropped on a full
/// socket queue leave gaps.
struct NflogSequence {
    private var last: UInt32?
    private(set) var lost: UInt64 = 0

    mutating func note(_ sequence: UInt32?) {
        guard let sequence else { return }
        if let last {
            let gap = sequence &- last &- 1
            // A gap of more than half the number space is reordering or a restart, not loss.
            if gap < UInt32.max / 2 { lost += UInt64(gap) }
        }
        last = sequence
    }
}
