import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

enum PlanFormat: String, ExpressibleByArgument, CaseIterable {
    case nft, json
}

struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Print the ruleset this host would enforce (a dry run; needs no privileges).",
        discussion: """
        The nft output is what `nft list table inet fwenforcer` will show once applied, and is accepted by `nft -c -f`.
        --diff compares the plan with what the kernel holds now (exit 0: no changes, 2: changes, 1: error).
        --check has the kernel validate the transaction that would be applied, then abort it: nothing changes.
        Both need CAP_NET_ADMIN.
        """)

    @OptionGroup var options: ConfigOptions

    @Option(help: "Output format.")
    var format: PlanFormat = .nft

    @Flag(help: "Show the difference between the plan and the kernel's table.")
    var diff = false

    @Flag(help: "Have the kernel validate the planned transaction without applying it.")
    var check = false

    func run() throws {
        let (cfg, roles) = try options.load()
        let plan = Compiler.compile(config: cfg, roles: roles)
        if diff || check {
            try withBackend { backend in
                let snapshot = try backend.read(table: plan.ruleset.tableName)
                let tx = Diff.transaction(from: snapshot.ruleset, to: plan.ruleset, generation: snapshot.generation)
                if check {
                    try backend.check(tx)
                    print("the kernel accepts the planned transaction (\(tx.operations.count) operations); nothing was changed")
                }
                if diff {
                    if tx.operations.isEmpty {
                        print("no changes: the kernel holds the planned ruleset")
                    } else {
                        if snapshot.ruleset == nil { print("# table inet \(plan.ruleset.tableName) does not exist; it would be created") }
                        print(tx.description)
                        throw ExitCode(2)
                    }
                }
            }
            return
        }
        switch format {
        case .nft:
            print("# fwenforcer plan for roles: \(roles.joined(separator: ", ")) (catalog \(cfg.catalog.name)\(cfg.effectiveVersion.map { " \($0)" } ?? ""))")
            print(NftRenderer.render(plan.ruleset), terminator: "")
        case .json:
            print(JSONRenderer.render(plan: plan), terminator: "")
        }
    }
}
