import CNftables

/// `lookup reg 1 set NAME`: membership of the register's value in a named or anonymous set.
/// `setID` is the batch-local id of a set created in the same batch (0 otherwise), which lets the
/// kernel find a set whose name it has not committed yet, as nft always sends it.
enum LookupExpression {
    static func configure(_ e: OpaquePointer, set: String, setID: UInt32, register: UInt32) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOOKUP_SREG), register)
        _ = nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_LOOKUP_SET), set)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOOKUP_SET_ID), setID)
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // An inverted lookup (`!= @set`) or a map lookup (destination register) is not ours.
        if let flags = expressionU32(e, NFTNL_EXPR_LOOKUP_FLAGS), flags != 0 { return nil }
        guard !nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_LOOKUP_DREG)),
              let register = expressionU32(e, NFTNL_EXPR_LOOKUP_SREG),
              nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_LOOKUP_SET)) else { return nil }
        let name = String(cString: nftnl_expr_get_str(e, UInt16(NFTNL_EXPR_LOOKUP_SET)))
        return .lookup(set: name, setID: expressionU32(e, NFTNL_EXPR_LOOKUP_SET_ID) ?? 0, register: register)
    }
}
