import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what is enforced now: the daemon's state file and the kernel's table.")

    @Option(help: ArgumentHelp("State file written by the daemon.", valueName: "path"))
    var stateFile: String = StateFile.defaultPath.string

    @Option(help: "Table to read from the kernel.")
    var table: String = defaultTableName

    @Option(help: ArgumentHelp("Pending-confirmation record of a provisional change.", valueName: "path"))
    var pendingFile: String = PendingFile.defaultPath.string

    func run() throws {
        let state = try? StateFile(path: FilePath(stateFile)).read()
        if let state {
            let alive = kill(state.daemonPID, 0) == 0
            print("daemon:     pid \(state.daemonPID) (\(alive ? "running" : "not running"))")
            print("config:     \(state.configPath) (sha256 \(state.configSHA256.prefix(16)))")
            print("applied at: \(state.appliedAt.map { ISO8601Format.string($0) } ?? "never")")
            print("last error: \(state.lastError.map { "\($0.message) (\(ISO8601Format.string($0.at)))" } ?? "none")")
            if let why = state.baseline {
                print("baseline:   fail-closed baseline enforced, no valid plan: \(why)")
            }
            if let refused = state.refusedConfigSHA256 {
                print("refused:    config sha256 \(refused.prefix(16)) (not confirmed in time, rolled back; edit the file to try again)")
            }
        } else {
            print("daemon:     no state file at \(stateFile)")
        }
        if let record = try? PendingFile(path: FilePath(pendingFile)).read() {
            switch record.state {
            case .pending:
                print("provisional: config sha256 \(record.configSHA256.prefix(16)) (\(record.applied)); confirm before \(ISO8601Format.string(record.deadline)) with `fwenforcerd confirm`, or pid \(record.pid) (\(record.owner.rawValue)) restores \(record.previousDescription)")
            case .rollingBack, .rolledBack, .rollbackFailed:
                print("provisional: config sha256 \(record.configSHA256.prefix(16)) was not confirmed by \(ISO8601Format.string(record.deadline)): \(record.state.rawValue)\(record.outcome.map { " (\($0))" } ?? "")")
            }
        }
        try withBackend { backend in
            let snapshot = try backend.read(table: table)
            defer { for line in (try? backend.otherBaseChains(excluding: table)).map(OtherBaseChain.statusLines) ?? [] { print(line) } }
            guard let live = snapshot.ruleset else {
                print("kernel:     no table inet \(table) (generation \(snapshot.generation))")
                return
            }
            print("kernel:     table inet \(table), generation \(snapshot.generation), chains \(live.chains.map { "\($0.name) (policy \($0.policy.rawValue), \($0.rules.count) rules)" }.joined(separator: ", "))")
            if let owner = try? backend.ownerState(of: table) { print("  table: \(owner)") }
            for set in live.sets {
                let expected = state?.setElementCounts[set.name]
                let mark = expected.map { $0 == set.elements.ranges.count ? "" : " (daemon planned \($0))" } ?? ""
                print("  set \(set.name): \(set.elements.ranges.count) elements\(mark)")
            }
        }
    }
}
