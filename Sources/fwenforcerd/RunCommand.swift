import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the daemon: enforce the config, watch it, reconcile changes, repair drift.",
        discussion: """
        Watches the config file (in-place writes, write-and-rename, symlink swaps), reloads on SIGHUP, \
        and restores the plan when anything else changes the table. Stops on SIGTERM/SIGINT and leaves \
        the enforced ruleset in place unless --remove-on-exit. Speaks the sd_notify protocol when \
        started by systemd (Type=notify, watchdog).
        """)

    @Option(name: .shortAndLong, help: ArgumentHelp("Config file.", valueName: "file"))
    var config: String = defaultConfigPath

    @Flag(help: "Delete the table when stopping (default: leave it enforced).")
    var removeOnExit = false

    @Option(help: ArgumentHelp("Quiet time after in-place writes to the config before reading it (a rename into place is read at once).", valueName: "ms"))
    var debounceMs: Int = 100

    @Option(help: ArgumentHelp("Period of the backstop re-read of config and kernel.", valueName: "seconds"))
    var backstopSeconds: Int = 600

    @Option(help: ArgumentHelp("State file for `status`.", valueName: "path"))
    var stateFile: String = StateFile.defaultPath.string

    @Option(help: ArgumentHelp("Lock file that keeps one daemon per host.", valueName: "path"))
    var lockFile: String = InstanceLock.defaultPath.string

    @Option(help: ArgumentHelp("Audit report written in audit mode (default: audit.json beside the state file).", valueName: "path"))
    var auditReport: String?

    @Option(help: ArgumentHelp("Most distinct flows the audit report keeps; packets of further flows are only counted.", valueName: "n"))
    var auditMaxFlows: Int = 10_000

    @Flag(help: "Accept a config file not owned by root or writable by others (tests only).")
    var allowInsecureConfig = false

    @Option(help: ArgumentHelp("Write Prometheus metrics to this file (for node_exporter's textfile collector; name it *.prom).",
                               valueName: "path"))
    var metricsFile: String?

    @Option(help: ArgumentHelp("Refresh the metrics file this often between reconciles (0: only after reconciles).",
                               valueName: "seconds"))
    var metricsInterval: Int = 60

    @Option(help: ArgumentHelp("Make each config change that changes the ruleset provisional: rolled back, and that config refused until the file changes, unless `fwenforcerd confirm` arrives within this time.",
                               valueName: "seconds"))
    var confirmWithin: Int?

    @Option(help: ArgumentHelp("Pending-confirmation record (with --confirm-within).", valueName: "path"))
    var pendingFile: String = PendingFile.defaultPath.string

    func validate() throws {
        guard (1...10_000_000).contains(auditMaxFlows) else { throw ValidationError("--audit-max-flows must be 1-10000000") }
        guard (1...60_000).contains(debounceMs) else { throw ValidationError("--debounce-ms must be 1-60000") }
        guard metricsInterval >= 0 else { throw ValidationError("--metrics-interval must be 0 or more") }
        guard backstopSeconds >= 1 else { throw ValidationError("--backstop-seconds must be at least 1") }
        if let confirmWithin, !(1...86_400).contains(confirmWithin) {
            throw ValidationError("--confirm-within must be 1-86400 seconds")
        }
    }

    func run() throws {
        // Signals are blocked before any other thread exists, so only the loop's signalfd sees them.
        try SignalMask.block(SignalMask.daemonSignals)
        LoggingSystem.bootstrap { JournalLogHandler.standardError(label: $0) }
        let logger = Logger(label: "fwenforcerd")
        try requireSupportedKernel(logger: logger)
        let lock: InstanceLock
        do {
            lock = try InstanceLock.acquire(at: FilePath(lockFile))
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        defer { lock.release() }
        // The table name comes from the config; an invalid config at start still starts the daemon
        // (it keeps whatever table is there and waits for a valid version).
        let table = (try? Config.load(path: config))?.enforce.table ?? defaultTableName
        var options = DaemonOptions(configPath: config)
        options.debounce = .milliseconds(debounceMs)
        options.backstop = .seconds(backstopSeconds)
        options.removeOnExit = removeOnExit
        options.requireSecureConfig = !allowInsecureConfig
        options.statePath = FilePath(stateFile)
        options.metricsPath = metricsFile.map { FilePath($0) }
        options.metricsInterval = .seconds(metricsInterval)
        options.auditReportPath = auditReport.map { FilePath($0) }
        options.auditMaxFlows = auditMaxFlows
        options.confirmWithin = confirmWithin.map { .seconds($0) }
        options.pendingPath = FilePath(pendingFile)
        do {
            let loop = try EventLoop()
            defer { loop.close() }
            let backend = try NetlinkBackend()
            defer { backend.close() }
            // [enforce] owner is read once: the table's flags belong to this daemon's socket.
            if (try? Config.load(path: config))?.enforce.owner == true {
                backend.tableOwnership = .owned
                let claim = try backend.claim(table: table)
                logger.notice("\(claim)")
            }
            let monitor = try NetlinkMonitor(table: table)
            defer { monitor.close() }
            // The daemon's commits are told by the socket that sends them, never by pid.
            monitor.ownPortIDs = [backend.portID]
            let addresses = try AddressMonitor()
            defer { addresses.close() }
            logger.notice("fwenforcerd starting: config \(config), table inet \(table)")
            let daemon = ReconcileLoop(options: options, loop: loop, backend: backend, monitor: monitor,
                                       addressMonitor: addresses, table: table,
                                       notifier: .fromProcessEnvironment(), logger: logger)
            try daemon.run()
            logger.notice("fwenforcerd stopped")
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
    }
}
