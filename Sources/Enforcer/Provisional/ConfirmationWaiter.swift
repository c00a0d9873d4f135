#if os(Linux)
import FoundationEssentials
import Glibc
import Logging

/// The detached process behind `fwenforcerd apply --confirm-within`: it owns the confirmation
/// window of the record that names its pid, and restores the previous ruleset at the deadline
/// unless SIGUSR1 (`fwenforcerd confirm`) came first.
///
/// Signals: SIGUSR1 confirms; SIGUSR2 cancels (the apply that started it failed, so there is
/// nothing to undo); SIGTERM and SIGINT roll back at once (a stop is no confirmation); SIGHUP is
/// ignored (it runs in a session of its own, a hang-up is not about it).
public final class ConfirmationWaiter {
    /// The signals the waiter handles; its spawner blocks them before the first instruction.
    public static let signals: [Int32] = [SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGHUP]

    public enum Outcome: Equatable, Sendable {
        /// No record named this process within `recordTimeout`: the apply never got that far.
        case noRecord
        case confirmed
        case cancelled
        case rolledBack(String)
        case rollbackFailed(String)
    }

    let file: PendingFile
    let backend: any Backend
    let logger: Logger
    /// How long to wait for the spawner to write the record.
    var recordTimeout: Duration = .seconds(10)

    public init(file: PendingFile, backend: any Backend, logger: Logger) {
        self.file = file
        self.backend = backend
        self.logger = logger
    }

    public func run() throws -> Outcome {
        guard var record = try awaitRecord() else { return .noRecord }
        let loop = try EventLoop()
        defer { loop.close() }
        enum Event { case confirm, cancel, rollBack(String) }
        var event: Event?
        try loop.handleSignalsWithInfo(Self.signals, { [file, logger] info in
            switch info.signal {
            case SIGUSR1:
                // Only a confirmation that names the change this process owns keeps it.
                let current = try? file.read()
                guard let current, current.ownerIdentity == ProcessIdentity.current,
                      current.token == nil || (info.queued && info.value == current.token) else {
                    logger.warning("SIGUSR1 from pid \(info.senderPID) does not name the pending change (config sha256 \(record.configSHA256.prefix(12))); it is not confirmed: use `fwenforcerd confirm`")
                    return
                }
                event = .confirm
            case SIGUSR2: event = .cancel
            case SIGHUP: return
            default: event = .rollBack("stopped by signal \(info.signal) before a confirmation")
            }
            loop.stop()
        })
        let timer = try loop.makeTimer {
            event = .rollBack("not confirmed within the window (deadline \(ISO8601Format.string(record.deadline)))")
            loop.stop()
        }
        let remaining = max(0, record.deadline.timeIntervalSinceNow)
        timer.schedule(after: .milliseconds(Int64(remaining * 1000)))
        logger.notice("waiting until \(ISO8601Format.string(record.deadline)) for `fwenforcerd confirm` of config sha256 \(record.configSHA256.prefix(12)) (table \(record.table): \(record.applied))")
        while event == nil { try loop.run() }

        switch event! {
        case .confirm:
            file.remove()
            logger.notice("confirmed: the ruleset of config \(record.configPath) (sha256 \(record.configSHA256.prefix(12))) stays enforced")
            return .confirmed
        case .cancel:
            file.remove()
            logger.notice("cancelled: the provisional apply did not go through, nothing to roll back")
            return .cancelled
        case .rollBack(let why):
            // From here a confirmation is too late; `confirm` reads this state and says so.
            record.state = .rollingBack
            try? file.write(record)
            let outcome = restore(record, why: why)
            switch outcome {
            case .rolledBack(let summary):
                record.state = .rolledBack
                record.outcome = summary
            case .rollbackFailed(let error):
                record.state = .rollbackFailed
                record.outcome = error
            default: break
            }
            try? file.write(record)
            return outcome
        }
    }

    /// Restores the previous ruleset, retrying briefly: a failed restore leaves the host on the
    /// ruleset the operator did not confirm, which is what this process exists to prevent.
    func restore(_ record: PendingConfirmation, why: String) -> Outcome {
        var lastError = ""
        for attempt in 1...3 {
            do {
                let summary = try Rollback.restore(record.previous, table: record.table, backend: backend)
                logger.error("\(why): restored \(record.previousDescription) in one atomic batch (\(summary)); the provisional ruleset of config \(record.configPath) (sha256 \(record.configSHA256.prefix(12))) is gone")
                return .rolledBack(summary)
            } catch {
                lastError = "\(error)"
                logger.error("\(why): restoring \(record.previousDescription) failed (attempt \(attempt) of 3): \(error)")
                if attempt < 3 { sleep(1) }
            }
        }
        logger.critical("the provisional ruleset of config sha256 \(record.configSHA256.prefix(12)) is still enforced: the rollback failed: \(lastError)")
        return .rollbackFailed(lastError)
    }

    /// The spawner writes the record right after starting this process; it names this pid.
    private func awaitRecord() throws -> PendingConfirmation? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: recordTimeout)
        while clock.now < deadline {
            if let record = try file.read(), record.ownerIdentity == ProcessIdentity.current, record.state == .pending { return record }
            usleep(20_000)
        }
        logger.notice("no pending-confirmation record at \(file.path) names pid \(getpid()); nothing to wait for")
        return nil
    }
}

#endif
