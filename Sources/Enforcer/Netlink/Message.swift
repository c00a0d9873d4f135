import CNftables

/// The nf_tables family of every object fwenforcer writes: `inet` (IPv4 and IPv6 in one table).
let familyInet = UInt8(NFPROTO_INET)
/// The 16-bit length field of a netlink attribute bounds what one attribute (a nest of set
/// elements included) can carry.
let maxAttributeLength = Int(UInt16.max)

/// A reusable scratch buffer that libnftnl and libmnl write one message into; the bytes are then
/// copied out, so the batch is a plain Swift array.
///
/// libnftnl's builders do not check bounds: the capacity is above anything fwenforcer builds (a set
/// element message is kept under 64 KiB of elements; a rule is a few hundred bytes), and each
/// build checks afterwards that it stayed inside.
final class MessageBuilder {
    static let capacity = 256 * 1024
    private let buffer: UnsafeMutableRawPointer

    init() {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: MessageBuilder.capacity, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: MessageBuilder.capacity)
    }

    deinit { buffer.deallocate() }

    /// Builds one nf_tables message of `type` (an `NFT_MSG_*`) with `flags`, its payload written by
    /// `body`; the sequence number is filled in when the batch is serialised.
    /// The corresponding C function is `nftnl_nlmsg_build_hdr`.
    func build(_ type: nf_tables_msg_types, flags: Int32, family: UInt8 = familyInet,
               _ body: (UnsafeMutablePointer<nlmsghdr>) -> Void) -> [UInt8] {
        let nlh = nftnl_nlmsg_build_hdr(buffer.assumingMemoryBound(to: CChar.self), UInt16(type.rawValue),
                                        UInt16(family), UInt16(flags), 0)!
        body(nlh)
        let length = Int(nlh.pointee.nlmsg_len)
        precondition(length <= MessageBuilder.capacity, "netlink message overran its buffer")
        let bytes = Array(UnsafeRawBufferPointer(start: buffer, count: length))
        // libmnl 1.0.4 leaves attribute padding as it finds it: keep the buffer zeroed, as nft's
        // freshly allocated batch pages are, so padding bytes are zeros too.
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: length)
        return bytes
    }
}

/// Request flags for the messages of a batch. Every message asks for an ACK, so every object gets
/// the kernel's answer and a missing answer is noticed.
enum RequestFlags {
    static let create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
    static let createExclusive = create | NLM_F_EXCL
    static let append = create | NLM_F_APPEND
    static let plain = NLM_F_REQUEST | NLM_F_ACK
}

// MARK: - reading netlink bytes in Swift

/// One netlink message of a received datagram.
struct ReceivedMessage {
    var type: UInt16
    var flags: UInt16
    var sequence: UInt32
    /// The whole message, header included.
    var bytes: ArraySlice<UInt8>
    /// After the 16-byte `nlmsghdr`.
    var payload: ArraySlice<UInt8> { bytes.dropFirst(16) }
    /// After `nlmsghdr` and `nfgenmsg`: the attributes of an nf_tables message.
    var attributes: ArraySlice<UInt8> { bytes.dropFirst(20) }
}

extension ReceivedMessage {
    /// Runs one of libnftnl's `nftnl_*_nlmsg_parse` on this message; false when it cannot run
    /// safely or fails. libnftnl trusts the kernel: it reads the 4-byte nfgenmsg whatever the
    /// message's length, and strdup()s string attributes without looking for their NUL. So the
    /// message must hold an nfgenmsg, and libnftnl reads a copy with a zero byte after it: every
    /// string then ends inside the buffer.
    func parse(_ body: (UnsafePointer<nlmsghdr>) -> Int32) -> Bool {
        guard bytes.count >= 20 else { return false }
        let copy = Array(bytes) + [0]
        return copy.withUnsafeBytes { body($0.baseAddress!.assumingMemoryBound(to: nlmsghdr.self)) } >= 0
    }

    /// Whether libnftnl 1.2 can parse the expressions of this message without reading memory it
    /// should not; a message that fails is refused before libnftnl sees it (both found by
    /// `make fuzz`, fuzz/corpus/netlink-dump/regression-*):
    /// - an expression without NFTA_EXPR_NAME goes to `nftnl_expr_alloc(NULL)`, whose strcmp reads
    ///   address 4;
    /// - a verdict (in a data register: immediate, cmp, bitwise, range) is parsed into an attribute
    ///   table on the stack that is never zeroed, so a verdict without its code, or a jump or goto
    ///   without its chain, makes libnftnl read and strdup() whatever pointer was left there.
    /// `list` is an attribute holding NFTA_LIST_ELEM expressions, `single` one holding an expression.
    func expressionsAreSafeForLibnftnl(list: UInt32, single: UInt32? = nil) -> Bool {
        parseAttributes(attributes).allSatisfy { a in
            if a.type == UInt16(list) { return a.nested.allSatisfy(Self.expressionIsSafe) }
            if let single, a.type == UInt16(single) { return Self.expressionIsSafe(a) }
            return true
        }
    }

    /// The attributes of each expression that libnftnl reads as data registers (`nftnl_parse_data`).
    private static let dataRegisters: [String: Set<UInt16>] = [
        "immediate": [UInt16(NFTA_IMMEDIATE_DATA.rawValue)],
        "cmp": [UInt16(NFTA_CMP_DATA.rawValue)],
        "bitwise": [UInt16(NFTA_BITWISE_MASK.rawValue), UInt16(NFTA_BITWISE_XOR.rawValue), UInt16(NFTA_BITWISE_DATA.rawValue)],
        "range": [UInt16(NFTA_RANGE_FROM_DATA.rawValue), UInt16(NFTA_RANGE_TO_DATA.rawValue)],
    ]

    private static func expressionIsSafe(_ expression: Attribute) -> Bool {
        // libnftnl keeps the last attribute of each type, as mnl_attr_parse_nested's callbacks do.
        let parts = expression.nested
        guard let name = parts.last(where: { $0.type == UInt16(NFTA_EXPR_NAME.rawValue) }) else { return false }
        guard let registers = dataRegisters[name.string],
              let data = parts.last(where: { $0.type == UInt16(NFTA_EXPR_DATA.rawValue) }) else { return true }
        return data.nested.allSatisfy { !registers.contains($0.type) || verdictIsComplete(in: $0) }
    }

    private static func verdictIsComplete(in register: Attribute) -> Bool {
        guard let verdict = register.nested.last(where: { $0.type == UInt16(NFTA_DATA_VERDICT.rawValue) }) else { return true }
        let fields = verdict.nested
        guard let code = fields.last(where: { $0.type == UInt16(NFTA_VERDICT_CODE.rawValue) })?.u32 else { return false }
        let verdictCode = Int32(bitPattern: code)
        guard verdictCode == NFT_JUMP.rawValue || verdictCode == NFT_GOTO.rawValue else { return true }
        return fields.contains { $0.type == UInt16(NFTA_VERDICT_CHAIN.rawValue) }
    }
}

/// Splits a datagram into its messages. Returns nil for a truncated message.
func splitMessages(_ bytes: ArraySlice<UInt8>) -> [ReceivedMessage]? {
    var out: [ReceivedMessage] = []
    var i = bytes.startIndex
    while bytes.endIndex - i >= 16 {
        let length = Int(bytes.hostU32(at: i))
        guard length >= 16, i + length <= bytes.endIndex else { return nil }
        out.append(ReceivedMessage(type: bytes.hostU16(at: i + 4), flags: bytes.hostU16(at: i + 6),
                                   sequence: bytes.hostU32(at: i + 8), bytes: bytes[i..<(i + length)]))
        i += (length + 3) & ~3
    }
    return out
}

/// One netlink attribute (type with the nested / byte-order bits masked off).
struct Attribute {
    var type: UInt16
    var payload: ArraySlice<UInt8>
    /// Offset of the attribute header from the start of the buffer it was parsed from.
    var offset: Int

    var u32: UInt32? { payload.count >= 4 ? payload.bigU32(at: payload.startIndex) : nil }
    var u16: UInt16? { payload.count >= 2 ? payload.bigU16(at: payload.startIndex) : nil }
    var u64: UInt64? {
        guard payload.count >= 8 else { return nil }
        return (UInt64(payload.bigU32(at: payload.startIndex)) << 32) | UInt64(payload.bigU32(at: payload.startIndex + 4))
    }
    /// A NUL-terminated string attribute.
    var string: String { String(decoding: payload.prefix { $0 != 0 }, as: UTF8.self) }
    var nested: [Attribute] { parseAttributes(payload) }
}

/// Parses a run of attributes; a malformed tail is ignored (the kernel never sends one).
func parseAttributes(_ bytes: ArraySlice<UInt8>) -> [Attribute] {
    var out: [Attribute] = []
    var i = bytes.startIndex
    while bytes.endIndex - i >= 4 {
        let length = Int(bytes.hostU16(at: i))
        guard length >= 4, i + length <= bytes.endIndex else { break }
        // NLA_TYPE_MASK: the nested and byte-order flag bits are not part of the type.
        let type = bytes.hostU16(at: i + 2) & 0x3fff
        out.append(Attribute(type: type, payload: bytes[(i + 4)..<(i + length)], offset: i))
        i += (length + 3) & ~3
    }
    return out
}

extension Array where Element == Attribute {
    subscript(type t: some BinaryInteger) -> Attribute? { first { $0.type == UInt16(t) } }
}

extension ArraySlice where Element == UInt8 {
    func hostU16(at i: Int) -> UInt16 { UInt16(self[i]) | UInt16(self[i + 1]) << 8 }
    func hostU32(at i: Int) -> UInt32 {
        UInt32(self[i]) | UInt32(self[i + 1]) << 8 | UInt32(self[i + 2]) << 16 | UInt32(self[i + 3]) << 24
    }
    func bigU16(at i: Int) -> UInt16 { UInt16(self[i]) << 8 | UInt16(self[i + 1]) }
    func bigU32(at i: Int) -> UInt32 {
        UInt32(self[i]) << 24 | UInt32(self[i + 1]) << 16 | UInt32(self[i + 2]) << 8 | UInt32(self[i + 3])
    }
}

extension Array where Element == UInt8 {
    /// Appends a netlink attribute (host-order header, 4-byte padding), as `mnl_attr_put` does.
    mutating func appendAttribute(type: UInt16, _ payload: [UInt8]) {
        let length = 4 + payload.count
        append(UInt8(truncatingIfNeeded: length)); append(UInt8(truncatingIfNeeded: length >> 8))
        append(UInt8(truncatingIfNeeded: type)); append(UInt8(truncatingIfNeeded: type >> 8))
        append(contentsOf: payload)
        append(contentsOf: repeatElement(0, count: (4 - length % 4) % 4))
    }

    mutating func appendAttributeHeader(length: Int, type: UInt16) {
        append(UInt8(truncatingIfNeeded: length)); append(UInt8(truncatingIfNeeded: length >> 8))
        append(UInt8(truncatingIfNeeded: type)); append(UInt8(truncatingIfNeeded: type >> 8))
    }

    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(truncatingIfNeeded: v >> 24)); append(UInt8(truncatingIfNeeded: v >> 16))
        append(UInt8(truncatingIfNeeded: v >> 8)); append(UInt8(truncatingIfNeeded: v))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(truncatingIfNeeded: v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)]
    }
}
