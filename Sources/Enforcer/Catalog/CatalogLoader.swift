import FoundationEssentials
import TOMLKit

extension Catalog {
    /// Names of the catalogs embedded in the binary.
    public static let builtInNames = ["cloudcenter", "cloudify"]

    /// Source text of a built-in catalog (compiled into the binary as a SwiftPM resource).
    public static func builtInText(_ name: String) -> String? {
        switch name {
        case "cloudcenter": return String(decoding: PackageResources.cloudcenter_toml, as: UTF8.self)
        case "cloudify": return String(decoding: PackageResources.cloudify_toml, as: UTF8.self)
        default: return nil
        }
    }

    /// Loads a built-in catalog by name, or a catalog file when `reference` contains a `/`.
    /// `relativeTo` resolves relative paths (the config file's directory).
    ///
    /// A built-in catalog is not parsed: it is compiled into the binary as the Swift value its TOML
    /// gives (`BuiltInCatalogs.swift`, generated and checked by `BuiltInCatalogSourceTests`), so a
    /// one-shot `apply` spends nothing on the 100 KB of TOML it does not use.
    public static func load(_ reference: String, relativeTo base: String? = nil) throws(InputError) -> Catalog {
        if let builtIn = builtIn(reference) { return builtIn }
        guard reference.contains("/") || reference.hasSuffix(".toml") else {
            throw InputError(file: reference, line: nil, key: nil,
                             message: "no built-in catalog of this name (built-in: \(builtInNames.joined(separator: ", "))); a catalog file is given by path")
        }
        var path = reference
        if !path.hasPrefix("/"), let base { path = PathText.joining(base, path) }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(file: path, line: nil, key: nil, message: "cannot read catalog file")
        }
        return try parse(text: String(decoding: data, as: UTF8.self), file: path)
    }

    /// Parses and validates catalog text (`docs/catalog-format.md`).
    public static func parse(text: String, file: String) throws(InputError) -> Catalog {
        let doc = try TOMLDocument(text: text, file: file)
        defer { doc.release() }
        try doc.rejectUnknown(in: doc.root, path: "", allowed: ["catalog", "roles", "groups", "features", "rule"])

        guard let head = try doc.table(doc.root, "catalog", path: "catalog", required: true) else { fatalError() }
        try doc.rejectUnknown(in: head, path: "catalog", allowed: ["name", "description", "version_default"])
        guard let name = try doc.string(head, "name", path: "catalog.name"), !name.isEmpty else {
            throw doc.error("catalog", "missing name")
        }
        let description = try doc.string(head, "description", path: "catalog.description") ?? ""
        var versionDefault: ProductVersion?
        if let v = try doc.string(head, "version_default", path: "catalog.version_default") {
            guard let pv = ProductVersion(v) else { throw doc.error("catalog.version_default", "\"\(v)\" is not a dotted version like 4.10") }
            versionDefault = pv
        }

        func entries(_ key: String) throws(InputError) -> [Entry] {
            guard let t = try doc.table(doc.root, key, path: key) else { return [] }
            var out: [Entry] = []
            for k in t.keys.sorted() {
                guard let d = t[k].flatMap(TOMLDocument.string) else { throw doc.error("\(key).\(k)", "must be a description string") }
                guard Self.isValidName(k) else {
                    throw doc.error("\(key).\(k)", "names are letters, digits and _ (at most 60), starting with a letter")
                }
                out.append(Entry(name: k, description: d))
            }
            return out
        }
        let roles = try entries("roles")
        var groups = try entries("groups")
        for b in builtInGroups where !groups.contains(where: { $0.name == b.name }) { groups.append(b) }
        groups.sort { $0.name < $1.name }
        let features = try entries("features")
        if let clash = roles.first(where: { r in groups.contains { $0.name == r.name } }) {
            throw doc.error("roles.\(clash.name)", "is both a role and a group")
        }
        guard !roles.isEmpty else { throw doc.error("roles", "a catalog needs at least one role") }

        let known = Set(roles.map(\.name)).union(groups.map(\.name))
        let featureNames = Set(features.map(\.name))
        var rows: [CatalogRow] = []
        var counts: [String: Int] = [:]
        let ruleArray: TOMLArray
        if let v = doc.root["rule"] {
            guard let a = v.array else { throw doc.error("rule", "must be written as [[rule]] tables") }
            ruleArray = a
        } else {
            ruleArray = TOMLArray()
        }
        for (i, item) in ruleArray.enumerated() {
            let path = "rule[\(i)]"
            guard let t = item.table else { throw doc.error(path, "must be a table") }
            try doc.rejectUnknown(in: t, path: path,
                                  allowed: ["role", "direction", "ports", "proto", "remote", "feature", "versions", "note"])
            guard let role = try doc.string(t, "role", path: "\(path).role") else { throw doc.error(path, "missing role") }
            guard roles.contains(where: { $0.name == role }) else {
                throw doc.error("\(path).role", "unknown role \"\(role)\"" + Self.hint(role, Array(known)))
            }
            guard let dirText = try doc.string(t, "direction", path: "\(path).direction") else {
                throw doc.error(path, "missing direction (ingress or egress)")
            }
            guard let direction = Direction(rawValue: dirText) else {
                throw doc.error("\(path).direction", "\"\(dirText)\" is not ingress or egress")
            }
            let protoText = try doc.string(t, "proto", path: "\(path).proto") ?? "tcp"
            guard let proto = RowProtocol(rawValue: protoText) else {
                throw doc.error("\(path).proto", "\"\(protoText)\" is not tcp, udp or any")
            }
            let ports = try parsePorts(t["ports"], doc: doc, path: "\(path).ports")
            if proto == .any && !ports.isEmpty {
                throw doc.error("\(path).proto", "proto \"any\" goes only with ports = \"all\"")
            }
            guard let remote = try doc.stringArray(t, "remote", path: "\(path).remote"), !remote.isEmpty else {
                throw doc.error("\(path).remote", "a row needs at least one remote role or group")
            }
            for r in remote where !known.contains(r) {
                throw doc.error("\(path).remote", "unknown role or group \"\(r)\"" + Self.hint(r, Array(known)), value: r)
            }
            let feature = try doc.string(t, "feature", path: "\(path).feature")
            if let f = feature, !featureNames.contains(f) {
                throw doc.error("\(path).feature", "unknown feature \"\(f)\" (declare it under [features])")
            }
            var versions: VersionCondition?
            if let v = try doc.string(t, "versions", path: "\(path).versions") {
                guard let c = VersionCondition(v) else {
                    throw doc.error("\(path).versions", "\"\(v)\" is not a list of constraints like \">=4.6.2\" or \">=4.6 <4.7\"")
                }
                versions = c
            }
            let note = try doc.string(t, "note", path: "\(path).note") ?? ""
            counts[role, default: 0] += 1
            rows.append(CatalogRow(id: "\(role)#\(counts[role]!)", role: role, direction: direction, ports: ports,
                                   proto: proto, remote: remote, feature: feature, versions: versions, note: note,
                                   line: doc.map.line(of: path)))
        }
        return Catalog(name: name, description: description, versionDefault: versionDefault,
                       roles: roles, groups: groups, features: features, rows: rows)
    }

    private static func parsePorts(_ value: (any TOMLValueConvertible)?, doc: TOMLDocument, path: String) throws(InputError) -> [PortRange] {
        guard let value else { throw doc.error(path, "missing ports (a list of ports/ranges, or \"all\")") }
        if let s = value.string {
            guard s == "all" else { throw doc.error(path, "must be a list of ports, or \"all\"") }
            return []
        }
        guard let a = value.array, !a.isEmpty else { throw doc.error(path, "must be a non-empty list of ports, or \"all\"") }
        var out: [PortRange] = []
        for item in a {
            if let n = item.int {
                guard (1...65535).contains(n) else { throw doc.error(path, "port \(n) is outside 1-65535") }
                out.append(PortRange(UInt16(n)))
            } else if let s = item.string {
                let parts = s.split(separator: "-", omittingEmptySubsequences: false)
                guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]) else {
                    throw doc.error(path, "\"\(s)\" is not a port range like \"8000-8100\"", value: s)
                }
                guard (1...65535).contains(a), (1...65535).contains(b) else {
                    throw doc.error(path, "range \"\(s)\" is outside 1-65535", value: s)
                }
                guard a <= b else { throw doc.error(path, "range \"\(s)\" ends before it starts", value: s) }
                out.append(PortRange(UInt16(a), UInt16(b)))
            } else {
                throw doc.error(path, "ports are integers or \"first-last\" strings, found \(item.type)")
            }
        }
        return PortRange.normalize(out)
    }

    static func isValidName(_ s: String) -> Bool {
        guard let f = s.first, f.isASCII, f.isLetter, s.count <= 60 else { return false }
        return s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }

    static func hint(_ word: String, _ candidates: [String]) -> String {
        TOMLDocument.closest(word, in: candidates).map { " (did you mean \"\($0)\"?)" } ?? ""
    }
}
