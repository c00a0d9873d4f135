import FoundationEssentials
import SystemPackage

/// What the daemon's plan is made of: the config file and, when its `[host] catalog` names a
/// file, that catalog file. Both decide the firewall, so both get the same treatment: the security
/// check (root's, not writable by group or others) and the read through one descriptor
/// (`ConfigFileSecurity.read`), the same UTF-8 rule, a watch, and one content hash over the two,
/// which is what change detection, a refusal after a rollback and a provisional window are keyed on.
struct ConfigSource {
    let configPath: String
    let requireSecure: Bool

    /// One read of the sources.
    struct Contents {
        var configBytes: [UInt8]
        /// The catalog file the config names (resolved against the config's directory), if any.
        var catalogPath: String?
        var catalogBytes: [UInt8]?
        /// SHA-256 of the config's bytes, or of config and catalog together when there is a file.
        var hash: String
        var warnings: [ConfigDirectoryWarning]
    }

    /// Reads the config file (checked). Then `catalogPath(named:)` tells which catalog file it
    /// names, and `read(catalog:config:)` adds it.
    func readConfig() throws -> (bytes: [UInt8], warnings: [ConfigDirectoryWarning]) {
        try readFile(configPath, what: "config file")
    }

    /// The catalog file config bytes name (resolved against the config's directory); nil for a
    /// built-in catalog, or when the text cannot even say (parsing it reports the error).
    func catalogPath(named config: [UInt8]) -> String? {
        guard let text = try? Config.text(of: config, file: configPath),
              let reference = Config.catalogReference(text: text, file: configPath),
              Catalog.builtInText(reference) == nil, reference.contains("/") || reference.hasSuffix(".toml") else {
            return nil
        }
        return reference.hasPrefix("/") ? reference : PathText.directory(of: configPath) + "/" + reference
    }

    /// The whole content: the config's bytes and the catalog file at `catalog` (checked), hashed together.
    func read(catalog: String?, config: (bytes: [UInt8], warnings: [ConfigDirectoryWarning])) throws -> Contents {
        var contents = Contents(configBytes: config.bytes, catalogPath: nil, catalogBytes: nil, hash: SHA256.hex(of: config.bytes),
                                warnings: config.warnings)
        guard let path = catalog else { return contents }
        let (bytes, warnings) = try readFile(path, what: "catalog file")
        contents.catalogPath = path
        contents.catalogBytes = bytes
        contents.hash = SHA256.hex(of: config.bytes + [0] + Array(path.utf8) + [0] + bytes)
        contents.warnings += warnings
        return contents
    }

    /// Parses what `read` returned: the catalog file's text is parsed here, from the bytes that
    /// were checked, never read again by name.
    func parse(_ contents: Contents, text: String) throws(InputError) -> Config {
        guard let path = contents.catalogPath, let bytes = contents.catalogBytes else {
            return try Config.parse(text: text, file: configPath)
        }
        let catalogText = try Config.text(of: bytes, file: path)
        return try Config.parse(text: text, file: configPath, catalogOverride: try Catalog.parse(text: catalogText, file: path))
    }

    /// The files to watch: the config, and the catalog file it names.
    func watchedPaths(catalog: String?) -> [FilePath] {
        [FilePath(configPath)] + (catalog.map { [FilePath($0)] } ?? [])
    }

    private func readFile(_ path: String, what: String) throws -> ([UInt8], [ConfigDirectoryWarning]) {
        if requireSecure {
            let checked = try ConfigFileSecurity.read(FilePath(path))
            return (checked.bytes, checked.warnings)
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw InputError(file: path, line: nil, key: nil,
                             message: FileManager.default.fileExists(atPath: path) ? "cannot read \(what)" : "\(what) does not exist")
        }
        return (Array(data), [])
    }
}

extension Config {
    /// `[host] catalog` of config text, read leniently (nil when the text does not say); the
    /// default catalog is built in.
    static func catalogReference(text: String, file: String) -> String? {
        guard let doc = try? TOMLDocument(text: text, file: file) else { return nil }
        defer { doc.release() }
        guard let host = try? doc.table(doc.root, "host", path: "host") else { return nil }
        return try? doc.string(host, "catalog", path: "host.catalog")
    }
}
