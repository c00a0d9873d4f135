#if os(Linux)
import SystemPackage

/// Tells the daemon when this host's addresses really changed, for `roles = "auto"`.
///
/// rtnetlink announces far more than changes: every IPv6 router advertisement refreshes the
/// lifetimes of the addresses it configured (an RTM_NEWADDR each), and an unrelated interface
/// going up or down adds and removes its link-local address. Re-planning for each costs a config
/// parse and a plan (0.1-0.4 s at 100,000 peers). So events are coalesced for `debounce` (and at
/// most `maximumDelay` from the first of a burst), the addresses are then read, and `onChange` runs
/// only when the set differs from the one last seen.
///
/// What is compared leaves out loopback and IPv6 link-local addresses: no peer group can name them
/// meaningfully (a link-local address is only unique per link), and they are what interface churn
/// adds and removes.
public final class HostAddressWatch {
    public static let defaultDebounce: Duration = .milliseconds(250)
    public static let defaultMaximumDelay: Duration = .seconds(2)

    private let monitor: AddressMonitor
    private let loop: EventLoop
    private let debounce: Duration
    private let maximumDelay: Duration
    private let addresses: () -> [IPAddress]
    private let onChange: () -> Void
    private var registration: EventLoop.Registration?
    private var timer: EventLoop.Timer?
    private var burstStart: ContinuousClock.Instant?
    /// The addresses last compared (loopback and link-local left out).
    public private(set) var current: Set<IPAddress>
    /// Bursts of events read, and how many of them changed the addresses: for tests and logs.
    public private(set) var bursts = 0
    public private(set) var changes = 0

    /// Starts watching; the addresses now are the baseline, so create it before the first plan
    /// reads them, and a change in between is not lost.
    public init(monitor: AddressMonitor, loop: EventLoop, debounce: Duration = HostAddressWatch.defaultDebounce,
                maximumDelay: Duration = HostAddressWatch.defaultMaximumDelay,
                addresses: @escaping () -> [IPAddress] = localInterfaceAddresses,
                onChange: @escaping () -> Void) throws(SystemCallError) {
        precondition(debounce > .zero && maximumDelay >= debounce, "need 0 < debounce <= maximumDelay")
        self.monitor = monitor
        self.loop = loop
        self.debounce = debounce
        self.maximumDelay = maximumDelay
        self.addresses = addresses
        self.onChange = onChange
        current = Self.significant(addresses())
        timer = try loop.makeTimer { [unowned self] in self.settle() }
        do throws(SystemCallError) {
            registration = try loop.watchReadable(FileDescriptor(rawValue: monitor.fileDescriptor)) { [unowned self] in
                if self.monitor.drain() { self.noteEvent() }
            }
        } catch {
            close()
            throw error
        }
    }

    /// Stops watching (the monitor stays open: its owner closes it).
    public func close() {
        if let registration { loop.cancel(registration) }
        registration = nil
        timer?.invalidate()
        timer = nil
    }

    /// The addresses that decide roles: all but loopback and IPv6 link-local.
    static func significant(_ addresses: [IPAddress]) -> Set<IPAddress> {
        Set(addresses.filter { a in
            let b = a.bytes
            switch a.family {
            case .ipv4: return b[0] != 127
            case .ipv6: return !(b[0] == 0xfe && b[1] & 0xc0 == 0x80) && a != IPAddress("::1")!
            }
        })
    }

    private func noteEvent() {
        let now = ContinuousClock.now
        let start = burstStart ?? now
        burstStart = start
        let due = min(now.advanced(by: debounce), start.advanced(by: maximumDelay))
        timer?.schedule(after: max(now.duration(to: due), .nanoseconds(1)))
    }

    private func settle() {
        burstStart = nil
        bursts += 1
        let now = Self.significant(addresses())
        guard now != current else { return }
        current = now
        changes += 1
        onChange()
    }
}
#endif
