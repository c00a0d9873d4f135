/// Checks a whole deployment described by one shared config (`roles = "auto"` style): every host
/// is planned, and the plans are compared with each other.
public struct TopologyReport: Sendable, Hashable {
    public enum Severity: String, Sendable, Hashable, Codable {
        case error
        case warning
    }

    public enum Kind: String, Sendable, Hashable, Codable {
        /// One end allows a flow that the other end's ruleset blocks.
        case blockedAtOtherEnd = "blocked-at-other-end"
        /// A present role's row names remote roles of which none has members.
        case missingPeerRole = "missing-peer-role"
        /// An address sits in the groups of more than one role.
        case addressInSeveralRoles = "address-in-several-roles"
        /// A group has members but no rule of any present role uses it.
        case unusedGroup = "unused-group"
    }

    public struct Finding: Sendable, Hashable, Codable {
        public let severity: Severity
        public let kind: Kind
        public let message: String
        /// Catalog rows concerned.
        public let rows: [String]
        /// For a flow one end blocks: the connection, so that automation (and the end-to-end
        /// tests) can probe it.
        public var flow: FlowEnds? = nil
    }

    /// A new connection between two hosts of the deployment, and which end drops it.
    public struct FlowEnds: Sendable, Hashable, Codable {
        public let source: String
        public let destination: String
        /// "tcp", "udp", or "any" (a row for every protocol, traced as TCP).
        public let `protocol`: String
        public let port: Int
        /// The address whose ruleset drops the connection, and in which of its chains.
        public let blockedAt: String
        public let blockedDirection: String
    }

    /// The hosts found (an address of a role group, with the roles it resolves to).
    public var hosts: [(address: IPAddress, roles: [String])]
    public var findings: [Finding]

    public var hasErrors: Bool { findings.contains { $0.severity == .error } }

    public static func == (a: TopologyReport, b: TopologyReport) -> Bool {
        a.findings == b.findings && a.hosts.map(\.address) == b.hosts.map(\.address) && a.hosts.map(\.roles) == b.hosts.map(\.roles)
    }

    public func hash(into h: inout Hasher) { h.combine(findings) }
}

extension TopologyReport {
    /// Plans every host of the deployment and reports inconsistencies between them.
    ///
    /// Hosts are the single addresses listed in role groups (a CIDR in a role group stands for
    /// hosts that cannot be told apart, so it is probed by its first address).
    public static func check(_ config: Config) -> TopologyReport {
        let catalog = config.catalog
        var hostAddresses: [IPAddress] = []
        for role in catalog.roles.map(\.name) {
            for p in config.addresses(of: role) where !hostAddresses.contains(p.address) { hostAddresses.append(p.address) }
        }
        hostAddresses.sort()
        var hosts: [(address: IPAddress, roles: [String])] = []
        var plans: [IPAddress: Plan] = [:]
        for a in hostAddresses {
            guard let roles = try? config.resolveRoles(hostAddresses: [a]) else { continue }
            hosts.append((a, roles))
            plans[a] = Compiler.compile(config: config, roles: roles)
        }
        var findings: [Finding] = []

        // (a) Flows one end allows and the other blocks. Walk, for every host and every flow of its
        // plan toward a role group, a new connection through both ends' rulesets.
        var seen = Set<String>()
        for (a, _) in hosts {
            let plan = plans[a]!
            for flow in plan.flows {
                guard catalog.isRole(flow.remote) else { continue }
                for peer in config.addresses(of: flow.remote).map(\.address) where peer.family == a.family && peer != a {
                    guard let peerPlan = plans[peer] else { continue }
                    let (src, dst, srcPlan, dstPlan) = flow.direction == .egress ? (a, peer, plan, peerPlan) : (peer, a, peerPlan, plan)
                    let ports = flow.ports.isEmpty ? [PortRange(1)] : flow.ports
                    let transports: [TransportProtocol?] = flow.proto.transport.map { [$0] } ?? [.tcp]
                    for t in transports {
                        for port in ports.map(\.first) {
                            let packet = TracedPacket(from: src, to: dst, t, port: port)
                            let out = Tracer(srcPlan.ruleset).trace(packet, hook: .output)
                            let inp = Tracer(dstPlan.ruleset).trace(packet, hook: .input)
                            guard out.verdict != inp.verdict else { continue }
                            let (allower, blocker) = out.verdict == .accept ? (src, dst) : (dst, src)
                            let key = "\(flow.rowID) \(src)>\(dst):\(t?.rawValue ?? "any")/\(port)"
                            guard seen.insert(key).inserted else { continue }
                            let blockRoles = hosts.first { $0.address == blocker }?.roles ?? []
                            let allowRoles = hosts.first { $0.address == allower }?.roles ?? []
                            findings.append(Finding(
                                severity: .error, kind: .blockedAtOtherEnd,
                                message: "\(src) -> \(dst) \(t?.rawValue ?? "any")/\(port): \(allower) (\(allowRoles.joined(separator: ","))) allows it by \(flow.rowID), \(blocker) (\(blockRoles.joined(separator: ","))) drops it at \(blocker == src ? "egress" : "ingress")",
                                rows: [flow.rowID],
                                flow: FlowEnds(source: "\(src)", destination: "\(dst)", protocol: t?.rawValue ?? "any", port: Int(port),
                                               blockedAt: "\(blocker)", blockedDirection: blocker == src ? "egress" : "ingress")))
                        }
                    }
                }
            }
        }

        // (b) Rows of present roles whose remote roles are all empty.
        let present = Set(hosts.flatMap(\.roles))
        let active = catalog.activeRows(features: Set(config.host.features), version: config.effectiveVersion)
        for row in active where present.contains(row.role) {
            let remoteRoles = row.remote.filter { catalog.isRole($0) }
            guard !remoteRoles.isEmpty, row.remote.allSatisfy({ config.addresses(of: $0).isEmpty }) else { continue }
            findings.append(Finding(severity: .warning, kind: .missingPeerRole,
                                    message: "\(row.role) is present but \(row.id) (\(row.direction.rawValue) \(row.ports.isEmpty ? "all" : row.ports.map(\.description).joined(separator: ","))) names \(row.remote.joined(separator: " or ")), none of which has members",
                                    rows: [row.id]))
        }

        // (c) Addresses in the groups of several roles.
        for (a, roles) in hosts where roles.count > 1 {
            findings.append(Finding(severity: .warning, kind: .addressInSeveralRoles,
                                    message: "\(a) is in the groups of \(roles.joined(separator: ", ")): that host gets all of their rules",
                                    rows: []))
        }

        // (d) Groups with members that no rule of a present role uses.
        let used = Set(plans.values.flatMap { $0.flows.map(\.remote) })
        for (name, members) in config.groups.sorted(by: { $0.key < $1.key }) where !members.isEmpty {
            if catalog.isRole(name) && present.contains(name) && used.contains(name) { continue }
            if !catalog.isRole(name) && used.contains(name) { continue }
            if catalog.isRole(name) && present.contains(name) {
                findings.append(Finding(severity: .warning, kind: .unusedGroup,
                                        message: "role group \(name) has members, but no other present role exchanges traffic with it", rows: []))
            } else if !catalog.isRole(name) {
                findings.append(Finding(severity: .warning, kind: .unusedGroup,
                                        message: "group \(name) has members, but no rule of a present role uses it", rows: []))
            }
        }
        return TopologyReport(hosts: hosts, findings: findings)
    }
}
