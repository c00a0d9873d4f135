#if os(Linux)
import FoundationEssentials
import Glibc

/// `fwenforcerd confirm`: tells the owner of a pending change to keep it, and waits for the
/// acknowledgement (the record disappears).
public enum Confirmation {
    public enum Result: Sendable, Equatable {
        /// The change is kept; the owner removed the record.
        case confirmed(PendingConfirmation)
        /// There is nothing to confirm (the reason says why, for the operator).
        case nothingPending(String)
        /// The window had passed: the previous ruleset was, or is being, restored.
        case tooLate(PendingConfirmation)
        /// The owner was signalled but did not acknowledge within the wait.
        case noAnswer(PendingConfirmation)
    }

    /// Confirms the change recorded in `file`, waiting up to `wait` for the acknowledgement.
    public static func confirm(_ file: PendingFile, wait: Duration = .seconds(5)) throws -> Result {
        guard let record = try file.read() else {
            return .nothingPending("no provisional change is pending (no record at \(file.path))")
        }
        switch record.state {
        case .rollingBack, .rolledBack, .rollbackFailed:
            return .tooLate(record)
        case .pending:
            break
        }
        guard let owner = record.ownerIdentity, owner.isAlive else {
            file.remove()
            return .nothingPending("the process that owned the window (pid \(record.pid)) is gone, so nothing will roll back; the stale record was removed. The kernel keeps whatever it holds now")
        }
        // The owner decides, even past the deadline: it may not have acted yet, and then a confirmation still counts.
        do {
            try owner.signal(SIGUSR1)
        } catch {
            return .nothingPending("cannot signal pid \(record.pid): \(error)")
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        while clock.now < deadline {
            guard let now = try file.read(), now.pid == record.pid, now.appliedAt == record.appliedAt else {
                return .confirmed(record)
            }
            if now.state != .pending { return .tooLate(now) }
            usleep(10_000)
        }
        return .noAnswer(record)
    }
}
#endif
