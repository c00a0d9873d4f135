#if os(Linux)
import Glibc
import SystemPackage

/// Tells the service manager about the daemon's state with the `sd_notify` datagram protocol,
/// implemented directly (no libsystemd): newline-separated `KEY=value` assignments in one datagram to
/// the AF_UNIX socket named by `$NOTIFY_SOCKET`.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd, or not `Type=notify`) every call does nothing.
/// Each message uses a fresh socket, as libsystemd does, so nothing stays open and a restarted
/// service manager is reached at the same path.
public struct SystemdNotifier: Sendable {
    /// Where notifications go.
    public enum Destination: Sendable, Equatable {
        /// A socket in the file system (`NOTIFY_SOCKET=/run/systemd/notify`).
        case path(String)
        /// A socket in the abstract namespace (`NOTIFY_SOCKET=@name`); the name excludes the `@`.
        case abstract(String)
    }

    /// Where notifications go, or nil when the service manager did not ask for them.
    public let destination: Destination?
    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    /// recommends; nil when the watchdog is off or `$WATCHDOG_PID` names another process.
    public let watchdogInterval: Duration?

    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from `environment`.
    ///
    /// A `NOTIFY_SOCKET` this code cannot use (relative, `vsock:`, too long for `sun_path`) disables
    /// notification, as libsystemd's sd_notify does for addresses it rejects.
    public init(environment: [String: String], processID: Int32 = getpid()) {
        destination = environment["NOTIFY_SOCKET"].flatMap(Self.parseDestination)
        watchdogInterval = Self.parseWatchdogInterval(
            microseconds: environment["WATCHDOG_USEC"], pid: environment["WATCHDOG_PID"], processID: processID)
    }

    /// From this process's environment.
    public static func fromProcessEnvironment() -> SystemdNotifier {
        SystemdNotifier(environment: processEnvironment())
    }

    /// Whether notifications are sent anywhere.
    public var isEnabled: Bool { destination != nil }

    static func parseDestination(_ value: String) -> Destination? {
        let maximumPath = MemoryLayout.size(ofValue: sockaddr_un().sun_path)
        if value.hasPrefix("/"), value.utf8.count < maximumPath { return .path(value) }
        if value.hasPrefix("@"), value.utf8.count <= maximumPath, value.utf8.count > 1 {
            return .abstract(String(value.dropFirst()))
        }
        return nil
    }

    static func parseWatchdogInterval(microseconds: String?, pid: String?, processID: Int32) -> Duration? {
        guard let microseconds, let value = UInt64(microseconds), value > 0 else { return nil }
        if let pid {
            guard let owner = Int32(pid), owner == processID else { return nil }
        }
        return .microseconds(value / 2)
    }

    // MARK: Messages

    /// `READY=1`: start-up (or a reload announced with ``reloading()``) is complete.
    public func ready(status: String? = nil) throws(SystemCallError) {
        try send(["READY=1"] + statusLine(status))
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, which systemd 253+ requires to match a reload to its
    /// `READY=1`; follow it with ``ready(status:)``.
    public func reloading(status: String? = nil) throws(SystemCallError) {
        try send(["RELOADING=1", "MONOTONIC_USEC=\(monotonicMicroseconds())"] + statusLine(status))
    }

    /// `STOPPING=1`: shutting down.
    public func stopping(status: String? = nil) throws(SystemCallError) {
        try send(["STOPPING=1"] + statusLine(status))
    }

    /// `STATUS=…`: one line shown by `systemctl status`.
    public func status(_ text: String) throws(SystemCallError) {
        try send(statusLine(text))
    }

    /// `WATCHDOG=1`: the daemon is alive. Send it every ``watchdogInterval``.
    public func watchdog() throws(SystemCallError) {
        try send(["WATCHDOG=1"])
    }

    /// Sends `WATCHDOG=1` every ``watchdogInterval`` from `loop`, so a stuck loop stops the pings and
    /// systemd restarts the service. Returns nil (and schedules nothing) when the watchdog is off.
    /// A failed ping is passed to `onError`; it does not stop the loop.
    public func scheduleWatchdog(
        on loop: EventLoop, onError: @escaping (SystemCallError) -> Void
    ) throws(SystemCallError) -> EventLoop.Timer? {
        guard let interval = watchdogInterval, isEnabled else { return nil }
        let timer = try loop.makeTimer {
            do throws(SystemCallError) { try self.watchdog() } catch { onError(error) }
        }
        timer.schedule(after: interval, repeating: interval)
        return timer
    }

    private func statusLine(_ status: String?) -> [String] {
        // A newline would end the assignment early.
        guard let status else { return [] }
        return ["STATUS=" + status.split(whereSeparator: \.isNewline).joined(separator: " ")]
    }

    /// Sends `assignments` as one datagram. Does nothing when notification is off.
    ///
    /// Never waits: a receiver that stops reading (a stalled PID 1, a supervisor in a container, a
    /// test harness) fills the socket's queue, and a blocking send would then freeze the daemon's
    /// event loop, with it every reconcile and repair. A full queue is `EAGAIN` instead, which the
    /// daemon logs; the message is lost, as it would be to a receiver that is gone.
    ///
    /// The corresponding C functions are `socket` and `sendto`.
    public func send(_ assignments: [String]) throws(SystemCallError) {
        guard let destination else { return }
        let message = Array(assignments.joined(separator: "\n").utf8)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes: [UInt8]
        let subject: String
        switch destination {
        case .path(let path):
            pathBytes = Array(path.utf8) + [0]
            subject = path
        case .abstract(let name):
            // The abstract namespace is a sun_path starting with NUL; the length counts the name exactly.
            pathBytes = [0] + Array(name.utf8)
            subject = "@" + name
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes.prefix(raw.count))
        }
        let addressLength = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count)
        let socketType = Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
        let fd = try retryingInterrupts("socket(AF_UNIX, SOCK_DGRAM)") { socket(AF_UNIX, socketType, 0) }
        defer { closeDescriptor(fd) }
        try retryingInterrupts("sendto", subject) {
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                    message.withUnsafeBytes {
                        sendto(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL | MSG_DONTWAIT), address, addressLength)
                    }
                }
            }
        }
    }
}

/// This process's environment as a dictionary (first assignment wins, as getenv(3) does).
func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var cursor = environ
    while let entry = cursor.pointee {
        let assignment = String(cString: entry)
        if let equals = assignment.firstIndex(of: "=") {
            let key = String(assignment[..<equals])
            if result[key] == nil { result[key] = String(assignment[assignment.index(after: equals)...]) }
        }
        cursor += 1
    }
    return result
}
#endif
