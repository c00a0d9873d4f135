import CNftables

/// `struct nftnl_set`, owned: freed here and nowhere else.
final class NftnlSet {
    let pointer: OpaquePointer

    init() {
        guard let p = nftnl_set_alloc() else { fatalError("nftnl_set_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_set_free(pointer) }

    func set(_ a: nftnl_set_attr, _ value: String) { _ = nftnl_set_set_str(pointer, UInt16(a.rawValue), value) }
    func set(_ a: nftnl_set_attr, _ value: UInt32) { nftnl_set_set_u32(pointer, UInt16(a.rawValue), value) }
    func set(_ a: nftnl_set_attr, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = nftnl_set_set_data(pointer, UInt16(a.rawValue), $0.baseAddress, UInt32($0.count)) }
    }
    func has(_ a: nftnl_set_attr) -> Bool { nftnl_set_is_set(pointer, UInt16(a.rawValue)) }
    func string(_ a: nftnl_set_attr) -> String? { has(a) ? String(cString: nftnl_set_get_str(pointer, UInt16(a.rawValue))) : nil }
    func u32(_ a: nftnl_set_attr) -> UInt32? { has(a) ? nftnl_set_get_u32(pointer, UInt16(a.rawValue)) : nil }
    func data(_ a: nftnl_set_attr) -> [UInt8]? {
        guard has(a) else { return nil }
        var length: UInt32 = 0
        guard let p = nftnl_set_get_data(pointer, UInt16(a.rawValue), &length) else { return nil }
        return Array(UnsafeRawBufferPointer(start: p, count: Int(length)))
    }
}

/// A set as dumped by the kernel.
struct DumpedSet {
    var table: String
    var name: String
    var flags: UInt32
    var keyType: UInt32
    var keyLength: UInt32
    var userdata: Userdata

    var isAnonymous: Bool { flags & NFT_SET_ANONYMOUS.rawValue != 0 }
    var isInterval: Bool { flags & NFT_SET_INTERVAL.rawValue != 0 }
}

/// NEWSET / DELSET, for named address sets and for the anonymous sets of rules.
enum SetMessages {
    /// nft datatype ids of the set keys: ipv4_addr, ipv6_addr.
    static func keyType(_ f: AddressFamily) -> UInt32 { f == .ipv4 ? 7 : 8 }

    /// `add set inet T NAME { type ipv4_addr; [flags interval;] [comment "..."] }`, with nft's
    /// userdata (key byte order, comment) so `nft list` prints addresses, not hex.
    static func add(table: String, _ s: SetDefinition, id: UInt32, _ b: MessageBuilder) -> [UInt8] {
        let set = NftnlSet()
        set.set(NFTNL_SET_TABLE, table)
        set.set(NFTNL_SET_NAME, s.name)
        set.set(NFTNL_SET_FLAGS, s.interval ? NFT_SET_INTERVAL.rawValue : 0)
        set.set(NFTNL_SET_KEY_TYPE, keyType(s.family))
        set.set(NFTNL_SET_KEY_LEN, UInt32(s.family.byteCount))
        set.set(NFTNL_SET_ID, id)
        set.set(NFTNL_SET_USERDATA, Userdata.namedSet(comment: s.comment).bytes)
        return b.build(NFT_MSG_NEWSET, flags: RequestFlags.createExclusive) { nftnl_set_nlmsg_build_payload($0, set.pointer) }
    }

    /// The anonymous constant set of one rule, named `__set%d` for the kernel to number.
    static func addAnonymous(table: String, _ s: AnonymousSet, id: UInt32, _ b: MessageBuilder) -> [UInt8] {
        let set = NftnlSet()
        set.set(NFTNL_SET_TABLE, table)
        set.set(NFTNL_SET_NAME, Linearize.anonymousSetName)
        var flags = NFT_SET_ANONYMOUS.rawValue | NFT_SET_CONSTANT.rawValue
        if s.interval { flags |= NFT_SET_INTERVAL.rawValue }
        set.set(NFTNL_SET_FLAGS, flags)
        set.set(NFTNL_SET_KEY_TYPE, s.keyType.rawValue)
        set.set(NFTNL_SET_KEY_LEN, UInt32(s.keyType.byteCount))
        set.set(NFTNL_SET_ID, id)
        set.set(NFTNL_SET_DESC_SIZE, UInt32(s.declaredSize))
        set.set(NFTNL_SET_USERDATA, s.userdata.bytes)
        return b.build(NFT_MSG_NEWSET, flags: RequestFlags.createExclusive) { nftnl_set_nlmsg_build_payload($0, set.pointer) }
    }

    static func delete(table: String, _ name: String, _ b: MessageBuilder) -> [UInt8] {
        let set = NftnlSet()
        set.set(NFTNL_SET_TABLE, table)
        set.set(NFTNL_SET_NAME, name)
        return b.build(NFT_MSG_DELSET, flags: RequestFlags.plain) { nftnl_set_nlmsg_build_payload($0, set.pointer) }
    }

    static func decode(_ m: ReceivedMessage) -> DumpedSet? {
        let set = NftnlSet()
        let ok = m.expressionsAreSafeForLibnftnl(list: NFTA_SET_EXPRESSIONS.rawValue, single: NFTA_SET_EXPR.rawValue)
            && m.parse { nftnl_set_nlmsg_parse($0, set.pointer) }
        guard ok, let table = set.string(NFTNL_SET_TABLE), let name = set.string(NFTNL_SET_NAME),
              let keyType = set.u32(NFTNL_SET_KEY_TYPE), let keyLength = set.u32(NFTNL_SET_KEY_LEN) else { return nil }
        return DumpedSet(table: table, name: name, flags: set.u32(NFTNL_SET_FLAGS) ?? 0, keyType: keyType,
                         keyLength: keyLength, userdata: Userdata(set.data(NFTNL_SET_USERDATA) ?? []))
    }
}
