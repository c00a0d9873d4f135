import FoundationEssentials

/// The audit report the daemon persists (`/run/fwenforcer/audit.json`) and `fwenforcerd report`
/// prints: the flows that audit mode accepted and enforce mode would drop.
public struct AuditReport: Codable, Sendable, Equatable {
    public struct Flow: Codable, Sendable, Equatable {
        /// `ingress` or `egress`.
        public var direction: Direction
        public var source: String
        public var destination: String
        /// `tcp`, `udp`, `icmp`, `icmpv6`, ... or the protocol number.
        public var proto: String
        public var port: UInt16?
        public var icmpType: UInt8?
        public var packets: UInt64
        public var firstSeen: Date
        public var lastSeen: Date
        /// Which end is the peer: `source` for ingress, `destination` for egress.
        public var remoteEnd: String
        /// The configured groups (roles and special groups) holding the remote end's address;
        /// empty when it is in none.
        public var remoteGroups: [String]
        public var interface: String?

        enum CodingKeys: String, CodingKey {
            case direction, source, destination, proto = "protocol", port, icmpType, packets, firstSeen, lastSeen,
                 remoteEnd, remoteGroups, interface
        }
    }

    public struct DirectionTotals: Codable, Sendable, Equatable {
        /// Would-be-dropped packets seen (including those of flows left out).
        public var packets: UInt64
        /// Flows listed in this report.
        public var flows: Int
    }

    /// Bumped when a field changes meaning; readers refuse versions they do not know.
    public static let currentFormatVersion = 1

    public var formatVersion = AuditReport.currentFormatVersion
    /// When counting started: the daemon's start, or the reload that first turned audit on. It is
    /// kept across config reloads.
    public var since: Date
    public var updatedAt: Date
    public var daemonPID: Int32
    /// The directions in audit mode when the report was written; empty when the daemon no longer
    /// audits (the report then shows what was counted until then).
    public var auditing: [Direction]
    /// The nfnetlink_log group listened to.
    public var group: UInt16?
    /// The cap on distinct flows (`fwenforcerd run --audit-max-flows`).
    public var maxFlows: Int
    public var totals: [String: DirectionTotals]
    /// Packets of flows not listed because the cap was reached, and an estimate of how many
    /// distinct flows they were.
    public var leftOutPackets: UInt64
    public var leftOutFlowsEstimate: UInt64
    /// Packets the kernel logged but could not deliver to the daemon (its queue was full), from
    /// gaps in nfnetlink_log's sequence numbers; these are in no count above.
    public var lostPackets: UInt64
    public var flows: [Flow]

    public init(since: Date, updatedAt: Date, daemonPID: Int32, auditing: [Direction], group: UInt16?, maxFlows: Int,
                totals: [String: DirectionTotals], leftOutPackets: UInt64, leftOutFlowsEstimate: UInt64,
                lostPackets: UInt64, flows: [Flow]) {
        self.since = since
        self.updatedAt = updatedAt
        self.daemonPID = daemonPID
        self.auditing = auditing
        self.group = group
        self.maxFlows = maxFlows
        self.totals = totals
        self.leftOutPackets = leftOutPackets
        self.leftOutFlowsEstimate = leftOutFlowsEstimate
        self.lostPackets = lostPackets
        self.flows = flows
    }

    /// The report of what `aggregator` holds; the remote end of each flow is named by its groups in
    /// `membership` (the current config's).
    public init(_ aggregator: FlowAggregator, membership: GroupMembership, auditing: [Direction], group: UInt16?,
                lostPackets: UInt64, daemonPID: Int32, now: Date = Date()) {
        let flows = aggregator.sortedFlows.map { key, r in
            Flow(direction: key.direction, source: key.source.description, destination: key.destination.description,
                 proto: PacketHeaders.protocolName(key.proto), port: key.port, icmpType: key.icmpType, packets: r.packets,
                 firstSeen: r.firstSeen, lastSeen: r.lastSeen, remoteEnd: key.direction == .ingress ? "source" : "destination",
                 remoteGroups: membership.groups(of: key.remote), interface: r.interface)
        }
        var totals: [String: DirectionTotals] = [:]
        for d in Direction.allCases {
            totals[d.rawValue] = DirectionTotals(packets: aggregator.packets[d] ?? 0, flows: flows.count { $0.direction == d })
        }
        self.init(since: aggregator.since, updatedAt: now, daemonPID: daemonPID, auditing: auditing, group: group,
                  maxFlows: aggregator.maxFlows, totals: totals, leftOutPackets: aggregator.leftOutPackets,
                  leftOutFlowsEstimate: aggregator.leftOutFlowsEstimate, lostPackets: lostPackets, flows: flows)
    }

    /// Only the flows (and totals) of one direction.
    public func filtered(_ direction: Direction) -> AuditReport {
        var r = self
        r.flows = flows.filter { $0.direction == direction }
        r.totals = totals.filter { $0.key == direction.rawValue }
        return r
    }

    public func encoded() throws -> [UInt8] {
        try AtomicFile.json(self)
    }

    public static func decode(_ data: Data, path: String) throws(AuditReportError) -> AuditReport {
        struct Version: Decodable { var formatVersion: Int }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        guard let version = try? decoder.decode(Version.self, from: data).formatVersion else {
            throw AuditReportError(path: path, reason: "not a fwenforcer audit report")
        }
        guard version == currentFormatVersion else {
            throw AuditReportError(path: path, reason: "format version \(version), this fwenforcerd reads \(currentFormatVersion)")
        }
        do {
            return try decoder.decode(AuditReport.self, from: data)
        } catch {
            throw AuditReportError(path: path, reason: "unreadable (\(error))")
        }
    }
}

public struct AuditReportError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "audit report \(path): \(reason)" }
}
