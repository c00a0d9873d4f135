import Foundation
import Testing
@testable import Enforcer

/// The built-in catalogs ship as Swift values generated from their TOML files
/// (`Sources/Enforcer/Catalog/BuiltInCatalogs.swift`), so that a one-shot `apply` does not parse
/// 100 KB of TOML before its first netlink message. The TOML stays the source: this suite fails
/// when the generated file differs from what parsing the TOML gives, and regenerates it with
///
///     FWE_UPDATE_CATALOGS=1 swift test --filter BuiltInCatalogSourceTests
@Suite struct BuiltInCatalogSourceTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let generatedPath = repository.appendingPathComponent("Sources/Enforcer/Catalog/BuiltInCatalogs.swift").path

    /// Every built-in catalog, parsed from its TOML as a catalog file would be.
    static func parsedFromText() throws -> [(name: String, catalog: Catalog)] {
        try Catalog.builtInNames.map { name in
            (name, try Catalog.parse(text: Catalog.builtInText(name)!, file: "<built-in catalog \(name)>"))
        }
    }

    @Test func generatedValuesEqualTheParsedTOML() throws {
        for (name, parsed) in try Self.parsedFromText() {
            let shipped = try #require(Catalog.builtIn(name), "\(name) has no generated value")
            #expect(shipped == parsed, "\(name): BuiltInCatalogs.swift is stale; regenerate with FWE_UPDATE_CATALOGS=1 swift test --filter BuiltInCatalogSourceTests")
            // Hashable equality covers every field but the version condition's parsed form: check that too.
            for (a, b) in zip(shipped.rows, parsed.rows) {
                #expect(a.versions?.constraints.map { "\($0.op.rawValue)\($0.version)" } == b.versions?.constraints.map { "\($0.op.rawValue)\($0.version)" })
            }
        }
    }

    @Test func generatedFileIsCurrent() throws {
        let source = CatalogSwiftSource.file(for: try Self.parsedFromText())
        if ProcessInfo.processInfo.environment["FWE_UPDATE_CATALOGS"] == "1" {
            try source.write(toFile: Self.generatedPath, atomically: true, encoding: .utf8)
        }
        let committed = try String(contentsOfFile: Self.generatedPath, encoding: .utf8)
        #expect(committed == source, "regenerate with FWE_UPDATE_CATALOGS=1 swift test --filter BuiltInCatalogSourceTests")
    }

    @Test func loadingABuiltInParsesNoTOML() throws {
        // `load` of a built-in name returns the generated value; a name that is not built in still
        // goes to the file path.
        #expect(try Catalog.load("cloudcenter") == Catalog.builtIn("cloudcenter"))
        #expect(throws: InputError.self) { try Catalog.load("nosuchcatalog") }
    }
}

/// Renders catalogs as Swift source: one `static let` per catalog, every string as a Swift literal.
enum CatalogSwiftSource {
    static func file(for catalogs: [(name: String, catalog: Catalog)]) -> String {
        var out = """
            // Generated from Catalog/Data/*.toml by BuiltInCatalogSourceTests; do not edit.
            // Regenerate: FWE_UPDATE_CATALOGS=1 swift test --filter BuiltInCatalogSourceTests

            extension Catalog {
                /// A built-in catalog by name, as parsing its TOML file gives it.
                static func builtIn(_ name: String) -> Catalog? {
                    switch name {

            """
        for (name, _) in catalogs { out += "        case \(literal(name)): return BuiltInCatalogs.\(identifier(name))\n" }
        out += "        default: return nil\n        }\n    }\n}\n\nenum BuiltInCatalogs {\n"
        for (name, c) in catalogs {
            out += "    static let \(identifier(name)) = Catalog(\n"
            out += "        name: \(literal(c.name)),\n        description: \(literal(c.description)),\n"
            out += "        versionDefault: \(c.versionDefault.map { "ProductVersion(\(literal($0.description)))!" } ?? "nil"),\n"
            out += "        roles: \(entries(c.roles)),\n        groups: \(entries(c.groups)),\n        features: \(entries(c.features)),\n"
            out += "        rows: [\n"
            for r in c.rows {
                let ports = "[" + r.ports.map { $0.first == $0.last ? "PortRange(\($0.first))" : "PortRange(\($0.first), \($0.last))" }.joined(separator: ", ") + "]"
                out += "            CatalogRow(id: \(literal(r.id)), role: \(literal(r.role)), direction: .\(r.direction.rawValue), ports: \(ports), "
                out += "proto: .\(r.proto.rawValue), remote: [\(r.remote.map(literal).joined(separator: ", "))], "
                out += "feature: \(r.feature.map(literal) ?? "nil"), versions: \(r.versions.map { "VersionCondition(\(literal($0.text)))!" } ?? "nil"), "
                out += "note: \(literal(r.note)), line: \(r.line.map(String.init) ?? "nil")),\n"
            }
            out += "        ]\n    )\n"
        }
        return out + "}\n"
    }

    static func entries(_ list: [Catalog.Entry]) -> String {
        if list.isEmpty { return "[]" }
        return "[\n" + list.map { "            Catalog.Entry(name: \(literal($0.name)), description: \(literal($0.description))),\n" }.joined() + "        ]"
    }

    static func identifier(_ name: String) -> String { String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" }) }

    /// A Swift string literal for `s`: `debugDescription` escapes quotes, backslashes and control characters.
    static func literal(_ s: String) -> String { s.debugDescription }
}
