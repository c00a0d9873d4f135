/// Every connection a shared deployment config lets through, or lets through at one end only,
/// host by host. Each candidate comes from a flow of a host's compiled plan and is then walked, as
/// a new connection, through the compiled rulesets of both ends: the rulesets the kernel is given,
/// so a picture drawn from these connections shows what is enforced, not what the catalog says.
public struct DeploymentFlows: Sendable {
    /// One end of a connection.
    public enum Endpoint: Sendable, Hashable, Comparable {
        /// An address listed in a role group: a host that runs fwenforcer with that role.
        case host(IPAddress)
        /// A special group (admin_ssh, browsers, workers, any, ...): its members run no ruleset of
        /// this deployment, so only the host's end of the connection is walked.
        case group(String)
    }

    /// What the two ends' rulesets do with a new connection (not `Verdict`, which is one rule's).
    public enum Outcome: Sendable, Hashable {
        case allowed
        /// One end allows the connection and the other end's ruleset drops it, in the chain of this
        /// direction (egress: the source drops it; ingress: the destination does).
        case blocked(at: Direction)
    }

    public struct Connection: Sendable, Hashable {
        public var source: Endpoint
        public var destination: Endpoint
        public var proto: RowProtocol
        /// Empty means all ports.
        public var ports: [PortRange]
        public var verdict: Outcome
        /// The catalog rows (and `failsafe`) that make either end allow it, in row order.
        public var rows: [String]
    }

    public let report: TopologyReport
    public let connections: [Connection]
    /// The note of every row a connection names.
    public let rowNotes: [String: String]
    public let groupMembers: [String: [IPPrefix]]

    /// "All ports" is walked on this port; any port does, as such a rule matches no port.
    static let allPortsProbe: UInt16 = 1

    /// Plans every host of `config` (as `check --topology` does) and walks every flow of every plan.
    public static func trace(_ config: Config, report: TopologyReport? = nil) -> DeploymentFlows {
        let report = report ?? TopologyReport.check(config)
        let catalog = config.catalog
        var plans: [IPAddress: Plan] = [:]
        for h in report.hosts { plans[h.address] = Compiler.compile(config: config, roles: h.roles) }

        struct Key: Hashable {
            var source: Endpoint, destination: Endpoint, proto: RowProtocol, ports: [PortRange]
        }
        var rows: [Key: Set<String>] = [:]
        var notes: [String: String] = [:]
        var groupsUsed = Set<String>()
        for h in report.hosts {
            for flow in plans[h.address]!.flows {
                notes[flow.rowID] = flow.note
                var peers: [Endpoint] = []
                if catalog.isRole(flow.remote) {
                    peers = config.addresses(of: flow.remote).map(\.address)
                        .filter { $0.family == h.address.family && $0 != h.address && plans[$0] != nil }
                        .map { .host($0) }
                } else if representative(of: flow.remote, family: h.address.family, config: config) != nil {
                    peers = [.group(flow.remote)]
                    groupsUsed.insert(flow.remote)
                }
                for peer in peers {
                    let key = flow.direction == .egress
                        ? Key(source: .host(h.address), destination: peer, proto: flow.proto, ports: flow.ports)
                        : Key(source: peer, destination: .host(h.address), proto: flow.proto, ports: flow.ports)
                    rows[key, default: []].insert(flow.rowID)
                }
            }
        }

        var connections: [Connection] = []
        let ordered = rows.keys.sorted { a, b in
            if (a.source, a.destination, a.proto) != (b.source, b.destination, b.proto) {
                return (a.source, a.destination, a.proto) < (b.source, b.destination, b.proto)
            }
            return a.ports.lexicographicallyPrecedes(b.ports)
        }
        for key in ordered {
            let verdict = walk(from: key.source, to: key.destination, proto: key.proto, ports: key.ports, plans: plans, config: config)
            connections.append(Connection(source: key.source, destination: key.destination, proto: key.proto, ports: key.ports,
                                          verdict: verdict, rows: rows[key]!.sorted(by: Compiler.rowOrder)))
        }
        var members: [String: [IPPrefix]] = [:]
        for g in groupsUsed { members[g] = config.addresses(of: g) }
        return DeploymentFlows(report: report, connections: connections, rowNotes: notes, groupMembers: members)
    }

    /// A new connection on every protocol and every sample port of the flow (each range's ends):
    /// allowed when both ends' rulesets accept all of them.
    static func walk(from source: Endpoint, to destination: Endpoint, proto: RowProtocol, ports: [PortRange],
                     plans: [IPAddress: Plan], config: Config) -> Outcome {
        let family: AddressFamily
        switch (source, destination) {
        case (.host(let a), _), (_, .host(let a)): family = a.family
        case (.group, .group): return .allowed // never built: every connection has a host end
        }
        func address(_ e: Endpoint) -> IPAddress {
            switch e {
            case .host(let a): return a
            case .group(let g): return representative(of: g, family: family, config: config)!
            }
        }
        let (src, dst) = (address(source), address(destination))
        let transports = proto.transport.map { [$0] } ?? TransportProtocol.allCases
        let samples = ports.isEmpty ? [allPortsProbe] : ports.flatMap { [$0.first, $0.last] }
        for t in transports {
            for port in samples {
                let packet = TracedPacket(from: src, to: dst, t, port: port)
                if case .host(let a) = source, Tracer(plans[a]!.ruleset).trace(packet, hook: .output).verdict != .accept {
                    return .blocked(at: .egress)
                }
                if case .host(let a) = destination, Tracer(plans[a]!.ruleset).trace(packet, hook: .input).verdict != .accept {
                    return .blocked(at: .ingress)
                }
            }
        }
        return .allowed
    }

    /// An address that stands for a special group in a packet walk, or nil when the group has no
    /// member of this family (its rules are not emitted for that family). `any` not listed in the
    /// config is every address; a documentation address stands for it.
    static func representative(of group: String, family: AddressFamily, config: Config) -> IPAddress? {
        if group == "any" && config.groups["any"] == nil {
            return IPAddress(family == .ipv4 ? "192.0.2.1" : "2001:db8::1")
        }
        return config.addresses(of: group).first { $0.family == family }?.address
    }
}
