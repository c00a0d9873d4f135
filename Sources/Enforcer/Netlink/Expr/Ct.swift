import CNftables

struct CtKey: RawRepresentable, Hashable, CustomStringConvertible {
    var rawValue: UInt32
    static let state = CtKey(rawValue: NFT_CT_STATE.rawValue)
    static let direction = CtKey(rawValue: NFT_CT_DIRECTION.rawValue)
    static let status = CtKey(rawValue: NFT_CT_STATUS.rawValue)
    static let protoDst = CtKey(rawValue: NFT_CT_PROTO_DST.rawValue)

    var description: String {
        switch self {
        case .state: return "state"
        case .direction: return "direction"
        case .status: return "status"
        case .protoDst: return "proto_dst"
        default: return "ct#\(rawValue)"
        }
    }
}

/// IPS_DST_NAT (`enum ip_conntrack_status`): the connection's destination was rewritten.
let conntrackStatusDNAT: UInt32 = 1 << 5
/// IP_CT_DIR_ORIGINAL (`enum ip_conntrack_dir`, a header the shim does not include).
let conntrackDirectionOriginal: UInt8 = 0

/// `ct load KEY => reg`: conntrack state and status (host-endian bitmasks) and direction; with
/// `original`, `ct load KEY => reg, dir original`: a key of the connection's original tuple.
enum CtExpression {
    static func configure(_ e: OpaquePointer, key: CtKey, original: Bool, register: UInt32) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CT_KEY), key.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CT_DREG), register)
        if original { nftnl_expr_set_u8(e, UInt16(NFTNL_EXPR_CT_DIR), conntrackDirectionOriginal) }
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // A ct write (source register) or a key of the reply tuple is not ours.
        guard !nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_CT_SREG)),
              let key = expressionU32(e, NFTNL_EXPR_CT_KEY), let register = expressionU32(e, NFTNL_EXPR_CT_DREG) else { return nil }
        guard nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_CT_DIR)) else { return .ct(CtKey(rawValue: key), register: register) }
        guard nftnl_expr_get_u8(e, UInt16(NFTNL_EXPR_CT_DIR)) == conntrackDirectionOriginal else { return nil }
        return .ctOriginal(CtKey(rawValue: key), register: register)
    }
}
