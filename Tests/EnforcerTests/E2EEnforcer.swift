import Foundation
#if canImport(Glibc)
import Glibc
#endif

// How the lab makes each VM enforce the shared config: the one pluggable step of the end-to-end
// tests. `FWE_E2E_ENFORCER` picks it: "run" (default: the product itself) starts
// `fwenforcerd run --config F` in each VM and lets it watch the file; "plan" pipes
// `fwenforcerd plan` into `nft -f` inside each VM (isolates the compiler from the daemon). Both are judged the same way: a VM is "in force" when
// `nft -s list table inet fwenforcer` in its namespace equals what `fwenforcerd plan` prints for it.

/// A VM that enforces (it holds at least one role) and its current addresses.
struct EnforcingVM: Sendable {
    var name: String
    var addresses: [String]
}

protocol LabEnforcer: Sendable {
    var name: String { get }
    /// Makes every VM enforce `config`; returns when each VM's ruleset is in force.
    func start(_ vms: [EnforcingVM], config: URL, lab: Lab) throws
    /// `config` was rewritten (atomically, in place) and VMs may have moved to new addresses;
    /// returns when every VM enforces the new config.
    func configChanged(_ vms: [EnforcingVM], config: URL, lab: Lab) throws
}

enum Enforcers {
    static func selected() -> LabEnforcer {
        switch ProcessInfo.processInfo.environment["FWE_E2E_ENFORCER"] ?? "run" {
        case "plan": return PlanPipeEnforcer()
        default: return DaemonEnforcer()
        }
    }

    /// What `fwenforcerd plan` says this VM must enforce (nft text, the header comment dropped).
    static func plannedTable(_ vm: EnforcingVM, config: URL, lab: Lab) throws -> String {
        let r = try lab.check(vm.name, [try E2E.fwenforcerd().path, "plan", "--config", config.path]
                              + vm.addresses.flatMap { ["--host-address", $0] })
        return r.stdout.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("#") }
            .joined(separator: "\n")
    }

    /// The live table without counter values (`nft -s`), or nil when there is none.
    static func liveTable(_ vm: EnforcingVM, lab: Lab) throws -> String? {
        let r = try lab.exec(vm.name, ["nft", "-s", "list", "table", "inet", E2E.table])
        return r.ok ? r.stdout : nil
    }

    /// Waits until the VM's live table is exactly its plan (the plan's documented promise: "what
    /// `nft list table inet fwenforcer` will show once applied").
    static func waitInForce(_ vm: EnforcingVM, config: URL, lab: Lab, timeout: TimeInterval,
                            alive: () -> String? = { nil }) throws {
        let want = try plannedTable(vm, config: config, lab: lab)
        let deadline = Date().addingTimeInterval(timeout)
        var live: String?
        repeat {
            live = try liveTable(vm, lab: lab)
            if live == want { return }
            if let dead = alive() { throw LabError("\(vm.name): the enforcer exited: \(dead)") }
            usleep(100_000)
        } while Date() < deadline
        let diff = unifiedDiff(want, live ?? "(no table)")
        throw LabError("\(vm.name): ruleset not in force after \(timeout) s; plan vs live:\n\(diff)")
    }

    static func unifiedDiff(_ a: String, _ b: String) -> String {
        let dir = URL(fileURLWithPath: "/tmp/\(Lab.prefix)\(getpid())-diff-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try? a.write(to: dir.appendingPathComponent("plan"), atomically: false, encoding: .utf8)
        try? b.write(to: dir.appendingPathComponent("live"), atomically: false, encoding: .utf8)
        return (try? LabCommand.run(["diff", "-u", dir.appendingPathComponent("plan").path, dir.appendingPathComponent("live").path]))?.stdout ?? ""
    }
}

/// `fwenforcerd plan --host-address <vm addresses> --config F | nft -f -` in each VM. The plan is
/// loaded as one nft transaction that first deletes the previous table, so a re-apply replaces it
/// atomically (established connections stay in conntrack and meet the new rules).
struct PlanPipeEnforcer: LabEnforcer {
    var name: String { "plan | nft -f" }

    func start(_ vms: [EnforcingVM], config: URL, lab: Lab) throws {
        _ = try parallelMap(vms) { vm in
            let plan = try Enforcers.plannedTable(vm, config: config, lab: lab)
            let script = "table inet \(E2E.table)\ndelete table inet \(E2E.table)\n" + plan
            try lab.check(vm.name, ["nft", "-f", "-"], input: Data(script.utf8))
            try Enforcers.waitInForce(vm, config: config, lab: lab, timeout: 5)
        }
    }

    func configChanged(_ vms: [EnforcingVM], config: URL, lab: Lab) throws {
        try start(vms, config: config, lab: lab)
    }
}

/// `fwenforcerd run --config F` in each VM, as a tracked background process (stopped by the lab's
/// teardown: SIGTERM, then SIGKILL). Ready means the VM's table equals its plan. Every VM shares
/// the machine's /run, so each daemon gets its own lock and state file in the lab directory.
final class DaemonEnforcer: LabEnforcer, @unchecked Sendable {
    var name: String { "fwenforcerd run" }
    /// How long a daemon may take to reach the plan, at start and after a config change.
    let deadline: TimeInterval = 10
    private let lock = NSLock()
    private var daemons: [String: BackgroundProcess] = [:]

    /// The daemon's command line (without the nsenter the lab adds).
    static func arguments(config: URL, vm: String, lab: Lab) throws -> [String] {
        [try E2E.fwenforcerd().path, "run", "--config", config.path,
         "--lock-file", lab.dir.appendingPathComponent("\(vm).lock").path,
         "--state-file", lab.dir.appendingPathComponent("\(vm).state.json").path]
    }

    func start(_ vms: [EnforcingVM], config: URL, lab: Lab) throws {
        for vm in vms {
            // Under probe.py's guard, so the daemon also dies when the test process crashes.
            let p = try lab.spawn(vm.name, [E2E.python, E2E.probeScript, "guard", "--"]
                                  + (try Self.arguments(config: config, vm: vm.name, lab: lab)), label: "fwenforcerd")
            lock.lock(); daemons[vm.name] = p; lock.unlock()
        }
        try waitAll(vms, config: config, lab: lab)
    }

    func configChanged(_ vms: [EnforcingVM], config: URL, lab: Lab) throws {
        try waitAll(vms, config: config, lab: lab)
    }

    private func waitAll(_ vms: [EnforcingVM], config: URL, lab: Lab) throws {
        _ = try parallelMap(vms) { vm in
            self.lock.lock(); let p = self.daemons[vm.name]; self.lock.unlock()
            try Enforcers.waitInForce(vm, config: config, lab: lab, timeout: self.deadline) {
                guard let p, !p.isRunning else { return nil }
                return String(p.output.suffix(2000))
            }
        }
    }
}
