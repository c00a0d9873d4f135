#if os(Linux)
import FoundationEssentials
import Glibc

/// `fwenforcerd apply --confirm-within`: applies a plan and leaves a detached waiter that restores
/// the kernel's previous table unless `fwenforcerd confirm` arrives in time.
///
/// Order matters for lockout safety: the previous table is read, then the waiter is started, then
/// the record naming the waiter and holding the previous table is written, and only then is the
/// change sent. Whatever dies after that point, the waiter still restores at the deadline; whatever
/// dies before, nothing was changed (a waiter that finds no record exits).
public struct ProvisionalApply {
    public enum Result: Sendable {
        /// The kernel already held the plan: nothing was applied and nothing waits for confirmation.
        case unchanged
        case provisional(PendingConfirmation, Reconciler.Outcome)
    }

    /// Why a provisional apply was refused before anything changed.
    public struct Refusal: Error, CustomStringConvertible {
        public var description: String
    }

    public let file: PendingFile
    public let backend: any Backend
    /// Starts the waiter for `file` and returns its pid, once the waiter blocks the signals it
    /// handles (``ConfirmationWaiterLauncher``).
    public let startWaiter: () throws -> pid_t

    public init(file: PendingFile, backend: any Backend, startWaiter: @escaping () throws -> pid_t) {
        self.file = file
        self.backend = backend
        self.startWaiter = startWaiter
    }

    public func apply(_ plan: Ruleset, configPath: String, configSHA256: String, window: Duration) throws -> Result {
        if let existing = try file.read(), existing.state == .pending, existing.ownerIsAlive {
            throw Refusal(description: "a provisional change is already pending (\(existing.owner.rawValue), pid \(existing.pid), config sha256 \(existing.configSHA256.prefix(12)), until \(ISO8601Format.string(existing.deadline))): confirm it with `fwenforcerd confirm` or let it roll back first")
        }
        var snapshot = try read(plan.tableName)
        var tx = Diff.transaction(from: snapshot.ruleset, to: plan, generation: snapshot.generation)
        if tx.operations.isEmpty { return .unchanged }

        let pid = try startWaiter()
        // Named by pid and start time from here on, so no later signal can reach a reused pid.
        guard let waiter = ProcessIdentity.of(pid) else {
            throw Refusal(description: "the confirmation waiter (pid \(pid)) exited at once; nothing was changed (see \(file.logPath) or the journal)")
        }
        var record = PendingConfirmation(pid: waiter.pid, ownerStartTime: waiter.startTime, owner: .apply, table: plan.tableName, deadline: PendingConfirmation.deadline(after: window),
                                         configPath: configPath, configSHA256: configSHA256,
                                         applied: Reconciler.describe(tx).joined(separator: ", "), previous: snapshot.ruleset)
        do {
            try file.write(record)
        } catch {
            try? waiter.signal(SIGUSR2)
            throw error
        }
        var restarts = 0
        while true {
            do {
                let report = try backend.apply(tx)
                return .provisional(record, Reconciler.Outcome(basis: .kernel, transaction: tx, apply: report, restarts: restarts))
            } catch .generationChanged where restarts < 2 {
                // Another writer committed after the read: what comes back must be what it left.
                restarts += 1
                do {
                    snapshot = try read(plan.tableName)
                    tx = Diff.transaction(from: snapshot.ruleset, to: plan, generation: snapshot.generation)
                    record.previous = snapshot.ruleset
                    record.applied = Reconciler.describe(tx).joined(separator: ", ")
                    try file.write(record)
                } catch {
                    cancel(waiter)
                    throw error
                }
            } catch {
                cancel(waiter)
                throw error
            }
        }
    }

    /// The table as the kernel holds it; one the model cannot express could not be restored exactly.
    private func read(_ table: String) throws -> Snapshot {
        do {
            return try backend.read(table: table)
        } catch .unrepresentable(let what) {
            throw Refusal(description: "table inet \(table) holds what fwenforcer cannot restore exactly (\(what)); a provisional apply needs a table it can put back. Apply without --confirm-within, or delete the table first")
        }
    }

    /// Nothing was changed: the waiter has nothing to undo.
    private func cancel(_ waiter: ProcessIdentity) {
        file.remove()
        try? waiter.signal(SIGUSR2)
    }
}
#endif
