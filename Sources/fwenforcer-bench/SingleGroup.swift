import Enforcer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Issue 14's case: one group (CCM) of N IPv6 hosts, none adjacent, in the config of a CCO host;
/// one of them is replaced by an address no host is next to. One address a line, as config
/// management writes long lists.
struct SingleGroupConfig {
    static let group = "CCM"
    let peers: Int

    /// Host i: fd00:18::/64, every other address (2i + 1), so no two are adjacent.
    func host(_ i: Int) -> String { PeerGenerator.hostText(v4: false, 2 * i + 1) }

    /// The last host leaves; the one that comes in is far above every host, with free neighbours.
    var replacement: PeerGenerator.Replacement {
        PeerGenerator.Replacement(group: Self.group, old: host(peers - 1), new: PeerGenerator.hostText(v4: false, 2 * peers + 1_001))
    }

    func config(replaced: Bool = false) -> String {
        var text = """
        # fwenforcer-bench: one group of \(peers) IPv6 hosts, none adjacent, for one CCO host
        [host]
        roles = ["CCO"]
        catalog = "cloudcenter"
        version = "4.10"

        [groups]
        \(Self.group) = [

        """
        text.reserveCapacity(peers * 24 + 512)
        for i in 0..<peers {
            text += "  \"\(replaced && i == peers - 1 ? replacement.new : host(i))\",\n"
        }
        return text + "]\n"
    }
}

extension Benchmark {
    /// The single-group case: parse + compile and render apart, then the daemon's config change
    /// (write + rename) until the kernel commits it, against `nft -f` of the two element changes
    /// and of a full atomic replace, all in a fresh namespace.
    mutating func measureSingleGroup(peers n: Int) throws {
        try enterFreshNetworkNamespace()
        let dir = scratch + "/ccm-\(n)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let generator = SingleGroupConfig(peers: n)
        let texts = [generator.config(), generator.config(replaced: true)]
        let configPath = dir + "/fwenforcer.conf"
        let label = "one group of N IPv6 hosts (CCM, none adjacent)"

        var planned: Plan!
        let compileTimes = try (0..<repeats).map { _ in
            try timed { planned = Compiler.compile(config: try Config.parse(text: texts[0], file: configPath), roles: ["CCO"]) }
        }
        var rendered = ""
        let renderTimes = (0..<repeats).map { _ in timed { rendered = NftRenderer.render(planned.ruleset) } }
        let ruleset = planned.ruleset
        let changed = Compiler.compile(config: try Config.parse(text: texts[1], file: configPath), roles: ["CCO"]).ruleset
        let big = n == 100_000
        report.add(Row(metric: "\(label): parse + compile", peers: n, ours: Sample(compileTimes),
                target: big ? "≤ 30 ms" : "", met: big ? Sample(compileTimes).median <= 0.030 : nil))
        report.add(Row(metric: "\(label): render (nft text)", peers: n, ours: Sample(renderTimes)))

        let backend = try NetlinkBackend()
        defer { backend.close() }
        let daemon = try DaemonUnderTest(binary: fwenforcerd, directory: dir + "/daemon", config: texts[0])
        var stopped = false
        defer { if !stopped { kill(daemon.pid, SIGKILL); runningDaemon = 0 } }
        let monitor = try NetlinkMonitor(table: Self.table)
        defer { monitor.close() }
        var latencies: [Double] = []
        // Let the start's aftermath pass (at 100,000 its own commit overflows its monitor: a re-read).
        Thread.sleep(forTimeInterval: 2)
        for i in 0..<repeats {
            Thread.sleep(forTimeInterval: 0.3)
            _ = try monitor.drain()
            let t0 = ContinuousClock.now
            try daemon.rewriteConfig(texts[(i + 1) % 2])
            try Self.waitForCommit(by: daemon.pid, monitor: monitor, timeout: 30)
            latencies.append((ContinuousClock.now - t0).seconds)
        }
        let expected = repeats % 2 == 1 ? changed : ruleset
        guard Set(try backend.read(table: Self.table).ruleset?.sets ?? []) == Set(expected.sets) else {
            throw BenchError("\(label): after the config changes the kernel does not hold the plan of the last config")
        }
        stopped = true
        try daemon.stop()

        // nft's ways, on the table the daemon left (it stays enforced after SIGTERM).
        if repeats % 2 == 1 { _ = try backend.replace(with: ruleset) }
        let change = generator.replacement
        let set = SingleGroupConfig.group + "_v6"
        let elementFiles = [dir + "/elements-0.nft", dir + "/elements-1.nft"]
        try "delete element inet \(Self.table) \(set) { \(change.old) }\nadd element inet \(Self.table) \(set) { \(change.new) }\n"
            .write(toFile: elementFiles[0], atomically: true, encoding: .utf8)
        try "delete element inet \(Self.table) \(set) { \(change.new) }\nadd element inet \(Self.table) \(set) { \(change.old) }\n"
            .write(toFile: elementFiles[1], atomically: true, encoding: .utf8)
        let replaceHead = "add table inet \(Self.table)\ndelete table inet \(Self.table)\n"
        let replaceFiles = [dir + "/replace-1.nft", dir + "/replace-0.nft"]
        try (replaceHead + NftRenderer.render(changed)).write(toFile: replaceFiles[0], atomically: true, encoding: .utf8)
        try (replaceHead + rendered).write(toFile: replaceFiles[1], atomically: true, encoding: .utf8)
        var nftElements: [Double] = [], nftReplace: [Double] = []
        for i in 0..<repeats { nftElements.append(try Child.run(["nft", "-f", elementFiles[i % 2]]).wall) }
        if repeats % 2 == 1 { try Child.run(["nft", "-f", elementFiles[1]]) }
        for i in 0..<repeats { nftReplace.append(try Child.run(["nft", "-f", replaceFiles[i % 2]]).wall) }
        _ = try backend.apply(Transaction(table: Self.table, operations: [.deleteTable]))

        let latency = Sample(latencies)
        let limit: Double? = n == 10_000 ? 0.015 : big ? 0.060 : nil
        report.add(Row(metric: "\(label): config change to enforced (write + rename, the commit seen on netlink)", peers: n, ours: latency,
                nft: Sample(nftElements), nftLabel: "nft -f, 2 element changes",
                target: limit.map { String(format: "≤ %.0f ms", $0 * 1000) } ?? "", met: limit.map { latency.median <= $0 }))
        report.add(Row(metric: "\(label): config change to enforced, against a full replace", peers: n, ours: latency,
                nft: Sample(nftReplace), nftLabel: "nft -f, full atomic replace"))
    }
}
