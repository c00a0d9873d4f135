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
}

/// NEWTABLE / DELTABLE / GETTABLE for fwenforcer's inet table.
enum TableMessages {
    /// `add table inet NAME` (nft sends flags 0 explicitly); `flags` for an owned table.
    static func add(_ name: String, flags: UInt32 = 0, _ b: MessageBuilder) -> [UInt8] {
        let t = NftnlTable()
        t.set(NFTNL_TABLE_NAME, name)
        t.set(NFTNL_TABLE_FLAGS, flags)
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
