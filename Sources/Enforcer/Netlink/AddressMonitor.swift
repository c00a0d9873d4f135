import CNftables
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Tells when this host's interface addresses change (rtnetlink `RTMGRP_IPV4_IFADDR` and
/// `RTMGRP_IPV6_IFADDR`), so that a config with `roles = "auto"` is planned again: at early boot the
/// firewall starts before the network, when the host may not hold its addresses yet.
public final class AddressMonitor {
    private var socket: OpaquePointer?
    private var buffer = [UInt8](repeating: 0, count: 1 << 15)

    /// From <linux/rtnetlink.h>: the legacy group bitmasks for IPv4 and IPv6 address events.
    private static let groups: UInt32 = 0x10 | 0x100

    public init() throws(BackendError) {
        guard let nl = mnl_socket_open(NETLINK_ROUTE) else {
            throw .system(call: "socket(NETLINK_ROUTE)", Errno(rawValue: errno))
        }
        socket = nl
        guard mnl_socket_bind(nl, Self.groups, pid_t(MNL_SOCKET_AUTOPID)) == 0 else {
            let e = errno
            close()
            throw .system(call: "bind(RTMGRP_IPV4_IFADDR|RTMGRP_IPV6_IFADDR)", Errno(rawValue: e))
        }
    }

    deinit {
        assert(socket == nil, "leak of an open AddressMonitor: call close()")
    }

    public var fileDescriptor: Int32 { socket.map { mnl_socket_get_fd($0) } ?? -1 }

    public func close() {
        if let s = socket { mnl_socket_close(s) }
        socket = nil
    }

    /// Reads every pending message without blocking; true when any address was added or removed
    /// (or events were lost, which may have hidden one).
    public func drain() -> Bool {
        var changed = false
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fileDescriptor, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOBUFS { changed = true; continue }
                return changed
            }
            if n == 0 { return changed }
            // Only RTM_NEWADDR (20) and RTM_DELADDR (21) arrive on these groups; any message counts.
            changed = true
        }
    }
}
