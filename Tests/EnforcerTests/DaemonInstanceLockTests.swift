#if os(Linux)
import Foundation
import Glibc
import SystemPackage
import Testing
@testable import Enforcer

@Suite struct DaemonInstanceLockTests {
    @Test func secondAcquisitionNamesTheHolder() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        // The lock's directory is created as /run/fwenforcer would be outside systemd.
        let path = FilePath(dir("run/fwenforcerd.lock"))
        let first = try InstanceLock.acquire(at: path)
        #expect(daemonReadFile(path.string) == "\(getpid())\n")

        // flock conflicts between open file descriptions even within one process, as between two daemons.
        let error = try #require(throws: InstanceAlreadyRunning.self) { try InstanceLock.acquire(at: path) }
        #expect(error == InstanceAlreadyRunning(lockPath: path.string, holderPID: getpid()))
        #expect(error.description.contains("already running (pid \(getpid()))"))
        #expect(error.description.contains(path.string))

        // Another process (util-linux flock) is refused too.
        #expect(try run(["flock", "--nonblock", path.string, "true"]).status != 0)

        #expect(InstanceLock.holder(at: path) == getpid())
        first.release()
        #expect(InstanceLock.holder(at: path) == nil)
        let second = try InstanceLock.acquire(at: path)
        #expect(try run(["flock", "--nonblock", path.string, "true"]).status != 0)
        second.release()
        #expect(try run(["flock", "--nonblock", path.string, "true"]).status == 0)
    }

    @Test func lockHeldByAnotherProcessIsReported() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let path = dir("fwenforcerd.lock")
        // What a running daemon would have written; util-linux flock only holds the lock.
        try daemonWriteInPlace(path, "31337\n", mode: 0o644)
        // The shell takes the lock on fd 9 and becomes `sleep`, which keeps it until terminated.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>>\"$0\" && flock --exclusive 9 && exec sleep 60", path]
        try holder.run()
        defer {
            holder.terminate()
            holder.waitUntilExit()
        }
        // Wait (with a deadline) until the child holds its lock, as `holder` reads it from /proc/locks.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(5))
        while InstanceLock.holder(at: FilePath(path)) == nil && clock.now < deadline {
            _ = daemonWaitReadable(-1, timeout: .milliseconds(5))
        }
        // (/proc/locks names the process that called flock, here util-linux's short-lived child,
        // not the shell that keeps the descriptor: so only "held" is checked.)
        #expect(InstanceLock.holder(at: FilePath(path)) != nil)
        let refusal = try #require(throws: InstanceAlreadyRunning.self) { try InstanceLock.acquire(at: FilePath(path)) }
        #expect(refusal.holderPID == 31337)
    }

    @Test func unreadablePIDStillGivesAClearMessage() {
        let error = InstanceAlreadyRunning(lockPath: "/run/fwenforcer/fwenforcerd.lock", holderPID: nil)
        #expect(error.description == "another fwenforcerd is already running: it holds the lock "
            + "/run/fwenforcer/fwenforcerd.lock; stop it first, only one instance may manage the firewall on a host")
    }
}

#endif
