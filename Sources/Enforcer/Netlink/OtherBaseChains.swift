import CNftables

extension NetlinkBackend {
    /// The base chains of every `ip`, `ip6` and `inet` table but `excluded` on the input, forward
    /// and output hooks: one dump of all chains and one of all rules, every family (AF_UNSPEC).
    public func otherBaseChains(excluding excluded: String) throws(BackendError) -> [OtherBaseChain] {
        var interrupted = false
        let chainReplies = try dump(NFT_MSG_GETCHAIN, family: UInt8(AF_UNSPEC), attributes: [], interrupted: &interrupted)
        let ruleReplies = try dump(NFT_MSG_GETRULE, family: UInt8(AF_UNSPEC), attributes: [], interrupted: &interrupted)
        func family(_ m: ReceivedMessage) -> OtherBaseChain.Family? {
            // nfgenmsg's first byte, right after the netlink header.
            switch Int(m.bytes[m.bytes.startIndex + 16]) {
            case NFPROTO_IPV4: return .ip
            case NFPROTO_IPV6: return .ip6
            case NFPROTO_INET: return .inet
            default: return nil
            }
        }
        func isOurs(_ f: OtherBaseChain.Family, _ table: String) -> Bool { f == .inet && table == excluded }

        var drops: [String: Int] = [:]
        for m in ruleReplies {
            guard let f = family(m), let r = RuleMessages.decode(m), !isOurs(f, r.table) else { continue }
            if r.expressions.contains(where: { $0 == .verdict(.drop) || $0 == .unknown("reject") }) {
                drops["\(f.rawValue) \(r.table)", default: 0] += 1
            }
        }
        var out: [OtherBaseChain] = []
        for m in chainReplies {
            guard let f = family(m), let c = ChainMessages.decode(m), !isOurs(f, c.table),
                  let number = c.hook, let hook = Hook(netfilterHook: number),
                  let code = c.policy, let policy = Verdict(netfilterCode: Int32(bitPattern: code)) else { continue }
            out.append(OtherBaseChain(family: f, table: c.table, chain: c.name, type: c.type ?? "filter", hook: hook,
                                      priority: c.priority, policy: policy, tableDropRules: drops["\(f.rawValue) \(c.table)"] ?? 0))
        }
        return out.sorted()
    }
}
