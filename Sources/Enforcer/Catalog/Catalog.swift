/// A product's port table: roles, the special groups its rows name, optional features, and rows.
/// See `docs/catalog-format.md`.
public struct Catalog: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public let name: String
        public let description: String
    }

    public var name: String
    public var description: String
    public var versionDefault: ProductVersion?
    /// Sorted by name.
    public var roles: [Entry]
    /// Special groups that are not roles, sorted by name (always including the built-in ones).
    public var groups: [Entry]
    public var features: [Entry]
    /// In file order; each role's rows numbered from 1 (`CCO#3`).
    public var rows: [CatalogRow]

    public func isRole(_ name: String) -> Bool { roles.contains { $0.name == name } }
    public func isGroup(_ name: String) -> Bool { groups.contains { $0.name == name } }
    public func isKnownGroup(_ name: String) -> Bool { isRole(name) || isGroup(name) }
    public func rows(of role: String) -> [CatalogRow] { rows.filter { $0.role == role } }

    /// Groups every catalog knows: administrators' SSH sources (the lockout failsafe) and "anywhere".
    public static let builtInGroups: [Entry] = [
        Entry(name: "admin_ssh", description: "Administrators' SSH sources; always allowed to port 22 where configured"),
        Entry(name: "any", description: "Anywhere (0.0.0.0/0 and ::/0); listing addresses for it narrows it, e.g. to a proxy"),
    ]
}

public enum Direction: String, Sendable, Hashable, Codable, CaseIterable {
    case ingress
    case egress

    public var hook: Hook { self == .ingress ? .input : .output }
    public var opposite: Direction { self == .ingress ? .egress : .ingress }
}

/// The protocol of a catalog row; `any` matches every protocol and goes with all ports only.
public enum RowProtocol: String, Sendable, Hashable, Codable, Comparable {
    case tcp
    case udp
    case any

    public var transport: TransportProtocol? {
        switch self { case .tcp: return .tcp; case .udp: return .udp; case .any: return nil }
    }

    public static func < (a: RowProtocol, b: RowProtocol) -> Bool {
        let order: [RowProtocol] = [.tcp, .udp, .any]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

/// One row of a port table.
public struct CatalogRow: Sendable, Hashable {
    /// `ROLE#n`, n counting that role's rows from 1 in file order.
    public var id: String
    public var role: String
    public var direction: Direction
    /// Empty means all ports.
    public var ports: [PortRange]
    public var proto: RowProtocol
    public var remote: [String]
    public var feature: String?
    public var versions: VersionCondition?
    public var note: String
    /// Line of the row's `[[rule]]` header in its catalog file.
    public var line: Int?

    public var allPorts: Bool { ports.isEmpty }

    public func applies(features: Set<String>, version: ProductVersion?) -> Bool {
        if let f = feature, !features.contains(f) { return false }
        if let v = versions {
            guard let version else { return false }
            return v.isSatisfied(by: version)
        }
        return true
    }
}

/// A dotted product version (`4.6.2`), compared numerically component by component.
public struct ProductVersion: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let components: [Int]

    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        var comps: [Int] = []
        for p in parts {
            guard !p.isEmpty, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(p) else { return nil }
            comps.append(n)
        }
        guard !comps.isEmpty else { return nil }
        components = comps
    }

    public var description: String { components.map(String.init).joined(separator: ".") }

    public static func < (a: ProductVersion, b: ProductVersion) -> Bool {
        let n = max(a.components.count, b.components.count)
        for i in 0..<n {
            let x = i < a.components.count ? a.components[i] : 0
            let y = i < b.components.count ? b.components[i] : 0
            if x != y { return x < y }
        }
        return false
    }

    public static func == (a: ProductVersion, b: ProductVersion) -> Bool { !(a < b) && !(b < a) }
    public func hash(into h: inout Hasher) {
        var c = components
        while c.count > 1, c.last == 0 { c.removeLast() }
        h.combine(c)
    }
}

/// Space-separated constraints such as `>=4.6 <4.7`; all must hold.
public struct VersionCondition: Sendable, Hashable, CustomStringConvertible {
    public enum Op: String, Sendable, CaseIterable {
        case ge = ">=", le = "<=", gt = ">", lt = "<", eq = "=="
    }

    public let constraints: [(op: Op, version: ProductVersion)]
    public let text: String

    public init?(_ text: String) {
        var cs: [(Op, ProductVersion)] = []
        for token in text.split(separator: " ") {
            // Two-character operators first, so ">=" is not read as ">".
            guard let op = [Op.ge, .le, .eq, .gt, .lt].first(where: { token.hasPrefix($0.rawValue) }),
                  let v = ProductVersion(String(token.dropFirst(op.rawValue.count))) else { return nil }
            cs.append((op, v))
        }
        guard !cs.isEmpty else { return nil }
        constraints = cs
        self.text = cs.map { "\($0.0.rawValue)\($0.1)" }.joined(separator: " ")
    }

    public func isSatisfied(by v: ProductVersion) -> Bool {
        constraints.allSatisfy { c in
            switch c.op {
            case .ge: return v >= c.version
            case .le: return v <= c.version
            case .gt: return v > c.version
            case .lt: return v < c.version
            case .eq: return v == c.version
            }
        }
    }

    public var description: String { text }
    public static func == (a: VersionCondition, b: VersionCondition) -> Bool { a.text == b.text }
    public func hash(into h: inout Hasher) { h.combine(text) }
}
