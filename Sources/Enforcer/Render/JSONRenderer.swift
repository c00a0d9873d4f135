import FoundationEssentials

/// JSON views of plans and catalogs for automation. Keys are sorted, so output is byte-stable.
public enum JSONRenderer {
    struct PlanDoc: Encodable {
        let table: String
        let family = "inet"
        let roles: [String]
        let sets: [SetDoc]
        let chains: [ChainDoc]
    }

    struct SetDoc: Encodable {
        let name: String
        let family: String
        let interval: Bool
        let elements: [String]
    }

    struct ChainDoc: Encodable {
        let name: String
        let hook: String
        let priority: Int32
        let policy: String
        let rules: [RuleDoc]
    }

    struct RuleDoc: Encodable {
        let nft: String
        let verdict: String?
        let comment: String?
    }

    public struct RowDoc: Encodable {
        let id: String
        let role: String
        let direction: String
        let proto: String
        /// Single ports expanded; ranges stay in `port_ranges`.
        let ports: [Int]
        let port_ranges: [String]
        let remote: [String]
        let feature: String?
        let versions: String?
        let note: String
        let one_sided: Bool
    }

    public static func render(plan: Plan) -> String {
        let r = plan.ruleset
        let doc = PlanDoc(
            table: r.tableName, roles: plan.roles,
            sets: r.sets.map { SetDoc(name: $0.name, family: $0.family.rawValue, interval: $0.interval,
                                      elements: $0.elements.ranges.map(\.description)) },
            chains: r.chains.map { c in
                ChainDoc(name: c.name, hook: c.hook.rawValue, priority: c.priority, policy: c.policy.rawValue,
                         rules: c.rules.map { RuleDoc(nft: NftRenderer.render(rule: $0), verdict: $0.verdict?.rawValue, comment: $0.comment) })
            })
        return encode(doc)
    }

    public static func render(rows: [CatalogRow], oneSided: Set<String>) -> String {
        encode(rows.map { row in
            RowDoc(id: row.id, role: row.role, direction: row.direction.rawValue, proto: row.proto.rawValue,
                   ports: row.ports.filter { $0.first == $0.last }.map { Int($0.first) },
                   port_ranges: row.ports.filter { $0.first != $0.last }.map(\.description),
                   remote: row.remote, feature: row.feature, versions: row.versions?.text, note: row.note,
                   one_sided: oneSided.contains(row.id))
        })
    }

    struct TopologyDoc: Encodable {
        struct HostDoc: Encodable {
            let address: String
            let roles: [String]
        }
        let hosts: [HostDoc]
        let findings: [TopologyReport.Finding]
        let errors: Int
        let warnings: Int
    }

    public static func render(report: TopologyReport) -> String {
        let errors = report.findings.filter { $0.severity == .error }.count
        return encode(TopologyDoc(hosts: report.hosts.map { .init(address: $0.address.description, roles: $0.roles) },
                                  findings: report.findings, errors: errors, warnings: report.findings.count - errors))
    }

    static func encode(_ value: some Encodable) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try! e.encode(value) // plain structs of strings and numbers always encode
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
