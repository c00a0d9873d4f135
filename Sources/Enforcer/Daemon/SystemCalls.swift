#if os(Linux)
import Glibc
import SystemPackage

/// A system call that failed: which call, on what, and the errno it returned.
///
/// EINTR never surfaces here: ``retryingInterrupts(_:_:_:)`` retries it.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    /// The C function, e.g. `inotify_add_watch`.
    public var call: String
    /// The path or object the call was about, when there is one.
    public var subject: String?
    public var code: Errno

    public init(call: String, subject: String? = nil, code: Errno) {
        self.call = call
        self.subject = subject
        self.code = code
    }

    public var description: String {
        if let subject { return "\(call) \(subject): \(code)" }
        return "\(call): \(code)"
    }
}

/// The one funnel for the daemon's raw system calls: runs `body` until it does not fail with EINTR,
/// and turns `-1` + errno into a ``SystemCallError``.
@discardableResult
func retryingInterrupts<Result: FixedWidthInteger>(
    _ call: String, _ subject: String? = nil, _ body: () -> Result
) throws(SystemCallError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemCallError(call: call, subject: subject, code: Errno(rawValue: code))
    }
}

/// Closes `fd`, ignoring the result: on Linux the descriptor is released even when close reports an
/// error, so retrying (even after EINTR) could close a descriptor another thread just opened.
func closeDescriptor(_ fd: Int32) {
    _ = Glibc.close(fd)
}

/// glibc functions that Swift's Glibc module does not import, because `<sys/epoll.h>`,
/// `<sys/timerfd.h>` and `<sys/signalfd.h>` are not in its module map.
///
/// They are bound once by symbol name with their exact C prototypes (`@convention(c)`), which keeps
/// the C calling convention; a C shim target would do the same at compile time but needs a package
/// change. These are stable glibc symbols present since 2.9, so a failed lookup is a broken system.
enum LinuxCalls {
    /// `si_code` of a signal sent with a value (`sigqueue`, `pidfd_send_signal` with a siginfo).
    static let siQueue: Int32 = -1
    typealias EpollCreate1 = @convention(c) (Int32) -> Int32
    typealias EpollCtl = @convention(c) (Int32, Int32, Int32, UnsafeMutableRawPointer?) -> Int32
    typealias EpollWait = @convention(c) (Int32, UnsafeMutableRawPointer?, Int32, Int32) -> Int32
    typealias TimerfdCreate = @convention(c) (Int32, Int32) -> Int32
    typealias TimerfdSettime = @convention(c) (
        Int32, Int32, UnsafePointer<itimerspec>?, UnsafeMutablePointer<itimerspec>?
    ) -> Int32
    typealias Signalfd = @convention(c) (Int32, UnsafePointer<sigset_t>?, Int32) -> Int32

    static let epollCreate1: EpollCreate1 = bind("epoll_create1")
    static let epollCtl: EpollCtl = bind("epoll_ctl")
    static let epollWait: EpollWait = bind("epoll_wait")
    static let timerfdCreate: TimerfdCreate = bind("timerfd_create")
    static let timerfdSettime: TimerfdSettime = bind("timerfd_settime")
    static let signalfd: Signalfd = bind("signalfd")

    private static func bind<Function>(_ name: String) -> Function {
        // A nil handle is glibc's RTLD_DEFAULT: search every object loaded into the process, libc included.
        guard let symbol = dlsym(nil, name) else {
            fatalError("glibc does not export \(name)")
        }
        return unsafeBitCast(symbol, to: Function.self)
    }

    // Kernel ABI constants from <sys/epoll.h>, <sys/timerfd.h> and <sys/signalfd.h>. The *_CLOEXEC and
    // *_NONBLOCK flags are defined by the kernel as O_CLOEXEC and O_NONBLOCK.
    static let EPOLL_CLOEXEC = O_CLOEXEC
    static let EPOLL_CTL_ADD: Int32 = 1
    static let EPOLL_CTL_DEL: Int32 = 2
    static let EPOLLIN: UInt32 = 0x001
    static let TFD_CLOEXEC = O_CLOEXEC
    static let TFD_NONBLOCK = O_NONBLOCK
    static let SFD_CLOEXEC = O_CLOEXEC
    static let SFD_NONBLOCK = O_NONBLOCK
    /// `sizeof(struct signalfd_siginfo)`; `ssi_signo` is its first `uint32_t`.
    static let signalfdSiginfoSize = 128

    /// `struct epoll_event` is `{ uint32_t events; uint64_t data; }`, declared packed on x86_64 only.
    #if arch(x86_64)
    static let epollEventSize = 12
    static let epollEventDataOffset = 4
    #else
    static let epollEventSize = 16
    static let epollEventDataOffset = 8
    #endif
}

/// The current value of CLOCK_MONOTONIC in microseconds: the clock systemd uses for `MONOTONIC_USEC`.
func monotonicMicroseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
}

extension Duration {
    /// This duration as a `timespec`, rounded up to whole nanoseconds, at least 1 ns: `timerfd_settime`
    /// reads an all-zero value as "disarm".
    var timespecRoundedUp: timespec {
        let (seconds, attoseconds) = components
        precondition(seconds >= 0 && attoseconds >= 0, "negative duration \(self)")
        var nanoseconds = attoseconds / 1_000_000_000
        if attoseconds % 1_000_000_000 != 0 { nanoseconds += 1 }
        var spec = timespec(tv_sec: Int(seconds), tv_nsec: Int(nanoseconds))
        if spec.tv_nsec == 1_000_000_000 {
            spec.tv_sec += 1
            spec.tv_nsec = 0
        }
        if spec.tv_sec == 0 && spec.tv_nsec == 0 { spec.tv_nsec = 1 }
        return spec
    }

    /// Whole milliseconds, rounded up, for `epoll_wait`'s timeout; clamped to `Int32.max`.
    var millisecondsRoundedUp: Int32 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}

/// Returns memory freed to the allocator to the kernel (glibc's `malloc_trim`), so a daemon's
/// resident size follows what it holds rather than its peak.
func releaseFreedMemory() {
    // Glibc's Swift module does not import malloc.h, so the symbol is looked up once at run time.
    typealias MallocTrim = @convention(c) (Int) -> Int32
    struct Once { nonisolated(unsafe) static let trim = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim")
                      .map { unsafeBitCast($0, to: MallocTrim.self) } }
    _ = Once.trim?(0)
}
#endif
