#if os(Linux)
import Glibc
import SystemPackage

/// One process, named so that another one that later gets its pid is not taken for it: the pid and
/// the time the process started (field 22 of `/proc/PID/stat`, clock ticks since boot), which the
/// kernel sets at fork and nobody can change. `/proc/PID/comm`, which the owner check used before,
/// is set by any process for itself (`prctl(PR_SET_NAME)`): a user's process calling itself
/// "fwenforcerd" would have been sent root's SIGUSR1.
public struct ProcessIdentity: Sendable, Hashable, Codable {
    public var pid: Int32
    public var startTime: UInt64

    public init(pid: Int32, startTime: UInt64) {
        self.pid = pid
        self.startTime = startTime
    }

    /// The process running now under `pid`, or nil when there is none.
    public static func of(_ pid: Int32) -> ProcessIdentity? {
        guard pid > 0, let bytes = try? AtomicFile.read(FilePath("/proc/\(pid)/stat")),
              let startTime = startTime(stat: bytes) else { return nil }
        return ProcessIdentity(pid: pid, startTime: startTime)
    }

    /// This process.
    public static var current: ProcessIdentity {
        guard let me = of(getpid()) else { preconditionFailure("/proc/self/stat is unreadable: is /proc mounted?") }
        return me
    }

    /// Field 22 (`starttime`) of a `/proc/PID/stat` line. The second field, the command name in
    /// parentheses, may itself hold spaces and parentheses, so fields are counted after its last ')'.
    static func startTime(stat bytes: [UInt8]) -> UInt64? {
        guard let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19 else { return nil }
        return UInt64(String(decoding: fields[19], as: UTF8.self))
    }

    /// Whether this very process still runs (a zombie counts: it has not been reaped yet, and
    /// signalling it is harmless).
    public var isAlive: Bool { Self.of(pid) == self }

    /// Sends `signal` to this process and to no other: through a pidfd, opened first and then
    /// checked against the start time, so the pid cannot be reused between the check and the
    /// signal (a pidfd keeps naming the process it was opened for, even after it exited). Where
    /// the kernel or glibc has no pidfds (before Linux 5.3 / glibc 2.36), `kill` after the same check.
    ///
    /// - Throws: ``SystemCallError`` with `ESRCH` when the process is gone or the pid is another's.
    ///
    /// The corresponding C functions are `pidfd_open` and `pidfd_send_signal`.
    public func signal(_ signal: Int32) throws(SystemCallError) {
        guard let open = Self.pidfdOpen, let send = Self.pidfdSendSignal else {
            guard isAlive else { throw SystemCallError(call: "kill", subject: "pid \(pid)", code: .noSuchProcess) }
            try retryingInterrupts("kill", "pid \(pid)") { kill(pid, signal) }
            return
        }
        let fd = open(pid, 0)
        if fd == -1 {
            let code = errno
            if code == ENOSYS {
                guard isAlive else { throw SystemCallError(call: "kill", subject: "pid \(pid)", code: .noSuchProcess) }
                try retryingInterrupts("kill", "pid \(pid)") { kill(pid, signal) }
                return
            }
            throw SystemCallError(call: "pidfd_open", subject: "pid \(pid)", code: Errno(rawValue: code))
        }
        defer { closeDescriptor(fd) }
        guard isAlive else { throw SystemCallError(call: "pidfd_open", subject: "pid \(pid) (another process than the one recorded)", code: .noSuchProcess) }
        try retryingInterrupts("pidfd_send_signal", "pid \(pid)") { send(fd, signal, nil, 0) }
    }

    /// Sends `signal` with `value` attached (`si_value.sival_int`, `si_code` SI_QUEUE): the
    /// receiver's signalfd reads it as `ssi_int`. Through a pidfd where the kernel has them (so a
    /// reused pid never gets it), `sigqueue` otherwise, after the same identity check.
    ///
    /// The corresponding C functions are `pidfd_send_signal` (with a `siginfo_t`) and `sigqueue`.
    public func signal(_ signal: Int32, value: Int32) throws(SystemCallError) {
        // siginfo_t on Linux: si_signo, si_errno, si_code, then (after padding to 16 bytes) the
        // queued signal's si_pid, si_uid and si_value: 128 bytes in all.
        var info = [UInt8](repeating: 0, count: 128)
        info.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: signal, toByteOffset: 0, as: Int32.self)
            raw.storeBytes(of: LinuxCalls.siQueue, toByteOffset: 8, as: Int32.self)
            raw.storeBytes(of: getpid(), toByteOffset: 16, as: Int32.self)
            raw.storeBytes(of: getuid(), toByteOffset: 20, as: UInt32.self)
            raw.storeBytes(of: value, toByteOffset: 24, as: Int32.self)
        }
        if let open = Self.pidfdOpen, let send = Self.pidfdSendSignal {
            let fd = open(pid, 0)
            if fd != -1 {
                defer { closeDescriptor(fd) }
                guard isAlive else { throw SystemCallError(call: "pidfd_open", subject: "pid \(pid) (another process than the one recorded)", code: .noSuchProcess) }
                try retryingInterrupts("pidfd_send_signal", "pid \(pid)") { info.withUnsafeMutableBytes { send(fd, signal, $0.baseAddress, 0) } }
                return
            }
            guard errno == ENOSYS else { throw SystemCallError(call: "pidfd_open", subject: "pid \(pid)", code: Errno(rawValue: errno)) }
        }
        guard isAlive else { throw SystemCallError(call: "sigqueue", subject: "pid \(pid)", code: .noSuchProcess) }
        var v = sigval()
        v.sival_int = value
        try retryingInterrupts("sigqueue", "pid \(pid)") { sigqueue(pid, signal, v) }
    }

    private typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    private typealias PidfdSendSignal = @convention(c) (Int32, Int32, UnsafeMutableRawPointer?, UInt32) -> Int32

    /// glibc 2.36's wrappers, looked up at run time like the other GNU functions Swift's Glibc
    /// module hides; nil on an older glibc.
    private static let pidfdOpen: PidfdOpen? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pidfd_open")
        .map { unsafeBitCast($0, to: PidfdOpen.self) }
    private static let pidfdSendSignal: PidfdSendSignal? = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "pidfd_send_signal")
        .map { unsafeBitCast($0, to: PidfdSendSignal.self) }

    /// Whether the process has every one of `signals` blocked (`SigBlk` of `/proc/PID/status`):
    /// then a signal sent to it waits for its signalfd instead of running its default action.
    public func blocks(_ signals: [Int32]) -> Bool {
        guard isAlive, let bytes = try? AtomicFile.read(FilePath("/proc/\(pid)/status")) else { return false }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
              let field = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last,
              let mask = UInt64(field, radix: 16) else { return false }
        return signals.allSatisfy { mask & (UInt64(1) << UInt64($0 - 1)) != 0 }
    }
}

#endif
