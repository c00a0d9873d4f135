import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif


/// What the daemon tells about itself: the state file, the metrics file and systemd's STATUS=.
extension ReconcileLoop {
    /// Tells everyone who reads it: the state file, the metrics file, and systemd's STATUS= (the
    /// status line unless `status` says more).
    func publish(status: String? = nil) {
        writeState()
        writeMetrics()
        notify { try $0.status(status ?? self.statusLine()) }
    }

    func statusLine() -> String {
        if let why = baselineReason {
            return "fail-closed baseline enforced (no valid plan: \(why))"
        }
        guard let desired else {
            if let r = refusedHash { return "no table enforced; refused config sha256 \(r.prefix(12)) (rolled back)" }
            return "no valid config yet: \(lastError?.message ?? "")"
        }
        let elements = desired.sets.reduce(0) { $0 + $1.elements.ranges.count }
        var s = "enforcing \(desired.chains.count) chains, \(desired.sets.count) sets, \(elements) elements"
        if let p = provisional { s += "; provisional config sha256 \(p.configHash.prefix(12)) until \(ISO8601Format.string(p.record.deadline)) (fwenforcerd confirm)" }
        if let r = refusedHash { s += "; refused config sha256 \(r.prefix(12)) (rolled back)" }
        if let e = lastError { s += "; last error: \(e.message)" }
        return s
    }
    func writeState() {
        var counts: [String: Int] = [:]
        for s in desired?.sets ?? [] { counts[s.name] = s.elements.ranges.count }
        let state = EnforcedState(configPath: options.configPath, configSHA256: configHash ?? "",
                                  appliedAt: appliedAt, generation: reconciler.generation ?? 0,
                                  lastError: lastError, setElementCounts: counts,
                                  confirmBy: provisional?.record.deadline, refusedConfigSHA256: refusedHash,
                                  table: reconciler.table, baseline: baselineReason)
        do {
            try stateFile.write(state)
        } catch {
            logger.warning("\(error)")
        }
    }
    /// Rewrites the metrics file: the loop's counts, the planned sets, and the kernel's rule
    /// counters (one dump of the table's rules; skipped, and said so, when it fails).
    func writeMetrics() {
        guard let metricsFile else { return }
        var counters: [RuleCounter]?
        do {
            counters = try reconciler.backend.counters(table: reconciler.table)
        } catch {
            logger.warning("metrics: cannot read the rule counters: \(error)")
        }
        let text = MetricsText.render(metrics, desired: desired, counters: counters, audit: auditMetrics,
                                      nftablesGeneration: reconciler.generation)
        do {
            try metricsFile.write(text)
        } catch {
            logger.warning("metrics: \(error)")
        }
    }
    func notify(_ send: (SystemdNotifier) throws -> Void) {
        do {
            try send(notifier)
        } catch {
            logger.warning("sd_notify: \(error)")
        }
    }
}
