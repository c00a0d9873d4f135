import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm",
        abstract: "Keep a provisional change (apply or run with --confirm-within) before its window ends.",
        discussion: """
        Signals the process that would roll the change back (SIGUSR1, carrying the change's token from the \
        pending record) and waits for it to acknowledge. The owner keeps exactly that change: if a newer \
        change (automation, etcd) replaced it meanwhile, the confirmation is refused and the newer one stays \
        provisional. With --change, only the change of that config hash is confirmed. \
        Exit 0 when the change is confirmed; 1 when nothing is pending, the pending change is another, the \
        window has passed (the previous ruleset was restored), or no acknowledgement came.
        """)

    @Option(help: ArgumentHelp("Pending-confirmation record.", valueName: "path"))
    var pendingFile: String = PendingFile.defaultPath.string

    @Option(help: ArgumentHelp("Confirm only the change of this config (a prefix of its SHA-256, as the apply line or `status` shows it).",
                               valueName: "sha256"))
    var change: String?

    func run() throws {
        let result: Confirmation.Result
        do {
            result = try Confirmation.confirm(PendingFile(path: FilePath(pendingFile)), expected: change)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        switch result {
        case .confirmed(let record):
            print("confirmed: the ruleset of \(record.configPath) (sha256 \(record.configSHA256.prefix(12))) stays enforced (\(record.applied))")
        case .nothingPending(let why):
            printError("nothing to confirm: \(why)")
            throw ExitCode(1)
        case .superseded(let old, let new):
            printError("not confirmed: config sha256 \(old.configSHA256.prefix(12)) was replaced before the confirmation arrived by config sha256 \(new.configSHA256.prefix(12)) (\(new.applied)), which you have not confirmed; it stays provisional until \(ISO8601Format.string(new.deadline)). Check it, then run confirm again")
            throw ExitCode(1)
        case .notTheNamedChange(let record, let expected):
            printError("not confirmed: the pending change is config sha256 \(record.configSHA256.prefix(12)) (\(record.applied)), not \(expected); nothing was sent")
            throw ExitCode(1)
        case .tooLate(let record):
            let what = record.state == .rollbackFailed ? "the rollback failed (\(record.outcome ?? "")); the provisional ruleset may still be enforced"
                : "\(record.previousDescription) was restored\(record.outcome.map { " (\($0))" } ?? "")"
            printError("too late: the window ended at \(ISO8601Format.string(record.deadline)); \(what). Apply again to retry.")
            throw ExitCode(1)
        case .noAnswer(let record):
            printError("no acknowledgement from pid \(record.pid) within 5 s; check `fwenforcerd status` and \(pendingFile)")
            throw ExitCode(1)
        }
    }
}

/// The detached process of `apply --confirm-within` (not for operators).
struct ConfirmWait: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "confirm-wait",
        abstract: "Wait for `fwenforcerd confirm` of a provisional apply, or roll it back (started by apply).",
        shouldDisplay: false)

    @Option var pendingFile: String

    func run() throws {
        // Blocked already by the spawner; again before any thread exists, so only the signalfd sees them.
        try SignalMask.block(ConfirmationWaiter.signals)
        // The operator's terminal may be gone; a write to it must not kill the waiter.
        signal(SIGPIPE, SIG_IGN)
        LoggingSystem.bootstrap { label in
            MultiplexLogHandler([JournalLogHandler.standardError(label: label), SyslogLogHandler(label: label)])
        }
        let logger = Logger(label: "fwenforcerd confirm-wait")
        do {
            let backend = try NetlinkBackend()
            defer { backend.close() }
            let outcome = try ConfirmationWaiter(file: PendingFile(path: FilePath(pendingFile)), backend: backend, logger: logger).run()
            if case .rollbackFailed = outcome { throw ExitCode(1) }
        } catch let e as ExitCode {
            throw e
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
    }
}
