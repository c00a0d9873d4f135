import CNftables
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Tells when this host's interface addresses change (rtnetlink `RTMGRP_IPV4_IFADDR` and
/// `RTMGRP_IPV6_IFADDR`), so that a config with `roles = "auto"` is planned again: at early boot the
/// firewall starts before the network, when the host may not hold its addresses yet.
public final class AddressMonitor {
    private let socket: NetlinkSocket
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 15, alignment: 4)

    /// From <linux/rtnetlink.h>: the legacy group bitmasks for IPv4 and IPv6 address events.
    private static let groups: UInt32 = 0x10 | 0x100

    public init() throws(BackendError) {
        socket = try NetlinkSocket(protocol: NETLINK_ROUTE, groups: Self.groups)
    }

    deinit {
        assert(!socket.isOpen, "leak of an open AddressMonitor: call close()")
        buffer.deallocate()
    }

    public var fileDescriptor: Int32 { socket.fileDescriptor }

    public func close() { socket.close() }

    /// Reads pending messages without blocking, up to `budget`; true when any address was added,
    /// changed or removed (or events were lost, which may have hidden one). Only RTM_NEWADDR and
    /// RTM_DELADDR arrive on these groups, so any message counts. Lifetime refreshes (an IPv6
    /// router advertisement renewing `valid_lft`) are RTM_NEWADDR too: ``HostAddressWatch`` tells
    /// them from real changes.
    public func drain(budget: DrainBudget = .perTurn) -> Bool {
        var changed = false
        var meter = DrainBudget.Meter(budget)
        while true {
            do {
                guard let n = try socket.receive(into: buffer, wait: false), n > 0 else { return changed }
                changed = true
            } catch .system(_, .noBufferSpace) {
                changed = true
            } catch {
                return changed
            }
            if !meter.allowsAnother() { return changed }
        }
    }
}
