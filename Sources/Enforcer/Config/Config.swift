import FoundationEssentials
import TOMLKit

/// How a direction is enforced.
public enum EnforceMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// Policy drop: only what the catalog allows passes.
    case enforce
    /// Policy accept: what would be dropped is logged and counted, then accepted.
    case audit
    /// No chain for this direction.
    case off
}

/// What the daemon enforces while no valid plan exists (roles unresolved, config invalid or missing).
public enum UnresolvedPolicy: String, Sendable, Hashable, Codable {
    /// The fail-closed baseline (`Baseline`): policy drop, loopback, IPv6 essentials, replies,
    /// administrators' SSH and DHCP where configured.
    case baseline
    /// Nothing: the host stays as open as it is until a plan exists (the behaviour before 0.2).
    case open
}

/// Which roles this host has.
public enum RoleSelection: Sendable, Hashable {
    case list([String])
    /// The roles whose groups hold one of this host's own interface addresses.
    case auto
}

/// The parsed, validated `fwenforcer.conf`.
public struct Config: Sendable, Hashable {
    public struct Host: Sendable, Hashable {
        public var roles: RoleSelection
        public var catalog: String
        public var version: ProductVersion?
        public var features: [String]
        /// Enforce each role's own rows only, instead of both ends of every flow.
        public var strict: Bool
        /// Line of `roles` in the config file, for errors found when roles are resolved.
        public var rolesLine: Int?
    }

    public struct Enforce: Sendable, Hashable {
        public var ingress: EnforceMode = .enforce
        public var egress: EnforceMode = .enforce
        public var table: String = defaultTableName
        /// Log dropped (or, in audit mode, would-be-dropped) packets, rate-limited.
        public var logDrops: Bool = true
        /// Packets per second the drop log lets through (burst twice that).
        public var logRate: Int = 5
        /// Allow ICMP/ICMPv6 echo (ping) in both directions.
        public var ping: Bool = false
        /// Allow a DHCPv4/DHCPv6 client's exchanges.
        public var dhcpClient: Bool = false
        /// The table is owned by the daemon's netlink socket (NFT_TABLE_F_OWNER | NFT_TABLE_F_PERSIST,
        /// Linux 6.9): no other process can change or delete it while the daemon runs.
        public var owner: Bool = false
        /// The nfnetlink_log group audit mode reports would-be-dropped packets to; the daemon
        /// listens on it. Only one listener per group and network namespace can bind it, so it
        /// must differ from groups ulogd or other tools use on the host.
        public var auditGroup: UInt16 = defaultAuditGroup
        /// `[enforce] unresolved`: what the daemon enforces while no valid plan exists.
        public var unresolved: UnresolvedPolicy = .baseline

        public init() {}
    }

    /// `[enforce] audit_group` when not set: far from the small numbers (0, 1, 2, ...) that ulogd
    /// and most NFLOG examples use.
    public static let defaultAuditGroup: UInt16 = 6600

    public var path: String
    public var host: Host
    public var enforce: Enforce
    /// Group name → its addresses, sorted by name. Groups not listed are empty.
    public var groups: [String: [IPPrefix]]
    /// Non-fatal remarks for the operator (duplicate addresses and the like).
    public var warnings: [String]

    /// The resolved catalog this config names.
    public var catalog: Catalog

    /// The product version rows are evaluated against.
    public var effectiveVersion: ProductVersion? { host.version ?? catalog.versionDefault }

    public func addresses(of group: String) -> [IPPrefix] { groups[group] ?? [] }
}

extension Config {
    /// Reads, parses and validates a config file; the catalog it names is loaded too.
    public static func load(path: String) throws(InputError) -> Config {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot read config file (permissions?)" : "config file does not exist"
            throw InputError(file: path, line: nil, key: nil, message: reason)
        }
        return try parse(text: try text(of: Array(data), file: path), file: path)
    }

    /// Parses and validates config text. `catalogOverride` replaces the catalog lookup (tests).
    public static func parse(text: String, file: String, catalogOverride: Catalog? = nil) throws(InputError) -> Config {
        let doc = try TOMLDocument(text: text, file: file, spliceLongArrays: true)
        defer { doc.release() }
        return try parse(document: doc, catalogOverride: catalogOverride)
    }

    /// Validates an already parsed document (the caller releases it).
    static func parse(document doc: TOMLDocument, catalogOverride: Catalog? = nil) throws(InputError) -> Config {
        let file = doc.file
        try doc.rejectUnknown(in: doc.root, path: "", allowed: ["host", "enforce", "groups"])

        guard let hostT = try doc.table(doc.root, "host", path: "host", required: true) else { fatalError() }
        try doc.rejectUnknown(in: hostT, path: "host", allowed: ["roles", "catalog", "version", "features", "strict"])

        let catalogRef = try doc.string(hostT, "catalog", path: "host.catalog") ?? "cloudcenter"
        let catalog: Catalog
        if let catalogOverride {
            catalog = catalogOverride
        } else {
            do {
                catalog = try Catalog.load(catalogRef, relativeTo: PathText.directory(of: file))
            } catch {
                if error.line == nil && !catalogRef.contains("/") {
                    throw doc.error("host.catalog", error.message)
                }
                throw error
            }
        }

        // roles
        let roles: RoleSelection
        guard let rolesValue = hostT["roles"] else {
            throw doc.error("host", "missing roles (a list of roles, or \"auto\")")
        }
        if let s = TOMLDocument.string(rolesValue) {
            guard s == "auto" else {
                throw doc.error("host.roles", "must be a list of roles, or \"auto\"; write roles = [\"\(s)\"] for one role")
            }
            roles = .auto
        } else {
            guard let list = try doc.stringArray(hostT, "roles", path: "host.roles") else { fatalError() }
            guard !list.isEmpty else {
                throw doc.error("host.roles", "is empty: list this host's roles (\(catalog.roles.prefix(4).map(\.name).joined(separator: ", "))...), or write \"auto\"")
            }
            var seen = Set<String>()
            for r in list {
                guard catalog.isRole(r) else {
                    throw doc.error("host.roles", "unknown role \"\(r)\" in catalog \(catalog.name)"
                                    + Catalog.hint(r, catalog.roles.map(\.name)), value: r)
                }
                guard seen.insert(r).inserted else { throw doc.error("host.roles", "role \"\(r)\" is listed twice", value: r) }
            }
            roles = .list(list)
        }

        var version: ProductVersion?
        if let v = try doc.string(hostT, "version", path: "host.version") {
            guard let pv = ProductVersion(v) else { throw doc.error("host.version", "\"\(v)\" is not a dotted version like 4.10") }
            version = pv
        }
        let features = try doc.stringArray(hostT, "features", path: "host.features") ?? []
        for f in features where !catalog.features.contains(where: { $0.name == f }) {
            let known = catalog.features.map(\.name)
            throw doc.error("host.features", "unknown feature \"\(f)\" in catalog \(catalog.name)"
                            + Catalog.hint(f, known) + (known.isEmpty ? " (it has none)" : "; known: \(known.joined(separator: ", "))"), value: f)
        }
        let strict = try doc.bool(hostT, "strict", path: "host.strict") ?? false

        // enforce
        var enforce = Enforce()
        if let t = try doc.table(doc.root, "enforce", path: "enforce") {
            try doc.rejectUnknown(in: t, path: "enforce",
                                  allowed: ["ingress", "egress", "table", "log_drops", "log_rate", "ping", "dhcp_client", "audit_group", "unresolved", "owner"])
            for (key, keyPath) in [("ingress", \Enforce.ingress), ("egress", \Enforce.egress)] {
                if let s = try doc.string(t, key, path: "enforce.\(key)") {
                    guard let m = EnforceMode(rawValue: s) else {
                        throw doc.error("enforce.\(key)", "\"\(s)\" is not enforce, audit or off")
                    }
                    enforce[keyPath: keyPath] = m
                }
            }
            if let name = try doc.string(t, "table", path: "enforce.table") {
                guard Catalog.isValidName(name) else {
                    throw doc.error("enforce.table", "\"\(name)\" is not a valid table name (letters, digits, _; at most 60)")
                }
                enforce.table = name
            }
            enforce.logDrops = try doc.bool(t, "log_drops", path: "enforce.log_drops") ?? enforce.logDrops
            if let r = try doc.int(t, "log_rate", path: "enforce.log_rate") {
                guard (1...10_000).contains(r) else { throw doc.error("enforce.log_rate", "must be 1-10000 packets per second") }
                enforce.logRate = r
            }
            if let g = try doc.int(t, "audit_group", path: "enforce.audit_group") {
                guard (0...65535).contains(g) else {
                    throw doc.error("enforce.audit_group", "\(g) is not an nfnetlink_log group: must be 0-65535")
                }
                enforce.auditGroup = UInt16(g)
            }
            enforce.ping = try doc.bool(t, "ping", path: "enforce.ping") ?? enforce.ping
            enforce.dhcpClient = try doc.bool(t, "dhcp_client", path: "enforce.dhcp_client") ?? enforce.dhcpClient
            enforce.owner = try doc.bool(t, "owner", path: "enforce.owner") ?? enforce.owner
            if let u = try doc.string(t, "unresolved", path: "enforce.unresolved") {
                guard let policy = UnresolvedPolicy(rawValue: u) else {
                    throw doc.error("enforce.unresolved", "\"\(u)\" is not baseline or open")
                }
                enforce.unresolved = policy
            }
        }

        // groups
        var groups: [String: [IPPrefix]] = [:]
        var warnings: [String] = []
        if let t = try doc.table(doc.root, "groups", path: "groups") {
            for name in t.keys.sorted() {
                let path = "groups.\(name)"
                guard catalog.isKnownGroup(name) else {
                    throw doc.error(path, "unknown role or group \"\(name)\" in catalog \(catalog.name)"
                                    + Catalog.hint(name, catalog.roles.map(\.name) + catalog.groups.map(\.name)))
                }
                guard let items = try doc.stringArray(t, name, path: path) else { continue }
                var prefixes: [IPPrefix] = []
                prefixes.reserveCapacity(items.count)
                for item in items {
                    let p: IPPrefix
                    do {
                        let blank = { (b: UInt8?) in b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") }
                        let text = blank(item.utf8.first) || blank(item.utf8.last) ? item.trimmingCharacters(in: " \t") : item
                        if let fast = AddressText.prefix(text) { p = fast } else { p = try IPPrefix.parse(text) }
                    } catch {
                        throw doc.error(path, error.description, value: item)
                    }
                    prefixes.append(p)
                }
                groups[name] = withoutRepeats(prefixes) { i, p in
                    warnings.append("\(doc.error(path, "\(p) is listed twice", value: items[i]))")
                }
            }
        }

        return Config(path: file, host: Host(roles: roles, catalog: catalogRef, version: version, features: features, strict: strict,
                                     rolesLine: doc.map.line(of: "host.roles")),
                      enforce: enforce, groups: groups, warnings: warnings, catalog: catalog)
    }

    /// `prefixes` without repeats (the first stays), telling `repeated` of each one dropped, in
    /// order. A list whose IPv4 and IPv6 prefixes are each in increasing order, as generated lists
    /// usually are, has none: that is checked by comparing neighbours of a family instead of
    /// hashing 100,000 prefixes.
    static func withoutRepeats(_ prefixes: [IPPrefix], repeated: (Int, IPPrefix) -> Void) -> [IPPrefix] {
        var lastV4: IPPrefix?, lastV6: IPPrefix?
        var increasing = true
        for p in prefixes {
            let last = p.family == .ipv4 ? lastV4 : lastV6
            if let last, !(last < p) {
                increasing = false
                break
            }
            if p.family == .ipv4 { lastV4 = p } else { lastV6 = p }
        }
        if increasing { return prefixes }
        var seen = Set<IPPrefix>(minimumCapacity: prefixes.count)
        var out: [IPPrefix] = []
        out.reserveCapacity(prefixes.count)
        for (i, p) in prefixes.enumerated() {
            if seen.insert(p).inserted { out.append(p) } else { repeated(i, p) }
        }
        return out
    }
}
