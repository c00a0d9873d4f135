import CNftables

struct CtKey: RawRepresentable, Hashable, CustomStringConvertible {
    var rawValue: UInt32
    static let state = CtKey(rawValue: NFT_CT_STATE.rawValue)
    static let direction = CtKey(rawValue: NFT_CT_DIRECTION.rawValue)

    var description: String {
        switch self {
        case .state: return "state"
        case .direction: return "direction"
        default: return "ct#\(rawValue)"
        }
    }
}

/// `ct load KEY => reg`: conntrack state (a host-endian bitmask) and direction.
enum CtExpression {
    static func configure(_ e: OpaquePointer, key: CtKey, register: UInt32) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CT_KEY), key.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CT_DREG), register)
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // `ct original ...` (a direction attribute) or a ct write (source register) is not ours.
        guard !nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_CT_DIR)), !nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_CT_SREG)),
              let key = expressionU32(e, NFTNL_EXPR_CT_KEY), let register = expressionU32(e, NFTNL_EXPR_CT_DREG) else { return nil }
        return .ct(CtKey(rawValue: key), register: register)
    }
}
