import CNftables

/// `meta load KEY => reg`: interface names, the packet's family, its layer-4 protocol.
struct MetaKey: RawRepresentable, Hashable, CustomStringConvertible {
    var rawValue: UInt32
    static let iifname = MetaKey(rawValue: NFT_META_IIFNAME.rawValue)
    static let oifname = MetaKey(rawValue: NFT_META_OIFNAME.rawValue)
    static let nfproto = MetaKey(rawValue: NFT_META_NFPROTO.rawValue)
    static let l4proto = MetaKey(rawValue: NFT_META_L4PROTO.rawValue)

    var description: String {
        switch self {
        case .iifname: return "iifname"
        case .oifname: return "oifname"
        case .nfproto: return "nfproto"
        case .l4proto: return "l4proto"
        default: return "meta#\(rawValue)"
        }
    }
}

enum MetaExpression {
    static func configure(_ e: OpaquePointer, key: MetaKey, register: UInt32) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_META_KEY), key.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_META_DREG), register)
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // A meta expression with a source register sets packet metadata: not one of ours.
        guard let key = expressionU32(e, NFTNL_EXPR_META_KEY), let register = expressionU32(e, NFTNL_EXPR_META_DREG) else { return nil }
        return .meta(MetaKey(rawValue: key), register: register)
    }
}
