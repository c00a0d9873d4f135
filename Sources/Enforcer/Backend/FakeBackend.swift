import SystemPackage

/// An in-memory `Backend` that behaves like the kernel where fwenforcer can tell: ENOENT for
/// missing objects, EEXIST for duplicate sets and elements (and overlapping intervals), EBUSY for a
/// set a rule still looks up, all-or-nothing transactions, a generation that moves on every commit
/// and is checked unless the batch carries 0 (the kernel's rule), never becoming 0 itself, a
/// table's comment (the ownership mark) set only when the table is created, and a dump in the same
/// canonical form as the netlink read-back.
///
/// Tables can hold what fwenforcer never writes (rules and chains added by hand, `foreign`), and
/// other tables can exist beside fwenforcer's, so tests show what is replaced and what is left alone.
/// Every transaction offered is logged, applied or not, so tests can assert what was sent.
public final class FakeBackend: Backend {
    /// Tables by name: several, so tests can show another table is never touched.
    private var tables: [String: FakeTable] = [:]
    public private(set) var generation: UInt32 = 1
    /// Every transaction passed to `apply`, with whether it was committed.
    public private(set) var log: [(transaction: Transaction, committed: Bool)] = []
    /// Called at the start of each `apply`, to play a concurrent writer.
    public var beforeApply: ((FakeBackend) -> Void)?
    /// Makes the next `apply` commit and then report `outcomeUnknown`, as when the kernel's
    /// acknowledgements are lost (the receive buffer overflowed).
    public var loseNextAcknowledgements = false
    /// Makes the next this-many `apply` calls refuse the batch whole with this errno (as the kernel
    /// does under memory pressure: ENOMEM on one message aborts the batch), committing nothing.
    public var refuseNextApplies: (count: Int, code: Errno) = (0, .noMemory)

    public init() {}

    /// Sets the generation, to play a kernel whose counter is about to wrap.
    public func setGeneration(_ g: UInt32) {
        precondition(g != 0, "the kernel's generation is never 0")
        generation = g
    }

    /// Another process committing something: moves the generation on.
    public func simulateForeignCommit() {
        generation = Generation.next(after: generation)
    }

    /// Creates a table fwenforcer did not create (unmarked, empty unless `chains` says otherwise:
    /// each entry is a foreign base chain in nft words, e.g. "chain forward (hook forward, policy accept)").
    public func addForeignTable(_ name: String, chains: [String] = []) {
        tables[name] = FakeTable(marked: false, foreignChains: chains)
        simulateForeignCommit()
    }

    /// Loads `ruleset` as a table, marked or not (an earlier fwenforcer's table has no mark).
    public func load(_ ruleset: Ruleset, marked: Bool) {
        var t: FakeTable? = FakeTable(marked: marked)
        for op in Diff.creation(of: ruleset) { try! FakeTable.apply(op, to: &t) }
        tables[ruleset.tableName] = t
        simulateForeignCommit()
    }

    /// `nft insert rule ...` by hand: a rule the model cannot express, in nft words.
    public func insertForeignRule(table: String, chain: String, _ text: String) {
        precondition(tables[table]?.chains.contains { $0.definition.name == chain } == true, "no chain \(chain)")
        tables[table]!.foreignRules[chain, default: []].append(text)
        simulateForeignCommit()
    }

    public var tableNames: [String] { tables.keys.sorted() }

    /// Whether a table carries fwenforcer's mark (nil: no such table).
    public func isMarked(_ table: String) -> Bool? { tables[table]?.marked }

    /// Base chains of tables in other families (`ip filter`, `ip6 nat` ...), which the fake holds
    /// only as far as `otherBaseChains` reports them.
    private var otherFamilyChains: [OtherBaseChain] = []

    /// Another tool's base chain in an `ip` or `ip6` table (an `inet` one is a foreign table here).
    public func addOtherFamilyChain(_ c: OtherBaseChain) {
        precondition(c.family != .inet, "inet tables are tables of the fake: use addForeignTable and apply")
        otherFamilyChains.append(c)
        generation &+= 1
    }

    public func otherBaseChains(excluding table: String) throws(BackendError) -> [OtherBaseChain] {
        var out = otherFamilyChains
        for (name, t) in tables where name != table {
            let drops = t.chains.reduce(0) { $0 + $1.rules.filter { $0.verdict == .drop }.count }
            out += t.chains.map { c in
                OtherBaseChain(family: .inet, table: name, chain: c.definition.name, hook: c.definition.hook,
                               priority: c.definition.priority, policy: c.definition.policy, tableDropRules: drops)
            }
        }
        return out.sorted()
    }

    public func read(table: String) throws(BackendError) -> Snapshot {
        guard let t = tables[table] else { return Snapshot(ruleset: nil, generation: generation) }
        return Snapshot(ruleset: try t.ruleset(named: table), generation: generation, marked: t.marked, foreign: t.foreign)
    }

    public func apply(_ tx: Transaction) throws(BackendError) -> ApplyReport {
        let start = ContinuousClock.now
        beforeApply?(self)
        // The kernel checks a batch's generation only when it is not 0.
        if let expected = tx.generation, expected != 0, expected != generation {
            log.append((tx, false))
            throw .generationChanged(expected: expected)
        }
        if refuseNextApplies.count > 0 {
            refuseNextApplies.count -= 1
            log.append((tx, false))
            throw .rejected([Rejection(object: tx.operations.first.map(tx.subject(of:)) ?? "table inet \(tx.table)", code: refuseNextApplies.code)])
        }
        let result = run(tx)
        guard result.rejections.isEmpty else {
            log.append((tx, false))
            throw .rejected(result.rejections)
        }
        tables = result.tables
        generation = Generation.next(after: generation)
        log.append((tx, true))
        if loseNextAcknowledgements {
            loseNextAcknowledgements = false
            throw .outcomeUnknown("\(tx.operations.count) of \(tx.operations.count) messages were not acknowledged (the receive buffer overflowed)")
        }
        let counts = tx.counts
        return ApplyReport(messages: tx.operations.count + tx.retiredTables.count, bytes: 0, added: counts.added, removed: counts.removed,
                           flushedChains: counts.flushedChains, duration: ContinuousClock.now - start, generation: generation)
    }

    public func check(_ tx: Transaction) throws(BackendError) {
        if let expected = tx.generation, expected != 0, expected != generation { throw .generationChanged(expected: expected) }
        let result = run(tx)
        if !result.rejections.isEmpty { throw .rejected(result.rejections) }
    }

    /// Packets counted by rules, by chain and rule comment, as if traffic had hit them (bytes are
    /// taken as 100 per packet). Counts live as long as the backend: a real counter restarts at
    /// zero when its rule is replaced, a subtlety the metrics tolerate (Prometheus sees a reset).
    public var counterHits: [String: [String: UInt64]] = [:]

    public func counters(table: String) throws(BackendError) -> [RuleCounter] {
        guard let t = tables[table] else { return [] }
        var out: [RuleCounter] = []
        for chain in t.chains {
            for rule in chain.rules where rule.statements.contains(.counter) {
                let packets = counterHits[chain.definition.name]?[rule.comment ?? ""] ?? 0
                out.append(RuleCounter(chain: chain.definition.name, comment: rule.comment, verdict: rule.verdict,
                                       packets: packets, bytes: packets * 100))
            }
        }
        return out
    }

    /// Runs the operations on a copy. Like the kernel, a failed operation has no effect and the
    /// rest still run, so every error of the batch is reported.
    private func run(_ tx: Transaction) -> (tables: [String: FakeTable], rejections: [Rejection]) {
        var all = tables
        var rejections: [Rejection] = []
        for name in tx.retiredTables {
            if all.removeValue(forKey: name) == nil {
                rejections.append(Rejection(object: "table inet \(name)", code: .noSuchFileOrDirectory))
            }
        }
        var table = all[tx.table]
        for op in tx.operations {
            do throws(FakeFailure) {
                try FakeTable.apply(op, to: &table)
            } catch {
                rejections.append(Rejection(object: error.object ?? tx.subject(of: op), code: error.code))
            }
        }
        all[tx.table] = table
        return (all, rejections)
    }
}

/// One refused operation inside the fake: the errno, and the object when it is narrower than the
/// operation's (one element of many).
struct FakeFailure: Error {
    var code: Errno
    var object: String?
    init(_ code: Errno, object: String? = nil) {
        self.code = code
        self.object = object
    }
}

struct FakeTable {
    /// Carries fwenforcer's comment; set when the table is created, never changed.
    var marked = true
    var chains: [FakeChain] = []
    var sets: [String: FakeSet] = [:]
    /// Base chains fwenforcer cannot express (another hook, type or policy), in nft words.
    var foreignChains: [String] = []
    /// Rules the model cannot express, by chain, in nft words (`nft insert rule` by hand).
    var foreignRules: [String: [String]] = [:]

    /// What a read reports as not fwenforcer's.
    var foreign: [String] {
        foreignChains.map { "chain \($0)" }
            + foreignRules.keys.sorted().flatMap { chain in foreignRules[chain]!.map { "rule in chain \(chain): \($0)" } }
    }

    struct FakeChain {
        var definition: BaseChain
        var rules: [Rule]
    }

    static func apply(_ op: Transaction.Operation, to table: inout FakeTable?) throws(FakeFailure) {
        switch op {
        case .addTable:
            if table == nil { table = FakeTable(marked: true) }
        case .deleteTable:
            guard table != nil else { throw FakeFailure(.noSuchFileOrDirectory) }
            table = nil
        default:
            guard table != nil else { throw FakeFailure(.noSuchFileOrDirectory) }
            try table!.apply(op)
        }
    }

    mutating func apply(_ op: Transaction.Operation) throws(FakeFailure) {
        switch op {
        case .addTable, .deleteTable:
            preconditionFailure("table operations are handled by the caller")
        case .addChain(let def):
            if let i = chains.firstIndex(where: { $0.definition.name == def.name }) {
                // The kernel updates an existing base chain's policy, but cannot move it to
                // another hook or priority.
                guard chains[i].definition.hook == def.hook, chains[i].definition.priority == def.priority else {
                    throw FakeFailure(.fileExists)
                }
                chains[i].definition.policy = def.policy
            } else {
                chains.append(FakeChain(definition: def, rules: []))
            }
        case .deleteChain(let name):
            guard let i = chains.firstIndex(where: { $0.definition.name == name }) else { throw FakeFailure(.noSuchFileOrDirectory) }
            chains.remove(at: i)
            foreignRules[name] = nil
        case .flushChain(let name):
            guard let i = chains.firstIndex(where: { $0.definition.name == name }) else { throw FakeFailure(.noSuchFileOrDirectory) }
            chains[i].rules.removeAll()
            foreignRules[name] = nil
        case .addSet(let def):
            guard sets[def.name] == nil else { throw FakeFailure(.fileExists) }
            sets[def.name] = FakeSet(definition: def)
        case .deleteSet(let name):
            guard sets[name] != nil else { throw FakeFailure(.noSuchFileOrDirectory) }
            if chains.contains(where: { $0.rules.contains { $0.referencedSets.contains(name) } }) {
                throw FakeFailure(.resourceBusy)
            }
            sets[name] = nil
        case .addElements(let e):
            guard var s = sets[e.set] else { throw FakeFailure(.noSuchFileOrDirectory) }
            try s.add(e)
            sets[e.set] = s
        case .deleteElements(let e):
            guard var s = sets[e.set] else { throw FakeFailure(.noSuchFileOrDirectory) }
            try s.delete(e)
            sets[e.set] = s
        case .addRule(let chain, let rule):
            guard let i = chains.firstIndex(where: { $0.definition.name == chain }) else { throw FakeFailure(.noSuchFileOrDirectory) }
            for m in rule.matches {
                guard case .addressInSet(_, let family, let name) = m else { continue }
                guard let s = sets[name] else { throw FakeFailure(.noSuchFileOrDirectory) }
                // The kernel refuses a lookup that reads more of the register than the payload
                // load wrote (an IPv4 address looked up in an IPv6 set): ENODATA. The other way
                // round it only compares the first 4 bytes, and is accepted.
                if family == .ipv4 && s.definition.family == .ipv6 { throw FakeFailure(.noData) }
            }
            chains[i].rules.append(rule.canonical)
        }
    }

    func ruleset(named name: String) throws(BackendError) -> Ruleset {
        var namedSets: [NamedSet] = []
        for (_, s) in sets.sorted(by: { $0.key < $1.key }) {
            namedSets.append(try s.namedSet())
        }
        let list = chains.map { c in
            Chain(name: c.definition.name, hook: c.definition.hook, priority: c.definition.priority,
                  policy: c.definition.policy, rules: c.rules)
        }.sorted(by: Chain.kernelOrder)
        return Ruleset(tableName: name, sets: namedSets, chains: list)
    }
}

/// A set as the kernel keeps it: for an interval set the boundary elements (start, end) with the
/// kernel's overlap checks on insert; for a hash set the addresses.
struct FakeSet {
    var definition: SetDefinition
    /// Interval sets: boundary elements keyed by (key, isEnd). Hash sets: addresses (isEnd false).
    var elements: Set<Boundary> = []

    struct Boundary: Hashable, Comparable {
        var key: UInt128
        var isEnd: Bool
        // At one key an end sorts before a start, as in the kernel's tree.
        static func < (a: Boundary, b: Boundary) -> Bool { (a.key, a.isEnd ? 0 : 1) < (b.key, b.isEnd ? 0 : 1) }
    }

    private func boundaries(_ r: AddressRange) -> [Boundary] {
        let encoded = Intervals.encode([(r.first, r.last)], bits: definition.family.bits, firstSegment: false)
        return encoded.map { Boundary(key: $0.key, isEnd: $0.isEnd) }
    }

    mutating func add(_ e: SetElements) throws(FakeFailure) {
        for r in e.ranges {
            let object = Transaction.elementSubject(set: e.set, r)
            guard definition.interval else {
                guard elements.insert(Boundary(key: r.first, isEnd: false)).inserted else { throw FakeFailure(.fileExists, object: object) }
                continue
            }
            for b in boundaries(r) {
                try insertChecked(b, object: object)
            }
        }
    }

    /// The overlap checks of the kernel's rbtree set (net/netfilter/nft_set_rbtree.c, 6.2+):
    /// a duplicate is EEXIST; a start right after a start, or an end next to an end, is a partial
    /// overlap (ENOTEMPTY in the set backend, which nf_tables reports as EEXIST).
    private mutating func insertChecked(_ b: Boundary, object: String) throws(FakeFailure) {
        if elements.contains(b) { throw FakeFailure(.fileExists, object: object) }
        let lower = elements.filter { $0 < b }.max()
        let higher = elements.filter { b < $0 }.min()
        if !b.isEnd, let lower, !lower.isEnd { throw FakeFailure(.fileExists, object: object) }
        if b.isEnd, let lower, lower.isEnd { throw FakeFailure(.fileExists, object: object) }
        if b.isEnd, let higher, higher.isEnd { throw FakeFailure(.fileExists, object: object) }
        elements.insert(b)
    }

    mutating func delete(_ e: SetElements) throws(FakeFailure) {
        for r in e.ranges {
            let object = Transaction.elementSubject(set: e.set, r)
            let parts = definition.interval ? boundaries(r) : [Boundary(key: r.first, isEnd: false)]
            for b in parts {
                guard elements.remove(b) != nil else { throw FakeFailure(.noSuchFileOrDirectory, object: object) }
            }
        }
    }

    func namedSet() throws(BackendError) -> NamedSet {
        let family = definition.family
        let set: AddressSet
        if definition.interval {
            guard let decoded = Intervals.decode(elements.map { ($0.key, $0.isEnd) }, bits: family.bits) else {
                throw .unrepresentable("set \(definition.name) holds overlapping intervals")
            }
            set = AddressSet(family: family, ranges: decoded.map { AddressRange(family: family, first: $0.first, last: $0.last) })
        } else {
            // As the kernel's hash set: every address its own element, adjacent ones included.
            set = AddressSet(family: family, hosts: elements.map { IPAddress(family: family, value: $0.key) })
        }
        return NamedSet(name: definition.name, family: family, interval: definition.interval, elements: set,
                        comment: definition.comment)
    }
}
