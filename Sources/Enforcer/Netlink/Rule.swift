import CNftables

/// `struct nftnl_rule`, owned: freed here and nowhere else. The expressions added to it belong to
/// it (libnftnl frees them with the rule), so they are never wrapped on their own.
final class NftnlRule {
    let pointer: OpaquePointer

    init() {
        guard let p = nftnl_rule_alloc() else { fatalError("nftnl_rule_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_rule_free(pointer) }

    func set(_ a: nftnl_rule_attr, _ value: String) { _ = nftnl_rule_set_str(pointer, UInt16(a.rawValue), value) }
    func has(_ a: nftnl_rule_attr) -> Bool { nftnl_rule_is_set(pointer, UInt16(a.rawValue)) }
    func string(_ a: nftnl_rule_attr) -> String? { has(a) ? String(cString: nftnl_rule_get_str(pointer, UInt16(a.rawValue))) : nil }

    var userdata: Userdata? {
        guard has(NFTNL_RULE_USERDATA) else { return nil }
        var length: UInt32 = 0
        guard let p = nftnl_rule_get_data(pointer, UInt16(NFTNL_RULE_USERDATA.rawValue), &length) else { return nil }
        return Userdata(Array(UnsafeRawBufferPointer(start: p, count: Int(length))))
    }

    /// Appends an expression; the rule takes ownership of the `nftnl_expr`.
    func append(_ e: Expression) {
        guard let x = nftnl_expr_alloc(e.typeName) else { fatalError("nftnl_expr_alloc(\(e.typeName)) failed") }
        e.configure(x)
        nftnl_rule_add_expr(pointer, x)
    }

    /// The rule's expressions, decoded. The corresponding C functions are `nftnl_expr_iter_*`.
    var expressions: [Expression] {
        var out: [Expression] = []
        forEachExpression { out.append(Expression.decode($0)) }
        return out
    }

    /// Calls `body` with each raw `nftnl_expr` of the rule, in order (they belong to the rule).
    func forEachExpression(_ body: (OpaquePointer) -> Void) {
        guard let iter = nftnl_expr_iter_create(pointer) else { fatalError("nftnl_expr_iter_create: out of memory") }
        defer { nftnl_expr_iter_destroy(iter) }
        while let e = nftnl_expr_iter_next(iter) { body(e) }
    }
}

/// A rule as dumped by the kernel.
struct DumpedRule {
    var table: String
    var chain: String
    var expressions: [Expression]
    var userdata: Userdata?
}

/// NEWRULE, and the decoding of dumped rules.
enum RuleMessages {
    /// `add rule inet T CHAIN ...`: appended at the end of the chain.
    static func add(table: String, chain: String, _ r: LinearizedRule, _ b: MessageBuilder) -> [UInt8] {
        let rule = NftnlRule()
        rule.set(NFTNL_RULE_TABLE, table)
        rule.set(NFTNL_RULE_CHAIN, chain)
        for e in r.expressions { rule.append(e) }
        return b.build(NFT_MSG_NEWRULE, flags: RequestFlags.append) { nlh in
            nftnl_rule_nlmsg_build_payload(nlh, rule.pointer)
            // nft puts the userdata after the expressions (mnl_nft_rule_add); libnftnl would put it before.
            if let u = r.userdata {
                u.bytes.withUnsafeBytes { mnl_attr_put(nlh, UInt16(NFTA_RULE_USERDATA.rawValue), $0.count, $0.baseAddress) }
            }
        }
    }

    static func decode(_ m: ReceivedMessage) -> DumpedRule? {
        let rule = NftnlRule()
        let ok = m.expressionsAreSafeForLibnftnl(list: NFTA_RULE_EXPRESSIONS.rawValue) && m.parse { nftnl_rule_nlmsg_parse($0, rule.pointer) }
        guard ok, let table = rule.string(NFTNL_RULE_TABLE), let chain = rule.string(NFTNL_RULE_CHAIN) else { return nil }
        return DumpedRule(table: table, chain: chain, expressions: rule.expressions, userdata: rule.userdata)
    }

    /// The counter of a dumped rule (its first `counter` expression), nil when it has none.
    static func counter(_ m: ReceivedMessage) -> RuleCounter? {
        let rule = NftnlRule()
        let ok = m.expressionsAreSafeForLibnftnl(list: NFTA_RULE_EXPRESSIONS.rawValue) && m.parse { nftnl_rule_nlmsg_parse($0, rule.pointer) }
        guard ok, let chain = rule.string(NFTNL_RULE_CHAIN) else { return nil }
        var values: (packets: UInt64, bytes: UInt64)?
        var verdict: Verdict?
        rule.forEachExpression { e in
            switch String(cString: nftnl_expr_get_str(e, UInt16(NFTNL_EXPR_NAME))) {
            case "counter" where values == nil:
                values = (nftnl_expr_get_u64(e, UInt16(NFTNL_EXPR_CTR_PACKETS)), nftnl_expr_get_u64(e, UInt16(NFTNL_EXPR_CTR_BYTES)))
            case "immediate":
                if case .verdict(let v)? = ImmediateExpression.decode(e) { verdict = v }
            default:
                break
            }
        }
        guard let values else { return nil }
        return RuleCounter(chain: chain, comment: rule.userdata?.ruleComment, verdict: verdict,
                           packets: values.packets, bytes: values.bytes)
    }
}
