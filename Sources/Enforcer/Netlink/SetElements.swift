import CNftables

/// NEWSETELEM / DELSETELEM messages, written in Swift byte by byte (no libnftnl objects: a
/// 100,000-element set would otherwise be 100,000 allocations), and the decoding of element dumps.
/// Elements are named only when an error points at one, so no text is made per element.
///
/// One message carries as many elements as fit in a 64 KiB attribute: the element list is a single
/// nested attribute and its length field is 16 bits. An IPv4 start element takes 16 bytes and an
/// end element 24, so an interval set of hosts fits about 3,270 ranges (6,540 elements) per message
/// and a hash set of IPv4 hosts 4,095; IPv6 elements take 28 and 36 bytes. All the messages of a
/// transaction still travel in one batch, so the kernel commits them together.
enum ElementMessages {
    /// One element to write: a key of `width` bytes, its interval flags, and the range it belongs
    /// to (an index into the owner's list, nil for the first segment), to name it in an error.
    struct Element {
        var key: UInt128
        var width: Int
        var isEnd: Bool
        var isOpen: Bool
        var rangeIndex: Int?

        /// Bytes this element adds inside the list nest.
        var encodedSize: Int {
            4                                          // NFTA_LIST_ELEM nest header
                + (isEnd ? 8 : 0)                      // NFTA_SET_ELEM_FLAGS
                + 8 + netlinkAlign(width)              // NFTA_SET_ELEM_KEY { NFTA_DATA_VALUE }
                + (isOpen ? 4 + netlinkAlign(6) : 0)   // NFTA_SET_ELEM_USERDATA (element flags)
        }
    }

    /// An element message ready for the batch, with where each element starts, so a kernel error
    /// (extended ACK offset) can name the element that failed.
    struct Message {
        var bytes: [UInt8]
        var elements: [(offset: Int, rangeIndex: Int?)]
    }

    /// The elements that store `ranges` of a named set.
    static func elements(of e: SetElements, firstSegment: Bool) -> [Element] {
        let width = e.family.byteCount
        if !e.interval {
            return e.ranges.indices.map { Element(key: e.ranges[$0].first, width: width, isEnd: false, isOpen: false, rangeIndex: $0) }
        }
        return Intervals.encode(e.ranges.map { ($0.first, $0.last) }, bits: e.family.bits, firstSegment: firstSegment).map {
            Element(key: $0.key, width: width, isEnd: $0.isEnd, isOpen: $0.isOpen, rangeIndex: $0.rangeIndex)
        }
    }

    /// The elements of an anonymous set.
    static func elements(of s: AnonymousSet) -> [Element] {
        s.elements.map { Element(key: $0.key, width: s.keyType.byteCount, isEnd: $0.isEnd, isOpen: $0.isOpen, rangeIndex: $0.rangeIndex) }
    }

    /// NEWSETELEM (`add == true`, exclusive: an element already there is EEXIST) or DELSETELEM
    /// messages for `elements`, split so that no attribute passes 64 KiB.
    /// `setID` is sent when the set is created in the same batch, as nft does.
    static func messages(add: Bool, table: String, set: String, setID: UInt32?, _ elements: [Element]) -> [Message] {
        var out: [Message] = []
        var i = 0
        let openFlags = Userdata.elementFlags(NFTNL_SET_ELEM_F_INTERVAL_OPEN.rawValue).bytes
        while i < elements.count {
            var m = header(add: add, table: table, set: set, setID: setID)
            m.bytes.reserveCapacity(m.bytes.count + maxAttributeLength + 4)
            let nestStart = m.bytes.count
            m.bytes += [0, 0, 0, 0]   // NFTA_SET_ELEM_LIST_ELEMENTS nest header, patched below
            var nestLength = 4
            var index: UInt16 = 0
            while i < elements.count, nestLength + elements[i].encodedSize <= maxAttributeLength {
                let e = elements[i]
                let size = e.encodedSize
                index += 1
                m.elements.append((m.bytes.count, e.rangeIndex))
                // libnftnl numbers list elements 1, 2, 3 ...; the kernel ignores the type.
                m.bytes.appendAttributeHeader(length: size, type: index | nested)
                if e.isEnd {
                    m.bytes.appendAttributeHeader(length: 8, type: UInt16(NFTA_SET_ELEM_FLAGS.rawValue))
                    m.bytes.appendBigEndian(NFT_SET_ELEM_INTERVAL_END.rawValue)
                }
                m.bytes.appendAttributeHeader(length: 8 + netlinkAlign(e.width), type: UInt16(NFTA_SET_ELEM_KEY.rawValue) | nested)
                m.bytes.appendAttributeHeader(length: 4 + e.width, type: UInt16(NFTA_DATA_VALUE.rawValue))
                for k in stride(from: e.width - 1, through: 0, by: -1) { m.bytes.append(UInt8(truncatingIfNeeded: e.key >> UInt128(8 * k))) }
                m.bytes.append(contentsOf: repeatElement(0, count: netlinkAlign(e.width) - e.width))
                if e.isOpen {
                    // nft marks a range that runs to the top of the key space in the element's userdata.
                    m.bytes.appendAttribute(type: UInt16(NFTA_SET_ELEM_USERDATA.rawValue), openFlags)
                }
                nestLength += size
                i += 1
            }
            precondition(index > 0, "one set element does not fit in an attribute")
            m.bytes.replaceSubrange(nestStart..<(nestStart + 4), with: attributeHeader(length: nestLength,
                                                                                      type: UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) | nested))
            patchLength(&m.bytes)
            out.append(m)
        }
        return out
    }

    private static let nested = UInt16(NLA_F_NESTED)

    private static func header(add: Bool, table: String, set: String, setID: UInt32?) -> Message {
        let type = UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16((add ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM).rawValue)
        let flags = UInt16(add ? RequestFlags.createExclusive : RequestFlags.plain)
        var bytes: [UInt8] = []
        bytes += [0, 0, 0, 0]                                          // nlmsg_len, patched
        bytes += [UInt8(type & 0xff), UInt8(type >> 8), UInt8(flags & 0xff), UInt8(flags >> 8)]
        bytes += [0, 0, 0, 0, 0, 0, 0, 0]                              // seq (set when framed), portid
        bytes += [familyInet, UInt8(NFNETLINK_V0), 0, 0]               // nfgenmsg, res_id 0
        // nft's order: table, set, set id.
        bytes.appendAttribute(type: UInt16(NFTA_SET_ELEM_LIST_TABLE.rawValue), Array(table.utf8) + [0])
        bytes.appendAttribute(type: UInt16(NFTA_SET_ELEM_LIST_SET.rawValue), Array(set.utf8) + [0])
        if let setID { bytes.appendAttribute(type: UInt16(NFTA_SET_ELEM_LIST_SET_ID.rawValue), .bigEndian(setID)) }
        return Message(bytes: bytes, elements: [])
    }

    private static func attributeHeader(length: Int, type: UInt16) -> [UInt8] {
        [UInt8(length & 0xff), UInt8(length >> 8), UInt8(type & 0xff), UInt8(type >> 8)]
    }

    private static func patchLength(_ bytes: inout [UInt8]) {
        let n = UInt32(bytes.count)
        for k in 0..<4 { bytes[k] = UInt8(truncatingIfNeeded: n >> (8 * UInt32(k))) }
    }

    // MARK: - dumps

    /// A GETSETELEM dump request for one set.
    static func dumpRequest(table: String, set: String) -> [UInt8] {
        var bytes = header(add: true, table: table, set: set, setID: nil).bytes
        let type = UInt16(NFNL_SUBSYS_NFTABLES) << 8 | UInt16(NFT_MSG_GETSETELEM.rawValue)
        let flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
        bytes.replaceSubrange(4..<8, with: [UInt8(type & 0xff), UInt8(type >> 8), UInt8(flags & 0xff), UInt8(flags >> 8)])
        patchLength(&bytes)
        return bytes
    }

    /// The elements of one dumped NEWSETELEM message: (key, is end element).
    static func decode(_ m: ReceivedMessage) -> [(key: [UInt8], isEnd: Bool)]? {
        let top = parseAttributes(m.attributes)
        guard let list = top[type: NFTA_SET_ELEM_LIST_ELEMENTS.rawValue] else { return [] }
        var out: [(key: [UInt8], isEnd: Bool)] = []
        for element in list.nested {
            let attrs = element.nested
            guard let key = attrs[type: NFTA_SET_ELEM_KEY.rawValue]?.nested[type: NFTA_DATA_VALUE.rawValue] else { return nil }
            let flags = attrs[type: NFTA_SET_ELEM_FLAGS.rawValue]?.u32 ?? 0
            out.append((Array(key.payload), flags & NFT_SET_ELEM_INTERVAL_END.rawValue != 0))
        }
        return out
    }

    /// The elements of one dumped NEWSETELEM message's attributes (after the nfgenmsg header), as
    /// key values, appended to `out`; false when the message is malformed. Parsed in place, without
    /// the per-attribute arrays `decode` builds: a read-back of 100,000 elements should cost little
    /// more than the kernel's dump itself (docs/benchmarks.md).
    static func appendKeys(_ attributes: UnsafeRawBufferPointer, to out: inout [(key: UInt128, isEnd: Bool)]) -> Bool {
        var ok = true
        forEachAttribute(attributes) { type, list in
            guard type == UInt16(NFTA_SET_ELEM_LIST_ELEMENTS.rawValue) else { return }
            forEachAttribute(list) { _, element in
                var key: UInt128?
                var isEnd = false
                forEachAttribute(element) { type, payload in
                    if type == UInt16(NFTA_SET_ELEM_KEY.rawValue) {
                        forEachAttribute(payload) { type, value in
                            if type == UInt16(NFTA_DATA_VALUE.rawValue) {
                                key = value.reduce(UInt128(0)) { ($0 << 8) | UInt128($1) }
                            }
                        }
                    } else if type == UInt16(NFTA_SET_ELEM_FLAGS.rawValue), payload.count >= 4 {
                        let flags = UInt32(bigEndian: payload.loadUnaligned(as: UInt32.self))
                        isEnd = flags & NFT_SET_ELEM_INTERVAL_END.rawValue != 0
                    }
                }
                guard let key else { ok = false; return }
                out.append((key, isEnd))
            }
        }
        return ok
    }

    /// Calls `body` with the type (flag bits masked off) and payload of each attribute in `bytes`.
    @inline(__always)
    private static func forEachAttribute(_ bytes: UnsafeRawBufferPointer, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        var i = 0
        while bytes.count - i >= 4 {
            let length = Int(bytes.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            guard length >= 4, i + length <= bytes.count else { return }
            let type = bytes.loadUnaligned(fromByteOffset: i + 2, as: UInt16.self) & 0x3fff
            body(type, UnsafeRawBufferPointer(rebasing: bytes[(i + 4)..<(i + length)]))
            i += netlinkAlign(length)
        }
    }
}

@inline(__always) func netlinkAlign(_ n: Int) -> Int { (n + 3) & ~3 }
