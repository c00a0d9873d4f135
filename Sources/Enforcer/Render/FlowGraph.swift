/// A deployment's connections drawn as a graph: a node per role (or per host) and per special
/// group, an edge per (source, destination, protocol, verdict) with the ports and rows of every
/// connection it stands for. The DOT and HTML renderers draw this value and nothing else, so the
/// diagram and the matrix cannot disagree.
public struct FlowGraph: Sendable, Hashable {
    public enum Grouping: Sendable, Hashable {
        /// The hosts with the same roles are one node with a count: large deployments stay readable.
        case byRole
        /// A node per host address.
        case perHost
    }

    public struct Node: Sendable, Hashable {
        public enum Kind: Sendable, Hashable {
            case roles([String])
            case group(String)
        }

        /// Unique in the graph and stable across runs (the DOT node name).
        public let id: String
        public let kind: Kind
        /// Host addresses (role nodes) or the group's addresses and prefixes, in address order.
        public let members: [String]

        /// "CCO", "CCM_SA + CCO", or the group's name.
        public var title: String {
            switch kind {
            case .roles(let r): return r.joined(separator: " + ")
            case .group(let g): return g
            }
        }

        public var isGroup: Bool { if case .group = kind { return true } else { return false } }
    }

    public struct Edge: Sendable, Hashable {
        public let from: String
        public let to: String
        public let proto: RowProtocol
        /// Empty means all ports.
        public let ports: [PortRange]
        public let verdict: DeploymentFlows.Outcome
        public let rows: [String]

        /// "tcp 443, 8443", "tcp all ports", "any protocol, all ports".
        public var portsText: String {
            switch (proto, ports.isEmpty) {
            case (.any, _): return "any protocol, all ports"
            case (_, true): return "\(proto.rawValue) all ports"
            case (_, false): return "\(proto.rawValue) " + ports.map(\.description).joined(separator: ", ")
            }
        }
    }

    public let grouping: Grouping
    /// Role nodes first (by title, then first member), then groups by name.
    public let nodes: [Node]
    public let edges: [Edge]

    public init(_ flows: DeploymentFlows, grouping: Grouping) {
        self.grouping = grouping
        var nodeOfHost: [IPAddress: String] = [:]
        var roleNodes: [String: (roles: [String], members: [IPAddress])] = [:]
        for h in flows.report.hosts {
            let roles = h.roles
            let id = grouping == .byRole ? roles.joined(separator: " + ") : "\(roles.joined(separator: " + ")) \(h.address)"
            nodeOfHost[h.address] = id
            roleNodes[id, default: (roles, [])].members.append(h.address)
        }
        var nodes = roleNodes.map { id, n in (id: id, roles: n.roles, members: n.members.sorted()) }
            .sorted { a, b in a.roles != b.roles ? a.roles.lexicographicallyPrecedes(b.roles) : a.members.lexicographicallyPrecedes(b.members) }
            .map { Node(id: $0.id, kind: .roles($0.roles), members: $0.members.map(\.description)) }
        nodes += flows.groupMembers.keys.sorted().map { g in
            Node(id: g, kind: .group(g), members: flows.groupMembers[g]!.sorted().map(\.description))
        }
        self.nodes = nodes

        func id(_ e: DeploymentFlows.Endpoint) -> String {
            switch e {
            case .host(let a): return nodeOfHost[a]!
            case .group(let g): return g
            }
        }
        struct Key: Hashable {
            var from: String, to: String, proto: RowProtocol, verdict: DeploymentFlows.Outcome
        }
        var ports: [Key: [PortRange]] = [:]
        var allPorts = Set<Key>()
        var rows: [Key: Set<String>] = [:]
        for c in flows.connections {
            let key = Key(from: id(c.source), to: id(c.destination), proto: c.proto, verdict: c.verdict)
            if c.ports.isEmpty { allPorts.insert(key) }
            ports[key, default: []] += c.ports
            rows[key, default: []].formUnion(c.rows)
        }
        let order = Dictionary(uniqueKeysWithValues: nodes.enumerated().map { ($1.id, $0) })
        edges = ports.keys.sorted { a, b in
            (order[a.from]!, order[a.to]!, a.proto, Self.rank(a.verdict)) < (order[b.from]!, order[b.to]!, b.proto, Self.rank(b.verdict))
        }.map { k in
            Edge(from: k.from, to: k.to, proto: k.proto, ports: allPorts.contains(k) ? [] : PortRange.normalize(ports[k]!),
                 verdict: k.verdict, rows: rows[k]!.sorted(by: Compiler.rowOrder))
        }
    }

    public func node(_ id: String) -> Node? { nodes.first { $0.id == id } }

    /// Allowed first, then blocked at the source, then at the destination.
    static func rank(_ v: DeploymentFlows.Outcome) -> Int {
        switch v {
        case .allowed: return 0
        case .blocked(at: .egress): return 1
        case .blocked(at: .ingress): return 2
        }
    }
}
