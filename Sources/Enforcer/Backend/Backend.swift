import FoundationEssentials

/// The narrow seam between fwenforcer's pure core and the kernel.
///
/// Two implementations: `NetlinkBackend` (the kernel, through libnftnl/libmnl) and `FakeBackend`
/// (in memory, with the kernel's errors). Everything above this protocol is tested against the fake.
public protocol Backend: AnyObject {
    /// Reads the named `inet` table as a `Ruleset` (rules in canonical form, chains in kernel
    /// order), together with the ruleset generation it was read at. The ruleset is nil when the
    /// table does not exist.
    func read(table: String) throws(BackendError) -> Snapshot

    /// Applies the transaction atomically: all of it or, on error, none of it.
    func apply(_ tx: Transaction) throws(BackendError) -> ApplyReport

    /// Has the transaction validated (by the kernel, for the netlink backend) without changing
    /// anything; throws the same errors `apply` would.
    func check(_ tx: Transaction) throws(BackendError)

    /// The counters of the table's rules, in chain and rule order; empty when the table does not exist.
    func counters(table: String) throws(BackendError) -> [RuleCounter]

    /// The base chains of the other tables (every `ip`, `ip6` and `inet` table but `excluding`) on
    /// the input, forward and output hooks, sorted; for `status`.
    func otherBaseChains(excluding table: String) throws(BackendError) -> [OtherBaseChain]
}

/// A table as read at one ruleset generation.
public struct Snapshot: Sendable, Hashable {
    /// What the table holds that fwenforcer's model can express; nil when the table does not exist.
    public var ruleset: Ruleset?
    /// Never 0: the kernel skips 0 when its generation wraps, and a batch sent with 0 is not checked.
    public var generation: UInt32
    /// The table carries fwenforcer's ownership marker (its table comment, `TableMarker`).
    public var marked: Bool
    /// Objects in the table the model cannot express, in nft words (`rule in chain input: ip saddr
    /// 198.18.9.9 tcp dport 2222 accept`): fwenforcer did not write them.
    public var foreign: [String]

    public init(ruleset: Ruleset?, generation: UInt32, marked: Bool = true, foreign: [String] = []) {
        self.ruleset = ruleset
        self.generation = generation
        self.marked = marked
        self.foreign = foreign
    }

    /// True when the table exists and holds nothing at all.
    public var isEmptyTable: Bool {
        guard let ruleset else { return false }
        return ruleset.sets.isEmpty && ruleset.chains.isEmpty && foreign.isEmpty
    }
}

/// What an apply did, for the one-line summary.
public struct ApplyReport: Sendable, Hashable, CustomStringConvertible {
    /// Netlink messages in the batch, BATCH_BEGIN and BATCH_END excluded (for the fake: operations).
    public var messages: Int
    /// Bytes sent (0 for the fake).
    public var bytes: Int
    /// Objects added and removed; set elements count one per range or address.
    public var added: Int
    public var removed: Int
    /// Chains whose rules were flushed (and re-added).
    public var flushedChains: Int
    /// Compare-and-swap retries taken (ERESTART) before the batch went through.
    public var retries: Int
    public var duration: Duration
    /// The ruleset generation this commit produced (the one it was checked against, plus one).
    public var generation: UInt32?

    public init(messages: Int, bytes: Int, added: Int, removed: Int, flushedChains: Int, retries: Int = 0, duration: Duration,
                generation: UInt32? = nil) {
        self.messages = messages
        self.bytes = bytes
        self.added = added
        self.removed = removed
        self.flushedChains = flushedChains
        self.retries = retries
        self.duration = duration
        self.generation = generation
    }

    /// `duration` in milliseconds, for summaries.
    public var milliseconds: Double {
        Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    }

    public var description: String {
        let ms = milliseconds
        var text = "\(added) added, \(removed) removed"
        if flushedChains > 0 { text += ", \(flushedChains) chain\(flushedChains == 1 ? "" : "s") rewritten" }
        text += ", \(messages) netlink message\(messages == 1 ? "" : "s")"
        text += ", " + String(cFormat: "%.1f ms", ms)
        if retries > 0 { text += " (\(retries) retr\(retries == 1 ? "y" : "ies"))" }
        return text
    }
}

extension Backend {
    /// Rebuilds the table from scratch in one atomic batch, checked against the generation of a
    /// fresh read; refuses a table fwenforcer does not own (see `TableClaim`).
    public func replace(with desired: Ruleset) throws(BackendError) -> ApplyReport {
        let snapshot = try read(table: desired.tableName)
        if case .refused(let why) = TableClaim(snapshot, table: desired.tableName) { throw .notOwned(why) }
        return try apply(Diff.replacement(desired, existing: snapshot.ruleset != nil, generation: snapshot.generation))
    }
}
