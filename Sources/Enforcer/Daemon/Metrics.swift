import FoundationEssentials
import SystemPackage

/// What the daemon counts for monitoring. Plain values, updated by the reconcile loop as things
/// happen; `MetricsText` turns them, with what the kernel holds, into Prometheus text.
public struct DaemonMetrics: Sendable, Equatable {
    /// Upper bounds of the reconcile duration histogram, in seconds: an incremental reconcile takes
    /// well under a millisecond, a first apply of 100,000 peers some hundreds of milliseconds.
    public static let durationBuckets: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

    public var reconcilesOK = 0
    public var reconcilesFailed = 0
    public var driftRepairs = 0
    /// Netlink messages sent in committed batches (BATCH_BEGIN/END excluded).
    public var netlinkMessages = 0
    /// Per bucket of `durationBuckets`: reconciles that took at most that long (not cumulative here).
    public var durationBucketCounts = [Int](repeating: 0, count: durationBuckets.count)
    public var durationSum = 0.0
    public var durationCount = 0
    public var lastSuccess: Date?
    /// Config contents accepted since the daemon started: 1 after the first, +1 at each change.
    public var configGeneration = 0
    public var configSHA256 = ""
    /// Configs (or reloads) refused because the file was invalid or unreadable.
    public var configRejections = 0
    /// True while inotify cannot watch the config and it is polled instead (``ConfigWatcher/Mode``).
    public var configWatchPolling = false
    /// Times the config watch fell back from inotify to polling.
    public var configWatchFallbacks = 0
    /// The fail-closed baseline stands in for a plan (no valid config, or roles unresolved).
    public var baselineActive = false

    public init() {}

    public mutating func recordReconcile(ok: Bool, duration: Duration, messages: Int, driftRepair: Bool, at date: Date) {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        if ok {
            reconcilesOK += 1
            netlinkMessages += messages
            lastSuccess = date
            if driftRepair { driftRepairs += 1 }
        } else {
            reconcilesFailed += 1
        }
        if let i = Self.durationBuckets.firstIndex(where: { seconds <= $0 }) { durationBucketCounts[i] += 1 }
        durationSum += seconds
        durationCount += 1
    }

    public mutating func recordConfigWatch(polling: Bool) {
        if polling && !configWatchPolling { configWatchFallbacks += 1 }
        configWatchPolling = polling
    }

    public mutating func recordConfig(sha256: String) {
        guard sha256 != configSHA256 else { return }
        configSHA256 = sha256
        configGeneration += 1
    }
}

/// Would-drop totals of audit mode, for the metrics file.
public struct AuditTotals: Sendable, Equatable {
    /// Packets reported through NFLOG, by direction ("ingress", "egress").
    public var packets: [String: UInt64]
    /// Flows the report left out because it was at its cap.
    public var flowsLeftOut: UInt64

    public init(packets: [String: UInt64], flowsLeftOut: UInt64) {
        self.packets = packets
        self.flowsLeftOut = flowsLeftOut
    }
}

/// The Prometheus text exposition format (version 0.0.4) of the daemon's metrics, for
/// node_exporter's textfile collector. Families and samples come out in a fixed order, so two
/// writes of the same state are byte-identical.
public enum MetricsText {
    public static func render(_ m: DaemonMetrics, desired: Ruleset?, counters: [RuleCounter]?, audit: AuditTotals?,
                              nftablesGeneration: UInt32?) -> String {
        var out = Family.Writer()

        out.family("fwenforcer_reconciles_total", .counter, "Reconcile passes, by result.") {
            $0.sample(["result": "ok"], m.reconcilesOK)
            $0.sample(["result": "failed"], m.reconcilesFailed)
        }
        out.family("fwenforcer_reconcile_duration_seconds", .histogram, "Time of one reconcile pass (diff and netlink transaction).") {
            var cumulative = 0
            for (bound, count) in zip(DaemonMetrics.durationBuckets, m.durationBucketCounts) {
                cumulative += count
                $0.sample(suffix: "_bucket", ["le": format(bound)], cumulative)
            }
            $0.sample(suffix: "_bucket", ["le": "+Inf"], m.durationCount)
            $0.sample(suffix: "_sum", [:], format(m.durationSum))
            $0.sample(suffix: "_count", [:], m.durationCount)
        }
        out.family("fwenforcer_netlink_messages_total", .counter, "Netlink messages sent in committed nftables batches.") {
            $0.sample([:], m.netlinkMessages)
        }
        out.family("fwenforcer_drift_repairs_total", .counter, "Reconciles that restored the table after another process changed it.") {
            $0.sample([:], m.driftRepairs)
        }
        out.family("fwenforcer_config_rejections_total", .counter, "Config reads refused (invalid or unreadable file); the last good ruleset stayed.") {
            $0.sample([:], m.configRejections)
        }
        out.family("fwenforcer_config_watch_polling", .gauge, "1 while inotify cannot watch the config (e.g. ENOSPC) and it is polled instead (stat and SHA-256 every few seconds).") {
            $0.sample([:], m.configWatchPolling ? 1 : 0)
        }
        out.family("fwenforcer_config_watch_fallbacks_total", .counter, "Times the config watch fell back from inotify to polling.") {
            $0.sample([:], m.configWatchFallbacks)
        }
        out.family("fwenforcer_baseline_active", .gauge, "1 while the fail-closed baseline is enforced because no valid plan exists (see the log and `fwenforcerd status`).") {
            $0.sample([:], m.baselineActive ? 1 : 0)
        }
        out.family("fwenforcer_config_generation", .gauge, "Config contents accepted since the daemon started (+1 at each change).") {
            $0.sample([:], m.configGeneration)
        }
        if !m.configSHA256.isEmpty {
            out.family("fwenforcer_config_info", .gauge, "The accepted config, by the SHA-256 of its content.") {
                $0.sample(["sha256": m.configSHA256], 1)
            }
        }
        if let last = m.lastSuccess {
            out.family("fwenforcer_last_successful_reconcile_timestamp_seconds", .gauge, "Unix time of the last successful reconcile.") {
                $0.sample([:], format(last.timeIntervalSince1970))
            }
        }
        if let nftablesGeneration {
            out.family("fwenforcer_nftables_generation", .gauge, "The kernel's ruleset generation after the last commit fwenforcer saw.") {
                $0.sample([:], Int(nftablesGeneration))
            }
        }
        if let desired {
            out.family("fwenforcer_set_elements", .gauge, "Elements (addresses or ranges) of each peer set, as planned and enforced.") {
                for set in desired.sets.sorted(by: { $0.name < $1.name }) {
                    $0.sample(["set": set.name], set.elements.ranges.count)
                }
            }
        }
        if let counters {
            // Sums by chain, over the rules whose verdict is drop (the invalid-state drop and the
            // default deny), and in audit mode over the accepting rule that stands in for the deny.
            var drops: [String: (packets: UInt64, bytes: UInt64)] = [:]
            var wouldDrop: [String: (packets: UInt64, bytes: UInt64)] = [:]
            for c in counters {
                if c.verdict == .drop {
                    drops[c.chain, default: (0, 0)].packets += c.packets
                    drops[c.chain, default: (0, 0)].bytes += c.bytes
                } else if c.comment == Compiler.auditRuleComment {
                    wouldDrop[c.chain, default: (0, 0)].packets += c.packets
                    wouldDrop[c.chain, default: (0, 0)].bytes += c.bytes
                }
            }
            let chains = (desired?.chains.map(\.name) ?? []) + drops.keys + wouldDrop.keys
            let names = Array(Set(chains)).sorted()
            out.family("fwenforcer_chain_dropped_packets_total", .counter, "Packets dropped by each chain's drop rules (kernel counters).") {
                for chain in names where drops[chain] != nil || wouldDrop[chain] == nil { $0.sample(["chain": chain], drops[chain]?.packets ?? 0) }
            }
            out.family("fwenforcer_chain_dropped_bytes_total", .counter, "Bytes dropped by each chain's drop rules (kernel counters).") {
                for chain in names where drops[chain] != nil || wouldDrop[chain] == nil { $0.sample(["chain": chain], drops[chain]?.bytes ?? 0) }
            }
            if !wouldDrop.isEmpty {
                out.family("fwenforcer_chain_would_drop_packets_total", .counter, "Audit mode: packets the chain accepted that enforce mode would drop (kernel counters).") {
                    for chain in wouldDrop.keys.sorted() { $0.sample(["chain": chain], wouldDrop[chain]!.packets) }
                }
            }
        }
        if let audit {
            out.family("fwenforcer_audit_would_drop_packets_total", .counter, "Audit mode: would-be-dropped packets received through NFLOG, by direction.") {
                for direction in audit.packets.keys.sorted() { $0.sample(["direction": direction], audit.packets[direction]!) }
            }
            out.family("fwenforcer_audit_flows_left_out_total", .counter, "Audit mode: flows not recorded in the report because it was at its cap.") {
                $0.sample([:], audit.flowsLeftOut)
            }
        }
        return out.text
    }

    /// Go's `strconv.FormatFloat(f, 'g', -1, 64)` style, as Prometheus clients print: shortest
    /// round-tripping form, integers without a decimal point.
    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    enum Family {
        enum Kind: String { case counter, gauge, histogram }

        struct Writer {
            var text = ""

            mutating func family(_ name: String, _ kind: Kind, _ help: String, _ samples: (inout Samples) -> Void) {
                var s = Samples(name: name)
                samples(&s)
                text += "# HELP \(name) \(help)\n# TYPE \(name) \(kind.rawValue)\n" + s.lines
            }
        }

        struct Samples {
            let name: String
            var lines = ""

            mutating func sample<V: BinaryInteger>(suffix: String = "", _ labels: [String: String], _ value: V) {
                sample(suffix: suffix, labels, String(value))
            }

            mutating func sample(suffix: String = "", _ labels: [String: String], _ value: String) {
                var line = name + suffix
                if !labels.isEmpty {
                    line += "{" + labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(escape($0.value))\"" }.joined(separator: ",") + "}"
                }
                lines += "\(line) \(value)\n"
            }

            /// Label values escape backslash, double quote and newline.
            func escape(_ s: String) -> String {
                s.replacingScalars(["\\": "\\\\", "\"": "\\\"", "\n": "\\n"])
            }
        }
    }
}

/// The metrics file: written atomically (``AtomicFile``), mode 0644, so node_exporter's textfile
/// collector, which reads `*.prom` files of a directory at each scrape, never sees half a file.
public struct MetricsFile: Sendable {
    public let path: FilePath

    public init(path: FilePath) { self.path = path }

    public func write(_ text: String) throws {
        try AtomicFile.write(Array(text.utf8), to: path)
    }
}
