/// fwenforcer's mark on the tables it creates: the table's comment (nftables table userdata,
/// `NFTNL_UDATA_TABLE_COMMENT`; a kernel without table userdata drops it silently, hence the
/// minimum kernel in `KernelRequirements`). nft shows
/// it (`comment "..."` in `nft list table`), so an operator sees who owns the table.
///
/// The kernel sets a table's userdata when the table is created and ignores it on later updates,
/// so the mark is written with every `add table` and a table is re-created to gain it.
public enum TableMarker {
    public static let comment = "managed by fwenforcerd: changes made here are reverted"
}

/// What fwenforcer may do with the table of the configured name, decided from one read.
///
/// fwenforcer owns exactly the tables it created and marked. An unmarked table is adopted only
/// when nothing can be lost: it is empty, or it is exactly what an earlier fwenforcer (before the
/// mark existed) wrote. Anything else (Debian's stock `table inet filter`, a hand-made table) is
/// refused: never changed, never deleted.
public enum TableClaim: Sendable, Hashable {
    /// No table of that name: it is created, marked.
    case absent
    /// Marked by fwenforcer: reconciled, anything foreign in it replaced.
    case owned
    /// Unmarked, but taking it loses nothing; it is re-created with the mark in the same batch.
    case adoptable(String)
    /// Unmarked and holding what fwenforcer did not write: the error text, naming the table.
    case refused(String)

    public init(_ snapshot: Snapshot, table: String) {
        guard let ruleset = snapshot.ruleset else {
            self = .absent
            return
        }
        if snapshot.marked {
            self = .owned
            return
        }
        if snapshot.isEmptyTable {
            self = .adoptable("table inet \(table) existed empty and unmarked")
            return
        }
        let rules = ruleset.chains.flatMap(\.rules)
        if snapshot.foreign.isEmpty, !rules.isEmpty, rules.allSatisfy({ $0.comment?.isEmpty == false }) {
            self = .adoptable("table inet \(table) was written by an earlier fwenforcer (no ownership mark)")
            return
        }
        self = .refused(Self.refusal(table, snapshot))
    }

    static func refusal(_ table: String, _ snapshot: Snapshot) -> String {
        var held: [String] = []
        if let r = snapshot.ruleset {
            if !r.chains.isEmpty { held.append("chains \(r.chains.map(\.name).joined(separator: ", "))") }
            if !r.sets.isEmpty { held.append("sets \(r.sets.map(\.name).joined(separator: ", "))") }
        }
        held += snapshot.foreign.prefix(5)
        if snapshot.foreign.count > 5 { held.append("and \(snapshot.foreign.count - 5) more objects") }
        return "table inet \(table) exists and was not created by fwenforcer (it holds \(held.joined(separator: "; "))); "
            + "fwenforcer never adopts, changes or deletes a table it did not create: set [enforce] table to another name, "
            + "or delete that table yourself if it is not needed"
    }
}
