import CNftables

/// `struct nftnl_table`, owned: freed here and nowhere else.
final class NftnlTable {
    let pointer: OpaquePointer

    init() {
        guard let p = nftnl_table_alloc() else { fatalError("nftnl_table_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_table_free(pointer) }

    func set(_ attribute: nftnl_table_attr, _ value: String) { _ = nftnl_table_set_str(pointer, UInt16(attribute.rawValue), value) }
    func set(_ attribute: nftnl_table_attr, _ value: UInt32) { nftnl_table_set_u32(pointer, UInt16(attribute.rawValue), value) }
    func set(_ attribute: nftnl_table_attr, _ value: [UInt8]) {
        _ = value.withUnsafeBytes { nftnl_table_set_data(pointer, UInt16(attribute.rawValue), $0.baseAddress, UInt32($0.count)) }
    }

    var userdata: Userdata? {
        guard nftnl_table_is_set(pointer, UInt16(NFTNL_TABLE_USERDATA.rawValue)) else { return nil }
        var length: UInt32 = 0
        guard let p = nftnl_table_get_data(pointer, UInt16(NFTNL_TABLE_USERDATA.rawValue), &length) else { return nil }
        return Userdata(Array(UnsafeRawBufferPointer(start: p, count: Int(length))))
    }
}

/// A table as the kernel answers GETTABLE.
struct DumpedTable {
    var name: String
    var comment: String?

    /// Carries fwenforcer's ownership mark.
    var marked: Bool { comment == TableMarker.comment }
}

/// NEWTABLE / DELTABLE / GETTABLE for fwenforcer's inet table.
enum TableMessages {
    /// `add table inet NAME { comment "managed by fwenforcerd: ..." }` (nft sends flags 0
    /// explicitly): the comment is fwenforcer's ownership mark (`TableMarker`). `flags` are an
    /// owned table's NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST (`TableOwnership`).
    static func add(_ name: String, flags: UInt32 = 0, _ b: MessageBuilder) -> [UInt8] {
        let t = NftnlTable()
        t.set(NFTNL_TABLE_NAME, name)
        t.set(NFTNL_TABLE_FLAGS, flags)
        var u = Userdata()
        u.putString(Int(NFTNL_UDATA_TABLE_COMMENT.rawValue), TableMarker.comment)
        t.set(NFTNL_TABLE_USERDATA, u.bytes)
        return b.build(NFT_MSG_NEWTABLE, flags: RequestFlags.create) { nftnl_table_nlmsg_build_payload($0, t.pointer) }
    }

    /// `delete table inet NAME`: the table and everything in it.
    static func delete(_ name: String, _ b: MessageBuilder) -> [UInt8] {
        let t = NftnlTable()
        t.set(NFTNL_TABLE_NAME, name)
        return b.build(NFT_MSG_DELTABLE, flags: RequestFlags.plain) { nftnl_table_nlmsg_build_payload($0, t.pointer) }
    }

    /// A GETTABLE for one table: answered by NEWTABLE, or ENOENT.
    static func get(_ name: String, _ b: MessageBuilder) -> [UInt8] {
        let t = NftnlTable()
        t.set(NFTNL_TABLE_NAME, name)
        return b.build(NFT_MSG_GETTABLE, flags: NLM_F_REQUEST) { nftnl_table_nlmsg_build_payload($0, t.pointer) }
    }
}

extension TableMessages {
    /// Decodes a NEWTABLE reply; nil when it does not parse.
    static func decode(_ m: ReceivedMessage) -> DumpedTable? {
        let t = NftnlTable()
        let ok = m.bytes.withUnsafeBytes { raw in
            nftnl_table_nlmsg_parse(raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), t.pointer) >= 0
        }
        guard ok, nftnl_table_is_set(t.pointer, UInt16(NFTNL_TABLE_NAME.rawValue)) else { return nil }
        let name = String(cString: nftnl_table_get_str(t.pointer, UInt16(NFTNL_TABLE_NAME.rawValue)))
        return DumpedTable(name: name, comment: t.userdata?.string(Int(NFTNL_UDATA_TABLE_COMMENT.rawValue)))
    }
}
