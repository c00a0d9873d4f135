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

    /// Reads the config file (checked). Then `prepare` and `catalogPath(named:)` tell which catalog file it
    /// names, and `read(catalog:config:)` adds it.
    func readConfig() throws -> (bytes: [UInt8], warnings: [ConfigDirectoryWarning]) {
        try readFile(configPath, what: "config file")
    }

    /// The config's bytes as far as they parse: the text (UTF-8) and its TOML document. The
    /// document is parsed once per read, for the catalog file it names and for the config itself
    /// (a second parse of a 100,000-address file cost as much as the first). Call `release()`
    /// after the last use.
    struct Prepared {
        var text: String?
        var document: TOMLDocument?

        func release() { document?.release() }
    }

    /// Decodes and parses config bytes; what fails is left nil, for `parse` to report.
    func prepare(_ config: [UInt8]) -> Prepared {
        guard let text = try? Config.text(of: config, file: configPath) else { return Prepared() }
        return Prepared(text: text, document: try? TOMLDocument(text: text, file: configPath, spliceLongArrays: true))
    }

    /// The catalog file the config names (resolved against the config's directory); nil for a
    /// built-in catalog, or when the text cannot even say (parsing it reports the error).
    func catalogPath(named config: Prepared) -> String? {
        guard let document = config.document, let reference = Config.catalogReference(in: document),
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
    /// `document`, when given, is `text` already parsed (by `prepare`).
    func parse(_ contents: Contents, text: String, document: TOMLDocument? = nil) throws(InputError) -> Config {
        var catalog: Catalog?
        if let path = contents.catalogPath, let bytes = contents.catalogBytes {
            catalog = try Catalog.parse(text: try Config.text(of: bytes, file: path), file: path)
        }
        if let document { return try Config.parse(document: document, catalogOverride: catalog) }
        return try Config.parse(text: text, file: configPath, catalogOverride: catalog)
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
    /// `[host] catalog` of a parsed config, read leniently (nil when the document does not say);
    /// the default catalog is built in.
    static func catalogReference(in doc: TOMLDocument) -> String? {
        guard let host = try? doc.table(doc.root, "host", path: "host") else { return nil }
        return try? doc.string(host, "catalog", path: "host.catalog")
    }
}
