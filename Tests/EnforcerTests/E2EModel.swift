import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The end-to-end tests' idea of what should pass, derived independently of the compiler: from the
// rows `fwenforcerd catalog --format json` prints and the documented semantics (README, "Flows, not
// rows" in docs/catalog-format.md), never from `Compiler`, `Catalog.flows` or a plan. No type of
// the Enforcer module is used here, so a compiler bug cannot hide in the expectation.

enum LabFamily: String, Sendable, CaseIterable, Comparable {
    case v4 = "IPv4", v6 = "IPv6"
    static func of(_ address: String) -> LabFamily { address.contains(":") ? .v6 : .v4 }
    static func < (a: LabFamily, b: LabFamily) -> Bool { a.rawValue < b.rawValue }
}

/// Address arithmetic the model needs (membership of a host in a CIDR group), on inet_pton bytes.
enum AddressMath {
    static func bytes(_ s: String) -> [UInt8]? {
        if s.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, s, &a) == 1 else { return nil }
            return withUnsafeBytes(of: &a) { Array($0) }
        }
        var a = in_addr()
        guard inet_pton(AF_INET, s, &a) == 1 else { return nil }
        return withUnsafeBytes(of: &a) { Array($0) }
    }

    /// `entry` is a host ("198.18.0.1") or a prefix ("198.18.128.0/17").
    static func contains(_ entry: String, _ address: String) -> Bool {
        let parts = entry.split(separator: "/")
        guard let net = bytes(String(parts[0])), let a = bytes(address), net.count == a.count else { return false }
        let len = parts.count > 1 ? Int(parts[1])! : net.count * 8
        for bit in 0..<len where (net[bit / 8] >> (7 - bit % 8)) & 1 != (a[bit / 8] >> (7 - bit % 8)) & 1 { return false }
        return true
    }
}

// MARK: - catalog rows, as the CLI prints them

struct CatalogJSONRow: Decodable, Sendable {
    var id: String
    var role: String
    var direction: String   // ingress | egress
    var proto: String       // tcp | udp | any
    var ports: [Int]
    var portRanges: [String]
    var remote: [String]
    var feature: String?
    var versions: String?
    var note: String

    var isIngress: Bool { direction == "ingress" }
    var allPorts: Bool { ports.isEmpty && portRanges.isEmpty }
    var ranges: [ClosedRange<Int>] {
        portRanges.compactMap { r in
            let p = r.split(separator: "-").compactMap { Int($0) }
            return p.count == 2 ? p[0]...p[1] : nil
        }
    }

    func covers(proto p: String, port: Int) -> Bool {
        guard proto == p || proto == "any" else { return false }
        return allPorts || ports.contains(port) || ranges.contains { $0.contains(port) }
    }

    /// The ports a flow of this row is probed on: each listed port, both ends of each range, and
    /// for "all ports" one sample port that no row names.
    var probePorts: [Int] { allPorts ? [ProbePlan.samplePort] : ports + ranges.flatMap { [$0.lowerBound, $0.upperBound] } }
    var probeProtos: [String] { proto == "any" ? ["tcp", "udp"] : [proto] }

    func isActive(features: Set<String>, version: String?) -> Bool {
        if let feature, !features.contains(feature) { return false }
        if let versions {
            guard let version else { return false }
            return versions.split(separator: " ").allSatisfy { VersionMath.satisfies(version, String($0)) }
        }
        return true
    }

    /// Every row of a catalog, from the CLI (cached per catalog).
    static func load(catalog: String) throws -> [CatalogJSONRow] {
        cache.lock.lock(); defer { cache.lock.unlock() }
        if let rows = cache.rows[catalog] { return rows }
        let r = try LabCommand.check([try E2E.fwenforcerd().path, "catalog", "--catalog", catalog, "--format", "json"])
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let rows = try decoder.decode([CatalogJSONRow].self, from: Data(r.stdout.utf8))
        cache.rows[catalog] = rows
        return rows
    }
    private final class Cache: @unchecked Sendable { let lock = NSLock(); var rows: [String: [CatalogJSONRow]] = [:] }
    private static let cache = Cache()
}

/// Dotted version constraints as the catalog format documents them (`>=4.6.2`, `<4.7`).
enum VersionMath {
    static func compare(_ a: String, _ b: String) -> Int {
        let x = a.split(separator: ".").map { Int($0) ?? 0 }, y = b.split(separator: ".").map { Int($0) ?? 0 }
        for i in 0..<max(x.count, y.count) {
            let l = i < x.count ? x[i] : 0, r = i < y.count ? y[i] : 0
            if l != r { return l < r ? -1 : 1 }
        }
        return 0
    }

    static func satisfies(_ version: String, _ constraint: String) -> Bool {
        for op in [">=", "<=", "==", ">", "<", "="] where constraint.hasPrefix(op) {
            let c = compare(version, String(constraint.dropFirst(op.count)))
            switch op {
            case ">=": return c >= 0
            case "<=": return c <= 0
            case ">": return c > 0
            case "<": return c < 0
            default: return c == 0
            }
        }
        return compare(version, constraint) == 0
    }
}

// MARK: - topology

/// One address of a lab host and the config groups that list it.
struct HostAddress: Hashable, Sendable {
    var address: String
    var groups: [String]
    var primary: Bool
    var family: LabFamily { LabFamily.of(address) }
}

struct LabHost: Sendable {
    var name: String
    var addresses: [HostAddress]
    /// Stands for "anywhere": the target of rows whose remote is `any`.
    var anywhere: Bool

    func primary(_ f: LabFamily) -> String { addresses.first { $0.primary && $0.family == f }!.address }
    func addresses(_ f: LabFamily) -> [String] { addresses.filter { $0.family == f }.map(\.address) }
}

/// A deployment: its hosts and addresses, and the shared config file written from them.
struct LabTopology: Sendable {
    struct File: Decodable {
        struct Host: Decodable {
            var name: String
            var v4: String
            var v6: String
            var groups: [String]
            var extra: [Extra]?
            var anywhere: Bool?
        }
        struct Extra: Decodable { var v4: String; var v6: String; var groups: [String] }
        var name: String
        var description: String?
        var catalog: String
        var version: String?
        var features: [String]
        var cidrGroups: [String: [String]]?
        var hosts: [Host]
        var replacement: Replacement?
    }

    /// The peer replacement scenario of a topology.
    struct Replacement: Decodable, Sendable {
        struct Established: Decodable, Sendable { var from: String; var to: String; var port: Int }
        var host: String
        var v4: String
        var v6: String
        var oldAddressTo: String
        var established: [Established]
    }

    var name: String
    var catalog: String
    var version: String?
    var features: [String]
    var cidrGroups: [String: [String]]
    var hosts: [LabHost]
    var replacement: Replacement?
    /// `strict = true` in the config: each role enforces its own rows only.
    var strict = false

    static func load(_ name: String) throws -> LabTopology {
        let url = E2E.e2eDir.appendingPathComponent("topologies/\(name).json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let f = try decoder.decode(File.self, from: Data(contentsOf: url))
        return LabTopology(
            name: f.name, catalog: f.catalog, version: f.version, features: f.features,
            cidrGroups: f.cidrGroups ?? [:],
            hosts: f.hosts.map { h in
                LabHost(name: h.name,
                        addresses: [HostAddress(address: h.v4, groups: h.groups, primary: true),
                                    HostAddress(address: h.v6, groups: h.groups, primary: true)]
                            + (h.extra ?? []).flatMap { e in
                                [HostAddress(address: e.v4, groups: e.groups, primary: false),
                                 HostAddress(address: e.v6, groups: e.groups, primary: false)]
                            },
                        anywhere: h.anywhere ?? false)
            },
            replacement: f.replacement)
    }

    func host(_ name: String) -> LabHost { hosts.first { $0.name == name }! }

    mutating func update(_ name: String, _ change: (inout LabHost) -> Void) {
        change(&hosts[hosts.firstIndex { $0.name == name }!])
    }

    /// The config's `[groups]`: the host addresses that list a group (in host order), then its CIDRs.
    func configGroups() -> [String: [String]] {
        var groups = cidrGroups
        for h in hosts {
            for a in h.addresses {
                for g in a.groups { groups[g, default: []].append(a.address) }
            }
        }
        return groups
    }

    /// The one config file every VM of the deployment shares (`roles = "auto"`).
    func configText(groups: [String: [String]]) -> String {
        func list(_ xs: [String]) -> String { "[" + xs.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        var lines = [
            "# \(name): written by the fwenforcer end-to-end tests (Tests/e2e/topologies/\(name).json).",
            "# Every VM of the lab enforces this same file; roles = \"auto\" picks each VM's roles by its addresses.",
            "[host]",
            "roles = \"auto\"",
            "catalog = \"\(catalog)\"",
        ]
        if let version { lines.append("version = \"\(version)\"") }
        lines += ["features = \(list(features))"] + (strict ? ["strict = true"] : []) + ["", "[enforce]", "ingress = \"enforce\"", "egress = \"enforce\"", "", "[groups]"]
        for g in groups.keys.sorted() { lines.append("\(g) = \(list(groups[g]!))") }
        return lines.joined(separator: "\n") + "\n"
    }
}

// MARK: - the expected verdicts

/// What one probe tests: a connection from `src` (on host `srcHost`) to `dst` (on `dstHost`).
struct ProbeSpec: Hashable, Sendable, Comparable {
    var srcHost: String
    var src: String
    var dstHost: String
    var dst: String
    var proto: String
    var port: Int
    var family: LabFamily { LabFamily.of(dst) }
    var text: String { "\(srcHost) \(src) -> \(dstHost) \(dst) \(proto)/\(port)" }
    static func < (a: ProbeSpec, b: ProbeSpec) -> Bool {
        (a.srcHost, a.src, a.dstHost, a.dst, a.proto, a.port) < (b.srcHost, b.src, b.dstHost, b.dst, b.proto, b.port)
    }
}

/// Expected verdicts from the catalog rows and the config, by the documented semantics:
/// - a host's roles are the catalog roles whose config group holds one of its addresses (auto);
/// - a host without roles runs no enforcer (browsers, workers, the internet) and passes everything;
/// - a row of role R, direction D, remote G is a flow between R's and G's members; a host with role R
///   allows it in direction D, and (flows, not rows) a host with a role listed in G allows it in the
///   opposite direction, unless the config says `strict = true` (each role's own rows only);
/// - `any` not listed in the config means every address; other groups are their listed addresses and CIDRs;
/// - where `admin_ssh` has members, every enforcing host accepts them on TCP 22 (lockout failsafe);
/// - a connection passes when the source's egress and the destination's ingress both allow it.
struct FlowModel: Sendable {
    let rows: [CatalogJSONRow]          // active rows
    let roleNames: Set<String>
    let groups: [String: [String]]  // the config's [groups]
    let hosts: [String: LabHost]
    let roles: [String: Set<String>]
    let strict: Bool
    /// The groups each lab address is a member of, and the rows by port (computed once: planning
    /// asks for tens of thousands of verdicts).
    private let membership: [String: Set<String>]
    private let rowsByPort: [Int: [CatalogJSONRow]]
    private let rowsOfRangesOrAll: [CatalogJSONRow]

    init(allRows: [CatalogJSONRow], topology: LabTopology, groups: [String: [String]]) {
        rows = allRows.filter { $0.isActive(features: Set(topology.features), version: topology.version) }
        roleNames = Set(allRows.map(\.role))
        strict = topology.strict
        self.groups = groups
        hosts = Dictionary(uniqueKeysWithValues: topology.hosts.map { ($0.name, $0) })
        var membership: [String: Set<String>] = [:]
        for a in topology.hosts.flatMap(\.addresses) {
            membership[a.address] = Set(groups.filter { $0.value.contains { AddressMath.contains($0, a.address) } }.keys)
        }
        self.membership = membership
        var byPort: [Int: [CatalogJSONRow]] = [:]
        for r in rows { for p in Set(r.ports) { byPort[p, default: []].append(r) } }
        rowsByPort = byPort
        rowsOfRangesOrAll = rows.filter { $0.allPorts || !$0.portRanges.isEmpty }
        var roles: [String: Set<String>] = [:]
        for h in topology.hosts {
            roles[h.name] = roleNames.intersection(h.addresses.flatMap { membership[$0.address]! })
        }
        self.roles = roles
    }

    func isMember(_ address: String, of group: String) -> Bool {
        if group == "any" && groups["any"] == nil { return true }
        if let m = membership[address] { return m.contains(group) }
        return (groups[group] ?? []).contains { AddressMath.contains($0, address) }
    }

    func isEnforced(_ host: String) -> Bool { !(roles[host] ?? []).isEmpty }

    /// The rows that make `host` accept a packet from/to `peer` in a direction; nil when the host
    /// enforces nothing.
    func reasons(host: String, ingress: Bool, peer: String, proto: String, port: Int) -> [String]? {
        guard let mine = roles[host], !mine.isEmpty else { return nil }
        var ids: [String] = []
        for r in (rowsByPort[port] ?? []) + rowsOfRangesOrAll where r.covers(proto: proto, port: port) {
            // Own row: this host has role R, the row's direction, the peer is in a remote group.
            if mine.contains(r.role) && r.isIngress == ingress && r.remote.contains(where: { isMember(peer, of: $0) }) {
                ids.append(r.id)
            } else if !strict && r.isIngress != ingress && r.remote.contains(where: { mine.contains($0) }) && isMember(peer, of: r.role) {
                // The other end of a row: this host holds a role the row names as its remote.
                ids.append(r.id + "(other end)")
            }
        }
        if ingress && proto == "tcp" && port == 22 && !(groups["admin_ssh"] ?? []).isEmpty && isMember(peer, of: "admin_ssh") {
            ids.append("failsafe")
        }
        return ids
    }

    /// The expected verdict, and why, in words.
    func verdict(_ p: ProbeSpec) -> (allow: Bool, why: String) {
        let out = reasons(host: p.srcHost, ingress: false, peer: p.dst, proto: p.proto, port: p.port)
        let inn = reasons(host: p.dstHost, ingress: true, peer: p.src, proto: p.proto, port: p.port)
        func describe(_ r: [String]?, _ host: String, _ dir: String) -> String {
            guard let r else { return "\(host) enforces nothing" }
            return r.isEmpty ? "no row lets \(host) \(dir) it" : "\(dir) at \(host): \(r.joined(separator: ", "))"
        }
        let allow = (out.map { !$0.isEmpty } ?? true) && (inn.map { !$0.isEmpty } ?? true)
        return (allow, describe(out, p.srcHost, "send") + "; " + describe(inn, p.dstHost, "accept"))
    }
}

// MARK: - which probes

struct PlannedProbe: Sendable {
    var spec: ProbeSpec
    var expectAllow: Bool
    var why: String
    /// The catalog rows whose flow this probe is an instance of (empty for a pure deny sample).
    var rowFlows: [String]
}

enum ProbePlan {
    /// "All ports" rows are probed here: no catalog row names it.
    static let samplePort = 4242
    /// Ports no row names, probed between every pair as well.
    static let strayPorts = [samplePort, 60000]

    /// Every (proto, port) a probe may use: the ports of every row of the catalog (also rows this
    /// topology's features/version switch off) plus the stray ports. Listeners bind all of them.
    static func pool(_ allRows: [CatalogJSONRow]) -> (tcp: [Int], udp: [Int]) {
        var tcp = Set(strayPorts), udp = Set(strayPorts)
        for r in allRows {
            for proto in r.probeProtos {
                if proto == "tcp" { tcp.formUnion(r.probePorts) } else { udp.formUnion(r.probePorts) }
            }
        }
        return (tcp.sorted(), udp.sorted())
    }

    struct Result: Sendable {
        var probes: [PlannedProbe]
        /// Active rows of roles present in the topology, and those with a peer in the lab (probed).
        var rowsOfPresentRoles: [String]
        var rowsProbed: Set<String>
        /// Row flows the model itself would refuse: a contradiction in the model or the topology.
        var inconsistent: [String]
    }

    /// The probes of one topology: every flow of every active row between hosts present in the lab
    /// (both families), and between every ordered pair of hosts with at least one enforcing end,
    /// every pool port. Verdicts come from the model; the row flows must all be allowed.
    static func plan(_ model: FlowModel, _ topology: LabTopology, allRows: [CatalogJSONRow]) -> Result {
        var rowFlows: [ProbeSpec: [String]] = [:]
        var probed = Set<String>()
        var present: [String] = []
        func endpoints(_ h: LabHost, _ group: String, _ f: LabFamily) -> [String] {
            if group == "any" && model.groups["any"] == nil { return h.anywhere ? h.addresses(f) : [] }
            return h.addresses(f).filter { model.isMember($0, of: group) }
        }
        for r in model.rows {
            let holders = topology.hosts.filter { model.roles[$0.name]!.contains(r.role) }
            guard !holders.isEmpty else { continue }
            present.append(r.id)
            for g in r.remote {
                for h in holders {
                    for peer in topology.hosts where peer.name != h.name {
                        for f in LabFamily.allCases {
                            let mine = endpoints(h, r.role, f), theirs = endpoints(peer, g, f)
                            for a in mine {
                                for b in theirs {
                                    for proto in r.probeProtos {
                                        for port in r.probePorts {
                                            let spec = r.isIngress
                                                ? ProbeSpec(srcHost: peer.name, src: b, dstHost: h.name, dst: a, proto: proto, port: port)
                                                : ProbeSpec(srcHost: h.name, src: a, dstHost: peer.name, dst: b, proto: proto, port: port)
                                            rowFlows[spec, default: []].append(r.id)
                                            probed.insert(r.id)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var specs = Set(rowFlows.keys)
        let ports = pool(allRows)
        for s in topology.hosts {
            for d in topology.hosts where d.name != s.name && (model.isEnforced(s.name) || model.isEnforced(d.name)) {
                for f in LabFamily.allCases {
                    for dst in d.addresses(f) {
                        for port in ports.tcp { specs.insert(ProbeSpec(srcHost: s.name, src: s.primary(f), dstHost: d.name, dst: dst, proto: "tcp", port: port)) }
                        for port in ports.udp { specs.insert(ProbeSpec(srcHost: s.name, src: s.primary(f), dstHost: d.name, dst: dst, proto: "udp", port: port)) }
                    }
                }
            }
        }
        var probes: [PlannedProbe] = []
        var inconsistent: [String] = []
        for spec in specs.sorted() {
            let v = model.verdict(spec)
            let rows = rowFlows[spec] ?? []
            if !rows.isEmpty && !v.allow { inconsistent.append("\(spec.text) (rows \(rows.joined(separator: ","))): \(v.why)") }
            probes.append(PlannedProbe(spec: spec, expectAllow: v.allow, why: v.why, rowFlows: rows))
        }
        return Result(probes: probes, rowsOfPresentRoles: present, rowsProbed: probed, inconsistent: inconsistent)
    }
}
