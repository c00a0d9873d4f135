/// Restoring what the kernel held before a provisional change.
public enum Rollback {
    /// Brings table `table` back to `previous` in one atomic batch: the difference from what the
    /// kernel holds now, sent with the generation it was read at (compare-and-swap, re-read on a
    /// concurrent commit), or the table's deletion when there was no table before. Returns what was
    /// done, in the words of a reconcile line.
    public static func restore(_ previous: Ruleset?, table: String, backend: any Backend) throws(BackendError) -> String {
        let reconciler = Reconciler(backend: backend, table: table)
        guard let previous else {
            let existed = try backend.read(table: table).ruleset != nil
            try reconciler.remove()
            return existed ? "table inet \(table) deleted (there was none before)" : "no table inet \(table), as before"
        }
        return try reconciler.reconcile(to: previous).summary
    }
}
