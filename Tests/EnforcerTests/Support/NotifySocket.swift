import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A unix datagram socket standing in for systemd's NOTIFY_SOCKET: the daemon's READY=1,
/// STATUS=, WATCHDOG=1 and STOPPING=1 arrive here.
final class NotifySocket {
    let path: String
    let fd: Int32
    private var closed = false

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0, "bind \(path): \(String(cString: strerror(errno)))")
    }

    deinit { close() }

    /// The next message containing `text`, waiting until `deadline`; with the time it was read.
    func next(containing text: String, before deadline: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        message(containing: text, before: deadline)?.at
    }

    /// The first message containing `text` within `seconds`.
    func wait(for text: String, seconds: Double = 10) -> String? {
        message(containing: text, before: ContinuousClock.now.advanced(by: .milliseconds(Int64(seconds * 1000))))?.text
    }

    private func message(containing text: String, before deadline: ContinuousClock.Instant) -> (text: String, at: ContinuousClock.Instant)? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero, daemonWaitReadable(fd, timeout: left) else { return nil }
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                let m = String(decoding: buffer.prefix(n), as: UTF8.self)
                if m.contains(text) { return (m, ContinuousClock.now) }
            }
        }
    }

    /// Drops every message already queued, so that what is read next was sent from now on.
    func discardPending() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) >= 0 {}
    }

    func close() {
        guard !closed else { return }
        closed = true
        Glibc.close(fd)
    }
}
