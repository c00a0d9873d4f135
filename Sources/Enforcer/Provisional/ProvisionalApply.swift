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

    /// Applies `plan` through the reconcile engine. Before each batch is sent (compare-and-swap
    /// may make it plan again), the record is written with what the kernel held: that is what the
    /// rollback restores. Objects fwenforcer did not write are replaced like in any pass, and do
    /// not come back with a rollback.
    public func apply(_ plan: Ruleset, configPath: String, configSHA256: String, window: Duration) throws -> Result {
        if let existing = try file.read(), existing.state == .pending, existing.ownerIsAlive {
            throw Refusal(description: "a provisional change is already pending (\(existing.owner.rawValue), pid \(existing.pid), config sha256 \(existing.configSHA256.prefix(12)), until \(ISO8601Format.string(existing.deadline))): confirm it with `fwenforcerd confirm` or let it roll back first")
        }
        let reconciler = Reconciler(backend: backend, table: plan.tableName)
        var waiter: ProcessIdentity?
        var record: PendingConfirmation?
        let outcome: Reconciler.Outcome
        do {
            outcome = try reconciler.reconcile(to: plan) { pass in
                let identified = try waiter ?? startIdentifiedWaiter()
                waiter = identified
                var r = PendingConfirmation(pid: identified.pid, ownerStartTime: identified.startTime, owner: .apply, table: plan.tableName,
                                            deadline: record?.deadline ?? PendingConfirmation.deadline(after: window),
                                            configPath: configPath, configSHA256: configSHA256,
                                            applied: Reconciler.describe(pass.transaction).joined(separator: ", "), previous: pass.previous)
                // One change, one token, however often compare-and-swap makes it plan again.
                r.token = record?.token ?? r.token
                try file.write(r)
                record = r
            }
        } catch {
            if let waiter { cancel(waiter) }
            throw error
        }
        guard let record, outcome.changed else { return .unchanged }
        return .provisional(record, outcome)
    }

    /// Starts the waiter and names it by pid and start time from here on, so that no later signal
    /// can reach a process that got its pid after it.
    private func startIdentifiedWaiter() throws -> ProcessIdentity {
        let pid = try startWaiter()
        guard let waiter = ProcessIdentity.of(pid) else {
            throw Refusal(description: "the confirmation waiter (pid \(pid)) exited at once; nothing was changed (see \(file.logPath) or the journal)")
        }
        return waiter
    }

    /// Nothing was changed: the waiter has nothing to undo.
    private func cancel(_ waiter: ProcessIdentity) {
        file.remove()
        try? waiter.signal(SIGUSR2)
    }
}
#endif
