import Foundation
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Settings of `fwenforcerd run`.
public struct DaemonOptions: Sendable {
    public var configPath: String
    /// Quiet time after the last config file event before it is read.
    public var debounce: Duration = .milliseconds(100)
    /// Period of the slow backstop: re-read the config and the kernel's table and repair.
    public var backstop: Duration = .seconds(600)
    /// Delete the table on SIGTERM/SIGINT instead of leaving the enforced ruleset in place.
    public var removeOnExit = false
    /// Refuse a config file not owned by root or writable by group/other (as sshd does).
    public var requireSecureConfig = true
    /// This host's addresses for `roles = "auto"`; nil reads the interfaces at every reload.
    public var hostAddresses: [IPAddress]?
    public var statePath: FilePath = StateFile.defaultPath
    /// Prometheus textfile (node_exporter's textfile collector); nil writes no metrics.
    public var metricsPath: FilePath?
    /// How often the metrics file is refreshed between events, to update the kernel's drop
    /// counters; zero refreshes it only after reconciles and config reads.
    public var metricsInterval: Duration = .seconds(60)
    /// The audit report; nil puts `audit.json` beside the state file.
    public var auditReportPath: FilePath?
    /// Cap on the distinct flows the audit report keeps (memory stays bounded under a flood).
    public var auditMaxFlows = 10_000

    /// Where the audit report goes.
    public var effectiveAuditReportPath: FilePath {
        auditReportPath ?? statePath.removingLastComponent().appending(Self.auditReportName)
    }

    public static let auditReportName = "audit.json"
    /// Makes every config change that changes the ruleset provisional: it is rolled back, and that
    /// config content refused, unless SIGUSR1 (`fwenforcerd confirm`) arrives within this time.
    public var confirmWithin: Duration?
    /// The pending-confirmation record `fwenforcerd confirm` reads.
    public var pendingPath: FilePath = PendingFile.defaultPath

    public init(configPath: String) { self.configPath = configPath }
}

/// Why a pass runs: named in its log line, and deciding what the pass may do (a provisional
/// window opens only for an operator's change, the backstop stays quiet when nothing changed).
public enum ReconcileReason: Sendable, Hashable, CustomStringConvertible {
    case start
    case configChanged
    case addressesChanged
    case sighup
    case backstop
    case driftRepair
    case retry
    case rollback

    public var description: String {
        switch self {
        case .start: "start"
        case .configChanged: "config changed"
        case .addressesChanged: "interface addresses changed"
        case .sighup: "SIGHUP"
        case .backstop: "backstop"
        case .driftRepair: "drift repair"
        case .retry: "retry"
        case .rollback: "rollback"
        }
    }
}

/// The daemon: keeps the kernel equal to the plan of the current config.
///
/// Everything runs on one thread in one `EventLoop`: config file events (debounced), nftables
/// events from other writers (drift), signals, the systemd watchdog, a retry timer after failures
/// and a slow backstop timer. Reconciles are serialised by construction; the process sleeps in
/// `epoll_wait` when idle.
public final class ReconcileLoop {
    let options: DaemonOptions
    let loop: EventLoop
    /// Replaced when `[enforce] table` changes: the new one deletes the old table in its first batch.
    private(set) var reconciler: Reconciler
    let monitor: NetlinkMonitor?
    /// Interface address changes, for `roles = "auto"` (nil when the host's addresses are fixed by options).
    let addressMonitor: AddressMonitor?
    let notifier: SystemdNotifier
    let logger: Logger
    let stateFile: StateFile
    let pendingFile: PendingFile

    private var watcher: ConfigWatcher?
    /// Listens and counts while a direction is in audit mode.
    private var audit: AuditRecorder?
    private var retryTimer: EventLoop.Timer?
    private var backstopTimer: EventLoop.Timer?
    private var watchdogTimer: EventLoop.Timer?
    private var confirmTimer: EventLoop.Timer?
    private var retryDelay: Duration = .seconds(1)
    /// Directory warnings already logged: a ConfigMap volume (mode 0777) would repeat them on every reload.
    private var loggedDirectoryWarnings = Set<String>()

    /// The last config that parsed and validated, and its plan: what is (or is being) enforced.
    public private(set) var desired: Ruleset?
    private var configHash: String?
    /// The last config said `roles = "auto"`: interface address changes re-plan.
    private var autoRoles = false
    /// Why the fail-closed baseline stands in for a plan; nil while a plan is enforced (or nothing,
    /// with `[enforce] unresolved = "open"`).
    public private(set) var baselineReason: String?
    /// The state file of the run before this one says it left the baseline in the kernel.
    private let earlierRunLeftBaseline: Bool
    private var appliedAt: Date?
    private var lastError: EnforcedState.Failure?
    /// Reconciles, config reads and their timings, for the metrics file.
    public private(set) var metrics = DaemonMetrics()
    private let metricsFile: MetricsFile?
    private var metricsTimer: EventLoop.Timer?
    /// Audit mode's would-be-dropped packets per direction, flows left out of the report and
    /// packets lost in the kernel, for status and metrics; zero when nothing was audited.
    public var auditTotals: AuditRecorder.Totals { audit?.totals ?? AuditRecorder.Totals() }

    /// The audit totals for the metrics file; nil until a direction was audited.
    private var auditMetrics: AuditTotals? {
        guard let audit, audit.hasCounts else { return nil }
        let t = audit.totals
        return AuditTotals(packets: ["ingress": t.ingressPackets, "egress": t.egressPackets], flowsLeftOut: t.leftOutFlowsEstimate)
    }
    /// A config change waiting for `fwenforcerd confirm` (with `confirmWithin`).
    private struct Provisional {
        var configHash: String
        var record: PendingConfirmation
        /// What a rollback restores (nil: no table), and the config it was planned from.
        var previous: Ruleset?
        var previousHash: String?
    }
    private var provisional: Provisional?
    /// A config whose provisional ruleset was rolled back: refused until the file's content changes,
    /// so neither SIGHUP, the backstop nor a restart of the daemon puts it back.
    public private(set) var refusedHash: String?

    public init(options: DaemonOptions, loop: EventLoop, backend: any Backend, monitor: NetlinkMonitor?,
                addressMonitor: AddressMonitor? = nil, table: String = defaultTableName,
                notifier: SystemdNotifier, logger: Logger) {
        self.addressMonitor = addressMonitor
        self.options = options
        self.loop = loop
        self.reconciler = Reconciler(backend: backend, table: table)
        self.monitor = monitor
        self.notifier = notifier
        self.logger = logger
        self.stateFile = StateFile(path: options.statePath)
        self.metricsFile = options.metricsPath.map(MetricsFile.init)
        self.pendingFile = PendingFile(path: options.pendingPath)
        // A refusal outlives a restart: otherwise restarting the daemon would enforce, unconfirmed,
        // the config that was just rolled back.
        let state = try? stateFile.read()
        self.refusedHash = state?.refusedConfigSHA256
        self.earlierRunLeftBaseline = state?.baseline != nil
        // A table managed under another name before the restart is deleted with the first batch.
        if let old = state?.table, old != table { reconciler.retire([old]) }
        wireReconciler()
    }

    /// Lets the reconciler read the monitor's news itself (an ERESTART caused by a commit to
    /// another table is then retried without reading this one).
    private func wireReconciler() {
        guard let monitor else { return }
        reconciler.pendingCommits = { (try? monitor.drain()) ?? [] }
    }

    /// `[enforce] table` changed: fwenforcer's table takes the new name, and the old (marked)
    /// table is deleted in the same batch that creates the new one.
    private func switchTable(to name: String) {
        let old = reconciler.table
        let next = Reconciler(backend: reconciler.backend, table: name)
        next.retire([old] + reconciler.retiring)
        reconciler = next
        monitor?.table = name
        wireReconciler()
        logger.notice("[enforce] table is now \(name): table inet \(old) is deleted in the batch that creates table inet \(name)")
    }

    /// Sets up every event source, enforces the current config, tells systemd it is ready, and
    /// runs until SIGTERM/SIGINT.
    public func run() throws {
        try loop.handleSignals(SignalMask.daemonSignals) { [unowned self] signal in
            self.handle(signal: signal)
        }
        if let monitor {
            _ = try loop.watchReadable(FileDescriptor(rawValue: monitor.fileDescriptor)) { [unowned self] in
                self.monitorReadable()
            }
        }
        if let addressMonitor {
            _ = try loop.watchReadable(FileDescriptor(rawValue: addressMonitor.fileDescriptor)) { [unowned self] in
                // Drained always; acted on only when the roles follow the addresses.
                if addressMonitor.drain() && self.autoRoles { self.reload(force: true, reason: .addressesChanged) }
            }
        }
        watcher = try ConfigWatcher(paths: [FilePath(options.configPath)], loop: loop, debounce: options.debounce,
                                    maximumDelay: max(options.debounce, .seconds(1))) { [unowned self] in
            self.reload(force: false, reason: .configChanged)
        }
        audit = try AuditRecorder(loop: loop, reportPath: options.effectiveAuditReportPath, maxFlows: options.auditMaxFlows,
                                  logger: logger)
        retryTimer = try loop.makeTimer { [unowned self] in self.retry() }
        backstopTimer = try loop.makeTimer { [unowned self] in
            self.reconciler.noteForeignChange()
            self.reload(force: true, reason: .backstop)
        }
        backstopTimer?.schedule(after: options.backstop, repeating: options.backstop)
        if metricsFile != nil, options.metricsInterval > .zero {
            metricsTimer = try loop.makeTimer { [unowned self] in self.writeMetrics() }
            metricsTimer?.schedule(after: options.metricsInterval, repeating: options.metricsInterval)
        }
        confirmTimer = try loop.makeTimer { [unowned self] in
            self.rollBack(reason: "not confirmed within \(self.options.confirmWithin?.components.seconds ?? 0) s")
        }
        watchdogTimer = try notifier.scheduleWatchdog(on: loop) { [logger] error in
            logger.warning("watchdog ping failed: \(error)")
        }

        reload(force: true, reason: .start)
        notify { try $0.ready(status: self.statusLine()) }
        defer { shutdown() }
        try loop.run()
    }

    private func shutdown() {
        watcher?.close()
        audit?.close()
        for t in [retryTimer, backstopTimer, watchdogTimer, metricsTimer, confirmTimer] { t?.invalidate() }
    }

    // MARK: - events

    func handle(signal: Int32) {
        switch signal {
        case SIGHUP:
            notify { try $0.reloading(status: "reloading") }
            reconciler.noteForeignChange()
            reload(force: true, reason: .sighup)
            notify { try $0.ready(status: self.statusLine()) }
        case SIGUSR1:
            confirm()
        default:
            notify { try $0.stopping(status: "stopping") }
            // An unconfirmed change must not outlive the process that owns its window.
            if provisional != nil { rollBack(reason: "the daemon is stopping before a confirmation") }
            if options.removeOnExit {
                do {
                    try reconciler.remove()
                    logger.notice("stopping: table \(reconciler.table) removed (--remove-on-exit)")
                } catch {
                    logger.error("stopping: could not remove table \(reconciler.table): \(error)")
                }
            } else {
                logger.notice("stopping: the enforced ruleset stays in place (fail closed)")
            }
            loop.stop()
        }
    }

    func monitorReadable() {
        guard let monitor else { return }
        let events: [MonitorEvent]
        do {
            events = try monitor.drain()
        } catch {
            logger.error("nftables monitor: \(error)")
            return
        }
        var drift: [String] = []
        for event in events {
            switch event {
            case .commit(let c):
                reconciler.note(c)
                if !c.own && c.touchedTable { drift.append("\(c.process.isEmpty ? "pid" : c.process)[\(c.pid)]") }
            case .overflow:
                reconciler.noteForeignChange()
                drift.append("lost events (monitor queue overflow)")
            }
        }
        guard !drift.isEmpty, let desired else { return }
        logger.warning("drift: table \(reconciler.table) changed by \(Set(drift).sorted().joined(separator: ", ")); restoring the plan")
        enforce(desired, reason: .driftRepair)
    }

    // MARK: - reconcile

    /// Reads the config (unless its content is unchanged and `force` is false), and enforces its
    /// plan. An invalid config changes nothing: the last good ruleset stays.
    func reload(force: Bool, reason: ReconcileReason) {
        reloadConfig(force: force, reason: reason)
        // Parsing a config of 100,000 peers peaks at several times the memory its plan needs;
        // glibc keeps freed memory mapped unless asked, which left the idle daemon at its peak RSS
        // (113 MiB at 100,000 peers, docs/benchmarks.md).
        releaseFreedMemory()
    }

    private func reloadConfig(force: Bool, reason: ReconcileReason) {
        let path = options.configPath
        // What the baseline can use if this read fails: the parts of the file that parse.
        var salvage = Baseline.Inputs()
        var readHash: String?
        do {
            if options.requireSecureConfig {
                for warning in try ConfigFileSecurity.check(FilePath(path)) where loggedDirectoryWarnings.insert("\(warning)").inserted {
                    logger.warning("\(warning)")
                }
            }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw InputError(file: path, line: nil, key: nil,
                                 message: FileManager.default.fileExists(atPath: path) ? "cannot read config file" : "config file does not exist")
            }
            let hash = SHA256.hex(of: data)
            readHash = hash
            if !force && hash == configHash && desired != nil { return }
            let text = String(decoding: data, as: UTF8.self)
            if let refused = refusedHash {
                if hash == refused {
                    if force && reason != .backstop {
                        logger.info("config \(path) (sha256 \(hash.prefix(12))) stays refused: it was rolled back for want of a confirmation; change the file to try again")
                    }
                    if let desired {
                        // The backstop still checks the kernel against what is enforced.
                        if force { enforce(desired, reason: reason) }
                    } else {
                        failClosed(.salvage(text: text, file: path), hash: hash,
                                   because: "config sha256 \(hash.prefix(12)) is refused (rolled back for want of a confirmation)", reason: reason)
                    }
                    return
                }
                refusedHash = nil
            }
            let config: Config
            do {
                config = try Config.parse(text: text, file: path)
            } catch {
                salvage = .salvage(text: text, file: path)
                throw error
            }
            salvage = Baseline.Inputs(config)
            autoRoles = config.host.roles == .auto
            for w in config.warnings { logger.warning("\(w)") }
            if config.enforce.table != reconciler.table { switchTable(to: config.enforce.table) }
            let roles = try config.resolveRoles(hostAddresses: options.hostAddresses ?? localInterfaceAddresses())
            let plan = Compiler.compile(config: config, roles: roles)
            if hash != configHash || baselineReason != nil {
                logger.info("config \(path) (sha256 \(hash.prefix(12))): roles \(roles.joined(separator: ", "))")
            }
            if let window = options.confirmWithin, reason != .start, baselineReason == nil {
                beginProvisional(plan.ruleset, hash: hash, window: window)
            }
            if let why = baselineReason {
                logger.notice("a valid plan exists: it replaces the fail-closed baseline (\(why))")
            }
            baselineReason = nil
            metrics.baselineActive = false
            configHash = hash
            metrics.recordConfig(sha256: hash)
            // Before the apply: the audit rule's packets need their listener bound.
            audit?.configure(config)
            desired = plan.ruleset
            enforce(plan.ruleset, reason: reason)
        } catch {
            lastError = EnforcedState.Failure(message: "\(error)", at: Date())
            metrics.configRejections += 1
            if desired == nil || baselineReason != nil {
                // Nothing valid has been enforced yet: fail closed.
                logger.error("config rejected (\(reason)): \(error)")
                failClosed(salvage, hash: readHash, because: "\(error)", reason: reason)
                return
            }
            logger.error("config rejected (\(reason)): \(error); the last good ruleset stays enforced")
            writeState()
            writeMetrics()
            notify { try $0.status("config rejected: \(error)") }
        }
    }

    /// No valid plan exists. At start, a table an earlier run of fwenforcer left in the kernel
    /// (marked, holding only what fwenforcer writes, not the baseline) stays: it is the last good
    /// ruleset, and replacing it with the baseline would cut every allowed flow of a host whose
    /// daemon merely restarted. Otherwise the baseline is enforced.
    private func failClosed(_ inputs: Baseline.Inputs, hash: String?, because why: String, reason: ReconcileReason) {
        if desired == nil, !earlierRunLeftBaseline, inputs.table == reconciler.table,
           let snapshot = try? reconciler.backend.read(table: reconciler.table), let kept = snapshot.ruleset,
           snapshot.marked, snapshot.foreign.isEmpty, !kept.chains.isEmpty {
            logger.warning("no valid plan (\(why)); table inet \(reconciler.table) as an earlier run of fwenforcer left it stays enforced")
            configHash = hash
            desired = kept
            enforce(kept, reason: reason)
            return
        }
        enforceBaseline(inputs, hash: hash, because: why, reason: reason)
    }

    /// No valid plan exists: enforces the fail-closed baseline (`Baseline`), unless the config
    /// opted out with `[enforce] unresolved = "open"`. A later valid plan replaces it in one batch.
    private func enforceBaseline(_ inputs: Baseline.Inputs, hash: String?, because why: String, reason: ReconcileReason) {
        guard inputs.enforce.unresolved == .baseline else {
            logger.warning("no valid plan, and [enforce] unresolved = \"open\": nothing is enforced until there is one")
            writeState()
            writeMetrics()
            notify { try $0.status("no valid plan; nothing enforced ([enforce] unresolved = open): \(why)") }
            return
        }
        if inputs.table != reconciler.table { switchTable(to: inputs.table) }
        let ruleset = Baseline.ruleset(inputs)
        if baselineReason == nil || desired != ruleset {
            let passing = "loopback, IPv6 essentials, replies"
                + (inputs.adminSSH.isEmpty ? "" : ", administrators' SSH from \(inputs.adminSSH.count) admin_ssh entr\(inputs.adminSSH.count == 1 ? "y" : "ies")")
                + (inputs.enforce.dhcpClient ? ", the DHCP client" : "")
            logger.warning("fail-closed baseline enforced (no valid plan: \(why)): policy drop both ways; only \(passing) pass")
        }
        baselineReason = why
        metrics.baselineActive = true
        configHash = hash
        desired = ruleset
        enforce(ruleset, reason: reason)
    }

    @discardableResult
    func enforce(_ ruleset: Ruleset, reason: ReconcileReason) -> Reconciler.Outcome? {
        // Take the monitor's news first, so the pass knows the current generation.
        if monitor != nil { drainQuietly() }
        let start = ContinuousClock.now
        do {
            let outcome = try reconciler.reconcile(to: ruleset)
            metrics.recordReconcile(ok: true, duration: ContinuousClock.now - start, messages: outcome.apply?.messages ?? 0,
                                    driftRepair: reason == .driftRepair, at: Date())
            if outcome.changed {
                appliedAt = Date()
                logger.notice("reconcile (\(reason)): \(outcome.summary)")
            } else if reason != .backstop {
                logger.info("reconcile (\(reason)): \(outcome.summary)")
            }
            lastError = nil
            retryDelay = .seconds(1)
            retryTimer?.cancel()
            writeState()
            writeMetrics()
            notify { try $0.status(self.statusLine()) }
            return outcome
        } catch {
            metrics.recordReconcile(ok: false, duration: ContinuousClock.now - start, messages: 0, driftRepair: false, at: Date())
            lastError = EnforcedState.Failure(message: "\(error)", at: Date())
            let next: String
            if case BackendError.notOwned = error {
                next = "nothing was changed; retrying in \(retryDelay)"
            } else if reconciler.knowledge == .mustReplace {
                next = "the previous ruleset stays whole; retrying in \(retryDelay) with a full replace"
            } else {
                next = "retrying in \(retryDelay) after reading the table"
            }
            logger.error("reconcile (\(reason)) failed: \(error); \(next)")
            retryTimer?.schedule(after: retryDelay)
            retryDelay = min(retryDelay * 2, .seconds(30))
            writeState()
            writeMetrics()
            notify { try $0.status("reconcile failed: \(error)") }
            return nil
        }
    }

    private func retry() {
        guard let desired else { return }
        enforce(desired, reason: .retry)
    }

    /// Applies pending monitor events to the reconciler without acting on drift (the pass that
    /// follows reads the kernel when needed).
    private func drainQuietly() {
        guard let monitor, let events = try? monitor.drain() else { return }
        for event in events {
            switch event {
            default: reconciler.note(event)
            }
        }
    }

    // MARK: - provisional changes

    /// Called before `ruleset` (the plan of config `hash`) is enforced: opens a confirmation window
    /// when a new config content changes what the kernel holds. A newer change within a window gets a window of its
    /// own, and a rollback still restores the last confirmed ruleset; a change back to that ruleset
    /// closes the window.
    private func beginProvisional(_ ruleset: Ruleset, hash: String, window: Duration) {
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
            logger.error("\(error); `fwenforcerd confirm` cannot find this change, send SIGUSR1 to pid \(getpid()) instead")
        }
        provisional = Provisional(configHash: hash, record: record, previous: previous, previousHash: previousHash)
        confirmTimer?.schedule(after: .milliseconds(Int64(max(0, record.deadline.timeIntervalSinceNow) * 1000)))
        logger.notice("config \(options.configPath) (sha256 \(hash.prefix(12))) is provisional: run `fwenforcerd confirm` before \(ISO8601Format.string(record.deadline)), or \(previousHash.map { "the ruleset of config sha256 \($0.prefix(12))" } ?? record.previousDescription) comes back")
    }

    /// SIGUSR1: keeps the provisional ruleset.
    func confirm() {
        guard let p = provisional else {
            logger.notice("SIGUSR1: nothing to confirm")
            return
        }
        endProvisional()
        logger.notice("confirmed: config \(options.configPath) (sha256 \(p.configHash.prefix(12))) stays enforced")
        writeState()
        notify { try $0.status(self.statusLine()) }
    }

    private func endProvisional() {
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
        writeState()
        notify { try $0.status(self.statusLine()) }
    }

    // MARK: - state

    func statusLine() -> String {
        if let why = baselineReason {
            return "fail-closed baseline enforced (no valid plan: \(why))"
        }
        guard let desired else {
            if let r = refusedHash { return "no table enforced; refused config sha256 \(r.prefix(12)) (rolled back)" }
            return "no valid config yet: \(lastError?.message ?? "")"
        }
        let elements = desired.sets.reduce(0) { $0 + $1.elements.ranges.count }
        var s = "enforcing \(desired.chains.count) chains, \(desired.sets.count) sets, \(elements) elements"
        if let p = provisional { s += "; provisional config sha256 \(p.configHash.prefix(12)) until \(ISO8601Format.string(p.record.deadline)) (fwenforcerd confirm)" }
        if let r = refusedHash { s += "; refused config sha256 \(r.prefix(12)) (rolled back)" }
        if let e = lastError { s += "; last error: \(e.message)" }
        return s
    }

    private func writeState() {
        var counts: [String: Int] = [:]
        for s in desired?.sets ?? [] { counts[s.name] = s.elements.ranges.count }
        let state = EnforcedState(configPath: options.configPath, configSHA256: configHash ?? "",
                                  appliedAt: appliedAt, generation: reconciler.generation ?? 0,
                                  lastError: lastError, setElementCounts: counts,
                                  confirmBy: provisional?.record.deadline, refusedConfigSHA256: refusedHash,
                                  table: reconciler.table, baseline: baselineReason)
        do {
            try stateFile.write(state)
        } catch {
            logger.warning("\(error)")
        }
    }

    /// Rewrites the metrics file: the loop's counts, the planned sets, and the kernel's rule
    /// counters (one dump of the table's rules; skipped, and said so, when it fails).
    private func writeMetrics() {
        guard let metricsFile else { return }
        var counters: [RuleCounter]?
        do {
            counters = try reconciler.backend.counters(table: reconciler.table)
        } catch {
            logger.warning("metrics: cannot read the rule counters: \(error)")
        }
        let text = MetricsText.render(metrics, desired: desired, counters: counters, audit: auditMetrics,
                                      nftablesGeneration: reconciler.generation)
        do {
            try metricsFile.write(text)
        } catch {
            logger.warning("metrics: \(error)")
        }
    }

    private func notify(_ send: (SystemdNotifier) throws -> Void) {
        do {
            try send(notifier)
        } catch {
            logger.warning("sd_notify: \(error)")
        }
    }
}
