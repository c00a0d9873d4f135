import CNftables

struct CmpOperator: RawRepresentable, Hashable, CustomStringConvertible {
    var rawValue: UInt32
    static let eq = CmpOperator(rawValue: NFT_CMP_EQ.rawValue)
    static let neq = CmpOperator(rawValue: NFT_CMP_NEQ.rawValue)
    static let lte = CmpOperator(rawValue: NFT_CMP_LTE.rawValue)
    static let gte = CmpOperator(rawValue: NFT_CMP_GTE.rawValue)

    var description: String {
        switch self {
        case .eq: return "eq"
        case .neq: return "neq"
        case .lte: return "lte"
        case .gte: return "gte"
        default: return "op#\(rawValue)"
        }
    }
}

/// `cmp OP reg DATA`: compares a register with a constant (interface name, protocol, port ...).
enum CmpExpression {
    static func configure(_ e: OpaquePointer, op: CmpOperator, register: UInt32, data: [UInt8]) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CMP_SREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_CMP_OP), op.rawValue)
        data.withUnsafeBytes { _ = nftnl_expr_set(e, UInt16(NFTNL_EXPR_CMP_DATA), $0.baseAddress, UInt32($0.count)) }
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        guard let register = expressionU32(e, NFTNL_EXPR_CMP_SREG), let op = expressionU32(e, NFTNL_EXPR_CMP_OP),
              let data = expressionData(e, NFTNL_EXPR_CMP_DATA) else { return nil }
        return .cmp(CmpOperator(rawValue: op), register: register, data: data)
    }
}
