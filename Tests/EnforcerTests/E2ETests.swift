import Foundation
import Testing

/// End to end: whole deployments in network namespaces, every flow of the port tables probed with
/// real connections on IPv4 and IPv6. How it works, how to run one topology and how to read a
/// failure: docs/e2e.md.
@Suite(.serialized, .enabled(if: E2E.available, "needs root, nft, ip, nsenter, conntrack and python3"))
struct E2ETests {
    @Test func cloudcenterStandard() throws { try checkTopology("cloudcenter-standard") }

    @Test func cloudcenterHA() throws { try checkTopology("cloudcenter-ha") }

    /// Cloudify, and the failure diagnosis itself: for two flows the model denies, the diagnosis
    /// must name the host and chain whose drop counter moved.
    @Test func cloudify() throws {
        try checkTopology("cloudify") { d in
            let probes = ProbePlan.plan(d.model, d.topology, allRows: d.allRows).probes
            func probe(_ src: String, _ dst: String, _ port: Int) -> PlannedProbe {
                probes.first { $0.spec.srcHost == src && $0.spec.dstHost == dst && $0.spec.port == port && $0.spec.family == .v4 && $0.spec.proto == "tcp" }!
            }
            // The VM outside the agents group is refused by the manager's input chain.
            let outsider = d.diagnose(probe("outsider", "manager", 5671))
            #expect(outsider.contains("manager input \"default deny\": +"), "\(outsider)")
            // An agent may only talk to the manager: its own output chain drops the rest.
            let sideways = d.diagnose(probe("agent1", "agent2", 53333))
            #expect(sideways.contains("agent1 output \"default deny\": +"), "\(sideways)")
            // An allowed flow: the trace names the accepting rule.
            let allowed = d.diagnose(probe("agent1", "manager", 53333))
            #expect(allowed.contains("verdict accept") && allowed.contains("MANAGER#3"), "\(allowed)")
        }
    }

    /// A VM is replaced by one at a new address, and its old address turns up on another machine.
    /// After the shared config is rewritten (as automation would) and every VM enforces it, the new
    /// address has exactly the old one's access, the old address has no more access than an
    /// address in no group, and connections opened from/to the old address before the change stop
    /// passing data.
    @Test func peerReplacement() throws {
        let d = try LabDeployment("cloudcenter-standard")
        defer { finish(d) }
        let rep = try #require(d.topology.replacement)
        try d.enforce()
        let x = d.topology.host(rep.host)
        let old: [LabFamily: String] = [.v4: x.primary(.v4), .v6: x.primary(.v6)]
        let new: [LabFamily: String] = [.v4: rep.v4, .v6: rep.v6]
        let title = "peer-replacement (\(rep.host))"

        // Every probe that concerns the VM, as the topology test plans them.
        let concerning = ProbePlan.plan(d.model, d.topology, allRows: d.allRows).probes
            .filter { $0.spec.srcHost == rep.host || $0.spec.dstHost == rep.host }
        let before = try d.run(concerning)
        let unexpectedBefore = d.report("\(title) before", before).count
        #expect(unexpectedBefore == 0)

        // The replacement: the VM gets the new address, the old one appears on another machine.
        // The config still lists the old address.
        for f in LabFamily.allCases {
            try d.lab.removeAddress(rep.host, old[f]!)
            try d.lab.addAddress(rep.host, new[f]!)
            try d.lab.addAddress(rep.oldAddressTo, old[f]!)
        }
        try d.lab.forgetNeighbours(LabFamily.allCases.map { old[$0]! })
        var moved = d.topology
        moved.update(rep.host) { h in
            for i in h.addresses.indices { if let f = old.first(where: { $0.value == h.addresses[i].address })?.key { h.addresses[i].address = new[f]! } }
        }
        moved.update(rep.oldAddressTo) { h in
            h.addresses += LabFamily.allCases.map { HostAddress(address: old[$0]!, groups: [], primary: false) }
        }
        try d.change(topology: moved, rewriteConfig: false)

        // Long-lived connections from and to the old address, opened while it is still listed.
        var holds: [(String, BackgroundProcess)] = []
        for e in rep.established {
            for f in LabFamily.allCases {
                let (srcHost, src) = e.from == "old" ? (rep.oldAddressTo, old[f]!) : (e.from, d.topology.host(e.from).primary(f))
                let (dstHost, dst) = e.to == "old" ? (rep.oldAddressTo, old[f]!) : (e.to, d.topology.host(e.to).primary(f))
                let name = "\(srcHost) \(src) -> \(dstHost) \(dst) tcp/\(e.port)"
                let p = try d.lab.spawn(srcHost, [E2E.python, E2E.probeScript, "hold", "--src", src, "--dst", dst,
                                                  "--port", String(e.port), "--interval", "0.2", "--duration", "90"], label: "hold")
                holds.append((name, p))
            }
        }
        for (name, p) in holds {
            let up = p.waitForLine(timeout: 8) { _ in HoldLog.events(p).filter { $0.ok && $0.event == "echo" }.count >= 3 }
            try #require(up, "established connection \(name) did not pass data before the change: \(p.output.suffix(800))")
        }

        // The config change, on every VM.
        let t0 = Date()
        try d.change(topology: moved, rewriteConfig: true)
        let inForce = Date()
        print("E2E \(title): config rewritten; every VM enforces it \(String(format: "%.2f", inForce.timeIntervalSince(t0))) s later (\(d.enforcer.name))")

        // Established connections stop passing data: within 5 s, three echoes in a row go
        // unanswered, and none is answered in the 1.5 s after that.
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline && holds.contains(where: { HoldLog.stoppedAt($0.1) == nil }) { usleep(50_000) }
        usleep(1_500_000)
        for (name, p) in holds {
            let stopped = HoldLog.stoppedAt(p)
            let events = HoldLog.events(p)
            let passing = stopped == nil || events.contains { $0.ok && $0.t > stopped! }
            let lastOK = events.filter(\.ok).map(\.t).max() ?? 0
            #expect(!passing, "established connection \(name) still passes data after the change:\n\(p.output.suffix(1200))")
            print("E2E \(title): established \(name): " + (passing ? "STILL PASSING"
                : "stopped; last echo \(String(format: "%.2f", lastOK - t0.timeIntervalSince1970)) s after the config was rewritten"))
            p.stop()
        }

        // The new address: exactly the old one's access.
        let atNew = concerning.map { p -> PlannedProbe in
            var s = p.spec
            if s.srcHost == rep.host { s.src = new[s.family]! }
            if s.dstHost == rep.host { s.dst = new[s.family]! }
            let v = d.model.verdict(s)
            return PlannedProbe(spec: s, expectAllow: v.allow, why: v.why, rowFlows: p.rowFlows)
        }
        let changedAccess = zip(concerning, atNew).filter { $0.0.expectAllow != $0.1.expectAllow }
        #expect(changedAccess.isEmpty, "the model gives the new address other access: \(changedAccess.prefix(5).map { $0.1.spec.text })")
        let unexpectedNew = d.report("\(title) new address", try d.run(atNew)).count
        #expect(unexpectedNew == 0)

        // The old address, now on another machine: no more access than an address in no group.
        let spare = d.topology.host(rep.oldAddressTo)
        var counts = (sentBefore: 0, sentNow: 0, receivedBefore: 0, receivedNow: 0)
        let atOld = concerning.compactMap { p -> PlannedProbe? in
            var s = p.spec
            if s.srcHost == rep.host { s.srcHost = spare.name }
            if s.dstHost == rep.host { s.dstHost = spare.name }
            guard s.srcHost != s.dstHost, d.model.isEnforced(s.srcHost) || d.model.isEnforced(s.dstHost) else { return nil }
            let v = d.model.verdict(s)
            // The same probe from/to the spare machine's own address, which no group lists.
            var stranger = s
            if stranger.src == old[s.family]! { stranger.src = spare.primary(s.family) }
            if stranger.dst == old[s.family]! { stranger.dst = spare.primary(s.family) }
            #expect(d.model.verdict(stranger).allow == v.allow, "the model gives the old address other access than a stranger: \(s.text)")
            if s.srcHost == spare.name {
                counts.sentBefore += p.expectAllow ? 1 : 0
                counts.sentNow += v.allow ? 1 : 0
            } else {
                counts.receivedBefore += p.expectAllow ? 1 : 0
                counts.receivedNow += v.allow ? 1 : 0
            }
            return PlannedProbe(spec: s, expectAllow: v.allow, why: v.why, rowFlows: [])
        }
        print("E2E \(title): old address, expected: to enforcing peers \(counts.sentBefore) flows before, \(counts.sentNow) now; "
              + "from enforcing peers \(counts.receivedBefore) before, \(counts.receivedNow) now (only what peers may send to any address)")
        let unexpectedOld = d.report("\(title) old address", try d.run(atOld)).count
        #expect(unexpectedOld == 0)
    }

    /// A strict deployment (each role enforces only its own rows): the fleet check, run on the
    /// shared config before anything is enforced, names the flows one end allows and the other
    /// blocks; once enforced, each of those connections fails in the real kernel, exactly as
    /// predicted, and every other flow of the deployment behaves as the strict model says.
    @Test func strictDeploymentBreaksWhereTheFleetCheckSays() throws {
        let d = try LabDeployment("cloudcenter-standard", strict: true)
        defer { finish(d) }
        let bin = try E2E.fwenforcerd().path
        let check = try LabCommand.run([bin, "check", "--topology", d.config.path, "--format", "json"])
        #expect(check.status == 1, "the fleet check of a strict deployment must fail: \(check.summary)")
        struct Doc: Decodable { var findings: [TopologyFinding] }
        struct TopologyFinding: Decodable {
            var kind: String
            var rows: [String]
            var flow: Flow?
            struct Flow: Decodable { var source, destination, `protocol`: String; var port: Int; var blockedAt: String }
        }
        let findings = try JSONDecoder().decode(Doc.self, from: Data(check.stdout.utf8)).findings.filter { $0.kind == "blocked-at-other-end" }
        #expect(!findings.isEmpty)
        let hostOf = Dictionary(d.topology.hosts.flatMap { h in h.addresses.map { ($0.address, h.name) } }, uniquingKeysWith: { a, _ in a })
        var predicted: [PlannedProbe] = []
        for f in findings {
            let flow = try #require(f.flow, "finding without its flow: \(f.rows)")
            let (src, dst) = (try #require(hostOf[flow.source]), try #require(hostOf[flow.destination]))
            let spec = ProbeSpec(srcHost: src, src: flow.source, dstHost: dst, dst: flow.destination,
                                 proto: flow.protocol == "any" ? "tcp" : flow.protocol, port: flow.port)
            let v = d.model.verdict(spec)
            #expect(!v.allow, "the check says \(spec.text) is blocked at \(flow.blockedAt) (\(f.rows)), the strict model allows it: \(v.why)")
            predicted.append(PlannedProbe(spec: spec, expectAllow: false, why: "fleet check: \(f.rows.joined(separator: ",")) blocked at \(flow.blockedAt)", rowFlows: []))
        }
        let plan = ProbePlan.plan(d.model, d.topology, allRows: d.allRows)
        // The check and the model (derived from the catalog's JSON, not the compiler) agree on
        // which row flows are one-sided.
        let oneSidedInModel = Set(plan.probes.filter { !$0.rowFlows.isEmpty && !$0.expectAllow }.map(\.spec))
        #expect(Set(predicted.map(\.spec)) == oneSidedInModel,
                "only the check: \(Set(predicted.map(\.spec)).subtracting(oneSidedInModel).map(\.text)); only the model: \(oneSidedInModel.subtracting(predicted.map(\.spec)).map(\.text))")
        try d.enforce()
        let unexpectedPredicted = d.report("strict fleet-check findings", try d.run(predicted)).count
        #expect(unexpectedPredicted == 0, "flows the fleet check said would break did not")
        // Every other flow as the strict model says (row flows the model refuses are the one-sided ones).
        let unexpected = d.report("cloudcenter-standard strict", try d.run(plan.probes)).count
        #expect(unexpected == 0)
        print("E2E strict: the fleet check named \(findings.count) one-sided flows (\(Set(findings.flatMap(\.rows)).count) rows); "
              + "all blocked in the kernel; \(plan.inconsistent.count) row flows of the plan are one-sided in the model")
    }

    // MARK: -

    /// Brings a topology up, enforces it, probes every planned flow, prints the counts.
    func checkTopology(_ name: String, extra: ((LabDeployment) throws -> Void)? = nil) throws {
        let t0 = Date()
        let d = try LabDeployment(name)
        defer { finish(d) }
        let tLab = Date()
        try checkRoles(d)
        let plan = ProbePlan.plan(d.model, d.topology, allRows: d.allRows)
        let tPlanned = Date()
        #expect(plan.inconsistent.isEmpty, "row flows the model refuses:\n\(plan.inconsistent.prefix(10).joined(separator: "\n"))")
        try d.enforce()
        let tEnforced = Date()
        let outcomes = try d.run(plan.probes)
        let tProbed = Date()
        let bad = d.report(name, outcomes)
        let unprobed = plan.rowsOfPresentRoles.filter { !plan.rowsProbed.contains($0) }
        let rowFlows = outcomes.filter { !$0.probe.rowFlows.isEmpty }.count
        print("E2E \(name): \(d.enforcingVMs.count) of \(d.topology.hosts.count) VMs enforce (\(d.enforcer.name)); "
              + "\(plan.rowsOfPresentRoles.count) active rows of present roles, \(plan.rowsProbed.count) with both ends in the lab, "
              + "all \(rowFlows) of their flows probed (\(outcomes.count) probes in all)")
        if !unprobed.isEmpty { print("E2E \(name): rows with no peer in the lab: \(unprobed.joined(separator: " "))") }
        print("E2E \(name): lab up \(secs(t0, tLab)), roles checked and probes planned \(secs(tLab, tPlanned)), "
              + "enforced \(secs(tPlanned, tEnforced)), probed \(secs(tEnforced, tProbed))")
        let unexpected = bad.count
        #expect(unexpected == 0, "unexpected results in \(name); see the UNEXPECTED lines above")
        try extra?(d)
    }

    /// The roles fwenforcerd resolves for each VM (`check`) are the ones the model expects.
    func checkRoles(_ d: LabDeployment) throws {
        let bin = try E2E.fwenforcerd().path
        let results = try parallelMap(d.topology.hosts) { h in
            (h.name, try LabCommand.run([bin, "check", "--config", d.config.path] + h.addresses.flatMap { ["--host-address", $0.address] }))
        }
        for (host, r) in results {
            let want = d.model.roles[host]!.sorted()
            if want.isEmpty {
                #expect(!r.ok, "\(host) has no role in the model, but fwenforcerd check accepts it: \(r.stdout)")
            } else {
                let got = r.stdout.components(separatedBy: "roles ").dropFirst().first?.split(separator: ";").first
                    .map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.sorted() }
                #expect(got == want, "\(host): fwenforcerd check says roles \(got ?? []) (\(r.summary)), the model \(want)")
            }
        }
    }

    func finish(_ d: LabDeployment) {
        d.teardown()
        let left = Lab.listNamespaces().filter { $0.hasPrefix(d.lab.id + "-") }
        #expect(left.isEmpty, "namespaces left behind: \(left)")
    }

    func secs(_ a: Date, _ b: Date) -> String { String(format: "%.1f s", b.timeIntervalSince(a)) }
}

/// The event lines `probe.py hold` prints.
enum HoldLog {
    struct Event { var event: String; var ok: Bool; var t: Double }

    static func events(_ p: BackgroundProcess) -> [Event] {
        p.output.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Event(event: o["event"] as? String ?? "", ok: o["ok"] as? Bool ?? false, t: o["t"] as? Double ?? 0)
        }
    }

    /// When the connection stopped passing data: the first of three unanswered echoes in a row
    /// (or the connection closing); nil while it still passes.
    static func stoppedAt(_ p: BackgroundProcess) -> Double? {
        var run: [Event] = []
        for e in events(p) {
            if e.event == "closed" || e.event == "error" { return e.t }
            guard e.event == "echo" else { continue }
            if e.ok { run = [] } else { run.append(e) }
            if run.count >= 3 { return run[0].t }
        }
        return nil
    }
}
