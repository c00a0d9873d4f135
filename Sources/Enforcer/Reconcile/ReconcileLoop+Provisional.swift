import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif


/// The daemon's provisional windows (`run --confirm-within`): opened by an operator's change,
/// kept by a confirmation that names the change, ended by a rollback, recovered after a crash.
extension ReconcileLoop {
    /// Called before `ruleset` (the plan of config `hash`) is enforced: opens a confirmation window
    /// when a new config content changes what the kernel holds. A newer change within a window gets a window of its
    /// own, and a rollback still restores the last confirmed ruleset; a change back to that ruleset
    /// closes the window.
    func beginProvisional(_ ruleset: Ruleset, hash: String, window: Duration) {
        let previous: Ruleset?, previousHash: String?
        // The enforced config planned again (interface addresses changed, roles = "auto"): no
        // operator change, nothing to confirm.
        if provisional == nil && hash == configHash { return }
        if let p = provisional {
            // The same content read again (SIGHUP, backstop, address change): the window runs on.
            if hash == p.configHash { return }
            (previous, previousHash) = (p.previous, p.previousHash)
        } else if let desired, lastError == nil {
            // The kernel holds `desired` (drift is repaired as it happens), so it need not be dumped.
            (previous, previousHash) = (desired, configHash)
        } else {
            // No valid config yet, or the last pass failed: what comes back is what the kernel holds.
            do {
                (previous, previousHash) = (try reconciler.backend.read(table: reconciler.table).ruleset, nil)
            } catch {
                logger.error("cannot read table \(reconciler.table) to make config sha256 \(hash.prefix(12)) provisional (\(error)); it is enforced unconfirmed")
                return
            }
        }
        let tx = Diff.transaction(from: previous, to: ruleset)
        guard !tx.operations.isEmpty else {
            if provisional != nil {
                endProvisional()
                logger.notice("config \(options.configPath) (sha256 \(hash.prefix(12))) plans the confirmed ruleset again: nothing to confirm")
            }
            return
        }
        let record = PendingConfirmation(owner: .daemon, table: reconciler.table, deadline: PendingConfirmation.deadline(after: window),
                                         configPath: options.configPath, configSHA256: hash,
                                         applied: Reconciler.describe(tx).joined(separator: ", "),
                                         previousConfigSHA256: previousHash, previous: previous)
        if let other = try? pendingFile.read(), other.state == .pending, other.pid != getpid(), other.ownerIsAlive {
            logger.warning("pending-confirmation record \(pendingFile.path) of pid \(other.pid) replaced by this daemon's")
        }
        do {
            try pendingFile.write(record)
        } catch {
            logger.error("\(error); `fwenforcerd confirm` cannot find this change: queue SIGUSR1 with value \(record.token ?? 0) to pid \(getpid()) instead")
        }
        provisional = Provisional(configHash: hash, record: record, previous: previous, previousHash: previousHash)
        confirmTimer?.schedule(after: .milliseconds(Int64(max(0, record.deadline.timeIntervalSinceNow) * 1000)))
        logger.notice("config \(options.configPath) (sha256 \(hash.prefix(12))) is provisional: run `fwenforcerd confirm` before \(ISO8601Format.string(record.deadline)), or \(previousHash.map { "the ruleset of config sha256 \($0.prefix(12))" } ?? record.previousDescription) comes back")
    }
    /// A daemon that died (crash, SIGKILL, the watchdog) during a window of its own left a pending
    /// record: the change in it was never confirmed, so it must not become permanent by the
    /// restart. The previous ruleset comes back, in one batch, and the unconfirmed config is
    /// refused until the file changes, as if the window had ended. (Resuming the window instead
    /// would keep an unverified change enforced across a crash that may have been caused by it.)
    func recoverInterruptedWindow() {
        guard let record = try? pendingFile.read(), record.owner == .daemon, record.state == .pending,
              !record.ownerIsAlive || record.ownerIdentity == ProcessIdentity.current else { return }
        if record.table != reconciler.table { switchTable(to: record.table) }
        logger.error("config \(record.configPath) (sha256 \(record.configSHA256.prefix(12))) was provisional when the daemon owning its window (pid \(record.pid)) stopped without a confirmation: restoring \(record.previousConfigSHA256.map { "the ruleset of config sha256 \($0.prefix(12))" } ?? record.previousDescription); sha256 \(record.configSHA256.prefix(12)) is refused until the file changes")
        provisional = Provisional(configHash: record.configSHA256, record: record, previous: record.previous,
                                  previousHash: record.previousConfigSHA256)
        rollBack(reason: "was not confirmed before its daemon stopped")
    }
    /// SIGUSR1 carrying `token`: keeps the provisional ruleset when the token names it. A plain
    /// SIGUSR1 (no token), or one meant for a change a newer one replaced, keeps nothing: the
    /// operator verified some change, and it is not this one.
    func confirm(token: Int32?, from sender: Int32) {
        guard let p = provisional else {
            logger.notice("SIGUSR1: nothing to confirm")
            return
        }
        guard let token, token == p.record.token else {
            logger.warning("SIGUSR1 from pid \(sender) \(token == nil ? "names no change" : "names another change than the pending one"): config sha256 \(p.configHash.prefix(12)) stays provisional until \(ISO8601Format.string(p.record.deadline)); confirm it with `fwenforcerd confirm`")
            return
        }
        endProvisional()
        logger.notice("confirmed: config \(options.configPath) (sha256 \(p.configHash.prefix(12))) stays enforced")
        publish()
    }

    func endProvisional() {
        provisional = nil
        confirmTimer?.cancel()
        if let r = try? pendingFile.read(), r.pid == getpid() { pendingFile.remove() }
    }
    /// The window passed (or the daemon stops) without a confirmation: restores the previous
    /// ruleset and refuses the unconfirmed config until the file changes.
    func rollBack(reason: String) {
        guard let p = provisional else { return }
        provisional = nil
        confirmTimer?.cancel()
        var record = p.record
        record.state = .rollingBack
        try? pendingFile.write(record)
        logger.error("config \(options.configPath) (sha256 \(p.configHash.prefix(12))) \(reason): restoring \(p.previousHash.map { "the ruleset of config sha256 \($0.prefix(12))" } ?? record.previousDescription); sha256 \(p.configHash.prefix(12)) is refused until the file changes")
        refusedHash = p.configHash
        configHash = p.previousHash
        desired = p.previous
        if let previous = p.previous {
            if previous.tableName != reconciler.table { switchTable(to: previous.tableName) }
            let outcome = enforce(previous, reason: .rollback)
            record.state = outcome == nil ? .rollbackFailed : .rolledBack
            record.outcome = outcome?.summary ?? lastError?.message
        } else {
            do {
                try reconciler.remove()
                record.state = .rolledBack
                record.outcome = "table \(reconciler.table) deleted (there was none before)"
                logger.notice("reconcile (rollback): \(record.outcome!)")
            } catch {
                record.state = .rollbackFailed
                record.outcome = "\(error)"
                logger.error("reconcile (rollback) failed: \(error)")
            }
        }
        try? pendingFile.write(record)
        publish()
    }
}
