import Enforcer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The measurements for one peer count, in a fresh network namespace.
struct Benchmark {
    let fwenforcerd: String
    let scratch: String
    let repeats: Int
    let idleSeconds: Int
    var report = Report()
    /// Peer replacement transaction time at the smallest N, for the "cost of the change, not of the
    /// topology" target.
    private var smallestReplacement: [ReplacementKind: Double] = [:]

    /// The peer replacements measured: where the peer is, and where its successor lands.
    enum ReplacementKind: String {
        case hash
        /// In a hash set, by the free address next to another member (IPAM's consecutive addresses).
        case hashNextToMember = "hash-adjacent"
        case interval

        var interval: Bool { self == .interval }
        var label: String {
            switch self {
            case .hash: return "hash set"
            case .hashNextToMember: return "hash set, next to a member"
            case .interval: return "interval set"
            }
        }
    }

    init(fwenforcerd: String, scratch: String, repeats: Int, idleSeconds: Int) {
        self.fwenforcerd = fwenforcerd
        self.scratch = scratch
        self.repeats = repeats
        self.idleSeconds = idleSeconds
    }

    static let table = defaultTableName

    mutating func measure(peers n: Int) throws {
        try enterFreshNetworkNamespace()
        let dir = scratch + "/\(n)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)

        // The configs: the topology, and the topology with one peer replaced: in a hash set (by an
        // isolated address, and by one next to another member) and in an interval set.
        var generator = PeerGenerator(peers: n)
        let hashChange = generator.replacement(in: generator.largestGroup(interval: false))
        let adjacentChange = generator.adjacentReplacement()
        let intervalChange = generator.replacement(in: generator.largestGroup(interval: true))
        let text = generator.config()
        let configPath = dir + "/fwenforcer.conf"
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)

        // 1. plan: parse + compile + render, in-process.
        var planned: (Ruleset, String)!
        let planTimes = try (0..<repeats).map { _ in try timed { planned = try Self.plan(text, file: configPath) } }
        let (ruleset, rendered) = planned!
        let hashRuleset = try Self.plan(generator.config(applying: hashChange), file: configPath).0
        let adjacentRuleset = try Self.plan(generator.config(applying: adjacentChange), file: configPath).0
        let intervalRuleset = try Self.plan(generator.config(applying: intervalChange), file: configPath).0
        let intervalText = generator.config(applying: intervalChange)
        add(Row(metric: "plan (parse + compile + render)", peers: n, ours: Sample(planTimes),
                target: n == 100_000 ? "< 300 ms" : "", met: n == 100_000 ? Sample(planTimes).median < 0.3 : nil))
        let compileTimes = try (0..<repeats).map { _ in
            try timed { _ = Compiler.compile(config: try Config.parse(text: text, file: configPath), roles: ["CCO"]) }
        }
        add(Row(metric: "plan: parse + compile (no render)", peers: n, ours: Sample(compileTimes)))
        let hashSets = ruleset.sets.filter { !$0.interval }, intervalSets = ruleset.sets.filter(\.interval)
        // Hash elements whose address is one more than the previous element's: adjacent hosts.
        let adjacent = hashSets.map { s in zip(s.elements.ranges, s.elements.ranges.dropFirst()).filter { $0.last + 1 == $1.first }.count }
        report.notes.append("N = \(n.formatted()): \(hashSets.count) hash sets holding \(hashSets.map(\.elements.ranges.count).reduce(0, +)) addresses "
                            + "(\(adjacent.reduce(0, +)) next to another), "
                            + "\(intervalSets.count) interval sets holding \(intervalSets.map(\.elements.ranges.count).reduce(0, +)) ranges, "
                            + "\(ruleset.chains.map(\.rules.count).reduce(0, +)) rules; plan text \(rendered.utf8.count / 1024) KiB; "
                            + "replaced: \(hashChange.group) \(hashChange.old) → \(hashChange.new) (hash), "
                            + "\(adjacentChange.group) \(adjacentChange.old) → \(adjacentChange.new) (hash, next to a member), "
                            + "\(intervalChange.group) \(intervalChange.old) → \(intervalChange.new) (interval)")

        let planFile = dir + "/plan.nft"
        try rendered.write(toFile: planFile, atomically: true, encoding: .utf8)
        // A full atomic replace as a script would write it: create-if-missing, delete, define.
        let replaceHead = "add table inet \(Self.table)\ndelete table inet \(Self.table)\n"
        let replaceFiles = [dir + "/replace-0.nft", dir + "/replace-1.nft"]
        try (replaceHead + rendered).write(toFile: replaceFiles[0], atomically: true, encoding: .utf8)
        try (replaceHead + NftRenderer.render(hashRuleset)).write(toFile: replaceFiles[1], atomically: true, encoding: .utf8)

        let backend = try NetlinkBackend()
        defer { backend.close() }
        let deleteTable = Transaction(table: Self.table, operations: [.deleteTable])

        // 2. full apply of a fresh table. Wall and CPU time are taken from plain runs; peak RSS from
        // separate runs under time(1), whose own exec would otherwise be charged to both sides.
        // Every timed run starts once the kernel has released the table deleted before it: the
        // release is deferred, and the next commit in the namespace waits for it (about 12 ms at
        // N = 10 on this machine, charged to whichever process came next).
        // (Releasing more elements takes longer: 50 ms plus 2 µs an element.)
        func settle() { Thread.sleep(forTimeInterval: 0.05 + Double(n) * 2e-6) }
        func deleteAndSettle() throws {
            _ = try backend.apply(deleteTable)
            settle()
        }
        var inProcess: [Double] = [], process: [Child.Exit] = [], nft: [Child.Exit] = []
        var processRSS: [Double] = [], nftRSS: [Double] = []
        let applyArgv = [fwenforcerd, "apply", "--config", configPath, "--pending-file", dir + "/pending.json"]
        for _ in 0..<repeats {
            let fresh = Diff.replacement(ruleset, existing: false, generation: try backend.generation())
            settle()
            inProcess.append(try timed { _ = try backend.apply(fresh) })
            try deleteAndSettle()
            process.append(try Child.run(applyArgv))
            try deleteAndSettle()
            nft.append(try Child.run(["nft", "-f", planFile]))
            try deleteAndSettle()
            processRSS.append(Double(try Child.run(applyArgv, measureRSS: true).maxRSS))
            try deleteAndSettle()
            nftRSS.append(Double(try Child.run(["nft", "-f", planFile], measureRSS: true).maxRSS))
            try deleteAndSettle()
        }
        let nftApply = Sample(nft.map(\.wall))
        let processApply = Sample(process.map(\.wall))
        let transaction = Sample(inProcess)
        add(Row(metric: "full apply: netlink transaction, in-process", peers: n, ours: transaction, nft: nftApply, nftLabel: "nft -f"))
        // The one-shot start (N = 10: the whole process is start-up) and the full apply at scale.
        let applyTarget: (text: String, met: Bool)? = switch n {
        case 10: ("≤ 1.0× nft -f", processApply.median <= nftApply.median)
        case 100_000: (String(format: "≤ 1.3× the transaction (%@) and ≥ 2× faster than nft -f", transaction.text),
                       processApply.median <= 1.3 * transaction.median && 2 * processApply.median <= nftApply.median)
        default: nil
        }
        add(Row(metric: "full apply: `fwenforcerd apply` process (parse, compile, read, apply)", peers: n, ours: processApply,
                nft: nftApply, nftLabel: "nft -f", target: applyTarget?.text ?? "", met: applyTarget?.met))
        add(Row(metric: "full apply: CPU time of the applying process (user + system)", peers: n, ours: Sample(process.map(\.cpu)),
                nft: Sample(nft.map(\.cpu)), nftLabel: "nft -f"))
        let peakRSS = Sample(processRSS, .bytes)
        let rssLimit: Double? = n == 10 ? 12 : n == 100_000 ? 128 : nil
        add(Row(metric: "full apply: peak RSS of the applying process", peers: n, ours: peakRSS,
                nft: Sample(nftRSS, .bytes), nftLabel: "nft -f",
                target: rssLimit.map { "≤ \(Int($0)) MiB" } ?? "", met: rssLimit.map { peakRSS.max <= $0 * 1_048_576 }))

        // 3. peer replacement on a table holding N.
        _ = try backend.replace(with: ruleset)
        var nftReplace: [Double] = []
        for i in 0..<repeats { nftReplace.append(try Child.run(["nft", "-f", replaceFiles[(i + 1) % 2]]).wall) }
        if repeats % 2 == 1 { try Child.run(["nft", "-f", replaceFiles[0]]) }
        for (kind, changed, change) in [(ReplacementKind.hash, hashRuleset, hashChange), (.hashNextToMember, adjacentRuleset, adjacentChange),
                                         (.interval, intervalRuleset, intervalChange)] {
            // Ours: the daemon's path, a reconciler diffing against the model of its last commit.
            let reconciler = Reconciler(backend: backend, table: Self.table)
            try reconciler.reconcile(to: ruleset)
            var transaction: [Double] = [], reconcile: [Double] = []
            var states = [ruleset, changed]
            for _ in 0..<repeats {
                var outcome: Reconciler.Outcome!
                reconcile.append(try timed { outcome = try reconciler.reconcile(to: states[1]) })
                guard let apply = outcome.apply, apply.messages == 2 else {
                    throw BenchError("peer replacement (\(kind.label)) was not two element messages: \(outcome.summary)")
                }
                transaction.append(apply.duration.seconds)
                states.swapAt(0, 1)
            }
            if repeats % 2 == 1 { try reconciler.reconcile(to: ruleset) }
            // nft: the two element changes.
            let set = change.group + (change.old.contains(":") ? "_v6" : "_v4")
            let elementFiles = [dir + "/elements-\(kind.rawValue)-0.nft", dir + "/elements-\(kind.rawValue)-1.nft"]
            try "delete element inet \(Self.table) \(set) { \(change.old) }\nadd element inet \(Self.table) \(set) { \(change.new) }\n"
                .write(toFile: elementFiles[0], atomically: true, encoding: .utf8)
            try "delete element inet \(Self.table) \(set) { \(change.new) }\nadd element inet \(Self.table) \(set) { \(change.old) }\n"
                .write(toFile: elementFiles[1], atomically: true, encoding: .utf8)
            var nftElements: [Double] = []
            for i in 0..<repeats { nftElements.append(try Child.run(["nft", "-f", elementFiles[i % 2]]).wall) }
            if repeats % 2 == 1 { try Child.run(["nft", "-f", elementFiles[1]]) }

            guard let replacedSet = changed.set(named: set), replacedSet.interval == kind.interval else {
                throw BenchError("the peer replaced for the \(kind.label) case is not in a set of that type")
            }
            if kind == .hashNextToMember {
                let new = IPAddress(change.new)!.value
                guard replacedSet.elements.ranges.contains(where: { $0.last + 1 == new || $0.first == new + 1 }) else {
                    throw BenchError("the address replaced in for the \(kind.label) case has no neighbour in its set")
                }
            }
            let tx = Sample(transaction)
            if smallestReplacement[kind] == nil { smallestReplacement[kind] = tx.median }
            let base = smallestReplacement[kind]!
            let big = n == 100_000
            add(Row(metric: "replace one peer (\(kind.label)): netlink transaction", peers: n, ours: tx,
                    nft: Sample(nftElements), nftLabel: "nft -f, 2 element changes",
                    target: big ? String(format: "< 1 ms and ≤ 2× its time at the smallest N (%@)", Sample([base]).text) : "",
                    met: big ? tx.median < 0.001 && tx.median <= 2 * base : nil))
            add(Row(metric: "replace one peer (\(kind.label)): reconcile (diff + transaction)", peers: n, ours: Sample(reconcile),
                    nft: Sample(nftReplace), nftLabel: "nft -f, full atomic replace"))
        }

        // 5. read-back of the whole table (the table holds the topology again).
        var reads: [Double] = [], raw: [Double] = [], nftList: [Double] = []
        for _ in 0..<repeats {
            var snapshot: Snapshot!
            reads.append(try timed { snapshot = try backend.read(table: Self.table) })
            guard Set(snapshot.ruleset?.sets ?? []) == Set(ruleset.sets) else { throw BenchError("the table read back differs from the plan") }
            raw.append(try timed { _ = try backend.rawElementDump(table: Self.table) })
            nftList.append(try Child.run(["nft", "-j", "list", "table", "inet", Self.table]).wall)
        }
        let read = Sample(reads), kernelDump = Sample(raw), nftRead = Sample(nftList)
        add(Row(metric: "read-back of the whole table", peers: n, ours: read, nft: nftRead, nftLabel: "nft -j list table",
                target: n == 100_000 ? String(format: "≤ 1.5× the kernel's dump (%@) and faster than nft", kernelDump.text) : "",
                met: n == 100_000 ? read.median <= 1.5 * kernelDump.median && read.median < nftRead.median : nil))
        add(Row(metric: "kernel's own dump of the sets' elements (no decoding)", peers: n, ours: kernelDump))
        _ = try backend.apply(deleteTable)

        // 4 and 6. The daemon: start, config change to enforced, memory, idle.
        try measureDaemon(peers: n, dir: dir, text: text, changedText: intervalText, changed: intervalRuleset,
                          original: ruleset, backend: backend, nftReplace: Sample(nftReplace))
        _ = try backend.apply(deleteTable)
    }

    private mutating func measureDaemon(peers n: Int, dir: String, text: String, changedText: String, changed: Ruleset,
                                        original: Ruleset, backend: NetlinkBackend, nftReplace: Sample) throws {
        let daemon = try DaemonUnderTest(binary: fwenforcerd, directory: dir + "/daemon", config: text)
        var stopped = false
        defer { if !stopped { kill(daemon.pid, SIGKILL); runningDaemon = 0 } }
        add(Row(metric: "daemon: start to enforced (READY=1)", peers: n, ours: Sample([daemon.startedToReady])))
        let monitor = try NetlinkMonitor(table: Self.table)
        defer { monitor.close() }
        var latencies: [Double] = []
        var texts = [text, changedText]
        for _ in 0..<repeats {
            _ = try monitor.drain()
            let t0 = ContinuousClock.now
            try daemon.rewriteConfig(texts[1])
            try Self.waitForCommit(by: daemon.pid, monitor: monitor, timeout: 30)
            latencies.append((ContinuousClock.now - t0).seconds)
            texts.swapAt(0, 1)
        }
        // The kernel must hold what the last config says.
        let expected = repeats % 2 == 1 ? changed : original
        guard Set(try backend.read(table: Self.table).ruleset?.sets ?? []) == Set(expected.sets) else {
            throw BenchError("after the config changes the kernel does not hold the plan of the last config")
        }
        let latency = Sample(latencies)
        let limit: Double? = n == 10_000 ? 0.150 : n == 100_000 ? 1.0 : nil
        add(Row(metric: "config change to enforced (write + rename; a rename is read without the debounce)", peers: n, ours: latency,
                nft: nftReplace, nftLabel: "nft -f, full atomic replace",
                target: limit.map { $0 < 1 ? "< 150 ms" : "< 1 s" } ?? "", met: limit.map { latency.median < $0 }))

        // Idle: let the last reconcile's aftermath settle, then watch.
        Thread.sleep(forTimeInterval: 2)
        let before = daemon.cpuAndSwitches()
        Thread.sleep(forTimeInterval: Double(idleSeconds))
        let after = daemon.cpuAndSwitches()
        let memory = daemon.memory()
        let cpuPercent = (after.cpu - before.cpu) / Double(idleSeconds) * 100
        let wakeups = after.switches - before.switches
        add(Row(metric: "daemon RSS with N peers (VmRSS; peak VmHWM \(Sample([Double(memory.peak)], .bytes).text))", peers: n,
                ours: Sample([Double(memory.rss)], .bytes),
                target: n == 100_000 ? "< 40 MiB" : "", met: n == 100_000 ? memory.rss < 40 * 1_048_576 : nil))
        add(Row(metric: "daemon idle \(idleSeconds) s: CPU", peers: n, ours: Sample([cpuPercent], .percent),
                target: "0.0 %", met: cpuPercent < 0.05))
        add(Row(metric: "daemon idle \(idleSeconds) s: context switches (\(after.threads) threads)", peers: n,
                ours: Sample([Double(wakeups)], .count), target: "no wakeups (backstop timer: 600 s)", met: wakeups == 0))
        stopped = true
        try daemon.stop()
    }

    /// Waits until the monitor sees a commit by `pid` that touched our table.
    static func waitForCommit(by pid: pid_t, monitor: NetlinkMonitor, timeout: Double) throws {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            var fds = pollfd(fd: monitor.fileDescriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&fds, 1, 100) > 0 else { continue }
            for event in try monitor.drain() {
                if case .commit(let c) = event, c.pid == pid, c.touchedTable { return }
            }
        }
        throw BenchError("the daemon did not commit the config change within \(timeout) s")
    }

    static func plan(_ text: String, file: String) throws -> (Ruleset, String) {
        let config = try Config.parse(text: text, file: file)
        let plan = Compiler.compile(config: config, roles: ["CCO"])
        return (plan.ruleset, NftRenderer.render(plan.ruleset))
    }

    private mutating func add(_ row: Row) { report.add(row) }
}
