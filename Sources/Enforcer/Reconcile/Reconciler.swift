import Foundation

/// Keeps fwenforcer's table equal to the desired ruleset with the smallest atomic transactions.
///
/// The kernel is not read on every pass: dumping interval sets is slow (super-linear in the kernel),
/// so the reconciler diffs against the model of what it last committed, and reads the table only
/// when that model may be wrong: at start, after a failure, or when someone else changed the
/// ruleset (`noteForeignChange`). A failed transaction makes the next pass a full, still atomic,
/// replace of the table.
public final class Reconciler {
    public let backend: any Backend
    public let table: String

    /// The ruleset fwenforcer last committed, believed to be what the kernel holds.
    public private(set) var model: Ruleset?
    /// The ruleset generation the model was committed at, when known; carried on incremental
    /// batches so that a foreign commit in between fails them (compare-and-swap) instead of being
    /// silently built upon.
    public private(set) var generation: UInt32?
    /// The kernel may differ from `model`: read before diffing.
    public private(set) var needsRead = true
    /// The last transaction failed: rebuild the table whole.
    public private(set) var needsFullReplace = false

    public init(backend: any Backend, table: String) {
        self.backend = backend
        self.table = table
    }

    /// How a pass decided what to send.
    public enum Basis: String, Sendable {
        /// Diffed against the model of what was last committed.
        case model
        /// Diffed against the table as read from the kernel.
        case kernel
        /// Replaced the whole table.
        case replace
    }

    /// What a pass did, for its one log line.
    public struct Outcome: Sendable {
        public var basis: Basis
        public var transaction: Transaction
        public var apply: ApplyReport?
        /// Compare-and-swap restarts taken.
        public var restarts: Int

        public var changed: Bool { apply != nil }

        /// `CCM_v4 +1 -1, rules unchanged, 2 netlink messages, 0.3 ms`.
        public var summary: String {
            guard let apply else { return "no change (\(basis == .model ? "model" : "kernel") already as planned)" }
            var parts = Reconciler.describe(transaction)
            if basis == .replace { parts.insert("full replace", at: 0) }
            parts.append("\(apply.messages) netlink message\(apply.messages == 1 ? "" : "s")")
            parts.append(String(format: "%.2f ms", apply.milliseconds))
            if restarts > 0 { parts.append("\(restarts) compare-and-swap restart\(restarts == 1 ? "" : "s")") }
            return parts.joined(separator: ", ")
        }
    }

    /// Brings the kernel to `desired`. Throws when the kernel rejects the change; the kernel then
    /// still holds the previous ruleset whole, and the next pass replaces the table.
    @discardableResult
    public func reconcile(to desired: Ruleset, attempts: Int = 3) throws(BackendError) -> Outcome {
        precondition(desired.tableName == table)
        var restarts = 0
        while true {
            let basis: Basis
            let tx: Transaction
            if needsFullReplace {
                basis = .replace
                tx = Diff.replacement(desired)
            } else if needsRead || model == nil {
                let snapshot = try readOrReplace()
                basis = .kernel
                tx = Diff.transaction(from: snapshot.ruleset, to: desired, generation: snapshot.generation)
            } else {
                basis = .model
                tx = Diff.transaction(from: model, to: desired, generation: generation)
            }
            if tx.operations.isEmpty {
                model = desired
                needsRead = false
                return Outcome(basis: basis, transaction: tx, apply: nil, restarts: restarts)
            }
            do {
                let report = try backend.apply(tx)
                model = desired
                needsRead = false
                needsFullReplace = false
                // The generation our commit produced (compare-and-swap put it exactly one after the
                // one it was checked against); the monitor's NEWGEN event confirms it.
                generation = report.generation ?? tx.generation.map { $0 &+ 1 }
                return Outcome(basis: basis, transaction: tx, apply: report, restarts: restarts)
            } catch .generationChanged(let gen) {
                needsRead = true
                restarts += 1
                if restarts >= attempts { throw .generationChanged(expected: gen) }
            } catch {
                needsFullReplace = true
                needsRead = true
                throw error
            }
        }
    }

    /// Reads the table; a table the model cannot express (written by someone else) is read as
    /// absent, so the diff rebuilds it.
    private func readOrReplace() throws(BackendError) -> Snapshot {
        do {
            return try backend.read(table: table)
        } catch .unrepresentable {
            needsFullReplace = true
            return Snapshot(ruleset: nil, generation: 0)
        }
    }

    /// A commit the monitor saw. Ours, and other writers' commits to other tables, only move the
    /// generation on; another writer's change to our table means the kernel must be read again.
    public func note(_ commit: RulesetCommit) {
        if !commit.own && commit.touchedTable {
            noteForeignChange()
        } else if !needsRead {
            generation = commit.generation
        }
    }

    /// Someone else changed the ruleset (or the monitor lost events): the next pass reads first.
    public func noteForeignChange() {
        needsRead = true
        generation = nil
    }

    /// Checks the kernel against the model, repairing any difference (drift); a cheap no-op
    /// transaction when nothing changed.
    @discardableResult
    public func repair() throws(BackendError) -> Outcome? {
        guard let model else { return nil }
        needsRead = true
        return try reconcile(to: model)
    }

    /// Deletes the table (for `--remove-on-exit`); nothing if it does not exist.
    public func remove() throws(BackendError) {
        let snapshot = try backend.read(table: table)
        guard snapshot.ruleset != nil else { return }
        _ = try backend.apply(Transaction(table: table, operations: [.deleteTable], generation: snapshot.generation))
        model = nil
        needsRead = true
    }

    /// Per-object phrases for a transaction: `CCM_v4 +1 -1`, `set X_v6 added`, `rules unchanged`.
    static func describe(_ tx: Transaction) -> [String] {
        var elementChanges: [String: (add: Int, del: Int)] = [:]
        var setsAdded: [String] = [], setsRemoved: [String] = []
        var flushed: [String] = [], chainsAdded: [String] = [], chainsRemoved: [String] = []
        var rulesAdded = 0
        var tableRebuilt = false
        for op in tx.operations {
            switch op {
            case .addTable: break
            case .deleteTable: tableRebuilt = true
            case .addChain(let c): chainsAdded.append(c.name)
            case .deleteChain(let n): chainsRemoved.append(n)
            case .flushChain(let n): flushed.append(n)
            case .addSet(let s): setsAdded.append(s.name)
            case .deleteSet(let n): setsRemoved.append(n)
            case .addElements(let e): elementChanges[e.set, default: (0, 0)].add += e.ranges.count
            case .deleteElements(let e): elementChanges[e.set, default: (0, 0)].del += e.ranges.count
            case .addRule: rulesAdded += 1
            }
        }
        var parts: [String] = []
        let created = tx.operations.contains(.addTable) && chainsAdded.count > 0
        if tableRebuilt || created {
            parts.append("table \(tableRebuilt ? "rebuilt" : "created"): \(setsAdded.count) sets, \(elementChanges.values.reduce(0) { $0 + $1.add }) elements, \(chainsAdded.count) chains, \(rulesAdded) rules")
            return parts
        }
        for (set, c) in elementChanges.sorted(by: { $0.key < $1.key }) where !setsAdded.contains(set) {
            var p = set
            if c.add > 0 { p += " +\(c.add)" }
            if c.del > 0 { p += " -\(c.del)" }
            parts.append(p)
        }
        for s in setsAdded.sorted() { parts.append("set \(s) added (\(elementChanges[s]?.add ?? 0) elements)") }
        for s in setsRemoved.sorted() { parts.append("set \(s) removed") }
        for c in chainsAdded.sorted() where !flushed.contains(c) { parts.append("chain \(c) added") }
        for c in chainsRemoved.sorted() { parts.append("chain \(c) removed") }
        if flushed.isEmpty && rulesAdded == 0 {
            parts.append("rules unchanged")
        } else if !flushed.isEmpty {
            parts.append("chain\(flushed.count == 1 ? "" : "s") \(flushed.sorted().joined(separator: ", ")) rewritten (\(rulesAdded) rules)")
        } else {
            parts.append("\(rulesAdded) rules added")
        }
        return parts
    }
}

/// The outcome of a one-shot `Backend.reconcile`: what was found, what was done.
public struct ReconcileReport: Sendable, Hashable {
    /// The transaction that was applied (empty when the kernel already held the desired ruleset).
    public var transaction: Transaction
    /// Nil when nothing needed to be sent.
    public var apply: ApplyReport?
    /// Times the read-diff-apply cycle restarted because another writer committed in between.
    public var restarts: Int
}

extension Backend {
    /// One-shot reconcile with no model of earlier commits: read, diff, apply with the read's
    /// generation for compare-and-swap, restarting from the read on ERESTART (at most `attempts`
    /// times in all). This is a fresh `Reconciler`'s first pass.
    public func reconcile(to desired: Ruleset, attempts: Int = 3) throws(BackendError) -> ReconcileReport {
        let outcome = try Reconciler(backend: self, table: desired.tableName).reconcile(to: desired, attempts: attempts)
        return ReconcileReport(transaction: outcome.transaction, apply: outcome.apply, restarts: outcome.restarts)
    }
}
