import Foundation
import SystemPackage
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The `fwenforcerd` whose `confirm` these tests run; `FWENFORCERD_CONFIRM_BINARY` names another
/// build (e.g. an older commit's, to see the tests fail there).
let fwenforcerdConfirmPath: String = ProcessInfo.processInfo.environment["FWENFORCERD_CONFIRM_BINARY"] ?? fwenforcerdPath

/// The confirm-wait helper and the pending-confirmation record against a hostile host: a process
/// that names itself fwenforcerd, a record planted in a directory others can write, links planted
/// where root writes files.
@Suite(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: fwenforcerdConfirmPath), "needs root and the built fwenforcerd"))
struct ConfirmWaiterHardeningTests {
    /// A fresh directory only root can write, removed by `remove()`.
    static func directory() throws -> DaemonTemporaryDirectory { try DaemonTemporaryDirectory() }

    /// A process that names itself fwenforcerd (`prctl(PR_SET_NAME)`, which any process may do for
    /// itself) and notes every SIGUSR1 it gets in a file.
    final class Impostor {
        let process = Process()
        let signalled: String
        init(in dir: DaemonTemporaryDirectory) throws {
            signalled = dir("impostor.signalled")
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", """
                import ctypes, signal, sys, time
                ctypes.CDLL(None).prctl(15, b"fwenforcerd", 0, 0, 0)
                signal.signal(signal.SIGUSR1, lambda *_: open(sys.argv[1], "a").write("SIGUSR1\\n"))
                signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGUSR1])
                print("ready", flush=True)
                time.sleep(30)
                """, signalled]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            _ = out.fileHandleForReading.availableData
        }
        var pid: Int32 { process.processIdentifier }
        var wasSignalled: Bool { FileManager.default.fileExists(atPath: signalled) }
        func stop() {
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
        }
    }

    /// A record of a window whose owner was (pid, start time); written as JSON by hand so that the
    /// same file can be given to an older `confirm`.
    static func writeRecord(_ path: String, pid: Int32, startTime: UInt64?) throws {
        var record: [String: Any] = [
            "formatVersion": 1, "state": "pending", "pid": pid, "owner": "apply", "table": "fwenforcer",
            "appliedAt": "2026-12-01T00:00:00Z", "deadline": ISO8601Format.string(Date().addingTimeInterval(60)),
            "configPath": "/etc/fwenforcer/fwenforcer.conf", "configSHA256": String(repeating: "0", count: 64), "applied": "",
        ]
        if let startTime { record["ownerStartTime"] = startTime }
        try JSONSerialization.data(withJSONObject: record).write(to: URL(fileURLWithPath: path))
        chmod(path, 0o600)
    }

    @Test func startTimeIsField22EvenWhenTheNameHoldsParentheses() throws {
        let stat = Array("4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10\n".utf8)
        #expect(ProcessIdentity.startTime(stat: stat) == 987654)
        let me = try #require(ProcessIdentity.of(getpid()))
        #expect(me == ProcessIdentity.current && me.isAlive)
        #expect(!ProcessIdentity(pid: me.pid, startTime: me.startTime + 1).isAlive)
    }

    /// The window's owner died and its pid now belongs to a process calling itself fwenforcerd:
    /// `confirm` must not send it SIGUSR1 (whose default action kills it), and must say the owner
    /// is gone. The old check by /proc/PID/comm signalled it.
    @Test func confirmNeverSignalsAProcessThatOnlyHasTheOwnersPidAndName() throws {
        let dir = try Self.directory()
        defer { dir.remove() }
        let impostor = try Impostor(in: dir)
        defer { impostor.stop() }
        let identity = try #require(ProcessIdentity.of(impostor.pid))
        #expect(try String(contentsOfFile: "/proc/\(impostor.pid)/comm", encoding: .utf8) == "fwenforcerd\n")
        let pending = dir("pending.json")
        // The recorded owner started at another time: it is not this process.
        try Self.writeRecord(pending, pid: impostor.pid, startTime: identity.startTime &- 1)
        let r = try run([fwenforcerdConfirmPath, "confirm", "--pending-file", pending])
        usleep(100_000)
        #expect(!impostor.wasSignalled, "confirm signalled a process that merely has the owner's pid and name")
        #expect(r.status == 1 && r.stderr.contains("is gone, so nothing will roll back"), "\(r)")
        // Signalling by identity refuses it too.
        #expect(throws: SystemCallError.self) { try ProcessIdentity(pid: impostor.pid, startTime: identity.startTime &- 1).signal(SIGUSR1) }
        #expect(!impostor.wasSignalled)
    }

    /// A record planted in a directory others can write names the planter's process (root's
    /// `confirm` signals it) and a "previous" ruleset of its choosing (a rollback enforces it).
    @Test(arguments: [(mode: mode_t(0o777), owner: uid_t(0)), (mode: 0o1777, owner: 0), (mode: 0o775, owner: 0), (mode: 0o755, owner: 65534)])
    func aRecordInADirectoryOthersCanWriteIsRefused(_ c: (mode: mode_t, owner: uid_t)) throws {
        let dir = try Self.directory()
        defer { dir.remove() }
        try daemonCheck(mkdir(dir("shared"), 0o755), "mkdir")
        try daemonCheck(chmod(dir("shared"), c.mode), "chmod")
        try daemonCheck(chown(dir("shared"), c.owner, 0), "chown")
        let impostor = try Impostor(in: dir)
        defer { impostor.stop() }
        let pending = dir("shared/pending.json")
        try Self.writeRecord(pending, pid: impostor.pid, startTime: ProcessIdentity.of(impostor.pid)?.startTime)
        let r = try run([fwenforcerdConfirmPath, "confirm", "--pending-file", pending])
        usleep(100_000)
        #expect(!impostor.wasSignalled, "confirm signalled the pid of a record in a directory others can write")
        #expect(r.status == 1 && r.stderr.contains("a pending-confirmation record must live where only root can write"), "\(r)")
        let error = try #require(throws: PendingFileError.self) { try PendingFile(path: .init(pending)).read() }
        #expect(error.description.contains(c.owner != 0 ? "owned by nobody (uid 65534), not root" : "is writable by"), "\(error)")
        #expect(throws: PendingFileError.self) {
            try PendingFile(path: .init(pending)).write(PendingConfirmation(owner: .apply, table: "t", deadline: Date(), configPath: "c",
                                                                             configSHA256: "0", applied: "", previous: nil))
        }
    }

    /// Root writes runtime files by a temporary name beside the target, then renames. A symlink or
    /// a hard link planted under that name must not be written through.
    @Test func linksPlantedAtTheTemporaryNameAreNotWrittenThrough() throws {
        let dir = try Self.directory()
        defer { dir.remove() }
        try daemonWriteInPlace(dir("victim"), "precious\n", mode: 0o644)
        let target = FilePath(dir("state.json"))
        let temporary = dir(".state.json.tmp.\(getpid())")
        for plant in [{ symlink(dir("victim"), temporary) }, { link(dir("victim"), temporary) }] {
            try daemonCheck(plant(), "plant")
            try AtomicFile.write(Array("{}\n".utf8), to: target)
            #expect(daemonReadFile(dir("victim")) == "precious\n")
            #expect(daemonReadFile(dir("state.json")) == "{}\n")
            var info = stat()
            #expect(lstat(dir("state.json"), &info) == 0 && info.st_nlink == 1 && info.st_mode & S_IFMT == S_IFREG)
        }
    }

    /// The waiter's stderr (provisional.log) is not opened through a symlink: the spawn fails
    /// instead of appending to whatever the link names.
    @Test func theWaitersLogIsNotOpenedThroughASymlink() throws {
        let dir = try Self.directory()
        defer { dir.remove() }
        try daemonWriteInPlace(dir("victim"), "precious\n", mode: 0o644)
        try daemonCheck(symlink(dir("victim"), dir("provisional.log")), "symlink")
        var spawned: pid_t?
        #expect(throws: SystemCallError.self) {
            spawned = try DetachedProcess.spawn("/bin/sh", arguments: ["-c", "echo planted >&2"], standardError: FilePath(dir("provisional.log")), blocked: [])
        }
        if let spawned { waitpid(spawned, nil, 0) }
        #expect(daemonReadFile(dir("victim")) == "precious\n")
    }

    /// Where systemd runs the host the waiter is a transient unit; elsewhere a detached process.
    @Test func theLauncherFollowsTheInitSystem() throws {
        let dir = try Self.directory()
        defer { dir.remove() }
        #expect(ConfirmationWaiterLauncher.forThisHost(systemdRuntimeDirectory: dir("absent")) == .detached)
        // The directory alone is not enough: systemd-run must be there too.
        #expect(ConfirmationWaiterLauncher.forThisHost(systemdRuntimeDirectory: dir.path, programs: [dir("absent")]) == .detached)
        // (In the manager's network namespace; this machine's sandbox hides PID 1's from root.)
        guard case .systemdRun(let unit, let program) = ConfirmationWaiterLauncher.forThisHost(
            systemdRuntimeDirectory: dir.path, programs: ["/bin/true"], managerNetworkNamespace: "/proc/self/ns/net") else {
            Issue.record("a systemd host gets no transient unit")
            return
        }
        #expect(program == "/bin/true" && unit.hasPrefix("fwenforcer-confirm-\(getpid())-"))
        // An apply in another network namespace (ip netns exec, a container) keeps its waiter
        // there: a transient unit would run in PID 1's namespace and roll back the host's table.
        if kernelTestsAvailable {
            try NetworkNamespace.with { ns in
                #expect(ConfirmationWaiterLauncher.forThisHost(systemdRuntimeDirectory: dir.path, programs: ["/bin/true"],
                                                               ownNetworkNamespace: "/run/netns/\(ns.name)",
                                                               managerNetworkNamespace: "/proc/self/ns/net") == .detached)
            }
        }
        #expect(ConfirmationWaiterLauncher.systemdRunArguments(program: "/usr/bin/systemd-run", unit: "fwenforcer-confirm-1-2",
                                                               executable: "/usr/sbin/fwenforcerd", pendingFile: "/run/fwenforcer/pending.json") == [
            "/usr/bin/systemd-run", "--unit=fwenforcer-confirm-1-2", "--description=fwenforcer confirmation window (/run/fwenforcer/pending.json)",
            "--service-type=exec", "--collect", "--quiet", "--property=TimeoutStopSec=30",
            "--", "/usr/sbin/fwenforcerd", "confirm-wait", "--pending-file", "/run/fwenforcer/pending.json",
        ])
        // A relative pending file is made absolute: the unit runs in /.
        let relative = ConfirmationWaiterLauncher.systemdRunArguments(program: "systemd-run", unit: "u", executable: "e", pendingFile: "p.json")
        #expect(relative.last == FileManager.default.currentDirectoryPath + "/p.json")
        #expect(ConfirmationWaiterLauncher.systemdRun(unit: "u", program: "p").logDescription(PendingFile()) == "the journal (journalctl -u u)")
    }

    /// This machine has no systemd as PID 1: the real launch is the detached process, and it is
    /// reported ready only once it blocks the signals it handles.
    @Test func theDetachedWaiterIsReadyOnlyWithItsSignalsBlocked() throws {
        let dir = try Self.directory()
        defer { dir.remove() }
        let file = PendingFile(path: FilePath(dir("pending.json")))
        // No record names it: it waits up to 10 s for one, then exits. Stopped below.
        let pid = try ConfirmationWaiterLauncher.detached.start(executable: fwenforcerdPath, file: file)
        defer {
            kill(pid, SIGKILL)
            waitpid(pid, nil, 0)
        }
        let waiter = try #require(ProcessIdentity.of(pid))
        #expect(waiter.blocks(ConfirmationWaiter.signals))
        // In a session of its own.
        #expect(getsid(pid) == pid)
    }
}
