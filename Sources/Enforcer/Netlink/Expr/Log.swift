import CNftables

/// `log prefix "..." level L` (syslog) or `log prefix "..." group G [snaplen N]` (nfnetlink_log);
/// nft sends either the level or the group, never both, and a snaplen only with a group.
enum LogExpression {
    static func configure(_ e: OpaquePointer, prefix: String?, level: UInt32?, group: UInt16?, snaplen: UInt32?) {
        if let prefix { _ = nftnl_expr_set_str(e, UInt16(NFTNL_EXPR_LOG_PREFIX), prefix) }
        if let group { nftnl_expr_set_u16(e, UInt16(NFTNL_EXPR_LOG_GROUP), group) }
        if let snaplen { nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOG_SNAPLEN), snaplen) }
        if let level { nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_LOG_LEVEL), level) }
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // A queue threshold or log flags are options fwenforcer never writes.
        for a in [NFTNL_EXPR_LOG_QTHRESHOLD, NFTNL_EXPR_LOG_FLAGS] where nftnl_expr_is_set(e, UInt16(a)) {
            return nil
        }
        let prefix = nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_LOG_PREFIX))
            ? String(cString: nftnl_expr_get_str(e, UInt16(NFTNL_EXPR_LOG_PREFIX))) : nil
        let group = nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_LOG_GROUP)) ? nftnl_expr_get_u16(e, UInt16(NFTNL_EXPR_LOG_GROUP)) : nil
        return .log(prefix: prefix, level: expressionU32(e, NFTNL_EXPR_LOG_LEVEL), group: group,
                    snaplen: expressionU32(e, NFTNL_EXPR_LOG_SNAPLEN))
    }
}
