#if os(Linux)
import FoundationEssentials
import Glibc
import SystemPackage

/// How `apply --confirm-within` starts the process that owns its window (`confirm-wait`).
///
/// The waiter must outlive the operator's session: losing the SSH connection is what a provisional
/// change protects against. A process that merely starts a new session (setsid) still sits in the
/// login session's cgroup, and logind with `KillUserProcesses=yes` kills that cgroup at logout,
/// taking the rollback with it. Where systemd runs the host, the waiter is therefore a transient
/// service of the system manager (`systemd-run`), in system.slice and no session's; elsewhere
/// (containers, other init systems) it is a detached process in a session of its own.
public enum ConfirmationWaiterLauncher: Sendable, Equatable {
    /// A transient unit of this name, started with `systemd-run`.
    case systemdRun(unit: String, program: String)
    /// `posix_spawn` in a new session (``DetachedProcess``).
    case detached

    /// systemd runs the host when `/run/systemd/system` exists (what `sd_booted` tests) and
    /// `systemd-run` is installed. A transient unit runs in the system manager's namespaces, so
    /// it is used only when this process shares PID 1's network namespace: an `apply` run in
    /// another one (`ip netns exec`, a container) must be rolled back there, not on the host's
    /// table, and gets the detached waiter, which stays in its namespace.
    public static func forThisHost(systemdRuntimeDirectory: String = "/run/systemd/system",
                                   programs: [String] = ["/usr/bin/systemd-run", "/bin/systemd-run"],
                                   ownNetworkNamespace: String = "/proc/self/ns/net",
                                   managerNetworkNamespace: String = "/proc/1/ns/net") -> Self {
        var info = stat()
        guard stat(systemdRuntimeDirectory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR,
              let program = programs.first(where: { access($0, X_OK) == 0 }),
              sameFile(ownNetworkNamespace, managerNetworkNamespace) else { return .detached }
        return .systemdRun(unit: "fwenforcer-confirm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))", program: program)
    }

    /// Whether two paths name the same inode (namespaces are compared this way); false when either
    /// cannot be examined.
    static func sameFile(_ a: String, _ b: String) -> Bool {
        var x = stat(), y = stat()
        guard stat(a, &x) == 0, stat(b, &y) == 0 else { return false }
        return x.st_dev == y.st_dev && x.st_ino == y.st_ino
    }

    /// The `systemd-run` command line for the waiter of `pendingFile`. `--service-type=exec` makes
    /// systemd-run return once the program is executing (or fail if it cannot be); `--collect`
    /// unloads the unit after it exits, even if it failed. A stop of the unit is SIGTERM, which
    /// the waiter takes as "roll back now". Its output goes to the journal, under the unit's name.
    public static func systemdRunArguments(program: String, unit: String, executable: String, pendingFile: FilePath) -> [String] {
        [program, "--unit=\(unit)", "--description=fwenforcer confirmation window (\(pendingFile))",
         "--service-type=exec", "--collect", "--quiet", "--property=TimeoutStopSec=30",
         "--", executable, "confirm-wait", "--pending-file", absolute(pendingFile).string]
    }

    /// Where the waiter's lines go besides syslog, for the operator.
    public func logDescription(_ file: PendingFile) -> String {
        switch self {
        case .systemdRun(let unit, _): return "the journal (journalctl -u \(unit))"
        case .detached: return file.logPath.string
        }
    }

    /// Starts the waiter for `file` and returns its pid once it has blocked the signals it
    /// handles: before that, a `confirm` arriving at once would kill it (SIGUSR1's default action)
    /// and leave the change neither confirmed nor rolled back.
    public func start(executable: String, file: PendingFile, wait: Duration = .seconds(10)) throws -> pid_t {
        let pid: pid_t
        switch self {
        case .detached:
            pid = try DetachedProcess.spawn(executable, arguments: ["confirm-wait", "--pending-file", Self.absolute(file.path).string],
                                            standardError: file.logPath, blocked: ConfirmationWaiter.signals)
        case .systemdRun(let unit, let program):
            let argv = Self.systemdRunArguments(program: program, unit: unit, executable: executable, pendingFile: file.path)
            let started = try Self.run(argv)
            guard started.status == 0 else {
                throw LaunchError(description: "\(argv.joined(separator: " ")) failed (exit \(started.status)): \(started.output)")
            }
            let shown = try Self.run(["systemctl", "show", "--property=MainPID", "--value", unit])
            guard shown.status == 0, let main = pid_t(shown.output.trimmingWhitespace()), main > 0 else {
                throw LaunchError(description: "cannot find the main pid of unit \(unit): \(shown.output)")
            }
            pid = main
        }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        while clock.now < deadline {
            guard let identity = ProcessIdentity.of(pid) else { break }
            if identity.blocks(ConfirmationWaiter.signals) { return pid }
            usleep(5_000)
        }
        throw LaunchError(description: "the confirmation waiter (pid \(pid)) did not get ready within \(wait); nothing was changed")
    }

    public struct LaunchError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The waiter runs with another working directory (systemd's is /): relative paths would name
    /// other files there.
    static func absolute(_ path: FilePath) -> FilePath {
        path.isAbsolute ? path : FilePath(FileManager.default.currentDirectoryPath).pushing(path)
    }

    private static func run(_ argv: [String]) throws -> (status: Int32, output: String) {
        let executable = argv[0].hasPrefix("/") ? argv[0] : "/usr/bin/env"
        let run = try ChildProcess.run(executable, argv[0].hasPrefix("/") ? Array(argv.dropFirst()) : argv, mergingErrors: true)
        return (run.status, String(decoding: run.output, as: UTF8.self))
    }
}
#endif
