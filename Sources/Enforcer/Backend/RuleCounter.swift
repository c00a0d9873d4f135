/// The packet and byte counts of one rule's `counter` statement, as the kernel holds them: for the
/// metrics file (drops per chain). Counters are kernel state, never part of the `Ruleset` model,
/// so reading them is a separate, cheap dump of the table's rules only.
public struct RuleCounter: Sendable, Hashable {
    public var chain: String
    public var comment: String?
    /// The rule's verdict, nil for a rule that has none (it only counts or logs).
    public var verdict: Verdict?
    public var packets: UInt64
    public var bytes: UInt64

    public init(chain: String, comment: String?, verdict: Verdict?, packets: UInt64, bytes: UInt64) {
        self.chain = chain
        self.comment = comment
        self.verdict = verdict
        self.packets = packets
        self.bytes = bytes
    }
}
