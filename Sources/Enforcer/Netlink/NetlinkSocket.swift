import CNftables
import Glibc
import SystemPackage

/// The one funnel through which the netlink layer calls into libc and libmnl: runs `body` until it
/// does not fail with EINTR and turns `-1` + errno into `BackendError.system`. EBADF and EFAULT
/// are bugs in this file, not conditions to report, as swift-nio treats them.
@discardableResult
func netlinkCall<Result: FixedWidthInteger>(_ call: String, _ body: () -> Result) throws(BackendError) -> Result {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = Errno(rawValue: errno)
        switch code {
        case .interrupted: continue
        case .badFileDescriptor, .badAddress: preconditionFailure("\(call): \(code) (a bug in the netlink layer)")
        default: throw .system(call: call, code)
        }
    }
}

/// An open netlink socket (`NETLINK_NETFILTER` unless told otherwise), owned: `close()` it
/// explicitly; `deinit` asserts it was. Event listeners (the nftables and address monitors) bind it
/// to multicast groups.
///
/// One long-lived socket serves the daemon: the kernel frees a closed socket's state lazily, so a
/// process that opens a socket per transaction pays for that cleanup (10-20 ms after deletions).
/// NETLINK_EXT_ACK is on, so errors carry the offset of the attribute (element) that failed;
/// NETLINK_CAP_ACK keeps the kernel from echoing a whole 64 KiB message back with each error.
final class NetlinkSocket {
    private var handle: OpaquePointer?
    let portID: UInt32
    private var nextSequence: UInt32
    /// True once SO_SNDBUFFORCE / SO_RCVBUFFORCE was refused (EPERM) and the plain option used.
    private(set) var forceRefused = false

    /// The corresponding C functions are `mnl_socket_open` and `mnl_socket_bind`; `groups` is the
    /// legacy multicast group bitmask to listen to.
    init(protocol netlinkProtocol: Int32 = NETLINK_NETFILTER, groups: UInt32 = 0) throws(BackendError) {
        guard let nl = mnl_socket_open(netlinkProtocol) else {
            throw .system(call: "mnl_socket_open", Errno(rawValue: errno))
        }
        handle = nl
        do throws(BackendError) {
            try netlinkCall("mnl_socket_bind") { mnl_socket_bind(nl, groups, pid_t(MNL_SOCKET_AUTOPID)) }
        } catch {
            mnl_socket_close(nl)
            handle = nil
            throw error
        }
        portID = mnl_socket_get_portid(nl)
        // Sequence numbers only need to be unique on this socket; starting from the clock keeps
        // replies to an earlier (crashed) process's socket from ever matching.
        nextSequence = UInt32(truncatingIfNeeded: time(nil))
        // Both options exist since Linux 4.12; without them errors are still reported, only less precisely.
        _ = try? setOption(level: SOL_NETLINK, NETLINK_EXT_ACK, 1, "NETLINK_EXT_ACK")
        _ = try? setOption(level: SOL_NETLINK, NETLINK_CAP_ACK, 1, "NETLINK_CAP_ACK")
    }

    deinit {
        assert(handle == nil, "leak of an open netlink socket: call close()")
        if let handle { mnl_socket_close(handle) }
    }

    /// Closes the socket. The corresponding C function is `mnl_socket_close`.
    func close() {
        guard let h = handle else { return }
        mnl_socket_close(h)
        handle = nil
    }

    var isOpen: Bool { handle != nil }

    /// The descriptor to wait on for readability.
    var fileDescriptor: Int32 { fd }

    private var fd: Int32 {
        guard let h = handle else { preconditionFailure("netlink socket used after close()") }
        return mnl_socket_get_fd(h)
    }

    /// Reserves `count` consecutive sequence numbers and returns the first.
    func reserveSequences(_ count: Int) -> UInt32 {
        let first = nextSequence
        nextSequence &+= UInt32(count)
        return first
    }

    // MARK: - buffers

    private func setOption(level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws(BackendError) {
        var v = value
        try netlinkCall("setsockopt(\(label))") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    private func option(_ name: Int32, _ label: String) throws(BackendError) -> Int {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        try netlinkCall("getsockopt(\(label))") { getsockopt(fd, SOL_SOCKET, name, &v, &len) }
        return Int(v)
    }

    /// The send buffer, raised to hold `bytes` in one `sendmsg` if it does not already.
    ///
    /// A batch must travel in one `sendmsg` (the kernel treats one skb as one transaction), and
    /// netlink refuses a message larger than the send buffer. SO_SNDBUFFORCE needs CAP_NET_ADMIN in
    /// the socket's user namespace, which containers often lack: then SO_SNDBUF, which the kernel
    /// caps at `net.core.wmem_max`. Returns the size the kernel granted.
    @discardableResult
    func ensureSendBuffer(_ bytes: Int) throws(BackendError) -> Int {
        try ensureBuffer(bytes, get: SO_SNDBUF, force: SO_SNDBUFFORCE, plain: SO_SNDBUF, label: "SO_SNDBUF")
    }

    /// The receive buffer, raised to hold `bytes` of replies (acknowledgements are queued all at
    /// once, while the batch is processed inside `sendmsg`). Same fallback as the send buffer.
    @discardableResult
    func ensureReceiveBuffer(_ bytes: Int) throws(BackendError) -> Int {
        try ensureBuffer(bytes, get: SO_RCVBUF, force: SO_RCVBUFFORCE, plain: SO_RCVBUF, label: "SO_RCVBUF")
    }

    private func ensureBuffer(_ bytes: Int, get: Int32, force: Int32, plain: Int32, label: String) throws(BackendError) -> Int {
        let current = try option(get, label)
        guard current < bytes else { return current }
        let wanted = Int32(clamping: bytes)
        do throws(BackendError) {
            try setOption(level: SOL_SOCKET, force, wanted, label + "FORCE")
        } catch .system(_, .notPermitted) {
            forceRefused = true
            try setOption(level: SOL_SOCKET, plain, wanted, label)
        }
        return try option(get, label)
    }

    // MARK: - I/O

    /// Sends one buffer (a whole batch, or one request). The corresponding C function is `sendto`
    /// (through `mnl_socket_sendto`).
    func send(_ bytes: [UInt8]) throws(BackendError) {
        guard let h = handle else { preconditionFailure("netlink socket used after close()") }
        let sent = try netlinkCall("sendto") {
            bytes.withUnsafeBytes { raw in mnl_socket_sendto(h, raw.baseAddress, raw.count) }
        }
        guard sent == bytes.count else {
            throw .protocolViolation("sendto wrote \(sent) of \(bytes.count) bytes")
        }
    }

    /// Receives one datagram into `buffer`; nil when `wait` is false and nothing is queued.
    /// ENOBUFS (the kernel dropped replies for lack of receive buffer) is reported as such.
    func receive(into buffer: UnsafeMutableRawBufferPointer, wait: Bool) throws(BackendError) -> Int? {
        let flags: Int32 = wait ? 0 : Int32(MSG_DONTWAIT)
        do throws(BackendError) {
            return try netlinkCall("recv") { recv(fd, buffer.baseAddress, buffer.count, flags) }
        } catch .system(_, .wouldBlock) where !wait {
            return nil
        }
    }
}
