import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a config file, or check a whole deployment's shared config for consistency.",
        discussion: """
        With --config: exit 0 when the file is good, 1 with the file, line and key of the first error.
        With --topology: plan every host of a shared config (roles = "auto"), then report flows one end \
        allows and the other blocks (errors), rows naming roles with no members, addresses in several \
        role groups, and groups nothing uses (warnings). Exit 1 when there are errors.
        --format dot draws the deployment's allowed flows as a Graphviz graph; --format html makes one \
        self-contained page with that diagram (laid out by dot when Graphviz is installed), the role \
        matrix and the findings, for auditors (docs/topology-diagram.md).
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: ArgumentHelp("Check every host of this shared deployment config.", valueName: "file"))
    var topology: String?

    @Option(help: "Output format for --topology.")
    var format: TopologyFormat = .text

    @Flag(help: "With --format dot|html: a node per host address, instead of one per role with a count.")
    var perHost = false

    func run() throws {
        if let topology {
            let cfg: Config
            // Read once: the page's hash must be of the bytes that were planned.
            let bytes = FileManager.default.contents(atPath: topology)
            do {
                cfg = try bytes.flatMap { String(data: $0, encoding: .utf8) }.map { try Config.parse(text: $0, file: topology) }
                    ?? Config.load(path: topology)
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
            let report = TopologyReport.check(cfg)
            switch format {
            case .json:
                print(JSONRenderer.render(report: report), terminator: "")
            case .text:
                print("\(topology): \(report.hosts.count) hosts")
                for h in report.hosts { print("  \(h.address): \(h.roles.joined(separator: ", "))") }
                for f in report.findings { print("\(f.severity.rawValue): [\(f.kind.rawValue)] \(f.message)") }
                let errors = report.findings.filter { $0.severity == .error }.count
                print("\(errors) errors, \(report.findings.count - errors) warnings")
            case .dot, .html:
                let flows = DeploymentFlows.trace(cfg, report: report)
                let graph = FlowGraph(flows, grouping: perHost ? .perHost : .byRole)
                let provenance = DiagramProvenance(config: cfg, configBytes: Array(bytes ?? Data()))
                let dot = DOTRenderer.render(graph, provenance: provenance)
                print(format == .dot ? dot : HTMLRenderer.render(flows: flows, diagram: graph, dot: dot, layout: Graphviz.layout(dot),
                                                                 provenance: provenance), terminator: "")
            }
            if report.hasErrors { throw ExitCode(1) }
            return
        }
        let (cfg, roles) = try options.load()
        let plan = Compiler.compile(config: cfg, roles: roles)
        let rules = plan.ruleset.chains.reduce(0) { $0 + $1.rules.count }
        let elements = plan.ruleset.sets.reduce(0) { $0 + $1.elements.ranges.count }
        print("\(cfg.path): ok: roles \(roles.joined(separator: ", ")); \(plan.ruleset.chains.count) chains, \(rules) rules, \(plan.ruleset.sets.count) sets, \(elements) set elements")
    }
}

enum TopologyFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, dot, html
}
