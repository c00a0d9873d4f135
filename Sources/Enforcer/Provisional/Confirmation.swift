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
        /// A newer change replaced the one read (the first) before the confirmation arrived (the
        /// second is pending now): the owner refused to keep a change the operator did not see.
        case superseded(PendingConfirmation, by: PendingConfirmation)
        /// The pending change is not the one the operator named (`--change`): nothing was sent.
        case notTheNamedChange(PendingConfirmation, expected: String)
    }

    /// Confirms the change recorded in `file`, waiting up to `wait` for the acknowledgement. The
    /// signal carries the record's token, so the owner keeps exactly that change; `expected` (a
    /// prefix of the config's SHA-256, as `status` and the apply line show it) refuses any other.
    public static func confirm(_ file: PendingFile, expected: String? = nil, wait: Duration = .seconds(5)) throws -> Result {
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
        if let expected, !record.configSHA256.hasPrefix(expected.lowercased()) {
            return .notTheNamedChange(record, expected: expected)
        }
        // The owner decides, even past the deadline: it may not have acted yet, and then a confirmation still counts.
        do {
            if let token = record.token {
                try owner.signal(SIGUSR1, value: token)
            } else {
                try owner.signal(SIGUSR1)
            }
        } catch {
            return .nothingPending("cannot signal pid \(record.pid): \(error)")
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        while clock.now < deadline {
            guard let now = try file.read() else { return .confirmed(record) }
            if now.token != record.token || now.appliedAt != record.appliedAt {
                return now.state == .pending ? .superseded(record, by: now) : .tooLate(now)
            }
            if now.state != .pending { return .tooLate(now) }
            usleep(10_000)
        }
        return .noAnswer(record)
    }
}
#endif
