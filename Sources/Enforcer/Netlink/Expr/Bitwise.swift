import CNftables

/// `bitwise reg = (reg & MASK) ^ XOR`: how nft tests conntrack state bits (`ct state a,b`).
enum BitwiseExpression {
    static func configure(_ e: OpaquePointer, register: UInt32, length: UInt32, mask: [UInt8], xor: [UInt8]) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BITWISE_SREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BITWISE_DREG), register)
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_BITWISE_LEN), length)
        mask.withUnsafeBytes { _ = nftnl_expr_set(e, UInt16(NFTNL_EXPR_BITWISE_MASK), $0.baseAddress, UInt32($0.count)) }
        xor.withUnsafeBytes { _ = nftnl_expr_set(e, UInt16(NFTNL_EXPR_BITWISE_XOR), $0.baseAddress, UInt32($0.count)) }
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        // Shifts and other operations (NFTNL_EXPR_BITWISE_OP other than the mask-xor boolean) are not ours.
        if let op = expressionU32(e, NFTNL_EXPR_BITWISE_OP), op != NFT_BITWISE_MASK_XOR.rawValue { return nil }
        guard let source = expressionU32(e, NFTNL_EXPR_BITWISE_SREG), let dest = expressionU32(e, NFTNL_EXPR_BITWISE_DREG),
              source == dest, let length = expressionU32(e, NFTNL_EXPR_BITWISE_LEN),
              let mask = expressionData(e, NFTNL_EXPR_BITWISE_MASK), let xor = expressionData(e, NFTNL_EXPR_BITWISE_XOR) else { return nil }
        return .bitwise(register: source, length: length, mask: mask, xor: xor)
    }
}
