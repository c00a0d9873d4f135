#if os(Linux)
import Foundation
import Glibc
import SystemPackage
import Testing
@testable import Enforcer

/// sd_notify messages sent to a real AF_UNIX datagram socket the test bound, as systemd's would be.
@Suite struct DaemonSystemdNotifierTests {
    /// A bound datagram socket standing in for systemd's notify socket.
    final class Receiver {
        let fd: Int32
        /// The value for `NOTIFY_SOCKET`.
        let address: String
        private let directory: DaemonTemporaryDirectory?

        init(abstract: Bool) throws {
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            try #require(fd >= 0)
            var sun = sockaddr_un()
            sun.sun_family = sa_family_t(AF_UNIX)
            let path: [UInt8]
            if abstract {
                directory = nil
                let name = "fwenforcer-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
                address = "@" + name
                path = [0] + Array(name.utf8)
            } else {
                let dir = try DaemonTemporaryDirectory()
                directory = dir
                address = dir("notify")
                path = Array(address.utf8) + [0]
            }
            withUnsafeMutableBytes(of: &sun.sun_path) { $0.copyBytes(from: path) }
            let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + path.count)
            let bound = withUnsafePointer(to: &sun) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
            }
            try daemonCheck(bound, "bind \(address)")
        }

        /// The next datagram, waiting up to two seconds.
        func receive() -> String? {
            guard daemonWaitReadable(fd, timeout: .seconds(2)) else { return nil }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count >= 0 else { return nil }
            return String(decoding: buffer[0..<count], as: UTF8.self)
        }

        func close() {
            _ = Glibc.close(fd)
            directory?.remove()
        }
    }

    @Test(arguments: [false, true])
    func messagesArriveOnTheNotifySocket(abstract: Bool) throws {
        let receiver = try Receiver(abstract: abstract)
        defer { receiver.close() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address])
        #expect(notifier.isEnabled)

        try notifier.ready(status: "enforcing 3 sets")
        #expect(receiver.receive() == "READY=1\nSTATUS=enforcing 3 sets")

        let before = monotonicMicroseconds()
        try notifier.reloading()
        let reloading = try #require(receiver.receive()).split(separator: "\n").map(String.init)
        #expect(reloading.first == "RELOADING=1")
        let stamp = try #require(reloading.dropFirst().first.flatMap { UInt64($0.dropFirst("MONOTONIC_USEC=".count)) })
        #expect(reloading[1].hasPrefix("MONOTONIC_USEC="))
        #expect(stamp >= before && stamp <= monotonicMicroseconds())

        try notifier.status("line one\nline two")
        #expect(receiver.receive() == "STATUS=line one line two")
        try notifier.watchdog()
        #expect(receiver.receive() == "WATCHDOG=1")
        try notifier.stopping()
        #expect(receiver.receive() == "STOPPING=1")
    }

    /// A receiver that stops reading must not freeze the daemon: once its queue is full, sends
    /// fail with EAGAIN at once (the old notifier blocked in sendto, and with it the event loop).
    @Test func aReceiverThatStopsReadingDoesNotBlock() throws {
        let receiver = try Receiver(abstract: true)
        defer { receiver.close() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address])
        final class Outcome: @unchecked Sendable {
            var sent = 0
            var refused: SystemCallError?
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            // A unix datagram queue holds net.unix.max_dgram_qlen (512 by default) messages.
            for _ in 0..<5_000 {
                do throws(SystemCallError) {
                    try notifier.status("reconciling")
                    outcome.sent += 1
                } catch {
                    outcome.refused = error
                    break
                }
            }
            done.signal()
        }
        try #require(done.wait(timeout: .now() + 5) == .success, "sd_notify blocked on a full queue")
        #expect(outcome.sent > 0)
        #expect(outcome.refused?.code == .wouldBlock)
        // Messages sent before the queue filled arrived whole.
        #expect(receiver.receive() == "STATUS=reconciling")
    }

    @Test func withoutNotifySocketNothingIsSent() throws {
        let notifier = SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        try notifier.ready()
        try notifier.watchdog()
    }

    @Test func missingListenerIsAnError() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": dir("nobody-listens")])
        #expect(throws: SystemCallError.self) { try notifier.ready() }
    }

    @Test(arguments: [
        ("/run/systemd/notify", SystemdNotifier.Destination.path("/run/systemd/notify")),
        ("@/org/freedesktop/systemd1/notify/123", .abstract("/org/freedesktop/systemd1/notify/123")),
        ("relative/path", nil),
        ("vsock:2:1234", nil),
        ("@", nil),
        ("", nil),
        ("/" + String(repeating: "x", count: 200), nil),
    ])
    func notifySocketParsing(_ value: String, _ expected: SystemdNotifier.Destination?) {
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": value]).destination == expected)
    }

    @Test(arguments: [
        (["WATCHDOG_USEC": "30000000"], Duration?.some(.seconds(15))),
        (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"], .some(.seconds(15))),
        (["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"], nil),
        (["WATCHDOG_USEC": "0"], nil),
        (["WATCHDOG_USEC": "soon"], nil),
        ([:], nil),
    ])
    func watchdogInterval(_ environment: [String: String], _ expected: Duration?) {
        let notifier = SystemdNotifier(environment: environment.merging(["NOTIFY_SOCKET": "/run/systemd/notify"]) { a, _ in a }, processID: 4242)
        #expect(notifier.watchdogInterval == expected)
    }

    /// The watchdog timer on the event loop sends WATCHDOG=1 every half timeout.
    @Test func watchdogPingsFromTheLoop() throws {
        let receiver = try Receiver(abstract: true)
        defer { receiver.close() }
        let loop = try EventLoop()
        defer { loop.close() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.address, "WATCHDOG_USEC": "20000"])
        #expect(notifier.watchdogInterval == .milliseconds(10))
        var pings: [String] = []
        try loop.watchReadable(FileDescriptor(rawValue: receiver.fd)) {
            if let message = receiver.receive() { pings.append(message) }
        }
        let timer = try notifier.scheduleWatchdog(on: loop) { Issue.record("ping failed: \($0)") }
        #expect(timer != nil)
        #expect(try loop.run(until: { pings.count >= 3 }, timeout: .seconds(2)))
        #expect(Set(pings) == ["WATCHDOG=1"])
    }

    @Test func noWatchdogTimerWhenTheWatchdogIsOff() throws {
        let loop = try EventLoop()
        defer { loop.close() }
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "/run/systemd/notify"])
        #expect(try notifier.scheduleWatchdog(on: loop) { _ in } == nil)
    }
}
#endif
