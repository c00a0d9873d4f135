import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Where the end-to-end tests find their tools.
enum E2E {
    static let table = "fwenforcer"
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let e2eDir = repoRoot.appendingPathComponent("Tests/e2e")
    static let probeScript = e2eDir.appendingPathComponent("probe.py").path

    /// Debian's python3 (stdlib only); FWE_E2E_PYTHON overrides.
    static let python: String = ProcessInfo.processInfo.environment["FWE_E2E_PYTHON"]
        ?? (FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") ? "/usr/bin/python3" : "python3")

    /// The fwenforcerd binary built with the tests (next to the test bundle), or $FWENFORCERD.
    static func fwenforcerd() throws -> URL {
        if let p = ProcessInfo.processInfo.environment["FWENFORCERD"] { return URL(fileURLWithPath: p) }
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent().appendingPathComponent("fwenforcerd")) }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fwenforcerd"))
        for b in [".build-e2e", ".build"] { candidates.append(repoRoot.appendingPathComponent("\(b)/debug/fwenforcerd")) }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw LabError("fwenforcerd not found (looked at \(candidates.map(\.path).joined(separator: ", "))); build it or set FWENFORCERD")
        }
        return found
    }

    /// Root and nft (`canUseNetns`), and the lab's other tools: ip, nsenter, conntrack, python3.
    static let available: Bool = canUseNetns
        && ["/usr/sbin/ip", "/usr/bin/nsenter", "/usr/sbin/conntrack"].allSatisfy { FileManager.default.isExecutableFile(atPath: $0) }
        && ((try? LabCommand.run([python, "-c", "import asyncio, json"], timeout: 20))?.ok ?? false)
}

/// The outcome of one probe.
struct ProbeOutcome: Sendable {
    var probe: PlannedProbe
    var result: String
    var detail: String
    var ms: Int
    /// The enforcing ends whose conntrack confirmed the probe's first packet, i.e. whose filter
    /// hooks let it through (nil when that was not watched).
    var passedAt: [String]?
    var enforcingEnds: [String]

    /// Timeout (dropped on the way) or EPERM (dropped by the source's own output hook).
    var blocked: Bool { result == "timeout" || result == "eperm" }
    /// Every enforcing end let it through, whatever the source saw in time (a slow leak).
    var leaked: Bool { !enforcingEnds.isEmpty && passedAt.map { Set($0) == Set(enforcingEnds) } ?? false }
    var asExpected: Bool { probe.expectAllow ? result == "ok" : blocked && !leaked }
}

/// A topology brought up in a lab: every host a VM with a listener on every probe port, every
/// host with roles enforcing the shared config.
final class LabDeployment: @unchecked Sendable {
    private(set) var topology: LabTopology
    let lab: Lab
    let config: URL
    let allRows: [CatalogJSONRow]
    let enforcer: LabEnforcer
    private(set) var listeners: [String: BackgroundProcess] = [:]
    private(set) var groups: [String: [String]]
    private(set) var model: FlowModel

    init(_ topologyName: String, strict: Bool = false, enforcer: LabEnforcer = Enforcers.selected()) throws {
        topology = try LabTopology.load(topologyName)
        topology.strict = strict
        allRows = try CatalogJSONRow.load(catalog: topology.catalog)
        self.enforcer = enforcer
        groups = topology.configGroups()
        model = FlowModel(allRows: allRows, topology: topology, groups: groups)
        lab = try Lab(label: topologyName, vms: topology.hosts.map { h in LabVMSpec(name: h.name, addresses: h.addresses.map(\.address)) })
        config = lab.dir.appendingPathComponent("fwenforcer.conf")
        do {
            try writeConfig()
            try startListeners()
        } catch {
            lab.teardown()
            throw error
        }
    }

    func teardown() { lab.teardown() }

    var enforcingVMs: [EnforcingVM] {
        topology.hosts.filter { model.isEnforced($0.name) }.map { EnforcingVM(name: $0.name, addresses: $0.addresses.map(\.address)) }
    }

    /// Writes the shared config as automation would: a new file renamed over the old one, 0644.
    func writeConfig() throws {
        let tmp = lab.dir.appendingPathComponent(".fwenforcer.conf.new")
        try Data(topology.configText(groups: groups).utf8).write(to: tmp)
        chmod(tmp.path, 0o644)
        guard rename(tmp.path, config.path) == 0 else { throw LabError("rename \(tmp.path): \(String(cString: strerror(errno)))") }
    }

    private func startListeners() throws {
        let ports = ProbePlan.pool(allRows)
        for h in topology.hosts {
            listeners[h.name] = try lab.spawn(h.name, [E2E.python, E2E.probeScript, "listen", "--name", h.name,
                                                       "--tcp", ports.tcp.map(String.init).joined(separator: ","),
                                                       "--udp", ports.udp.map(String.init).joined(separator: ",")],
                                              label: "listener")
        }
        for (name, l) in listeners where !l.waitForLine(timeout: 15, { $0 == "READY" }) {
            throw LabError("listener in \(name) did not start: \(l.output.suffix(1500))")
        }
    }

    /// Enforce the config on every VM with roles.
    func enforce() throws { try enforcer.start(enforcingVMs, config: config, lab: lab) }

    /// Moves hosts' addresses (the caller has changed the lab to match), optionally rewrites the
    /// config from the new topology, and lets the enforcer catch up.
    func change(topology newTopology: LabTopology, rewriteConfig: Bool) throws {
        topology = newTopology
        if rewriteConfig {
            groups = topology.configGroups()
            try writeConfig()
            model = FlowModel(allRows: allRows, topology: topology, groups: groups)
            try enforcer.configChanged(enforcingVMs, config: config, lab: lab)
        } else {
            model = FlowModel(allRows: allRows, topology: topology, groups: groups)
        }
    }

    // MARK: - probing

    /// Runs the probes: one `probe.py connect` per source VM, all VMs at once, every probe of a VM
    /// concurrently. Deadlines: 3 s for a connection that must pass, 1 s for one that must not.
    ///
    /// Silence for 1 s is only evidence of a drop while the machine answers much faster, so the
    /// verdict of a denied probe has a second, timing-free witness: conntrack's NEW events in every
    /// enforcing VM (an entry is confirmed only after the packet passed that VM's filter hooks). A
    /// denied probe that every enforcing end let through is a leak even if the source gave up.
    func run(_ probes: [PlannedProbe]) throws -> [ProbeOutcome] {
        let watched = Set(probes.flatMap { [$0.spec.srcHost, $0.spec.dstHost] }).filter { model.isEnforced($0) }.sorted()
        let monitors = watched.compactMap { host in
            (try? lab.spawn(host, ["conntrack", "-E", "-e", "NEW", "-o", "extended", "-b", "33554432"], label: "conntrack")).map { (host, $0) }
        }
        if !monitors.isEmpty { usleep(300_000) } // let them subscribe
        let outcomes: [ProbeOutcome]
        do {
            outcomes = try connect(probes)
        } catch {
            for (_, m) in monitors { m.stop(grace: 1) }
            throw error
        }
        usleep(200_000)
        var seen: [String: Set<String>] = [:]
        for (host, m) in monitors {
            m.stop(grace: 1)
            seen[host] = Set(m.output.split(separator: "\n").compactMap(Self.conntrackKey))
        }
        let result = outcomes.map { o -> ProbeOutcome in
            var o = o
            if monitors.count == watched.count {
                o.passedAt = o.enforcingEnds.filter { seen[$0]?.contains(Self.key(o.probe.spec)) ?? false }
            }
            return o
        }
        // The witness must itself see what it claims to: every allowed connection that succeeded.
        let okAllowed = result.filter { $0.probe.expectAllow && $0.result == "ok" }
        let unseen = okAllowed.filter { ($0.passedAt?.count ?? -1) != $0.enforcingEnds.count }.count
        if unseen > 0 {
            print("E2E WARNING: conntrack missed \(unseen) of \(okAllowed.count) allowed connections; the timing-free check of denied probes is incomplete")
        }
        return result
    }

    /// "tcp 198.18.0.10 198.18.0.11 5432": what conntrack's event line and a probe have in common.
    static func key(_ s: ProbeSpec) -> String { "\(s.proto) \(canonical(s.src)) \(canonical(s.dst)) \(s.port)" }

    static func canonical(_ address: String) -> String {
        AddressMath.bytes(address).map { $0.map { String($0, radix: 16) }.joined(separator: ".") } ?? address
    }

    /// The original-direction tuple of a `conntrack -E -o extended` line, as a `key`.
    static func conntrackKey(_ line: Substring) -> String? {
        let words = line.split(separator: " ")
        guard let proto = words.first(where: { $0 == "tcp" || $0 == "udp" }) else { return nil }
        func field(_ name: String) -> String? {
            words.first { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
        }
        guard let src = field("src"), let dst = field("dst"), let dport = field("dport") else { return nil }
        return "\(proto) \(canonical(src)) \(canonical(dst)) \(dport)"
    }

    private func connect(_ probes: [PlannedProbe]) throws -> [ProbeOutcome] {
        let bySource = Dictionary(grouping: probes.indices, by: { probes[$0].spec.srcHost })
        let sources = Array(bySource.keys).sorted()
        let outputs = try parallelMap(sources) { src -> String in
            let input = bySource[src]!.map { i -> [String: Any] in
                let p = probes[i]
                var o: [String: Any] = ["id": i, "proto": p.spec.proto, "src": p.spec.src, "dst": p.spec.dst,
                                        "port": p.spec.port, "token": p.spec.dstHost]
                if p.spec.proto == "udp" {
                    o["timeout"] = p.expectAllow ? 2.0 : 1.0
                    o["attempts"] = p.expectAllow ? 5 : 3
                } else {
                    o["timeout"] = p.expectAllow ? 3.0 : 1.0
                }
                return o
            }
            let r = try self.lab.exec(src, [E2E.python, E2E.probeScript, "connect"],
                                      input: try JSONSerialization.data(withJSONObject: input), timeout: 120)
            guard r.ok else { throw LabError("probe connect in \(src): \(r.summary)") }
            return r.stdout
        }
        var batches: [(Int, [String: Any])] = []
        for (src, out) in zip(sources, outputs) {
            guard let list = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]] else {
                throw LabError("probe connect in \(src) printed no result list: \(out.prefix(500))")
            }
            batches += list.map { ($0["id"] as! Int, $0) }
        }
        var outcomes = [ProbeOutcome?](repeating: nil, count: probes.count)
        for (i, o) in batches {
            let spec = probes[i].spec
            outcomes[i] = ProbeOutcome(probe: probes[i], result: o["result"] as? String ?? "error",
                                       detail: o["detail"] as? String ?? "", ms: o["ms"] as? Int ?? 0, passedAt: nil,
                                       enforcingEnds: [spec.srcHost, spec.dstHost].filter { model.isEnforced($0) })
        }
        return outcomes.map { $0! }
    }

    // MARK: - reporting

    /// Prints `flows allowed: N ok / N; flows denied: M ok / M` per family and returns the
    /// unexpected outcomes (each diagnosed, up to `diagnoseAtMost`).
    @discardableResult
    func report(_ title: String, _ outcomes: [ProbeOutcome], diagnoseAtMost: Int = 12) -> [ProbeOutcome] {
        for f in LabFamily.allCases {
            let mine = outcomes.filter { $0.probe.spec.family == f }
            let allowed = mine.filter(\.probe.expectAllow), denied = mine.filter { !$0.probe.expectAllow }
            print("E2E \(title) \(f.rawValue): flows allowed: \(allowed.filter(\.asExpected).count) ok / \(allowed.count); "
                  + "flows denied: \(denied.filter(\.asExpected).count) ok / \(denied.count)")
        }
        // Flows that should pass and do not come first: they break the application.
        let bad = outcomes.filter { !$0.asExpected && $0.probe.expectAllow } + outcomes.filter { !$0.asExpected && !$0.probe.expectAllow }
        for (n, o) in bad.enumerated() {
            var text = "E2E \(title) UNEXPECTED: \(o.probe.spec.text): expected \(o.probe.expectAllow ? "ALLOW" : "DENY"), got \(o.result)"
                + (o.detail.isEmpty ? "" : " (\(o.detail))")
                + (o.leaked && o.blocked ? ", but conntrack in \(o.enforcingEnds.joined(separator: " and ")) confirmed its first packet: a leak the source did not see" : "")
                + "\n    expected because: \(o.probe.why)"
            if !o.probe.rowFlows.isEmpty { text += "\n    catalog rows of this flow: \(o.probe.rowFlows.joined(separator: ", "))" }
            if n < diagnoseAtMost {
                text += "\n" + diagnose(o.probe).split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
            } else if n == diagnoseAtMost {
                text += "\n    (further unexpected results are listed without diagnosis)"
            }
            print(text)
        }
        return bad
    }

    // MARK: - diagnosis

    /// Re-runs one probe alone and says which host's ruleset decided it: the drop counters of the
    /// source's and destination's `inet fwenforcer` tables before and after, and an nftables trace
    /// (a `meta nftrace set 1` rule for just this probe, in a table of the lab's own, read with
    /// `nft monitor trace`).
    func diagnose(_ probe: PlannedProbe) -> String {
        let s = probe.spec
        let ends = [(s.srcHost, "source"), (s.dstHost, "destination")].filter { model.isEnforced($0.0) }
        var lines: [String] = []
        let before = Dictionary(uniqueKeysWithValues: ends.map { ($0.0, counters($0.0)) })
        var monitors: [(String, BackgroundProcess)] = []
        for (host, role) in ends {
            let ip = s.family == .v4 ? "ip" : "ip6"
            let match = role == "source" ? "\(ip) daddr \(s.dst) \(s.proto) dport \(s.port)" : "\(ip) saddr \(s.src) \(s.proto) dport \(s.port)"
            let hook = role == "source" ? "output" : "prerouting"
            let rules = "table inet fwe_lab_trace {\n chain t {\n type filter hook \(hook) priority -400;\n \(match) meta nftrace set 1\n }\n}\n"
            if (try? lab.check(host, ["nft", "-f", "-"], input: Data(rules.utf8))) != nil,
               let m = try? lab.spawn(host, ["nft", "monitor", "trace"], label: "trace") {
                monitors.append((host, m))
            }
        }
        usleep(300_000) // let the monitors subscribe
        let again = (try? run([probe]))?.first
        usleep(200_000)
        for (host, m) in monitors {
            m.stop(grace: 1)
            _ = try? lab.exec(host, ["nft", "delete", "table", "inet", "fwe_lab_trace"])
        }
        lines.append("re-probed alone: \(again.map { $0.result + ($0.detail.isEmpty ? "" : " (\($0.detail))") } ?? "failed to run")")
        var counted: [String] = []
        for (host, _) in ends {
            let after = counters(host)
            for (rule, n) in after.sorted(by: { $0.key < $1.key }) where n > (before[host]?[rule] ?? 0) {
                counted.append("\(host) \(rule): +\(n - (before[host]?[rule] ?? 0)) packets")
            }
        }
        if ends.isEmpty {
            lines.append("neither end enforces anything (no fwenforcer table)")
        } else {
            lines.append(counted.isEmpty ? "drop counters: unchanged in \(ends.map(\.0).joined(separator: " and ")) (nobody dropped it)"
                                         : "dropped by (drop counters): " + counted.joined(separator: "; "))
        }
        for (host, m) in monitors {
            var seen = Set<String>()
            let verdicts = m.output.split(separator: "\n").compactMap { line -> String? in
                guard line.contains(" inet \(E2E.table) "), line.contains("verdict") || line.contains("policy") else { return nil }
                // "trace id 1a2b3c4d inet fwenforcer input rule ... (verdict accept)": drop the id.
                let text = line.split(separator: " ").dropFirst(3).joined(separator: " ")
                return seen.insert(text).inserted ? text : nil
            }
            lines.append("trace in \(host): " + (verdicts.isEmpty ? "no packet of this probe reached its fwenforcer table"
                                                                : verdicts.prefix(6).joined(separator: " | ")))
        }
        return lines.joined(separator: "\n")
    }

    /// Every counter of a VM's table: "chain \"comment\"" -> packets.
    func counters(_ host: String) -> [String: Int] {
        guard let r = try? lab.exec(host, ["nft", "-j", "list", "table", "inet", E2E.table]), r.ok,
              let doc = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
              let items = doc["nftables"] as? [[String: Any]] else { return [:] }
        var out: [String: Int] = [:]
        for item in items {
            guard let rule = item["rule"] as? [String: Any], let exprs = rule["expr"] as? [[String: Any]] else { continue }
            for e in exprs {
                if let c = e["counter"] as? [String: Any], let packets = c["packets"] as? Int {
                    out["\(rule["chain"] as? String ?? "?") \"\(rule["comment"] as? String ?? "handle \(rule["handle"] ?? "?")")\""] = packets
                }
            }
        }
        return out
    }
}
