import CNftables

/// Which header a payload offset counts from.
struct PayloadBase: RawRepresentable, Hashable, CustomStringConvertible {
    var rawValue: UInt32
    static let network = PayloadBase(rawValue: NFT_PAYLOAD_NETWORK_HEADER.rawValue)
    static let transport = PayloadBase(rawValue: NFT_PAYLOAD_TRANSPORT_HEADER.rawValue)

    var description: String {
        switch self {
        case .network: return "network header"
        case .transport: return "transport header"
        default: return "base#\(rawValue)"
        }
    }
}

/// `payload load LENb @ BASE + OFFSET => reg`: addresses, ports, ICMP types.
enum PayloadExpression {
    static func configure(_ e: OpaquePointer, base: PayloadBase, offset: UInt32, length: UInt32, register: UInt32) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_DREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_BASE), base.rawValue)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_OFFSET), offset)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_PAYLOAD_LEN), length)
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // A payload write (source register, checksum update) is not a load.
        guard !nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_PAYLOAD_SREG)),
              let register = expressionU32(e, NFTNL_EXPR_PAYLOAD_DREG),
              let base = expressionU32(e, NFTNL_EXPR_PAYLOAD_BASE),
              let offset = expressionU32(e, NFTNL_EXPR_PAYLOAD_OFFSET),
              let length = expressionU32(e, NFTNL_EXPR_PAYLOAD_LEN) else { return nil }
        return .payload(PayloadBase(rawValue: base), offset: offset, length: length, register: register)
    }
}
