import CNftables

/// `struct nftnl_chain`, owned: freed here and nowhere else.
final class NftnlChain {
    let pointer: OpaquePointer

    init() {
        guard let p = nftnl_chain_alloc() else { fatalError("nftnl_chain_alloc: out of memory") }
        pointer = p
    }

    deinit { nftnl_chain_free(pointer) }

    func set(_ a: nftnl_chain_attr, _ value: String) { _ = nftnl_chain_set_str(pointer, UInt16(a.rawValue), value) }
    func set(_ a: nftnl_chain_attr, _ value: UInt32) { nftnl_chain_set_u32(pointer, UInt16(a.rawValue), value) }
    func set(_ a: nftnl_chain_attr, _ value: Int32) { nftnl_chain_set_s32(pointer, UInt16(a.rawValue), value) }
    func has(_ a: nftnl_chain_attr) -> Bool { nftnl_chain_is_set(pointer, UInt16(a.rawValue)) }
    func string(_ a: nftnl_chain_attr) -> String? { has(a) ? String(cString: nftnl_chain_get_str(pointer, UInt16(a.rawValue))) : nil }
    func u32(_ a: nftnl_chain_attr) -> UInt32? { has(a) ? nftnl_chain_get_u32(pointer, UInt16(a.rawValue)) : nil }
    func s32(_ a: nftnl_chain_attr) -> Int32? { has(a) ? nftnl_chain_get_s32(pointer, UInt16(a.rawValue)) : nil }
}

/// A chain as dumped by the kernel.
struct DumpedChain {
    var table: String
    var name: String
    var type: String?
    var hook: UInt32?
    var priority: Int32
    var policy: UInt32?

    /// `type nat hook prerouting priority -100; policy accept`, or `regular chain`.
    var describedType: String {
        guard let hook else { return "regular chain" }
        let hookName = [0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"][Int(hook)] ?? "hook \(hook)"
        let policyName = policy.map { $0 == 1 ? "accept" : $0 == 0 ? "drop" : "\($0)" } ?? "none"
        return "type \(type ?? "?") hook \(hookName) priority \(priority); policy \(policyName)"
    }
}

/// NEWCHAIN / DELCHAIN, and DELRULE for a whole chain (flush).
enum ChainMessages {
    /// `add chain inet T NAME { type filter hook H priority P; policy V; }`. On an existing chain
    /// with the same hook and priority, the kernel updates the policy.
    static func add(table: String, _ c: BaseChain, _ b: MessageBuilder) -> [UInt8] {
        // nft 1.0.6 writes table, name, type and policy itself and leaves the hook nest to libnftnl
        // (mnl_nft_chain_add); the same order here keeps the bytes equal.
        let hook = NftnlChain()
        hook.set(NFTNL_CHAIN_HOOKNUM, c.hook.netfilterHook)
        hook.set(NFTNL_CHAIN_PRIO, c.priority)
        return b.build(NFT_MSG_NEWCHAIN, flags: RequestFlags.create) { nlh in
            mnl_attr_put_strz(nlh, UInt16(NFTA_CHAIN_TABLE.rawValue), table)
            mnl_attr_put_strz(nlh, UInt16(NFTA_CHAIN_NAME.rawValue), c.name)
            mnl_attr_put_strz(nlh, UInt16(NFTA_CHAIN_TYPE.rawValue), "filter")
            mnl_attr_put_u32(nlh, UInt16(NFTA_CHAIN_POLICY.rawValue), UInt32(bitPattern: c.policy.netfilterCode).bigEndian)
            nftnl_chain_nlmsg_build_payload(nlh, hook.pointer)
        }
    }

    static func delete(table: String, _ name: String, _ b: MessageBuilder) -> [UInt8] {
        let chain = NftnlChain()
        chain.set(NFTNL_CHAIN_TABLE, table)
        chain.set(NFTNL_CHAIN_NAME, name)
        return b.build(NFT_MSG_DELCHAIN, flags: RequestFlags.plain) { nftnl_chain_nlmsg_build_payload($0, chain.pointer) }
    }

    /// `flush chain inet T NAME`: a DELRULE naming only the chain deletes all its rules.
    static func flush(table: String, _ name: String, _ b: MessageBuilder) -> [UInt8] {
        let rule = NftnlRule()
        rule.set(NFTNL_RULE_TABLE, table)
        rule.set(NFTNL_RULE_CHAIN, name)
        return b.build(NFT_MSG_DELRULE, flags: RequestFlags.plain) { nftnl_rule_nlmsg_build_payload($0, rule.pointer) }
    }

    static func decode(_ m: ReceivedMessage) -> DumpedChain? {
        let chain = NftnlChain()
        let ok = m.bytes.withUnsafeBytes { raw in
            nftnl_chain_nlmsg_parse(raw.baseAddress!.assumingMemoryBound(to: nlmsghdr.self), chain.pointer) >= 0
        }
        guard ok, let table = chain.string(NFTNL_CHAIN_TABLE), let name = chain.string(NFTNL_CHAIN_NAME) else { return nil }
        return DumpedChain(table: table, name: name, type: chain.string(NFTNL_CHAIN_TYPE), hook: chain.u32(NFTNL_CHAIN_HOOKNUM),
                           priority: chain.s32(NFTNL_CHAIN_PRIO) ?? 0, policy: chain.u32(NFTNL_CHAIN_POLICY))
    }
}

extension Hook {
    /// NF_INET_LOCAL_IN / NF_INET_FORWARD / NF_INET_LOCAL_OUT.
    var netfilterHook: UInt32 {
        switch self {
        case .input: return NF_INET_LOCAL_IN.rawValue
        case .forward: return NF_INET_FORWARD.rawValue
        case .output: return NF_INET_LOCAL_OUT.rawValue
        }
    }

    init?(netfilterHook: UInt32) {
        switch netfilterHook {
        case NF_INET_LOCAL_IN.rawValue: self = .input
        case NF_INET_FORWARD.rawValue: self = .forward
        case NF_INET_LOCAL_OUT.rawValue: self = .output
        default: return nil
        }
    }
}
