/// A base chain of a table fwenforcer does not own (Docker's iptables-nft `ip filter`, Debian's
/// `inet filter`, fail2ban's ...) on one of the hooks fwenforcer's chains use.
///
/// Netfilter runs every base chain on a hook, in priority order, whatever table it is in: a packet
/// must get past all of them. An `accept` ends only the chain it is in, a `drop` is final. So
/// fwenforcer's accept does not let through what another table drops, and its drop is not
/// overridden by another table's accept; `status` shows these chains so an operator sees both.
public struct OtherBaseChain: Sendable, Hashable, Comparable {
    /// The nf_tables families whose hooks are fwenforcer's (`ip`, `ip6` and `inet` share them).
    public enum Family: String, Sendable, Hashable, Comparable, CaseIterable {
        case ip, ip6, inet
        public static func < (a: Family, b: Family) -> Bool { a.rawValue < b.rawValue }
    }

    public var family: Family
    public var table: String
    public var chain: String
    /// The chain type as the kernel names it (`filter`, `nat`, `route`); shown, never interpreted.
    public var type: String
    public var hook: Hook
    public var priority: Int32
    public var policy: Verdict
    /// Rules of the whole table (any chain, since base chains jump to regular ones) whose verdict
    /// is drop, or that reject.
    public var tableDropRules: Int

    public init(family: Family, table: String, chain: String, type: String = "filter", hook: Hook, priority: Int32 = 0,
                policy: Verdict, tableDropRules: Int = 0) {
        self.family = family
        self.table = table
        self.chain = chain
        self.type = type
        self.hook = hook
        self.priority = priority
        self.policy = policy
        self.tableDropRules = tableDropRules
    }

    /// Whether this chain can drop what fwenforcer accepts: its policy, or a dropping rule in its table.
    public var mayDrop: Bool { policy == .drop || tableDropRules > 0 }

    public static func < (a: OtherBaseChain, b: OtherBaseChain) -> Bool {
        func rank(_ h: Hook) -> Int { h == .input ? 0 : h == .forward ? 1 : 2 }
        return (a.family, a.table, rank(a.hook), a.priority, a.chain) < (b.family, b.table, rank(b.hook), b.priority, b.chain)
    }

    /// `status` lines: one per table, naming each of its base chains on fwenforcer's hooks.
    public static func statusLines(_ chains: [OtherBaseChain]) -> [String] {
        guard !chains.isEmpty else { return ["other tables: none on the input, forward or output hooks"] }
        var lines = ["other tables on the input, forward and output hooks (each one's drop is final; an accept here does not override it):"]
        var byTable: [(key: String, chains: [OtherBaseChain])] = []
        for c in chains.sorted() {
            let key = "\(c.family.rawValue) \(c.table)"
            if byTable.last?.key == key { byTable[byTable.count - 1].chains.append(c) } else { byTable.append((key, [c])) }
        }
        for (key, group) in byTable {
            let drops = group[0].tableDropRules
            let listed = group.map { "\($0.chain) (\($0.type) hook \($0.hook.rawValue) priority \($0.priority) policy \($0.policy.rawValue))" }
            let verdict = group.contains(where: \.mayDrop)
                ? "DROPS: " + [group.contains { $0.policy == .drop } ? "a drop policy" : nil,
                               drops > 0 ? "\(drops) drop or reject rule\(drops == 1 ? "" : "s")" : nil].compactMap { $0 }.joined(separator: ", ")
                : "drops nothing"
            lines.append("  table \(key): \(listed.joined(separator: ", ")); \(verdict)")
        }
        return lines
    }
}
