import CNftables

/// `immediate reg 0 accept|drop`: the rule's verdict.
enum ImmediateExpression {
    static func configure(_ e: OpaquePointer, verdict: Verdict) {
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_IMM_DREG), UInt32(NFT_REG_VERDICT.rawValue))
        nftnl_expr_set_u32(e, UInt16(NFTNL_EXPR_IMM_VERDICT), UInt32(bitPattern: verdict.netfilterCode))
    }

    static func decode(_ e: OpaquePointer) -> Expression? {
        guard expressionU32(e, NFTNL_EXPR_IMM_DREG) == UInt32(NFT_REG_VERDICT.rawValue),
              !nftnl_expr_is_set(e, UInt16(NFTNL_EXPR_IMM_CHAIN)),
              let code = expressionU32(e, NFTNL_EXPR_IMM_VERDICT),
              let verdict = Verdict(netfilterCode: Int32(bitPattern: code)) else { return nil }
        return .verdict(verdict)
    }
}

extension Verdict {
    /// NF_ACCEPT / NF_DROP.
    var netfilterCode: Int32 { self == .accept ? NF_ACCEPT : NF_DROP }

    init?(netfilterCode: Int32) {
        switch netfilterCode {
        case NF_ACCEPT: self = .accept
        case NF_DROP: self = .drop
        default: return nil
        }
    }
}
