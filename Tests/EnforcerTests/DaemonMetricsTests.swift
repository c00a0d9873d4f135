import Foundation
import SystemPackage
import Testing
@testable import Enforcer
#if canImport(Glibc)
import Glibc
#endif

/// The metrics file: its text checked line by line against the exposition format, its values
/// against what happened, and (with the real kernel) the daemon's file read by the real
/// node_exporter textfile collector.
struct DaemonMetricsTests {
    /// A strict reading of the Prometheus text format 0.0.4: every sample belongs to a family
    /// declared once by HELP and TYPE before it; names, labels and values are well formed.
    /// Returns the samples as "name{labels}" -> value.
    static func parse(_ text: String) throws -> [String: String] {
        struct FormatError: Error, CustomStringConvertible { let description: String }
        guard text.hasSuffix("\n") else { throw FormatError(description: "no final newline") }
        let name = "[a-zA-Z_:][a-zA-Z0-9_:]*"
        let label = "[a-zA-Z_][a-zA-Z0-9_]*=\"(?:\\\\[\\\\\"n]|[^\"\\\\\\n])*\""
        let sample = try Regex("^(\(name))(\\{\(label)(?:,\(label))*\\})? (-?[0-9]+(?:\\.[0-9]+)?(?:e[-+]?[0-9]+)?|\\+Inf|NaN)$")
        var types: [String: String] = [:]
        var helped = Set<String>()
        var samples: [String: String] = [:]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            let words = line.split(separator: " ", maxSplits: 3).map(String.init)
            if words.first == "#" {
                guard words.count >= 3 else { throw FormatError(description: "bad comment: \(line)") }
                if words[1] == "HELP" {
                    guard helped.insert(words[2]).inserted else { throw FormatError(description: "HELP twice: \(line)") }
                } else if words[1] == "TYPE" {
                    guard helped.contains(words[2]), types[words[2]] == nil, words.count == 4,
                          ["counter", "gauge", "histogram"].contains(words[3]) else { throw FormatError(description: "bad TYPE: \(line)") }
                    types[words[2]] = words[3]
                }
                continue
            }
            guard let m = try sample.wholeMatch(in: String(line)) else { throw FormatError(description: "bad sample: \(line)") }
            let metric = String(m.output[1].substring!)
            var family = metric
            for suffix in ["_bucket", "_sum", "_count"] where metric.hasSuffix(suffix) && types[metric] == nil {
                family = String(metric.dropLast(suffix.count))
            }
            guard let type = types[family] else { throw FormatError(description: "sample before its TYPE: \(line)") }
            if type == "counter" && !family.hasSuffix("_total") { throw FormatError(description: "counter without _total: \(family)") }
            let key = metric + (m.output[2].substring.map(String.init) ?? "")
            guard samples.updateValue(String(m.output[3].substring!), forKey: key) == nil else {
                throw FormatError(description: "sample twice: \(key)")
            }
        }
        return samples
    }

    static let ruleset: Ruleset = {
        let config = try! Config.parse(text: DaemonRunTests.config, file: "test.conf")
        return Compiler.compile(config: config, roles: ["CCO"]).ruleset
    }()

    @Test func histogramBucketsAreCumulativeAndEndAtTheCount() throws {
        var m = DaemonMetrics()
        let at = Date(timeIntervalSince1970: 1_800_000_000.5)
        m.recordReconcile(ok: true, duration: .microseconds(300), messages: 2, driftRepair: false, at: at)
        m.recordReconcile(ok: true, duration: .milliseconds(7), messages: 40, driftRepair: true, at: at)
        m.recordReconcile(ok: false, duration: .seconds(30), messages: 0, driftRepair: false, at: at)
        let s = try Self.parse(MetricsText.render(m, desired: nil, counters: nil, audit: nil, nftablesGeneration: 12))
        #expect(s["fwenforcer_reconcile_duration_seconds_bucket{le=\"0.0005\"}"] == "1")
        #expect(s["fwenforcer_reconcile_duration_seconds_bucket{le=\"0.005\"}"] == "1")
        #expect(s["fwenforcer_reconcile_duration_seconds_bucket{le=\"0.01\"}"] == "2")
        #expect(s["fwenforcer_reconcile_duration_seconds_bucket{le=\"10\"}"] == "2")
        #expect(s["fwenforcer_reconcile_duration_seconds_bucket{le=\"+Inf\"}"] == "3")
        #expect(s["fwenforcer_reconcile_duration_seconds_count"] == "3")
        #expect(abs(Double(s["fwenforcer_reconcile_duration_seconds_sum"]!)! - 30.0073) < 1e-9)
        #expect(s["fwenforcer_reconciles_total{result=\"ok\"}"] == "2")
        #expect(s["fwenforcer_reconciles_total{result=\"failed\"}"] == "1")
        #expect(s["fwenforcer_netlink_messages_total"] == "42")
        #expect(s["fwenforcer_drift_repairs_total"] == "1")
        #expect(s["fwenforcer_last_successful_reconcile_timestamp_seconds"] == "1800000000.5")
        #expect(s["fwenforcer_nftables_generation"] == "12")
    }

    @Test func configGenerationCountsDistinctContents() throws {
        var m = DaemonMetrics()
        m.recordConfig(sha256: "aa")
        m.recordConfig(sha256: "aa")
        m.recordConfig(sha256: "bb")
        m.configRejections += 1
        let s = try Self.parse(MetricsText.render(m, desired: nil, counters: nil, audit: nil, nftablesGeneration: nil))
        #expect(s["fwenforcer_config_generation"] == "2")
        #expect(s["fwenforcer_config_info{sha256=\"bb\"}"] == "1")
        #expect(s["fwenforcer_config_rejections_total"] == "1")
        #expect(s["fwenforcer_last_successful_reconcile_timestamp_seconds"] == nil)
    }

    @Test func setsAndDropCountersComeFromThePlanAndTheKernelCounters() throws {
        let backend = FakeBackend()
        let reconciler = Reconciler(backend: backend, table: "fwenforcer")
        try reconciler.reconcile(to: Self.ruleset)
        backend.counterHits = ["input": [Compiler.denyRuleComment: 7, "invalid packets": 2], "output": [Compiler.denyRuleComment: 1]]
        let text = MetricsText.render(DaemonMetrics(), desired: Self.ruleset, counters: try backend.counters(table: "fwenforcer"),
                                      audit: AuditTotals(packets: ["ingress": 5], flowsLeftOut: 3), nftablesGeneration: nil)
        let s = try Self.parse(text)
        #expect(s["fwenforcer_set_elements{set=\"AMQP_v4\"}"] == "1")
        #expect(s["fwenforcer_set_elements{set=\"admin_ssh_v4\"}"] == "1")
        #expect(s["fwenforcer_chain_dropped_packets_total{chain=\"input\"}"] == "9")
        #expect(s["fwenforcer_chain_dropped_bytes_total{chain=\"input\"}"] == "900")
        #expect(s["fwenforcer_chain_dropped_packets_total{chain=\"output\"}"] == "1")
        #expect(s["fwenforcer_audit_would_drop_packets_total{direction=\"ingress\"}"] == "5")
        #expect(s["fwenforcer_audit_flows_left_out_total"] == "3")
        // Deterministic: the same state renders the same bytes.
        #expect(text == MetricsText.render(DaemonMetrics(), desired: Self.ruleset, counters: try backend.counters(table: "fwenforcer"),
                                           audit: AuditTotals(packets: ["ingress": 5], flowsLeftOut: 3), nftablesGeneration: nil))
    }

    @Test func auditModeCountsWouldDropsApartFromDrops() throws {
        let config = try Config.parse(text: DaemonRunTests.config + "\n[enforce]\ningress = \"audit\"\n", file: "test.conf")
        let ruleset = Compiler.compile(config: config, roles: ["CCO"]).ruleset
        let backend = FakeBackend()
        try Reconciler(backend: backend, table: "fwenforcer").reconcile(to: ruleset)
        backend.counterHits = ["input": [Compiler.auditRuleComment: 4], "output": [Compiler.denyRuleComment: 1]]
        let s = try Self.parse(MetricsText.render(DaemonMetrics(), desired: ruleset, counters: try backend.counters(table: "fwenforcer"),
                                                  audit: nil, nftablesGeneration: nil))
        #expect(s["fwenforcer_chain_would_drop_packets_total{chain=\"input\"}"] == "4")
        #expect(s["fwenforcer_chain_dropped_packets_total{chain=\"input\"}"] == "0")
        #expect(s["fwenforcer_chain_dropped_packets_total{chain=\"output\"}"] == "1")
    }

    @Test func labelValuesAreEscaped() throws {
        var w = MetricsText.Family.Writer()
        w.family("x_total", .counter, "help") { $0.sample(["set": "a\"b\\c\nd"], 1) }
        #expect(w.text.contains("x_total{set=\"a\\\"b\\\\c\\nd\"} 1\n"))
        #expect(try Self.parse(w.text).count == 1)
    }

    @Test func theFileIsReplacedWholeAndReadableByOthers() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-metrics-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let old = umask(0o077)
        defer { umask(old) }
        let file = MetricsFile(path: FilePath(dir.appendingPathComponent("fwenforcer.prom").path))
        try file.write("a 1\n")
        try file.write("a 2\n")
        #expect(try String(contentsOf: dir.appendingPathComponent("fwenforcer.prom"), encoding: .utf8) == "a 2\n")
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("fwenforcer.prom").path)
        #expect((attributes[.posixPermissions] as? Int) == 0o644)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["fwenforcer.prom"])
    }
}

/// The daemon's metrics file against the real kernel, read by the real node_exporter.
@Suite(.enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath), "needs root, nft and the built fwenforcerd"))
struct DaemonMetricsKernelTests {
    static let nodeExporter = "/usr/bin/prometheus-node-exporter"

    @Test func daemonWritesCountersThatNodeExporterServes() throws {
        let setup = try DaemonRunTests.Setup("metrics", config: DaemonRunTests.config)
        defer { setup.close() }
        let (ns, dir) = (setup.ns, setup.dir)
        let textfiles = dir.appendingPathComponent("textfile")
        try FileManager.default.createDirectory(at: textfiles, withIntermediateDirectories: true)
        let prom = textfiles.appendingPathComponent("fwenforcer.prom")
        let daemon = try setup.start(extra: ["--allow-insecure-config", "--metrics-file", prom.path, "--metrics-interval", "1"])
        func samples() -> [String: String] {
            guard let text = try? String(contentsOf: prom, encoding: .utf8) else { return [:] }
            return (try? DaemonMetricsTests.parse(text)) ?? [:]
        }
        let waiter = DaemonRunTests()
        #expect(eventually { samples()["fwenforcer_reconciles_total{result=\"ok\"}"] == "1" }, "\(daemon.logText)")
        var s = samples()
        #expect(s["fwenforcer_set_elements{set=\"AMQP_v4\"}"] == "1")
        #expect(s["fwenforcer_config_generation"] == "1")
        #expect(Int(s["fwenforcer_netlink_messages_total"] ?? "0")! > 5)
        #expect(s["fwenforcer_chain_dropped_packets_total{chain=\"output\"}"] == "0")

        // Five datagrams to an address no rule allows, out of a veth the namespace owns: the
        // output chain's default deny counts them, and the next periodic write shows it.
        try run(["ip", "-n", ns.name, "link", "add", "m0", "type", "veth", "peer", "name", "m1"])
        try run(["ip", "-n", ns.name, "addr", "add", "198.18.77.1/24", "dev", "m0"])
        for link in ["m0", "m1"] { try run(["ip", "-n", ns.name, "link", "set", link, "up"]) }
        let send = """
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for _ in range(5):
            try: s.sendto(b"x", ("198.18.77.2", 9))
            except OSError: pass
        """
        _ = try ns.exec(["python3", "-c", send])
        #expect(eventually(4) { samples()["fwenforcer_chain_dropped_packets_total{chain=\"output\"}"] == "5" },
                "\(samples().filter { $0.key.contains("dropped") })")

        // A peer added: the set gauge follows, and the config generation moves on.
        try DaemonRunTests.writeConfig(DaemonRunTests.config.replacingOccurrences(of: "AMQP = [\"198.18.0.30\"]",
                                                                                  with: "AMQP = [\"198.18.0.30\", \"198.18.0.40\"]"),
                                       to: setup.path)
        #expect(eventually { samples()["fwenforcer_set_elements{set=\"AMQP_v4\"}"] == "2" })
        s = samples()
        #expect(s["fwenforcer_config_generation"] == "2")
        #expect(s["fwenforcer_reconciles_total{result=\"ok\"}"] == "2")

        // node_exporter's textfile collector takes the file as it is: no scrape error, our samples served.
        guard FileManager.default.isExecutableFile(atPath: Self.nodeExporter) else {
            Issue.record("prometheus-node-exporter is not installed (scripts/install-deps.sh installs it)")
            return
        }
        let served = try Self.scrapeNodeExporter(textfileDirectory: textfiles, in: ns)
        #expect(served.contains("node_textfile_scrape_error 0"), "\(served.prefix(2000))")
        #expect(served.contains("fwenforcer_set_elements{set=\"AMQP_v4\"} 2"))
        #expect(served.contains("fwenforcer_reconcile_duration_seconds_bucket{le=\"+Inf\"} 2"))
    }

    /// Runs node_exporter with only the textfile collector, on loopback inside the test's
    /// namespace, and returns one scrape of /metrics.
    static func scrapeNodeExporter(textfileDirectory: URL, in ns: DaemonRunTests.Namespace) throws -> String {
        let exporter = Process()
        exporter.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        exporter.arguments = ["netns", "exec", ns.name, nodeExporter, "--collector.disable-defaults", "--collector.textfile",
                              "--collector.textfile.directory=\(textfileDirectory.path)", "--web.listen-address=127.0.0.1:19100"]
        exporter.standardOutput = FileHandle.nullDevice
        exporter.standardError = FileHandle.nullDevice
        try exporter.run()
        defer {
            kill(exporter.processIdentifier, SIGKILL)
            exporter.waitUntilExit()
        }
        let fetch = """
        import sys, time, urllib.request
        for _ in range(100):
            try:
                sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:19100/metrics", timeout=2).read().decode()); break
            except OSError: time.sleep(0.05)
        """
        return try ns.exec(["python3", "-c", fetch]).stdout
    }
}
