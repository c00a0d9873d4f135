#if os(Linux)
import Glibc
import SystemPackage

/// Runs a helper program to its end and collects what it wrote: Graphviz's `dot`, `systemd-run`,
/// `systemctl`. What Foundation's `Process` and `Pipe` did here, without the part of Foundation
/// that carries ICU (issue 14).
public enum ChildProcess {
    public struct Result: Sendable, Equatable {
        /// The exit status, or the number of the signal that ended the program (as `Process`'s
        /// `terminationStatus`).
        public var status: Int32
        /// Its standard output (and its standard error too, when they were merged).
        public var output: [UInt8]
        /// Its standard error; empty when merged into `output`.
        public var errors: [UInt8]
    }

    /// Runs `executable` (a path: no PATH search) with `arguments`, the environment of this process,
    /// `input` on its standard input (/dev/null when nil), and waits for it. Input is fed while the
    /// output is read, so a program that writes before it has read everything cannot block on a
    /// full pipe. A program that exits without reading all of its input makes the write fail
    /// with EPIPE, which ends the feeding; the caller ignores SIGPIPE when it gives input. The
    /// child starts with no signal blocked and SIGPIPE at its default, and with no descriptor of
    /// this process beyond 0-2.
    ///
    /// The corresponding C functions are `posix_spawn`, `poll` and `waitpid`.
    public static func run(_ executable: String, _ arguments: [String], input: [UInt8]? = nil,
                           mergingErrors: Bool = false) throws(SystemCallError) -> Result {
        let stdin = try input.map { _ throws(SystemCallError) in try makePipe() }
        let stdout = try makePipe()
        let stderr = mergingErrors ? nil : try makePipe()
        var parentEnds = [stdout.read] + (stdin.map { [$0.write] } ?? []) + (stderr.map { [$0.read] } ?? [])
        var childEnds = [stdout.write] + (stdin.map { [$0.read] } ?? []) + (stderr.map { [$0.write] } ?? [])
        defer { for fd in parentEnds + childEnds { closeDescriptor(fd) } }

        // The pipes are close-on-exec: only the ends dup'ed onto 0-2 reach the child.
        let pid = try Spawn.start(executable, arguments, blocked: [], resetToDefault: [SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2]) {
            (actions: inout posix_spawn_file_actions_t) throws(SystemCallError) in
            if let stdin {
                try Spawn.check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, stdin.read, 0))
            } else {
                try Spawn.check("posix_spawn_file_actions_addopen", posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0))
            }
            try Spawn.check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, stdout.write, 1))
            try Spawn.check("posix_spawn_file_actions_adddup2", posix_spawn_file_actions_adddup2(&actions, stderr?.write ?? stdout.write, 2))
        }
        for fd in childEnds { closeDescriptor(fd) }
        childEnds = []

        var result = Result(status: 0, output: [], errors: [])
        let pending = input ?? []
        var written = 0
        var feed = stdin?.write, out: Int32? = stdout.read, err = stderr?.read
        if let feed { _ = fcntl(feed, F_SETFL, fcntl(feed, F_GETFL) | O_NONBLOCK) }
        func finish(_ fd: inout Int32?) {
            if let open = fd {
                closeDescriptor(open)
                parentEnds.removeAll { $0 == open }
            }
            fd = nil
        }
        if pending.isEmpty { finish(&feed) }
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while out != nil || err != nil || feed != nil {
            var fds = [feed.map { pollfd(fd: $0, events: Int16(POLLOUT), revents: 0) },
                       out.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) },
                       err.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }].compactMap { $0 }
            // poll fails only on EINTR (retried) or a bug; either way the child is still waited for below.
            guard (try? retryingInterrupts("poll", nil, { poll(&fds, nfds_t(fds.count), -1) })) != nil else { break }
            for p in fds where p.revents != 0 {
                if p.fd == feed {
                    let n = pending.withUnsafeBytes { write(p.fd, $0.baseAddress! + written, $0.count - written) }
                    if n > 0 { written += n }
                    if written == pending.count || (n < 0 && errno != EAGAIN && errno != EINTR) { finish(&feed) }
                    continue
                }
                let n = read(p.fd, &chunk, chunk.count)
                if n > 0 {
                    if p.fd == out { result.output += chunk.prefix(n) } else { result.errors += chunk.prefix(n) }
                } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
                    if p.fd == out { finish(&out) } else { finish(&err) }
                }
            }
        }

        // Closed before waiting (all of them after a failed poll), so a child still writing ends.
        for fd in parentEnds { closeDescriptor(fd) }
        parentEnds = []
        var status: Int32 = 0
        try retryingInterrupts("waitpid", executable) { waitpid(pid, &status, 0) }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift's Glibc module does not import (macros).
        result.status = status & 0x7f == 0 ? (status >> 8) & 0xff : status & 0x7f
        return result
    }

    private static func makePipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        // pipe2 is not in Swift's Glibc module; the child closes everything beyond 0-2 anyway.
        try retryingInterrupts("pipe") { pipe(&fds) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }
}
#endif
