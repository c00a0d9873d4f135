import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

enum ReportDirection: String, ExpressibleByArgument, CaseIterable {
    case `in`, out
    var direction: Direction { self == .in ? .ingress : .egress }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Show what audit mode saw: the flows enforce mode would drop.",
        discussion: """
        Reads the report the daemon keeps while [enforce] ingress or egress is "audit": every flow \
        (direction, source, destination, protocol, port) that the catalog does not allow, with its \
        packet count, first and last time seen, and the groups of the peer's address. It answers \
        "if I switch to enforce, what breaks?". Exit 1 when there is no report.
        """)

    @Option(help: "Output format.")
    var format: ReportFormat = .table

    @Option(help: ArgumentHelp("Report written by the daemon.", valueName: "path"))
    var reportFile: String = StateFile.defaultPath.removingLastComponent().appending(DaemonOptions.auditReportName).string

    @Option(help: "Only flows of this direction.")
    var direction: ReportDirection?

    func run() throws {
        guard let data = FileManager.default.contents(atPath: reportFile) else {
            printError(FileManager.default.fileExists(atPath: reportFile)
                ? "error: cannot read \(reportFile) (permissions?)"
                : "no audit report at \(reportFile): the daemon writes it only while [enforce] ingress or egress is \"audit\"")
            throw ExitCode(1)
        }
        var report: AuditReport
        do {
            report = try AuditReport.decode(data, path: reportFile)
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        if let direction { report = report.filtered(direction.direction) }
        switch format {
        case .json: print(String(decoding: try report.encoded(), as: UTF8.self), terminator: "")
        case .table: print(report.table(), terminator: "")
        }
    }
}
