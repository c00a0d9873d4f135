#if os(Linux)
import Glibc
import SystemPackage

/// The daemon's single-threaded event loop: one epoll instance over readable descriptors, timers
/// (timerfd) and signals (signalfd).
///
/// Handlers run one at a time on the thread that calls ``run()``, so a reconcile never overlaps
/// another event. The loop sleeps in `epoll_wait` until something is ready; it never polls. When
/// several sources are ready at once, signals run first, then the others in registration order, so a
/// SIGTERM is not delayed behind a burst of work and runs are repeatable.
///
/// A handler that throws stops the loop; ``run()`` rethrows the error. ``close()`` closes every
/// descriptor the loop created (epoll, timers, signalfd); descriptors passed to
/// ``watchReadable(_:_:)`` stay owned by the caller.
///
/// Not thread-safe: create it, register sources and run it on one thread.
public final class EventLoop {
    public typealias Handler = () throws -> Void
    public typealias SignalHandler = (_ signal: Int32) throws -> Void
    /// A signal with what its sender attached: the value of `sigqueue`/`pidfd_send_signal` (0 for
    /// a plain `kill`), and whether it was queued with one.
    public struct SignalInfo: Sendable, Hashable {
        public var signal: Int32
        /// `si_value.sival_int` of a queued signal.
        public var value: Int32
        /// True when sent with a value (`si_code` SI_QUEUE), not by a plain `kill`.
        public var queued: Bool
        public var senderPID: Int32
    }
    public typealias SignalInfoHandler = (_ info: SignalInfo) throws -> Void

    /// Identifies a readable-descriptor registration, for ``cancel(_:)``.
    public struct Registration: Hashable, Sendable {
        fileprivate let token: UInt64
    }

    private enum Source {
        case descriptor(Handler)
        case timer(Timer)
        case signals
    }

    private struct Entry {
        var fd: Int32
        var source: Source
        /// Whether ``close()`` closes `fd`: true for what the loop created.
        var owned: Bool
    }

    private let epollFD: Int32
    /// Keyed by a token that is never reused, so an event still queued for a source cancelled earlier
    /// in the same batch cannot reach a newer source that got the same descriptor number.
    private var entries: [UInt64: Entry] = [:]
    private var nextToken: UInt64 = 1
    private var signalToken: UInt64?
    private var signalMask = sigset_t()
    private var signalHandlers: [Int32: SignalInfoHandler] = [:]
    private var stopRequested = false
    public private(set) var isClosed = false
    /// The thread that created the loop: the only one that may run it (a signalfd reports the
    /// signals pending for the thread that reads it, and handlers rely on never running concurrently).
    private let owner = pthread_self()

    /// Every descriptor the loop opened and closed, for tests that check shutdown closes everything.
    private(set) var openedDescriptors: [Int32] = []
    private(set) var closedDescriptors: [Int32] = []

    /// The corresponding C function is `epoll_create1`.
    public init() throws(SystemCallError) {
        epollFD = try retryingInterrupts("epoll_create1") { LinuxCalls.epollCreate1(LinuxCalls.EPOLL_CLOEXEC) }
        openedDescriptors.append(epollFD)
        sigemptyset(&signalMask)
    }

    deinit {
        assert(isClosed, "leak of an open EventLoop: call close()")
    }

    // MARK: Sources

    /// Calls `handler` whenever `fd` is readable (or has an error or hang-up). The descriptor is
    /// level-triggered: a handler that does not consume what is ready is called again at once.
    @discardableResult
    public func watchReadable(_ fd: FileDescriptor, _ handler: @escaping Handler) throws(SystemCallError) -> Registration {
        Registration(token: try add(fd: fd.rawValue, source: .descriptor(handler), owned: false))
    }

    /// Stops watching a descriptor registered with ``watchReadable(_:_:)``. Does not close it.
    public func cancel(_ registration: Registration) {
        remove(token: registration.token)
    }

    /// A new, unscheduled timer on CLOCK_MONOTONIC whose `handler` runs on this loop.
    ///
    /// The corresponding C function is `timerfd_create`.
    public func makeTimer(_ handler: @escaping Handler) throws(SystemCallError) -> Timer {
        precondition(!isClosed, "EventLoop is closed")
        let fd = try retryingInterrupts("timerfd_create") {
            LinuxCalls.timerfdCreate(CLOCK_MONOTONIC, LinuxCalls.TFD_CLOEXEC | LinuxCalls.TFD_NONBLOCK)
        }
        openedDescriptors.append(fd)
        let timer = Timer(fd: fd, loop: self, handler: handler)
        do throws(SystemCallError) {
            timer.token = try add(fd: fd, source: .timer(timer), owned: true)
        } catch {
            closeOwned(fd)
            throw error
        }
        return timer
    }

    /// Delivers `signals` to `handler` through a signalfd.
    ///
    /// The signals are blocked on the calling thread here, but a signalfd only sees signals that no
    /// thread takes the ordinary way: call ``SignalMask/block(_:)`` before the process starts any other
    /// thread, so every thread inherits the block. Otherwise a SIGHUP may hit an unblocked thread and
    /// terminate the process (its default action).
    ///
    /// The corresponding C function is `signalfd`.
    public func handleSignals(_ signals: [Int32], _ handler: @escaping SignalHandler) throws(SystemCallError) {
        try handleSignalsWithInfo(signals, { try handler($0.signal) })
    }

    /// The same, handing each handler what the sender attached to the signal (`SignalInfo`).
    public func handleSignalsWithInfo(_ signals: [Int32], _ handler: @escaping SignalInfoHandler) throws(SystemCallError) {
        precondition(!isClosed, "EventLoop is closed")
        try SignalMask.block(signals)
        for signal in signals {
            sigaddset(&signalMask, signal)
            signalHandlers[signal] = handler
        }
        if let token = signalToken, let entry = entries[token] {
            // Passing the existing descriptor replaces its mask.
            _ = try retryingInterrupts("signalfd") {
                LinuxCalls.signalfd(entry.fd, &signalMask, LinuxCalls.SFD_CLOEXEC | LinuxCalls.SFD_NONBLOCK)
            }
            return
        }
        let fd = try retryingInterrupts("signalfd") {
            LinuxCalls.signalfd(-1, &signalMask, LinuxCalls.SFD_CLOEXEC | LinuxCalls.SFD_NONBLOCK)
        }
        openedDescriptors.append(fd)
        do throws(SystemCallError) {
            signalToken = try add(fd: fd, source: .signals, owned: true)
        } catch {
            closeOwned(fd)
            throw error
        }
    }

    private func add(fd: Int32, source: Source, owned: Bool) throws(SystemCallError) -> UInt64 {
        precondition(!isClosed, "EventLoop is closed")
        let token = nextToken
        nextToken += 1
        var event = [UInt8](repeating: 0, count: LinuxCalls.epollEventSize)
        event.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: LinuxCalls.EPOLLIN, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: token, toByteOffset: LinuxCalls.epollEventDataOffset, as: UInt64.self)
        }
        try retryingInterrupts("epoll_ctl(ADD)", "fd \(fd)") {
            event.withUnsafeMutableBytes { LinuxCalls.epollCtl(epollFD, LinuxCalls.EPOLL_CTL_ADD, fd, $0.baseAddress) }
        }
        entries[token] = Entry(fd: fd, source: source, owned: owned)
        return token
    }

    fileprivate func remove(token: UInt64) {
        guard let entry = entries.removeValue(forKey: token) else { return }
        // ENOENT/EBADF here only mean the caller closed the descriptor first, which already removed it.
        _ = LinuxCalls.epollCtl(epollFD, LinuxCalls.EPOLL_CTL_DEL, entry.fd, nil)
        if entry.owned { closeOwned(entry.fd) }
    }

    private func closeOwned(_ fd: Int32) {
        closedDescriptors.append(fd)
        closeDescriptor(fd)
    }

    // MARK: Running

    /// Runs handlers as sources become ready until a handler calls ``stop()`` or throws (rethrown here).
    ///
    /// Must be called on the thread that created the loop and registered its signals.
    public func run() throws {
        stopRequested = false
        while !stopRequested && !isClosed {
            try runOnce(timeout: nil)
        }
    }

    /// Makes ``run()`` return once the running handler returns; the other ready events wait for the
    /// next run.
    public func stop() {
        stopRequested = true
    }

    /// Runs the loop until `condition` holds or `timeout` passes; returns whether `condition` holds.
    /// For tests, and for callers that wait for one specific outcome with a deadline.
    @discardableResult
    public func run(until condition: () -> Bool, timeout: Duration) throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        stopRequested = false
        while !condition() && !stopRequested {
            let remaining = clock.now.duration(to: deadline)
            if remaining <= .zero { break }
            try runOnce(timeout: remaining)
        }
        return condition()
    }

    /// Waits up to `timeout` (forever when nil) for ready sources and runs their handlers.
    func runOnce(timeout: Duration?) throws {
        precondition(!isClosed, "EventLoop is closed")
        assert(pthread_equal(owner, pthread_self()) != 0, "EventLoop run from a thread other than the one that made it")
        let capacity = 32
        var buffer = [UInt8](repeating: 0, count: capacity * LinuxCalls.epollEventSize)
        let timeoutMilliseconds = timeout.map { $0.millisecondsRoundedUp } ?? -1
        let count = try retryingInterrupts("epoll_wait") {
            buffer.withUnsafeMutableBytes {
                LinuxCalls.epollWait(epollFD, $0.baseAddress, Int32(capacity), timeoutMilliseconds)
            }
        }
        if count == 0 { return }
        var tokens: [UInt64] = buffer.withUnsafeBytes { raw in
            (0..<Int(count)).map {
                raw.loadUnaligned(
                    fromByteOffset: $0 * LinuxCalls.epollEventSize + LinuxCalls.epollEventDataOffset,
                    as: UInt64.self)
            }
        }
        let signals = signalToken
        tokens.sort { ($0 == signals ? 0 : 1, $0) < ($1 == signals ? 0 : 1, $1) }
        for token in tokens {
            // A handler may have stopped the loop, or closed it (then nothing more may run).
            if stopRequested || isClosed { return }
            guard let entry = entries[token] else { continue }
            switch entry.source {
            case .descriptor(let handler):
                try handler()
            case .timer(let timer):
                try timer.fire()
            case .signals:
                try dispatchSignals(from: entry.fd)
            }
        }
    }

    private func dispatchSignals(from fd: Int32) throws {
        var info = [UInt8](repeating: 0, count: LinuxCalls.signalfdSiginfoSize)
        while !stopRequested {
            let count = info.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count == -1 && errno == EINTR { continue }
            // EAGAIN: drained. A signalfd returns whole siginfo records or fails.
            guard count == LinuxCalls.signalfdSiginfoSize else { return }
            // struct signalfd_siginfo: ssi_signo at 0, ssi_code at 8, ssi_pid at 12, ssi_int at 44.
            let (signal, code, pid, value) = info.withUnsafeBytes {
                (Int32(bitPattern: $0.load(fromByteOffset: 0, as: UInt32.self)), $0.load(fromByteOffset: 8, as: Int32.self),
                 Int32(bitPattern: $0.load(fromByteOffset: 12, as: UInt32.self)), $0.load(fromByteOffset: 44, as: Int32.self))
            }
            try signalHandlers[signal]?(SignalInfo(signal: signal, value: value, queued: code == LinuxCalls.siQueue, senderPID: pid))
        }
    }

    // MARK: Shutdown

    /// Closes every descriptor the loop created and forgets all sources. Idempotent. Signals stay
    /// blocked: unblocking with one still pending would run its default action.
    public func close() {
        if isClosed { return }
        for token in entries.keys.sorted() { remove(token: token) }
        signalToken = nil
        signalHandlers = [:]
        closeOwned(epollFD)
        isClosed = true
    }
}

extension EventLoop {
    /// A CLOCK_MONOTONIC timer on an ``EventLoop`` (a timerfd), one-shot or periodic.
    ///
    /// Late expirations of a periodic timer are coalesced: the handler runs once per wake-up, however
    /// many periods passed.
    public final class Timer {
        let fd: Int32
        fileprivate var token: UInt64 = 0
        private unowned let loop: EventLoop
        private let handler: Handler
        private var periodic = false
        /// Whether the timer will fire: set by ``schedule(after:repeating:)``, cleared by ``cancel()``
        /// and by a one-shot firing.
        public private(set) var isScheduled = false
        public private(set) var isInvalidated = false

        fileprivate init(fd: Int32, loop: EventLoop, handler: @escaping Handler) {
            self.fd = fd
            self.loop = loop
            self.handler = handler
        }

        /// Fires once after `delay` and then every `interval` if given, replacing any earlier schedule.
        ///
        /// The corresponding C function is `timerfd_settime`.
        public func schedule(after delay: Duration, repeating interval: Duration? = nil) {
            precondition(!isInvalidated, "timer is invalidated")
            var spec = itimerspec()
            spec.it_value = delay.timespecRoundedUp
            if let interval { spec.it_interval = interval.timespecRoundedUp }
            setTime(spec)
            periodic = interval != nil
            isScheduled = true
        }

        /// Stops the timer; a pending expiry that was not yet handled is discarded.
        public func cancel() {
            guard !isInvalidated else { return }
            setTime(itimerspec())
            isScheduled = false
        }

        /// Cancels the timer for good and closes its descriptor.
        public func invalidate() {
            guard !isInvalidated else { return }
            isInvalidated = true
            isScheduled = false
            loop.remove(token: token)
        }

        private func setTime(_ spec: itimerspec) {
            var spec = spec
            // Only EBADF, EFAULT or EINVAL are possible here: all bugs.
            let result = LinuxCalls.timerfdSettime(fd, 0, &spec, nil)
            precondition(result == 0, "timerfd_settime: \(Errno(rawValue: errno))")
        }

        fileprivate func fire() throws {
            var expirations: UInt64 = 0
            let count = withUnsafeMutableBytes(of: &expirations) { Glibc.read(fd, $0.baseAddress, 8) }
            // EAGAIN: the timer was cancelled or re-armed after the kernel queued this wake-up.
            guard count == 8 else { return }
            if !periodic { isScheduled = false }
            try handler()
        }
    }
}

/// The signal mask of the calling thread, which threads created afterwards inherit.
public enum SignalMask {
    /// The signals `fwenforcerd run` handles through its event loop: SIGHUP reloads, SIGTERM and
    /// SIGINT stop, SIGUSR1 confirms a provisional change (`fwenforcerd confirm`).
    public static let daemonSignals: [Int32] = [SIGHUP, SIGTERM, SIGINT, SIGUSR1]

    /// Blocks `signals` on the calling thread. Call it first thing in `main`, before anything starts
    /// a thread, so that no thread takes these signals the ordinary way and the loop's signalfd gets
    /// them all.
    ///
    /// The corresponding C function is `pthread_sigmask`.
    public static func block(_ signals: [Int32]) throws(SystemCallError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        let result = pthread_sigmask(SIG_BLOCK, &set, nil)
        // pthread_sigmask returns the error number instead of setting errno.
        if result != 0 { throw SystemCallError(call: "pthread_sigmask", code: Errno(rawValue: result)) }
    }
}
#endif
