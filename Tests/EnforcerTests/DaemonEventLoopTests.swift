#if os(Linux)
import Glibc
import SystemPackage
import Testing
@testable import Enforcer

/// The event loop with real descriptors: timerfd, signalfd, pipes. Each test drives the loop on its
/// own thread and waits with deadlines, never fixed sleeps.
@Suite struct DaemonEventLoopTests {
    @Test func oneShotTimerFiresOnce() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        var fired = 0
        let timer = try loop.makeTimer { fired += 1 }
        timer.schedule(after: .milliseconds(5))
        #expect(timer.isScheduled)
        #expect(try loop.run(until: { fired == 1 }, timeout: .seconds(2)))
        #expect(!timer.isScheduled)
        // Nothing is left to fire.
        try loop.run(until: { fired > 1 }, timeout: .milliseconds(50))
        #expect(fired == 1)
    }

    @Test func periodicTimerRepeatsUntilCancelled() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        var fired = 0
        let timer = try loop.makeTimer { fired += 1 }
        timer.schedule(after: .milliseconds(1), repeating: .milliseconds(2))
        #expect(try loop.run(until: { fired >= 3 }, timeout: .seconds(2)))
        timer.cancel()
        let count = fired
        try loop.run(until: { fired > count }, timeout: .milliseconds(30))
        #expect(fired == count)
    }

    @Test func rescheduleReplacesEarlierSchedule() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let clock = ContinuousClock()
        var firedAt: ContinuousClock.Instant?
        let timer = try loop.makeTimer { firedAt = clock.now }
        let start = clock.now
        timer.schedule(after: .milliseconds(1))
        timer.schedule(after: .milliseconds(60))
        #expect(try loop.run(until: { firedAt != nil }, timeout: .seconds(2)))
        #expect(start.duration(to: firedAt!) >= .milliseconds(60))
    }

    @Test func readableDescriptorRunsHandlerUntilCancelled() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        var ends: [Int32] = [0, 0]
        try daemonCheck(pipe(&ends), "pipe")
        defer { close(ends[0]); close(ends[1]) }
        var received: [UInt8] = []
        let registration = try loop.watchReadable(FileDescriptor(rawValue: ends[0])) {
            var byte: UInt8 = 0
            if read(ends[0], &byte, 1) == 1 { received.append(byte) }
        }
        var byte: UInt8 = 42
        #expect(write(ends[1], &byte, 1) == 1)
        #expect(try loop.run(until: { received == [42] }, timeout: .seconds(2)))

        loop.cancel(registration)
        byte = 43
        #expect(write(ends[1], &byte, 1) == 1)
        try loop.run(until: { received.count > 1 }, timeout: .milliseconds(30))
        #expect(received == [42])
    }

    /// SIGHUP sent to this thread with the signal blocked arrives through the signalfd, not as a
    /// default action (which would end the test process).
    @Test func signalsArriveThroughTheLoop() throws {
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let loop = try EventLoop()
        defer { loop.close() }
        var received: [Int32] = []
        try loop.handleSignals(SignalMask.daemonSignals) { signal in
            received.append(signal)
            if signal == SIGTERM { loop.stop() }
        }
        #expect(pthread_kill(pthread_self(), SIGHUP) == 0)
        #expect(try loop.run(until: { received == [SIGHUP] }, timeout: .seconds(2)))

        // SIGTERM stops run() itself.
        #expect(pthread_kill(pthread_self(), SIGTERM) == 0)
        try loop.run()
        #expect(received == [SIGHUP, SIGTERM])
        // Nothing is left pending that the restored mask would deliver.
        var pending = sigset_t()
        sigpending(&pending)
        #expect(sigismember(&pending, SIGHUP) == 0 && sigismember(&pending, SIGTERM) == 0)
    }

    /// Sources ready at the same time run signals first, then in registration order.
    @Test func readySourcesRunInDeterministicOrder() throws {
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let loop = try EventLoop()
        defer { loop.close() }
        var order: [String] = []
        let first = try loop.makeTimer { order.append("first") }
        let second = try loop.makeTimer { order.append("second") }
        try loop.handleSignals([SIGHUP]) { _ in order.append("signal") }
        second.schedule(after: .nanoseconds(1))
        first.schedule(after: .nanoseconds(1))
        #expect(pthread_kill(pthread_self(), SIGHUP) == 0)
        // Wait until both timers have expired, so one epoll_wait sees all three.
        #expect(daemonWaitReadable(first.fd, timeout: .seconds(2)))
        #expect(daemonWaitReadable(second.fd, timeout: .seconds(2)))
        try loop.runOnce(timeout: .seconds(2))
        #expect(order == ["signal", "first", "second"])
    }

    /// Level-triggered: a handler that stops at its budget (here one byte) is called again on the
    /// next turn, and a signal that arrived meanwhile runs before it, however much is still queued.
    @Test func aHandlerThatLeavesDataIsCalledAgainAfterSignals() throws {
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let loop = try EventLoop()
        defer { loop.close() }
        var ends: [Int32] = [0, 0]
        try daemonCheck(pipe(&ends), "pipe")
        defer { close(ends[0]); close(ends[1]) }
        _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)
        let queued = [UInt8](repeating: 0x61, count: 100)
        #expect(write(ends[1], queued, queued.count) == queued.count)
        var order: [String] = []
        try loop.watchReadable(FileDescriptor(rawValue: ends[0])) {
            var byte: UInt8 = 0
            if read(ends[0], &byte, 1) == 1 { order.append("byte") }
            if order.count == 3 { _ = pthread_kill(pthread_self(), SIGHUP) }
        }
        try loop.handleSignals([SIGHUP]) { _ in order.append("signal") }
        for _ in 0..<6 { try loop.runOnce(timeout: .seconds(2)) }
        // The fourth turn sees both: the signal runs first, then the next byte.
        #expect(order == ["byte", "byte", "byte", "signal", "byte", "byte", "byte"])
    }

    struct HandlerFailure: Error, Equatable {}

    @Test func handlerErrorStopsRunAndIsRethrown() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let timer = try loop.makeTimer { throw HandlerFailure() }
        timer.schedule(after: .milliseconds(1))
        #expect(throws: HandlerFailure()) { try loop.run() }
    }

    @Test func stopFromHandlerEndsRun() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        var ticks = 0
        let timer = try loop.makeTimer {
            ticks += 1
            if ticks == 3 { loop.stop() }
        }
        timer.schedule(after: .milliseconds(1), repeating: .milliseconds(1))
        try loop.run()
        #expect(ticks == 3)
    }

    /// Idle means asleep in epoll_wait: a quarter second of waiting costs (almost) no CPU time.
    @Test func idleLoopSleepsInTheKernel() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let backstop = try loop.makeTimer {}
        backstop.schedule(after: .seconds(3600), repeating: .seconds(3600))
        let before = threadCPUTime()
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try !loop.run(until: { false }, timeout: .milliseconds(250)))
        #expect(start.duration(to: clock.now) >= .milliseconds(250))
        #expect(threadCPUTime() - before < .milliseconds(25))
    }

    @Test func closeClosesEveryDescriptorItOpened() throws {
        var previous = sigset_t()
        pthread_sigmask(SIG_SETMASK, nil, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }

        let loop = try EventLoop()
        let timers = try (0..<3).map { _ in try loop.makeTimer {} }
        timers[0].schedule(after: .seconds(10))
        try loop.handleSignals([SIGHUP]) { _ in }
        timers[1].invalidate()
        #expect(loop.openedDescriptors.count == 5)  // epoll, 3 timers, signalfd
        loop.close()
        #expect(loop.isClosed)
        #expect(Set(loop.closedDescriptors) == Set(loop.openedDescriptors))
        #expect(loop.closedDescriptors.count == loop.openedDescriptors.count)
        loop.close()  // idempotent
        #expect(loop.closedDescriptors.count == loop.openedDescriptors.count)
    }

    private func threadCPUTime() -> Duration {
        var usage = rusage()
        getrusage(__rusage_who_t(1), &usage)  // RUSAGE_THREAD, which Glibc does not import
        let user = Duration.seconds(usage.ru_utime.tv_sec) + .microseconds(usage.ru_utime.tv_usec)
        let system = Duration.seconds(usage.ru_stime.tv_sec) + .microseconds(usage.ru_stime.tv_usec)
        return user + system
    }
}
#endif
