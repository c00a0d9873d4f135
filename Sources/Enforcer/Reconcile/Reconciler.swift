import FoundationEssentials

/// The one engine that brings fwenforcer's table to a desired ruleset: the daemon, `apply`, a
/// provisional apply, its rollback and `--remove-on-exit` all go through it.
///
/// What it knows about the kernel is one value, `Knowledge`, and every pass decides its basis from
/// that value alone:
/// - `.model(R, G)`: the kernel holds R at generation G (fwenforcer committed it, and the monitor
///   saw nobody touch the table since). The pass diffs against R, checked against G.
/// - `.unknown`: the pass reads the table and diffs against what it holds.
/// - `.mustReplace`: the last transaction was refused; the pass reads the table (for the
///   generation, and to see it is still fwenforcer's) and rebuilds it whole.
///
/// Whatever the basis, a read that finds objects fwenforcer did not write (a rule inserted by hand,
/// a chain on another hook) replaces the whole table in the same pass, and a table fwenforcer did
/// not create is refused (`TableClaim`). Every batch carries the generation it was computed from
/// (compare-and-swap), never 0.
///
/// The kernel is not read on every pass: dumping interval sets is slow (super-linear in the kernel),
/// so the model stands in for the kernel while nothing contradicts it.
public final class Reconciler {
    public let backend: any Backend
    public let table: String

    /// What the reconciler knows about the kernel's table.
    public enum Knowledge: Sendable, Hashable {
        /// Read before diffing.
        case unknown
        /// The kernel holds this ruleset (nil: no table) at this generation.
        case model(Ruleset?, generation: UInt32)
        /// Read, then rebuild the table whole (the last transaction was refused).
        case mustReplace
    }

    public private(set) var knowledge: Knowledge = .unknown
    /// The ruleset fwenforcer last committed, when it is still believed to be what the kernel holds.
    public var model: Ruleset? {
        if case .model(let r, _) = knowledge { return r }
        return nil
    }
    /// The generation of the model, when the model is known; carried on incremental batches so a
    /// foreign commit in between fails them instead of being silently built upon.
    public var generation: UInt32? {
        if case .model(_, let g) = knowledge { return g }
        return nil
    }
    /// The ruleset of the last successful pass: what a drift repair restores.
    public private(set) var enforced: Ruleset?
    /// Tables fwenforcer created under earlier names (`[enforce] table` changed): each is deleted,
    /// if it still carries fwenforcer's mark, in the batch of the next pass.
    public private(set) var retiring: [String] = []
    /// The commits the caller's nftables monitor saw since it last asked (the daemon); lets an
    /// ERESTART caused by a commit to another table be retried without reading this one.
    public var pendingCommits: (() -> [MonitorEvent])?

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

    /// What a pass will send, and what it found: handed to a caller's hook before it is sent.
    public struct PlannedPass: Sendable {
        public var basis: Basis
        public var transaction: Transaction
        /// What the table held before this pass (nil: no table): for a read, its representable
        /// part; for a model pass, the model.
        public var previous: Ruleset?
        /// Objects fwenforcer did not write that this pass removes, in nft words.
        public var foreign: [String]
        /// Why an unmarked table is taken over (it was empty, or an earlier fwenforcer's).
        public var adopted: String?
        var generation: UInt32
    }

    /// What a pass did, for its one log line.
    public struct Outcome: Sendable {
        public var basis: Basis
        public var transaction: Transaction
        public var apply: ApplyReport?
        /// Compare-and-swap restarts taken.
        public var restarts: Int
        /// Objects fwenforcer did not write that the pass removed, in nft words.
        public var foreign: [String] = []
        public var adopted: String?

        public init(basis: Basis, transaction: Transaction, apply: ApplyReport?, restarts: Int,
                    foreign: [String] = [], adopted: String? = nil) {
            self.basis = basis
            self.transaction = transaction
            self.apply = apply
            self.restarts = restarts
            self.foreign = foreign
            self.adopted = adopted
        }

        public var changed: Bool { apply != nil }

        /// `CCM_v4 +1 -1, rules unchanged, 2 netlink messages, 0.3 ms`.
        public var summary: String {
            guard let apply else { return "no change (\(basis == .model ? "model" : "kernel") already as planned)" }
            var parts = Reconciler.describe(transaction)
            if basis == .replace { parts.insert("full replace", at: 0) }
            if let adopted { parts.insert("\(adopted): re-created with fwenforcer's mark", at: 0) }
            for t in transaction.retiredTables { parts.insert("table inet \(t) (the earlier [enforce] table) deleted", at: 0) }
            if !foreign.isEmpty {
                let shown = foreign.prefix(5).joined(separator: "; ") + (foreign.count > 5 ? "; and \(foreign.count - 5) more" : "")
                parts.insert("removed \(foreign.count) object\(foreign.count == 1 ? "" : "s") fwenforcer did not write: \(shown)", at: 0)
            }
            parts.append("\(apply.messages) netlink message\(apply.messages == 1 ? "" : "s")")
            parts.append(String(cFormat: "%.2f ms", apply.milliseconds))
            if restarts > 0 { parts.append("\(restarts) compare-and-swap restart\(restarts == 1 ? "" : "s")") }
            return parts.joined(separator: ", ")
        }
    }

    /// Brings the kernel to `desired`. Throws when the kernel rejects the change (it then still
    /// holds the previous ruleset whole, and the next pass replaces the table), when the table is
    /// not fwenforcer's (`.notOwned`: nothing was sent), or when compare-and-swap lost `attempts`
    /// times in a row.
    @discardableResult
    public func reconcile(to desired: Ruleset, attempts: Int = 3) throws(BackendError) -> Outcome {
        do {
            return try run(desired, attempts: attempts) { _ in }
        } catch let error as BackendError {
            throw error
        } catch {
            preconditionFailure("only a hook throws other errors: \(error)")
        }
    }

    /// The same pass with a hook that sees each planned batch before it is sent (a provisional
    /// apply records what a rollback restores there); an error from the hook sends nothing.
    @discardableResult
    public func reconcile(to desired: Ruleset, attempts: Int = 3, beforeSending: (PlannedPass) throws -> Void) throws -> Outcome {
        try run(desired, attempts: attempts, beforeSending: beforeSending)
    }

    private func run(_ desired: Ruleset, attempts: Int, beforeSending: (PlannedPass) throws -> Void) throws -> Outcome {
        precondition(desired.tableName == table)
        var restarts = 0
        while true {
            let pass = try plan(desired)
            if pass.transaction.isEmpty {
                knowledge = .model(desired, generation: pass.generation)
                enforced = desired
                return Outcome(basis: pass.basis, transaction: pass.transaction, apply: nil, restarts: restarts)
            }
            try beforeSending(pass)
            do {
                let report = try backend.apply(pass.transaction)
                knowledge = .model(desired, generation: report.generation ?? Generation.next(after: pass.generation))
                enforced = desired
                retiring = []
                return Outcome(basis: pass.basis, transaction: pass.transaction, apply: report, restarts: restarts,
                               foreign: pass.foreign, adopted: pass.adopted)
            } catch .generationChanged(let gen) {
                restarts += 1
                afterRestart()
                if restarts >= attempts { throw BackendError.generationChanged(expected: gen) }
            } catch .outcomeUnknown(let what) {
                // The batch may or may not have been committed: the next pass reads the table and
                // diffs against what it finds (nothing to send when it was), instead of rebuilding.
                if knowledge != .mustReplace { knowledge = .unknown }
                throw BackendError.outcomeUnknown(what)
            } catch {
                knowledge = .mustReplace
                throw error
            }
        }
    }

    /// Decides one pass's basis from `knowledge`, reading the kernel when the model is not enough.
    private func plan(_ desired: Ruleset) throws(BackendError) -> PlannedPass {
        if case .model(let live, let g) = knowledge, retiring.isEmpty {
            return PlannedPass(basis: .model, transaction: Diff.transaction(from: live, to: desired, generation: g),
                               previous: live, foreign: [], adopted: nil, generation: g)
        }
        let (snapshot, retired) = try readConsistently()
        var pass: PlannedPass
        switch TableClaim(snapshot, table: table) {
        case .refused(let why):
            throw .notOwned(why)
        case .adoptable(let why):
            pass = replacement(desired, snapshot, foreign: snapshot.foreign)
            pass.adopted = why
        case .absent:
            pass = PlannedPass(basis: .kernel, transaction: Diff.transaction(from: nil, to: desired, generation: snapshot.generation),
                               previous: nil, foreign: [], adopted: nil, generation: snapshot.generation)
        case .owned:
            let diff = Diff.transaction(from: snapshot.ruleset, to: desired, generation: snapshot.generation)
            let unplanned = Diff.unplanned(snapshot.ruleset, written: enforced, desired: desired)
            if !snapshot.foreign.isEmpty || (knowledge == .mustReplace && !diff.isEmpty) {
                pass = replacement(desired, snapshot, foreign: snapshot.foreign + unplanned)
            } else {
                pass = PlannedPass(basis: .kernel, transaction: diff, previous: snapshot.ruleset, foreign: unplanned,
                                   adopted: nil, generation: snapshot.generation)
            }
        }
        pass.transaction.retiredTables = retired
        return pass
    }

    private func replacement(_ desired: Ruleset, _ snapshot: Snapshot, foreign: [String]) -> PlannedPass {
        PlannedPass(basis: .replace, transaction: Diff.replacement(desired, existing: snapshot.ruleset != nil, generation: snapshot.generation),
                    previous: snapshot.ruleset, foreign: foreign, adopted: nil, generation: snapshot.generation)
    }

    /// Reads the table and the retiring tables at one generation. A retiring table that is gone,
    /// or that does not carry fwenforcer's mark (someone else's now), is dropped from the list.
    private func readConsistently() throws(BackendError) -> (Snapshot, retired: [String]) {
        var last: UInt32 = 0
        for _ in 0..<3 {
            let snapshot = try backend.read(table: table)
            last = snapshot.generation
            guard !retiring.isEmpty else { return (snapshot, []) }
            var retired: [String] = []
            var consistent = true
            for name in retiring where name != table {
                let old = try backend.read(table: name)
                if old.generation != snapshot.generation { consistent = false; break }
                if old.ruleset != nil, case .owned = TableClaim(old, table: name) { retired.append(name) }
            }
            if consistent {
                retiring = retired
                return (snapshot, retired)
            }
        }
        throw .generationChanged(expected: last)
    }

    /// After an ERESTART: when the caller's monitor shows that every commit since the model's
    /// generation left this table alone, the model stands at the newer generation and the pass is
    /// retried without a read; otherwise the table is read.
    private func afterRestart() {
        guard case .model(_, let before) = knowledge else { return }
        guard let pendingCommits else {
            knowledge = .unknown
            return
        }
        for event in pendingCommits() { note(event) }
        if generation == before { knowledge = .unknown }
    }

    /// One event from the caller's monitor.
    public func note(_ event: MonitorEvent) {
        switch event {
        case .commit(let c): note(c)
        case .overflow: noteForeignChange()
        }
    }

    /// A commit the monitor saw. Ours, and other writers' commits to other tables, only move the
    /// model's generation on; another writer's change to our table means the kernel must be read
    /// again. A commit at or before the model's generation is already part of it.
    public func note(_ commit: RulesetCommit) {
        guard case .model(let r, let g) = knowledge else { return }
        if Int32(bitPattern: commit.generation &- g) <= 0 { return }
        if commit.own || !commit.touchedTable {
            knowledge = .model(r, generation: commit.generation)
        } else {
            knowledge = .unknown
        }
    }

    /// Someone else changed the ruleset (or the monitor lost events): the next pass reads first.
    public func noteForeignChange() {
        if knowledge != .mustReplace { knowledge = .unknown }
    }

    /// Tables this reconciler's earlier names left behind: deleted with the next pass, if marked.
    public func retire(_ names: [String]) {
        retiring = Array(Set(retiring + names.filter { $0 != table })).sorted()
    }

    /// Checks the kernel against what was last enforced, repairing any difference (drift); a
    /// cheap no-op when nothing changed.
    @discardableResult
    public func repair() throws(BackendError) -> Outcome? {
        guard let enforced else { return nil }
        noteForeignChange()
        return try reconcile(to: enforced)
    }

    /// Deletes the table (for `--remove-on-exit`, or a rollback to "no table"), and any retiring
    /// table, in one batch. Nothing if it does not exist. The table need not be representable:
    /// only its ownership matters.
    @discardableResult
    public func remove() throws(BackendError) -> Bool {
        let (snapshot, retired) = try readConsistently()
        var tx = Transaction(table: table, generation: snapshot.generation, retiredTables: retired)
        switch TableClaim(snapshot, table: table) {
        case .refused(let why): throw .notOwned(why)
        case .absent: break
        case .owned, .adoptable: tx.operations = [.deleteTable]
        }
        guard !tx.isEmpty else {
            knowledge = .model(nil, generation: snapshot.generation)
            return false
        }
        let report = try backend.apply(tx)
        knowledge = .model(nil, generation: report.generation ?? Generation.next(after: snapshot.generation))
        enforced = nil
        retiring = []
        return tx.operations.contains(.deleteTable)
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
