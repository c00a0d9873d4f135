import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

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
    var reconciler: Reconciler
    let monitor: NetlinkMonitor?
    /// Interface address changes, for `roles = "auto"` (nil when the host's addresses are fixed by options).
    let addressMonitor: AddressMonitor?
    let notifier: SystemdNotifier
    let logger: Logger
    let stateFile: StateFile
    let pendingFile: PendingFile

    var watcher: ConfigWatcher?
    /// The files the watcher follows: the config, and the catalog file it names.
    var watchedPaths: [FilePath] = []
    var source: ConfigSource { ConfigSource(configPath: options.configPath, requireSecure: options.requireSecureConfig) }
    var addressWatch: HostAddressWatch?
    /// Listens and counts while a direction is in audit mode.
    var audit: AuditRecorder?
    var retryTimer: EventLoop.Timer?
    var backstopTimer: EventLoop.Timer?
    var watchdogTimer: EventLoop.Timer?
    var confirmTimer: EventLoop.Timer?
    var backoff = RetryBackoff()
    /// Arms the retry timer; tests replace it to run the retries on a clock of their own.
    lazy var scheduleRetry: (Duration) -> Void = { [unowned self] in self.retryTimer?.schedule(after: $0) }
    /// Directory warnings already logged: a ConfigMap volume (mode 0777) would repeat them on every reload.
    var loggedDirectoryWarnings = Set<String>()

    /// The last config that parsed and validated, and its plan: what is (or is being) enforced.
    public internal(set) var desired: Ruleset?
    var configHash: String?
    /// The last config said `roles = "auto"`: interface address changes re-plan.
    var autoRoles = false
    /// Why the fail-closed baseline stands in for a plan; nil while a plan is enforced (or nothing,
    /// with `[enforce] unresolved = "open"`).
    public internal(set) var baselineReason: String?
    /// The state file of the run before this one says it left the baseline in the kernel.
    let earlierRunLeftBaseline: Bool
    var appliedAt: Date?
    var lastError: EnforcedState.Failure?
    /// Reconciles, config reads and their timings, for the metrics file.
    public internal(set) var metrics = DaemonMetrics()
    let metricsFile: MetricsFile?
    var metricsTimer: EventLoop.Timer?
    /// Audit mode's would-be-dropped packets per direction, flows left out of the report and
    /// packets lost in the kernel, for status and metrics; zero when nothing was audited.
    public var auditTotals: AuditRecorder.Totals { audit?.totals ?? AuditRecorder.Totals() }

    /// The audit totals for the metrics file; nil until a direction was audited.
    var auditMetrics: AuditTotals? {
        guard let audit, audit.hasCounts else { return nil }
        let t = audit.totals
        return AuditTotals(packets: ["ingress": t.ingressPackets, "egress": t.egressPackets], flowsLeftOut: t.leftOutFlowsEstimate)
    }
    /// A config change waiting for `fwenforcerd confirm` (with `confirmWithin`).
    struct Provisional {
        var configHash: String
        var record: PendingConfirmation
        /// What a rollback restores (nil: no table), and the config it was planned from.
        var previous: Ruleset?
        var previousHash: String?
    }
    var provisional: Provisional?
    /// A config whose provisional ruleset was rolled back: refused until the file's content changes,
    /// so neither SIGHUP, the backstop nor a restart of the daemon puts it back.
    public internal(set) var refusedHash: String?

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
    func wireReconciler() {
        guard let monitor else { return }
        reconciler.pendingCommits = { (try? monitor.drain()) ?? [] }
        (reconciler.backend as? NetlinkBackend)?.tableUntouched = { [unowned self] table, from, to in
            self.monitorSawNoChange(to: table, after: from, upTo: to)
        }
    }

    /// Whether the commits after generation `from` up to `to` all left `table` alone, from the
    /// monitor; the events it drained go to the reconciler as usual.
    func monitorSawNoChange(to table: String, after from: UInt32, upTo to: UInt32) -> Bool {
        guard let monitor, monitor.table == table else { return false }
        let (untouched, events) = monitor.drainCheckingTable(after: from, upTo: to)
        for event in events { reconciler.note(event) }
        return untouched
    }

    /// `[enforce] table` changed: fwenforcer's table takes the new name, and the old (marked)
    /// table is deleted in the same batch that creates the new one.
    func switchTable(to name: String) {
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
        try loop.handleSignalsWithInfo(SignalMask.daemonSignals, { [unowned self] info in
            if info.signal == SIGUSR1 {
                self.confirm(token: info.queued ? info.value : nil, from: info.senderPID)
            } else {
                self.handle(signal: info.signal)
            }
        })
        if let monitor {
            _ = try loop.watchReadable(FileDescriptor(rawValue: monitor.fileDescriptor)) { [unowned self] in
                self.monitorReadable()
            }
        }
        if let addressMonitor {
            // Debounced, and only a real change of the address set counts (not RA lifetime refreshes).
            addressWatch = try HostAddressWatch(monitor: addressMonitor, loop: loop) { [unowned self] in
                if self.autoRoles { self.reload(force: true, reason: .addressesChanged) }
            }
        }
        watchedPaths = source.watchedPaths(catalog: nil)
        watcher = try makeWatcher(watchedPaths)
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

        recoverInterruptedWindow()
        reload(force: true, reason: .start)
        notify { try $0.ready(status: self.statusLine()) }
        defer { shutdown() }
        try loop.run()
    }

    /// The watcher of `paths`: a change of any of them re-reads the sources.
    func makeWatcher(_ paths: [FilePath]) throws -> ConfigWatcher {
        try ConfigWatcher(paths: paths, loop: loop, debounce: options.debounce,
                          maximumDelay: max(options.debounce, .seconds(1))) { [unowned self] in
            self.reload(force: false, reason: .configChanged)
        } onModeChange: { [unowned self] mode in
            // A full watch table or a missing capability must not stop the daemon: it polls.
            switch mode {
            case .polling(let error):
                self.logger.warning("config watch: \(error); polling \(self.watchedPaths.map(\.string).joined(separator: " and ")) every \(ConfigWatcher.defaultPollInterval) (stat and SHA-256) until inotify works again")
            case .inotify:
                self.logger.notice("config watch: inotify works again, polling stopped")
            }
            self.metrics.recordConfigWatch(polling: mode != .inotify)
            self.writeMetrics()
        }
    }

    /// Follows `paths` from now on (the config named another catalog file).
    func watch(_ paths: [FilePath]) {
        guard paths != watchedPaths, watcher != nil else { return }
        do {
            let next = try makeWatcher(paths)
            watcher?.close()
            watcher = next
            watchedPaths = paths
            logger.info("watching \(paths.map(\.string).joined(separator: " and "))")
        } catch {
            logger.warning("cannot watch \(paths.map(\.string).joined(separator: " and ")): \(error); the backstop re-reads them")
        }
    }

    func shutdown() {
        watcher?.close()
        addressWatch?.close()
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
            confirm(token: nil, from: 0)
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

    func reloadConfig(force: Bool, reason: ReconcileReason) {
        let path = options.configPath
        // What the baseline can use if this read fails, worked out only then (a second parse of a
        // large config has no place on the path of every change): the parsed config, or the
        // parts of the file that parse on their own.
        var configBytes: [UInt8]?
        var parsed: Config?
        var readHash: String?
        do {
            // The config and the catalog file it names, each checked and read from one
            // descriptor: no window to swap a file in between.
            let configFile = try source.readConfig()
            configBytes = configFile.bytes
            let prepared = source.prepare(configFile.bytes)
            defer { prepared.release() }
            let catalogPath = source.catalogPath(named: prepared)
            watch(source.watchedPaths(catalog: catalogPath))
            let contents = try source.read(catalog: catalogPath, config: configFile)
            for warning in contents.warnings where loggedDirectoryWarnings.insert("\(warning)").inserted {
                logger.warning("\(warning)")
            }
            let hash = contents.hash
            readHash = hash
            if !force && hash == configHash && desired != nil { return }
            // The rule `check` applies too: bytes that are not UTF-8 are refused, not replaced.
            let text = try prepared.text ?? Config.text(of: contents.configBytes, file: path)
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
            let config = try source.parse(contents, text: text, document: prepared.document)
            parsed = config
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
                // Nothing valid has been enforced yet: fail closed. Lossy decoding is right here:
                // admin_ssh may still be read from the intact lines of a file that is not UTF-8.
                let salvage = parsed.map(Baseline.Inputs.init)
                    ?? configBytes.map { .salvage(text: String(decoding: $0, as: UTF8.self), file: path) } ?? Baseline.Inputs()
                logger.error("config rejected (\(reason)): \(error)")
                failClosed(salvage, hash: readHash, because: "\(error)", reason: reason)
                return
            }
            logger.error("config rejected (\(reason)): \(error); the last good ruleset stays enforced")
            publish(status: "config rejected: \(error)")
        }
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
            backoff.succeeded()
            retryTimer?.cancel()
            publish()
            return outcome
        } catch {
            metrics.recordReconcile(ok: false, duration: ContinuousClock.now - start, messages: 0, driftRepair: false, at: Date())
            lastError = EnforcedState.Failure(message: "\(error)", at: Date())
            let retryDelay = backoff.failed()
            let next: String
            if case BackendError.notOwned = error {
                next = "nothing was changed; retrying in \(retryDelay)"
            } else if reconciler.knowledge == .mustReplace {
                next = "the previous ruleset stays whole; retrying in \(retryDelay) with a full replace"
            } else {
                next = "retrying in \(retryDelay) after reading the table"
            }
            logger.error("reconcile (\(reason)) failed: \(error); \(next)")
            scheduleRetry(retryDelay)
            publish(status: "reconcile failed: \(error)")
            return nil
        }
    }

    func retry() {
        guard let desired else { return }
        enforce(desired, reason: .retry)
    }

    /// Applies pending monitor events to the reconciler without acting on drift (the pass that
    /// follows reads the kernel when needed).
    func drainQuietly() {
        guard let monitor, let events = try? monitor.drain() else { return }
        for event in events { reconciler.note(event) }
    }
}
