import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
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
            // An owned table stays owned (orphaned again when apply exits, for the daemon to adopt).
            if cfg.enforce.owner {
                backend.tableOwnership = .owned
                _ = try backend.claim(table: plan.ruleset.tableName)
            }
            let reconciler = Reconciler(backend: backend, table: plan.ruleset.tableName)
            let outcome = try reconciler.reconcile(to: plan.ruleset)
            print("applied \(plan.ruleset.tableName) for \(roles.joined(separator: ", ")): \(outcome.summary)")
        }
    }

    private func applyProvisionally(_ plan: Enforcer.Plan, roles: [String], window: Int) throws {
        let file = PendingFile(path: FilePath(pendingFile))
        let hash = SHA256.hex(of: FileManager.default.contents(atPath: options.config) ?? Data())
        let confirmCommand = "fwenforcerd confirm" + (file.path == PendingFile.defaultPath ? "" : " --pending-file \(file.path)")
        // A transient systemd unit where systemd runs the host (outside the login session), else a detached process.
        let launcher = ConfirmationWaiterLauncher.forThisHost()
        try withBackend { backend in
            let provisional = ProvisionalApply(file: file, backend: backend) {
                try launcher.start(executable: DetachedProcess.currentExecutable(), file: file)
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
                print("otherwise pid \(record.pid) restores \(record.previousDescription), and logs it to syslog and \(launcher.logDescription(file))")
            }
        }
    }
}
