import ArgumentParser
import Enforcer
import Foundation
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// The installed config path; the systemd unit and `make install` use the same.
let defaultConfigPath = "/etc/fwenforcer/fwenforcer.conf"

@main
struct Fwenforcerd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fwenforcerd",
        abstract: "Compile a host's minimal firewall from a role catalog and enforce it with nftables.",
        discussion: """
        fwenforcerd reads fwenforcer.conf (this VM's roles and its peers' addresses, grouped by role), \
        compiles the ingress and egress allow-list the role catalog asks for, and programs it into one \
        nftables table (inet fwenforcer) over netlink.

        Start with a dry run:  fwenforcerd plan --config etc/fwenforcer.conf
        """,
        subcommands: [Plan.self, Check.self, Apply.self, Confirm.self, Run.self, Reload.self, Status.self, Report.self, CatalogCommand.self, ConfirmWait.self],
        defaultSubcommand: nil
    )
}

/// Options shared by commands that read a config file.
struct ConfigOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("Config file.", valueName: "file"))
    var config: String = defaultConfigPath

    @Option(name: .customLong("role"),
            help: ArgumentHelp("Plan as a host with this role (repeatable); overrides [host] roles.", valueName: "role"))
    var roles: [String] = []

    @Option(name: .customLong("host-address"),
            help: ArgumentHelp("With roles = \"auto\": plan as the host that owns this address (repeatable), instead of this machine.",
                               valueName: "address"))
    var hostAddresses: [String] = []

    /// Loads the config and resolves this host's roles; input errors are printed and exit 1.
    func load() throws -> (Config, [String]) {
        do {
            let cfg = try Config.load(path: config)
            for w in cfg.warnings { printError("warning: \(w)") }
            if !roles.isEmpty {
                for r in roles where !cfg.catalog.isRole(r) {
                    throw InputError(file: "--role", line: nil, key: nil, message: "unknown role \"\(r)\" in catalog \(cfg.catalog.name)")
                }
                return (cfg, roles)
            }
            var addrs = localInterfaceAddresses()
            if !hostAddresses.isEmpty {
                addrs = []
                for a in hostAddresses {
                    guard let ip = IPAddress(a) else {
                        throw InputError(file: "--host-address", line: nil, key: nil, message: "\"\(a)\" is not an IP address")
                    }
                    addrs.append(ip)
                }
            }
            return (cfg, try cfg.resolveRoles(hostAddresses: addrs))
        } catch let e as InputError {
            printError("error: \(e)")
            throw ExitCode(1)
        }
    }
}

enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
    case nft, json
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the ruleset this host would enforce (a dry run; needs no privileges).",
        discussion: """
        The nft output is what `nft list table inet fwenforcer` will show once applied, and is accepted by `nft -c -f`.
        --diff compares the plan with what the kernel holds now (exit 0: no changes, 2: changes, 1: error).
        --check has the kernel validate the transaction that would be applied, then abort it: nothing changes.
        Both need CAP_NET_ADMIN.
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Output format.")
    var format: PlanFormat = .nft

    @Flag(help: "Show the difference between the plan and the kernel's table.")
    var diff = false

    @Flag(help: "Have the kernel validate the planned transaction without applying it.")
    var check = false

    func run() throws {
        let (cfg, roles) = try options.load()
        let plan = Compiler.compile(config: cfg, roles: roles)
        if diff || check {
            try withBackend { backend in
                let snapshot = try backend.read(table: plan.ruleset.tableName)
                let tx = Diff.transaction(from: snapshot.ruleset, to: plan.ruleset, generation: snapshot.generation)
                if check {
                    try backend.check(tx)
                    print("the kernel accepts the planned transaction (\(tx.operations.count) operations); nothing was changed")
                }
                if diff {
                    if tx.operations.isEmpty {
                        print("no changes: the kernel holds the planned ruleset")
                    } else {
                        if snapshot.ruleset == nil { print("# table inet \(plan.ruleset.tableName) does not exist; it would be created") }
                        print(tx.description)
                        throw ExitCode(2)
                    }
                }
            }
            return
        }
        switch format {
        case .nft:
            print("# fwenforcer plan for roles: \(roles.joined(separator: ", ")) (catalog \(cfg.catalog.name)\(cfg.effectiveVersion.map { " \($0)" } ?? ""))")
            print(NftRenderer.render(plan.ruleset), terminator: "")
        case .json:
            print(JSONRenderer.render(plan: plan), terminator: "")
        }
    }
}

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Enforce the config's plan once, atomically, and exit.",
        discussion: """
        Reads the kernel's table, sends only the difference in one batch, and prints a one-line summary.
        With --confirm-within S the change is provisional: unless `fwenforcerd confirm` arrives within S \
        seconds, a detached process (which survives the end of this SSH session) restores the table \
        as it was, atomically, and logs it to syslog and beside the pending-confirmation record.
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("Roll the change back unless `fwenforcerd confirm` arrives within this time.", valueName: "seconds"))
    var confirmWithin: Int?

    @Option(help: ArgumentHelp("Pending-confirmation record (with --confirm-within).", valueName: "path"))
    var pendingFile: String = PendingFile.defaultPath.string

    func validate() throws {
        if let confirmWithin, !(1...86_400).contains(confirmWithin) {
            throw ValidationError("--confirm-within must be 1-86400 seconds")
        }
    }

    func run() throws {
        try requireSupportedKernel()
        let (cfg, roles) = try options.load()
        let plan = Compiler.compile(config: cfg, roles: roles)
        if let daemon = InstanceLock.holder() {
            printError("warning: fwenforcerd run (pid \(daemon)) enforces this host: it takes this change for drift and restores "
                       + "the plan of its own config at once. Change that config instead (the daemon's --confirm-within makes "
                       + "a change provisional).")
        }
        if let confirmWithin {
            try applyProvisionally(plan, roles: roles, window: confirmWithin)
            return
        }
        try withBackend { backend in
            let reconciler = Reconciler(backend: backend, table: plan.ruleset.tableName)
            let outcome = try reconciler.reconcile(to: plan.ruleset)
            print("applied \(plan.ruleset.tableName) for \(roles.joined(separator: ", ")): \(outcome.summary)")
        }
    }

    private func applyProvisionally(_ plan: Enforcer.Plan, roles: [String], window: Int) throws {
        let file = PendingFile(path: FilePath(pendingFile))
        let hash = SHA256.hex(of: FileManager.default.contents(atPath: options.config) ?? Data())
        let confirmCommand = "fwenforcerd confirm" + (file.path == PendingFile.defaultPath ? "" : " --pending-file \(file.path)")
        try withBackend { backend in
            let provisional = ProvisionalApply(file: file, backend: backend) {
                try DetachedProcess.spawn(DetachedProcess.currentExecutable(), arguments: ["confirm-wait", "--pending-file", file.path.string],
                                          standardError: file.logPath, blocked: ConfirmationWaiter.signals)
            }
            let result: ProvisionalApply.Result
            do {
                result = try provisional.apply(plan.ruleset, configPath: options.config, configSHA256: hash, window: .seconds(window))
            } catch let e as BackendError {
                throw e
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            switch result {
            case .unchanged:
                print("no changes: the kernel holds the planned ruleset; nothing to confirm")
            case .provisional(let record, let outcome):
                print("applied \(plan.ruleset.tableName) for \(roles.joined(separator: ", ")) PROVISIONALLY: \(outcome.summary)")
                print("to keep it, run within \(window) s (before \(ISO8601Format.string(record.deadline))):  \(confirmCommand)")
                print("otherwise pid \(record.pid) restores \(record.previousDescription), and logs it to syslog and \(file.logPath)")
            }
        }
    }
}

struct Confirm: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Keep a provisional change (apply or run with --confirm-within) before its window ends.",
        discussion: """
        Signals the process that would roll the change back (SIGUSR1) and waits for it to acknowledge. \
        Exit 0 when the change is confirmed; 1 when nothing is pending, the window has passed (the previous \
        ruleset was restored), or no acknowledgement came.
        """)

    @Option(help: ArgumentHelp("Pending-confirmation record.", valueName: "path"))
    var pendingFile: String = PendingFile.defaultPath.string

    func run() throws {
        let result: Confirmation.Result
        do {
            result = try Confirmation.confirm(PendingFile(path: FilePath(pendingFile)))
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

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
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

    @Option(help: ArgumentHelp("Quiet time after config file events before reading it.", valueName: "ms"))
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

/// The unit's ExecReload: SIGHUP to the daemon from fwenforcerd itself, since a minimal Debian has
/// no /bin/kill (procps is not essential) and the unit should need nothing the package does not ship.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Have the running daemon re-read its config and the kernel (SIGHUP); the unit's ExecReload.",
        discussion: """
        Signals the daemon (--pid, as systemd passes $MAINPID, or else the holder of the instance lock), \
        then checks the config: one with errors is reported with its file, line and key and exits 1, so \
        `systemctl reload` fails visibly. The daemon keeps enforcing its last good config either way.
        """)

    @Option(name: .shortAndLong, help: ArgumentHelp("Config file the daemon reads.", valueName: "file"))
    var config: String = defaultConfigPath

    @Option(help: ArgumentHelp("The daemon's pid (default: the holder of --lock-file).", valueName: "pid"))
    var pid: Int32?

    @Option(help: ArgumentHelp("Lock file of the daemon.", valueName: "path"))
    var lockFile: String = InstanceLock.defaultPath.string

    func run() throws {
        guard let target = pid ?? InstanceLock.holder(at: FilePath(lockFile)), target > 0 else {
            printError("error: no fwenforcerd run holds \(lockFile): nothing to reload")
            throw ExitCode(1)
        }
        guard kill(target, SIGHUP) == 0 else {
            printError("error: cannot signal pid \(target): \(String(cString: strerror(errno)))")
            throw ExitCode(1)
        }
        do {
            _ = try Config.load(path: config)
        } catch {
            printError("error: \(error); pid \(target) keeps enforcing its last good config")
            throw ExitCode(1)
        }
        print("reload: signalled fwenforcerd (pid \(target)) to re-read \(config)")
    }
}

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what is enforced now: the daemon's state file and the kernel's table.")

    @Option(help: ArgumentHelp("State file written by the daemon.", valueName: "path"))
    var stateFile: String = StateFile.defaultPath.string

    @Option(help: "Table to read from the kernel.")
    var table: String = defaultTableName

    @Option(help: ArgumentHelp("Pending-confirmation record of a provisional change.", valueName: "path"))
    var pendingFile: String = PendingFile.defaultPath.string

    func run() throws {
        let state = try? StateFile(path: FilePath(stateFile)).read()
        if let state {
            let alive = kill(state.daemonPID, 0) == 0
            print("daemon:     pid \(state.daemonPID) (\(alive ? "running" : "not running"))")
            print("config:     \(state.configPath) (sha256 \(state.configSHA256.prefix(16)))")
            print("applied at: \(state.appliedAt.map { ISO8601DateFormatter().string(from: $0) } ?? "never")")
            print("last error: \(state.lastError.map { "\($0.message) (\(ISO8601DateFormatter().string(from: $0.at)))" } ?? "none")")
            if let why = state.baseline {
                print("baseline:   fail-closed baseline enforced, no valid plan: \(why)")
            }
            if let refused = state.refusedConfigSHA256 {
                print("refused:    config sha256 \(refused.prefix(16)) (not confirmed in time, rolled back; edit the file to try again)")
            }
        } else {
            print("daemon:     no state file at \(stateFile)")
        }
        if let record = try? PendingFile(path: FilePath(pendingFile)).read() {
            switch record.state {
            case .pending:
                print("provisional: config sha256 \(record.configSHA256.prefix(16)) (\(record.applied)); confirm before \(ISO8601Format.string(record.deadline)) with `fwenforcerd confirm`, or pid \(record.pid) (\(record.owner.rawValue)) restores \(record.previousDescription)")
            case .rollingBack, .rolledBack, .rollbackFailed:
                print("provisional: config sha256 \(record.configSHA256.prefix(16)) was not confirmed by \(ISO8601Format.string(record.deadline)): \(record.state.rawValue)\(record.outcome.map { " (\($0))" } ?? "")")
            }
        }
        try withBackend { backend in
            let snapshot = try backend.read(table: table)
            guard let live = snapshot.ruleset else {
                print("kernel:     no table inet \(table) (generation \(snapshot.generation))")
                return
            }
            print("kernel:     table inet \(table), generation \(snapshot.generation), chains \(live.chains.map { "\($0.name) (policy \($0.policy.rawValue), \($0.rules.count) rules)" }.joined(separator: ", "))")
            for set in live.sets {
                let expected = state?.setElementCounts[set.name]
                let mark = expected.map { $0 == set.elements.ranges.count ? "" : " (daemon planned \($0))" } ?? ""
                print("  set \(set.name): \(set.elements.ranges.count) elements\(mark)")
            }
        }
    }
}

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

enum ReportDirection: String, ExpressibleByArgument, CaseIterable {
    case `in`, out
    var direction: Direction { self == .in ? .ingress : .egress }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what audit mode saw: the flows enforce mode would drop.",
        discussion: """
        Reads the report the daemon keeps while [enforce] ingress or egress is "audit": every flow \
        (direction, source, destination, protocol, port) that the catalog does not allow, with its \
        packet count, first and last time seen, and the groups of the peer's address. It answers \
        "if I switch to enforce, what breaks?". Exit 1 when there is no report.
        """)

    @Option(help: "Output format.")
    var format: ReportFormat = .table

    @Option(help: ArgumentHelp("Report written by the daemon.", valueName: "path"))
    var reportFile: String = StateFile.defaultPath.removingLastComponent().appending(DaemonOptions.auditReportName).string

    @Option(help: "Only flows of this direction.")
    var direction: ReportDirection?

    func run() throws {
        guard let data = FileManager.default.contents(atPath: reportFile) else {
            printError(FileManager.default.fileExists(atPath: reportFile)
                ? "error: cannot read \(reportFile) (permissions?)"
                : "no audit report at \(reportFile): the daemon writes it only while [enforce] ingress or egress is \"audit\"")
            throw ExitCode(1)
        }
        var report: AuditReport
        do {
            report = try AuditReport.decode(data, path: reportFile)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if let direction { report = report.filtered(direction.direction) }
        switch format {
        case .json: print(String(decoding: try report.encoded(), as: UTF8.self), terminator: "")
        case .table: print(report.table(), terminator: "")
        }
    }
}

/// Opens the netlink backend for one command, closes it after, and turns kernel errors into a
/// message and exit 1.
func withBackend(_ body: (NetlinkBackend) throws -> Void) throws {
    let backend: NetlinkBackend
    do {
        backend = try NetlinkBackend()
    } catch {
        printError("error: \(error) (needs root or CAP_NET_ADMIN)")
        throw ExitCode(1)
    }
    defer { backend.close() }
    do {
        try body(backend)
    } catch let e as BackendError {
        printError("error: \(e)")
        throw ExitCode(1)
    }
}

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Validate a config file, or check a whole deployment's shared config for consistency.",
        discussion: """
        With --config: exit 0 when the file is good, 1 with the file, line and key of the first error.
        With --topology: plan every host of a shared config (roles = "auto"), then report flows one end \
        allows and the other blocks (errors), rows naming roles with no members, addresses in several \
        role groups, and groups nothing uses (warnings). Exit 1 when there are errors.
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("Check every host of this shared deployment config.", valueName: "file"))
    var topology: String?

    @Option(help: "Output format for --topology.")
    var format: CatalogFormat = .text

    func run() throws {
        if let topology {
            let cfg: Config
            do {
                cfg = try Config.load(path: topology)
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            let report = TopologyReport.check(cfg)
            switch format {
            case .json:
                print(JSONRenderer.render(report: report), terminator: "")
            case .text:
                print("\(topology): \(report.hosts.count) hosts")
                for h in report.hosts { print("  \(h.address): \(h.roles.joined(separator: ", "))") }
                for f in report.findings { print("\(f.severity.rawValue): [\(f.kind.rawValue)] \(f.message)") }
                let errors = report.findings.filter { $0.severity == .error }.count
                print("\(errors) errors, \(report.findings.count - errors) warnings")
            }
            if report.hasErrors { throw ExitCode(1) }
            return
        }
        let (cfg, roles) = try options.load()
        let plan = Compiler.compile(config: cfg, roles: roles)
        let rules = plan.ruleset.chains.reduce(0) { $0 + $1.rules.count }
        let elements = plan.ruleset.sets.reduce(0) { $0 + $1.elements.ranges.count }
        print("\(cfg.path): ok: roles \(roles.joined(separator: ", ")); \(plan.ruleset.chains.count) chains, \(rules) rules, \(plan.ruleset.sets.count) sets, \(elements) set elements")
    }
}

enum CatalogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Show a role catalog's rows (built-in: cloudcenter, cloudify; or a catalog file).")

    @Option(help: ArgumentHelp("Built-in catalog name or catalog file path.", valueName: "name|path"))
    var catalog: String = "cloudcenter"

    @Option(help: "Only this role's rows.")
    var role: String?

    @Flag(help: "Only rows whose flow is documented at this end only.")
    var oneSided = false

    @Option(help: "Output format.")
    var format: CatalogFormat = .text

    func run() throws {
        let cat: Enforcer.Catalog
        do {
            cat = try Enforcer.Catalog.load(catalog)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if let role, !cat.isRole(role) {
            printError("error: unknown role \"\(role)\" in catalog \(cat.name); roles: \(cat.roles.map(\.name).joined(separator: ", "))")
            throw ExitCode(1)
        }
        let oneSidedRows = cat.oneSidedRows()
        let oneSidedIDs = Set(oneSidedRows.map(\.row.id))
        var rows = cat.rows.filter { role == nil || $0.role == role }
        if oneSided { rows = rows.filter { oneSidedIDs.contains($0.id) } }
        switch format {
        case .json:
            print(JSONRenderer.render(rows: rows, oneSided: oneSidedIDs), terminator: "")
        case .text:
            print(TextTable.render(
                header: ["id", "dir", "proto", "ports", "remote", "condition", "note"],
                rows: rows.map { r in
                    let missing = oneSidedRows.first { $0.row.id == r.id }?.missingAt ?? []
                    var cond = [r.feature.map { "feature \($0)" }, r.versions.map { "version \($0)" }].compactMap { $0 }
                    if !missing.isEmpty { cond.append("one-sided (not in \(missing.joined(separator: ",")))") }
                    return [r.id, r.direction == .ingress ? "in" : "out", r.proto.rawValue,
                            r.ports.isEmpty ? "all" : r.ports.map(\.description).joined(separator: ","),
                            r.remote.joined(separator: ","), cond.joined(separator: "; "), r.note]
                }), terminator: "")
        }
    }
}

enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count - 1 { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}

/// The start-time kernel check of `run` and `apply` (KernelRequirements): an older kernel is
/// refused, naming what it lacks, before anything touches netlink. FWENFORCERD_IGNORE_KERNEL_VERSION=1
/// turns the refusal into a warning, for a kernel with the features backported under an older
/// version number (docs/kernel.md), and for testing what an old kernel does.
func requireSupportedKernel(logger: Logger? = nil) throws {
    do {
        try KernelRequirements.check()
    } catch {
        let ignored = ProcessInfo.processInfo.environment["FWENFORCERD_IGNORE_KERNEL_VERSION"] == "1"
        let text = ignored ? "\(error) (FWENFORCERD_IGNORE_KERNEL_VERSION=1: continuing)" : "\(error)"
        switch (logger, ignored) {
        case (let logger?, false): logger.critical("\(text)")
        case (let logger?, true): logger.warning("\(text)")
        case (nil, false): printError("error: \(text)")
        case (nil, true): printError("warning: \(text)")
        }
        if !ignored { throw ExitCode(1) }
    }
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
