import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

enum CatalogFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

struct CatalogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "catalog",
        abstract: "Show a role catalog's rows (built-in: cloudcenter, cloudify; or a catalog file).")

    @Option(help: ArgumentHelp("Built-in catalog name or catalog file path.", valueName: "name|path"))
    var catalog: String = "cloudcenter"

    @Option(help: "Only this role's rows.")
    var role: String?

    @Flag(help: "Only rows whose flow is documented at this end only.")
    var oneSided = false

    @Option(help: "Output format.")
    var format: CatalogFormat = .text

    func run() throws {
        let cat: Enforcer.Catalog
        do {
            cat = try Enforcer.Catalog.load(catalog)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if let role, !cat.isRole(role) {
            printError("error: unknown role \"\(role)\" in catalog \(cat.name); roles: \(cat.roles.map(\.name).joined(separator: ", "))")
            throw ExitCode(1)
        }
        let oneSidedRows = cat.oneSidedRows()
        let oneSidedIDs = Set(oneSidedRows.map(\.row.id))
        var rows = cat.rows.filter { role == nil || $0.role == role }
        if oneSided { rows = rows.filter { oneSidedIDs.contains($0.id) } }
        switch format {
        case .json:
            print(JSONRenderer.render(rows: rows, oneSided: oneSidedIDs), terminator: "")
        case .text:
            print(TextTable.render(
                header: ["id", "dir", "proto", "ports", "remote", "condition", "note"],
                rows: rows.map { r in
                    let missing = oneSidedRows.first { $0.row.id == r.id }?.missingAt ?? []
                    var cond = [r.feature.map { "feature \($0)" }, r.versions.map { "version \($0)" }].compactMap { $0 }
                    if !missing.isEmpty { cond.append("one-sided (not in \(missing.joined(separator: ",")))") }
                    return [r.id, r.direction == .ingress ? "in" : "out", r.proto.rawValue,
                            r.ports.isEmpty ? "all" : r.ports.map(\.description).joined(separator: ","),
                            r.remote.joined(separator: ","), cond.joined(separator: "; "), r.note]
                }), terminator: "")
        }
    }
}
