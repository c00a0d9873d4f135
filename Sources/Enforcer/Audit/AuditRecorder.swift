#if os(Linux)
import FoundationEssentials
import Glibc
import Logging
import SystemPackage

/// The daemon's audit side: while a direction is in audit mode, it listens on the config's
/// nfnetlink_log group, counts would-be-dropped packets into flows, and persists the report.
///
/// The report file is replaced atomically, at most once per `writeDelay` and only after new
/// packets arrived: a one-shot timer armed by the first packet after a write. An idle daemon
/// never wakes up for it. The counts live as long as the daemon and survive config reloads.
public final class AuditRecorder {
    /// Read-only totals, for status and metrics.
    public struct Totals: Sendable, Equatable {
        public var ingressPackets: UInt64 = 0
        public var egressPackets: UInt64 = 0
        public var flows = 0
        public var leftOutPackets: UInt64 = 0
        public var leftOutFlowsEstimate: UInt64 = 0
        /// Logged by the kernel, never received (full socket queue).
        public var lostPackets: UInt64 = 0
        /// Received without a readable IP header (not counted in flows).
        public var unparsedPackets: UInt64 = 0
    }

    let loop: EventLoop
    let reportPath: FilePath
    let maxFlows: Int
    let writeDelay: Duration
    let logger: Logger
    private var receiver: NflogReceiver?
    private var registration: EventLoop.Registration?
    private var aggregator: FlowAggregator?
    private var writeTimer: EventLoop.Timer?
    private var auditing: [Direction] = []
    private var membership = GroupMembership([:])
    private var interfaceNames: [UInt32: String] = [:]
    /// Packets of receivers closed since (a group change), so totals stay cumulative.
    private var lostBefore: UInt64 = 0
    private var unparsed: UInt64 = 0

    public init(loop: EventLoop, reportPath: FilePath, maxFlows: Int, writeDelay: Duration = .seconds(1), logger: Logger) throws {
        self.loop = loop
        self.reportPath = reportPath
        self.maxFlows = maxFlows
        self.writeDelay = writeDelay
        self.logger = logger
        writeTimer = try loop.makeTimer { [unowned self] in self.writeReport() }
    }

    public var totals: Totals {
        var t = Totals()
        t.ingressPackets = aggregator?.packets[.ingress] ?? 0
        t.egressPackets = aggregator?.packets[.egress] ?? 0
        t.flows = aggregator?.flows.count ?? 0
        t.leftOutPackets = aggregator?.leftOutPackets ?? 0
        t.leftOutFlowsEstimate = aggregator?.leftOutFlowsEstimate ?? 0
        t.lostPackets = lostPackets
        t.unparsedPackets = unparsed
        return t
    }

    /// True once a direction was audited (the counts exist, and stay).
    public var hasCounts: Bool { aggregator != nil }

    private var lostPackets: UInt64 { lostBefore + (receiver?.lostPackets ?? 0) }

    /// Follows a new config: listens while any direction audits (on the config's group, bound
    /// before the rules that log to it are applied), stops listening when none does. Counts are kept.
    public func configure(_ config: Config) {
        let directions = Direction.allCases.filter { (($0 == .ingress) ? config.enforce.ingress : config.enforce.egress) == .audit }
        // Only a daemon that audits (or did, and still reports) names groups: a copy of every
        // group's prefixes is megabytes at 100,000 peers.
        if !directions.isEmpty || aggregator != nil { membership = GroupMembership(config.groups) }
        let changed = directions != auditing
        auditing = directions
        if directions.isEmpty {
            stopListening()
            if changed && aggregator != nil { writeReport() }
            return
        }
        let group = config.enforce.auditGroup
        if receiver?.group != group {
            stopListening()
            do {
                let r = try NflogReceiver(group: group, copyRange: Compiler.auditSnaplen)
                registration = try loop.watchReadable(FileDescriptor(rawValue: r.fileDescriptor)) { [unowned self] in self.readable() }
                receiver = r
                logger.notice("audit: counting would-be-dropped packets (\(directions.map(\.rawValue).joined(separator: ", "))) from nfnetlink_log group \(group) into \(reportPath)")
            } catch {
                logger.error("audit: cannot listen to nfnetlink_log group \(group): \(error); audit mode accepts but nothing is reported")
                return
            }
        }
        if aggregator == nil { aggregator = FlowAggregator(maxFlows: maxFlows) }
        // The report says which directions are audited and names groups from the config: write it
        // soon after a reload (rare), as after new packets.
        if writeTimer?.isScheduled == false { writeTimer?.schedule(after: writeDelay) }
    }

    /// Writes the last counts and stops listening.
    public func close() {
        if writeTimer?.isScheduled == true { writeReport() }
        stopListening()
        writeTimer?.invalidate()
        writeTimer = nil
    }

    private func stopListening() {
        if let registration { loop.cancel(registration) }
        registration = nil
        if let receiver {
            lostBefore += receiver.lostPackets
            receiver.close()
        }
        receiver = nil
    }

    private func readable() {
        guard let receiver, let aggregator else { return }
        let now = Date()
        var counted = false
        receiver.drain { packet in
            guard let headers = packet.headers, let direction = Self.direction(of: packet) else {
                unparsed += 1
                return
            }
            let index = direction == .ingress ? packet.inInterface : packet.outInterface
            aggregator.record(AuditFlowKey(direction: direction, headers: headers), interface: index.flatMap(interfaceName), at: now)
            counted = true
        }
        if (counted || receiver.lostPackets > 0) && writeTimer?.isScheduled == false { writeTimer?.schedule(after: writeDelay) }
    }

    /// The direction from the rule's prefix (`fwenforcer in audit: `), else from the hook.
    static func direction(of packet: NflogPacket) -> Direction? {
        if let p = packet.prefix {
            if p == Compiler.logPrefix(.ingress, audit: true) { return .ingress }
            if p == Compiler.logPrefix(.egress, audit: true) { return .egress }
        }
        switch packet.hook {
        case 1: return .ingress // NF_INET_LOCAL_IN
        case 3: return .egress // NF_INET_LOCAL_OUT
        default: return nil
        }
    }

    private func interfaceName(_ index: UInt32) -> String? {
        if let name = interfaceNames[index] { return name }
        var buffer = [CChar](repeating: 0, count: Int(IF_NAMESIZE) + 1)
        guard if_indextoname(index, &buffer) != nil else { return nil }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        interfaceNames[index] = name
        return name
    }

    private func writeReport() {
        guard let aggregator else { return }
        // Interface indexes may be reused after a write; names are looked up again.
        interfaceNames = [:]
        let report = AuditReport(aggregator, membership: membership, auditing: auditing, group: receiver?.group,
                                 lostPackets: lostPackets, daemonPID: getpid())
        do {
            try AtomicFile.write(try report.encoded(), to: reportPath)
        } catch {
            logger.warning("audit report \(reportPath): \(error)")
        }
    }
}
#endif
