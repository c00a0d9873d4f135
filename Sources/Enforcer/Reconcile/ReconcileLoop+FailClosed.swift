import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif


/// What the daemon enforces while no valid plan exists (issue 11: a firewall that lets the network
/// up open is not a firewall).
extension ReconcileLoop {
    /// No valid plan exists. At start, a table an earlier run of fwenforcer left in the kernel
    /// (marked, holding only what fwenforcer writes, not the baseline) stays: it is the last good
    /// ruleset, and replacing it with the baseline would cut every allowed flow of a host whose
    /// daemon merely restarted. Otherwise the baseline is enforced.
    func failClosed(_ inputs: Baseline.Inputs, hash: String?, because why: String, reason: ReconcileReason) {
        if desired == nil, !earlierRunLeftBaseline, inputs.table == reconciler.table,
           let snapshot = try? reconciler.backend.read(table: reconciler.table), let kept = snapshot.ruleset,
           snapshot.marked, snapshot.foreign.isEmpty, !kept.chains.isEmpty {
            logger.warning("no valid plan (\(why)); table inet \(reconciler.table) as an earlier run of fwenforcer left it stays enforced")
            configHash = hash
            desired = kept
            enforce(kept, reason: reason)
            return
        }
        enforceBaseline(inputs, hash: hash, because: why, reason: reason)
    }
    /// No valid plan exists: enforces the fail-closed baseline (`Baseline`), unless the config
    /// opted out with `[enforce] unresolved = "open"`. A later valid plan replaces it in one batch.
    func enforceBaseline(_ inputs: Baseline.Inputs, hash: String?, because why: String, reason: ReconcileReason) {
        guard inputs.enforce.unresolved == .baseline else {
            logger.warning("no valid plan, and [enforce] unresolved = \"open\": nothing is enforced until there is one")
            publish(status: "no valid plan; nothing enforced ([enforce] unresolved = open): \(why)")
            return
        }
        if inputs.table != reconciler.table { switchTable(to: inputs.table) }
        let ruleset = Baseline.ruleset(inputs)
        if baselineReason == nil || desired != ruleset {
            let passing = "loopback, IPv6 essentials, replies"
                + (inputs.adminSSH.isEmpty ? "" : ", administrators' SSH from \(inputs.adminSSH.count) admin_ssh entr\(inputs.adminSSH.count == 1 ? "y" : "ies")")
                + (inputs.enforce.dhcpClient ? ", the DHCP client" : "")
            logger.warning("fail-closed baseline enforced (no valid plan: \(why)): policy drop both ways; only \(passing) pass")
        }
        baselineReason = why
        metrics.baselineActive = true
        configHash = hash
        desired = ruleset
        enforce(ruleset, reason: reason)
    }
}
