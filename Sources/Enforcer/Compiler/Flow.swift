/// One flow a host takes part in, seen from that host: "allow ingress from CCM on tcp/8443".
/// Flows come from catalog rows; a row documented only at the other end yields a `derived` flow.
public struct Flow: Sendable, Hashable {
    public var direction: Direction
    /// The group on the other end (a role or a special group).
    public var remote: String
    public var proto: RowProtocol
    /// Empty means all ports.
    public var ports: [PortRange]
    /// The catalog row that documents this flow.
    public var rowID: String
    /// True when the row belongs to the other end of the flow (it documents the remote role's side).
    public var derived: Bool
    public var note: String
}

extension Catalog {
    /// Rows that apply with these features and this product version.
    public func activeRows(features: Set<String>, version: ProductVersion?) -> [CatalogRow] {
        rows.filter { $0.applies(features: features, version: version) }
    }

    /// The flows a host with `roles` takes part in.
    ///
    /// A row of role R (ingress from G, or egress to G) is a flow between R and G. The host enforces
    /// it at its own end when it has role R; unless `strict`, it also enforces the other end when it
    /// has a role listed in G, so a flow that one table documents works with egress enforced too.
    public func flows(roles: [String], features: Set<String>, version: ProductVersion?, strict: Bool) -> [Flow] {
        let mine = Set(roles)
        var out: [Flow] = []
        for row in activeRows(features: features, version: version) {
            if mine.contains(row.role) {
                for g in row.remote {
                    out.append(Flow(direction: row.direction, remote: g, proto: row.proto, ports: row.ports,
                                    rowID: row.id, derived: false, note: row.note))
                }
            }
            if !strict {
                for g in row.remote where mine.contains(g) {
                    out.append(Flow(direction: row.direction.opposite, remote: row.role, proto: row.proto, ports: row.ports,
                                    rowID: row.id, derived: true, note: row.note))
                }
            }
        }
        return out
    }

    /// Rows whose flow between two roles is documented only at this row's end: no row of the remote
    /// role covers the same ports and protocol in the opposite direction toward this row's role.
    public func oneSidedRows(features: Set<String>? = nil, version: ProductVersion? = nil) -> [(row: CatalogRow, missingAt: [String])] {
        let active = features.map { activeRows(features: $0, version: version) } ?? rows
        var result: [(CatalogRow, [String])] = []
        for row in active {
            let missing = row.remote.filter { isRole($0) }.filter { remote in
                let mirrors = active.filter { $0.role == remote && $0.direction == row.direction.opposite && $0.remote.contains(row.role) }
                return !Self.covers(mirrors, row)
            }
            if !missing.isEmpty { result.append((row, missing)) }
        }
        return result
    }

    /// True when `rows` together allow every port of `row` under its protocol.
    static func covers(_ rows: [CatalogRow], _ row: CatalogRow) -> Bool {
        let relevant = rows.filter { $0.proto == row.proto || $0.proto == .any }
        if relevant.contains(where: { $0.allPorts }) { return true }
        if row.allPorts { return false }
        let have = PortRange.normalize(relevant.flatMap(\.ports))
        return row.ports.allSatisfy { p in have.contains { $0.first <= p.first && p.last <= $0.last } }
    }
}
