/// An ordered list of changes to fwenforcer's one table, applied all-or-nothing.
///
/// A transaction never names another table: every operation acts inside `table`. The order is the
/// kernel's order: each operation sees the effect of the ones before it (a set must be added before
/// a rule looks it up; a chain must be flushed before a set its rules use can be deleted).
public struct Transaction: Sendable, Hashable, CustomStringConvertible {
    public var table: String
    public var operations: [Operation]
    /// The ruleset generation the transaction was computed from. When set, the batch carries it for
    /// compare-and-swap and fails with `BackendError.generationChanged` if anyone committed since.
    /// When nil, the backend takes the current generation just before sending (only right for
    /// transactions that do not depend on what the kernel holds, such as a full replace).
    public var generation: UInt32?
    /// Tables fwenforcer created under an earlier name (`[enforce] table` was changed), deleted in
    /// the same batch, before anything else: a rename never leaves two tables enforcing. Only
    /// marked tables are ever put here.
    public var retiredTables: [String]

    public init(table: String, operations: [Operation] = [], generation: UInt32? = nil, retiredTables: [String] = []) {
        self.table = table
        self.operations = operations
        self.generation = generation
        self.retiredTables = retiredTables
    }

    /// True when the batch would change nothing.
    public var isEmpty: Bool { operations.isEmpty && retiredTables.isEmpty }

    public enum Operation: Sendable, Hashable {
        /// Creates the table; no error if it exists (nft's `add table`).
        case addTable
        /// Deletes the table and everything in it; ENOENT if it does not exist.
        case deleteTable
        /// Creates a base chain, or updates the policy of an existing one with the same hook and priority.
        case addChain(BaseChain)
        /// Deletes a chain and its rules.
        case deleteChain(String)
        /// Deletes all rules of a chain (and the anonymous sets they own).
        case flushChain(String)
        /// Creates a named set; EEXIST if one of that name exists.
        case addSet(SetDefinition)
        /// Deletes a named set; EBUSY while a rule looks it up.
        case deleteSet(String)
        /// Adds elements; EEXIST for an element already there or overlapping one.
        case addElements(SetElements)
        /// Deletes elements; ENOENT for an element not there exactly.
        case deleteElements(SetElements)
        /// Appends a rule to a chain.
        case addRule(chain: String, Rule)
    }

    /// The object an operation acts on, in nft words; rejections are reported with it.
    public func subject(of op: Operation) -> String {
        switch op {
        case .addTable, .deleteTable: return "table inet \(table)"
        case .addChain(let c): return "chain \(c.name)"
        case .deleteChain(let name), .flushChain(let name): return "chain \(name)"
        case .addSet(let s): return "set \(s.name)"
        case .deleteSet(let name): return "set \(name)"
        case .addElements(let e), .deleteElements(let e): return "set \(e.set)"
        case .addRule(let chain, let rule): return Transaction.ruleSubject(chain: chain, rule)
        }
    }

    static func ruleSubject(chain: String, _ rule: Rule) -> String {
        "rule \"\(NftRenderer.render(rule: rule))\" in chain \(chain)"
    }

    static func elementSubject(set: String, _ range: AddressRange) -> String {
        "set \(set) element \(range)"
    }

    /// One line per operation, in nft words (`add element CCM_v4 { 198.18.0.7 }`).
    public var description: String {
        (retiredTables.map { "delete table inet \($0)" } + operations.map { op -> String in
            switch op {
            case .addTable: return "add table inet \(table)"
            case .deleteTable: return "delete table inet \(table)"
            case .addChain(let c):
                return "add chain \(c.name) { type filter hook \(c.hook.rawValue) priority \(c.priority); policy \(c.policy.rawValue); }"
            case .deleteChain(let n): return "delete chain \(n)"
            case .flushChain(let n): return "flush chain \(n)"
            case .addSet(let s):
                return "add set \(s.name) { type \(s.family.nftKeyType);\(s.interval ? " flags interval;" : "") }"
            case .deleteSet(let n): return "delete set \(n)"
            case .addElements(let e): return "add element \(e.set) { \(e.ranges.map(\.description).joined(separator: ", ")) }"
            case .deleteElements(let e): return "delete element \(e.set) { \(e.ranges.map(\.description).joined(separator: ", ")) }"
            case .addRule(let chain, let r): return "add rule \(chain) \(NftRenderer.render(rule: r))"
            }
        }).joined(separator: "\n")
    }

    /// Objects the transaction adds and removes; elements count one per range or address.
    public var counts: (added: Int, removed: Int, flushedChains: Int) {
        var added = 0, removed = retiredTables.count, flushed = 0
        for op in operations {
            switch op {
            case .addTable, .addChain, .addSet, .addRule: added += 1
            case .deleteTable, .deleteChain, .deleteSet: removed += 1
            case .flushChain: flushed += 1
            case .addElements(let e): added += e.ranges.count
            case .deleteElements(let e): removed += e.ranges.count
            }
        }
        return (added, removed, flushed)
    }
}

/// A base chain's definition, without its rules.
public struct BaseChain: Sendable, Hashable {
    public var name: String
    public var hook: Hook
    public var priority: Int32
    public var policy: Verdict

    public init(name: String, hook: Hook, priority: Int32, policy: Verdict) {
        self.name = name
        self.hook = hook
        self.priority = priority
        self.policy = policy
    }

    public init(_ chain: Chain) {
        self.init(name: chain.name, hook: chain.hook, priority: chain.priority, policy: chain.policy)
    }
}

/// A named set's definition, without its elements.
public struct SetDefinition: Sendable, Hashable {
    public var name: String
    public var family: AddressFamily
    public var interval: Bool
    public var comment: String?

    public init(name: String, family: AddressFamily, interval: Bool, comment: String? = nil) {
        self.name = name
        self.family = family
        self.interval = interval
        self.comment = comment
    }

    public init(_ set: NamedSet) {
        self.init(name: set.name, family: set.family, interval: set.interval, comment: set.comment)
    }
}

/// Elements to add to or delete from one named set.
///
/// `ranges` are exact: in an interval set each range is one stored interval (a delete must name an
/// interval exactly as it is stored), in a hash set each is a single address. The set's kind travels
/// with the elements because the encoding depends on it.
public struct SetElements: Sendable, Hashable {
    public var set: String
    public var family: AddressFamily
    public var interval: Bool
    public var ranges: [AddressRange]

    public init(set: String, family: AddressFamily, interval: Bool, ranges: [AddressRange]) {
        precondition(ranges.allSatisfy { $0.family == family })
        precondition(interval || ranges.allSatisfy(\.isSingleAddress), "a hash set holds single addresses")
        self.set = set
        self.family = family
        self.interval = interval
        self.ranges = ranges
    }
}
