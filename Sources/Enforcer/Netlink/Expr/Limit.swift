import CNftables

/// `limit rate N/unit burst B packets`: unit in seconds; type NFT_LIMIT_PKTS; burst omitted when 0,
/// as nft does.
enum LimitExpression {
    static func configure(_ e: OpaquePointer, rate: UInt64, unitSeconds: UInt64, burst: UInt32?, type: UInt32, flags: UInt32) {
        nftnl_expr_set_u64(e, UInt16(NFTNL_EXPR_LIMIT_RATE), rate)
        nftnl_expr_set_u64(e, UInt16(NFTNL_EXPR_LIMIT_UNIT), unitSeconds)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LIMIT_TYPE), type)
        if let burst { nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LIMIT_BURST), burst) }
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LIMIT_FLAGS), flags)
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        guard nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_LIMIT_RATE)), nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_LIMIT_UNIT)) else { return nil }
        return .limit(rate: nftnl_expr_get_u64(e, UInt16(NFTNL_EXPR_LIMIT_RATE)),
                      unitSeconds: nftnl_expr_get_u64(e, UInt16(NFTNL_EXPR_LIMIT_UNIT)),
                      burst: expressionU32(e, NFTNL_EXPR_LIMIT_BURST),
                      type: expressionU32(e, NFTNL_EXPR_LIMIT_TYPE) ?? NFT_LIMIT_PKTS.rawValue,
                      flags: expressionU32(e, NFTNL_EXPR_LIMIT_FLAGS) ?? 0)
    }
}
