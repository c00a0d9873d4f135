import FoundationEssentials

/// What a topology picture was made from, printed on it so that an auditor can tell which config
/// and which catalog a diagram attached to a report describes. No clock and no host name: the
/// same config gives the same bytes.
public struct DiagramProvenance: Sendable, Hashable {
    public var configPath: String
    /// SHA-256 of the config file's bytes, as hex.
    public var configSHA256: String
    public var catalogName: String
    public var catalogDescription: String
    /// SHA-256 of the catalog's source text (the built-in one, or the file the config names);
    /// nil when that file cannot be read again.
    public var catalogSHA256: String?
    public var catalogBuiltIn: Bool
    /// The product version the catalog's rows were evaluated for (nil: no version-dependent row applies).
    public var productVersion: String?
    public var features: [String]
    public var strict: Bool
    public var ingress: EnforceMode
    public var egress: EnforceMode
    public var ping: Bool
    public var dhcpClient: Bool

    public init(config: Config, configBytes: [UInt8]) {
        configPath = config.path
        configSHA256 = SHA256.hex(of: configBytes)
        catalogName = config.catalog.name
        catalogDescription = config.catalog.description
        let reference = config.host.catalog
        if let text = Catalog.builtInText(reference) {
            catalogBuiltIn = true
            catalogSHA256 = SHA256.hex(of: Array(text.utf8))
        } else {
            catalogBuiltIn = false
            var path = reference
            if !path.hasPrefix("/") { path = PathText.joining(PathText.directory(of: config.path), path) }
            catalogSHA256 = FileManager.default.contents(atPath: path).map { SHA256.hex(of: Array($0)) }
        }
        productVersion = config.effectiveVersion?.description
        features = config.host.features.sorted()
        strict = config.host.strict
        ingress = config.enforce.ingress
        egress = config.enforce.egress
        ping = config.enforce.ping
        dhcpClient = config.enforce.dhcpClient
    }

    /// "catalog cloudcenter (built-in, sha256 0123456789ab), product version 4.10".
    public var catalogLine: String {
        var s = "catalog \(catalogName) (\(catalogBuiltIn ? "built-in" : "file")"
        if let catalogSHA256 { s += ", sha256 \(catalogSHA256.prefix(12))" }
        s += ")"
        s += productVersion.map { ", product version \($0)" } ?? ", no product version"
        return s
    }

    /// "features esb, container_images; flows at both ends (strict = false)".
    public var semanticsLine: String {
        let f = features.isEmpty ? "no optional features" : "features \(features.joined(separator: ", "))"
        let s = strict ? "each role enforces its own rows only (strict = true)" : "each flow is enforced at both ends (strict = false)"
        let extras = (ping ? "; ping allowed everywhere" : "") + (dhcpClient ? "; DHCP client allowed everywhere" : "")
        return "\(f); \(s); ingress \(ingress.rawValue), egress \(egress.rawValue)\(extras)"
    }

    /// Said on the picture when a direction is not enforced: the kernel then passes more than the
    /// arrows show (audit mode accepts and logs; off has no chain at all).
    public var modeWarning: String? {
        let loose = [(Direction.ingress, ingress), (.egress, egress)].filter { $0.1 != .enforce }
        guard !loose.isEmpty else { return nil }
        let which = loose.map { "\($0.0.rawValue) is \($0.1.rawValue)" }.joined(separator: " and ")
        return "\(which): in that direction the kernel passes every connection, not only the flows drawn here"
    }
}
