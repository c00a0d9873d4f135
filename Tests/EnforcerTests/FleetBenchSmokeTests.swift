import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// bench/fleet/fleet.py (`make bench-fleet`) at 3 VMs, one round of each case: the driver works
/// end to end (etcd, watchers, daemons in namespaces, the kernel's notifications), and it leaves
/// nothing behind, finished or stopped halfway.
@Suite(.serialized, .enabled(if: canUseNetns && FileManager.default.isExecutableFile(atPath: fwenforcerdPath),
                             "needs root, nft and the built fwenforcerd"),
       .enabled(if: Fleet.etcd != nil && Fleet.etcdctl != nil && Fleet.tool("/usr/bin/python3") != nil,
                "etcd, etcdctl or /usr/bin/python3 is not installed: the fleet benchmark is not tested"))
struct FleetBenchSmokeTests {
    static let driver = Fleet.repository.appendingPathComponent("bench/fleet/fleet.py").path

    func argv(_ output: String, _ prefix: String, rounds: [String]) -> [String] {
        ["/usr/bin/python3", Self.driver, "--vms", "3", "--fwenforcerd", fwenforcerdPath, "--etcd", Fleet.etcd!,
         "--etcdctl", Fleet.etcdctl!, "--ns-prefix", prefix, "--output", output] + rounds
    }

    /// The namespaces named with `prefix` that exist now.
    func namespaces(_ prefix: String) throws -> [String] {
        try run(["ip", "netns", "list"]).stdout.split(separator: "\n").map { String($0.split(separator: " ")[0]) }
            .filter { $0.hasPrefix(prefix + "-") }
    }

    /// The command lines of live processes that name `marker` (the run's scratch directory).
    func leftovers(_ marker: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: "/proc").filter { Int($0) != nil }.compactMap { pid in
            guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(marker) ? "\(pid) \(line)" : nil
        }
    }

    @Test func threeVMsQuick() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let scratch = dir("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let started = Date()
        let child = try Fleet.Child(argv(dir("out"), "fwe-fleetsmoke", rounds: ["--quick"]), log: URL(fileURLWithPath: dir("log")),
                                    environment: ["TMPDIR": scratch])
        child.process.waitUntilExit()
        let seconds = Date().timeIntervalSince(started)
        #expect(child.process.terminationStatus == 0, "\(child.logText)")
        // Every VM's kernel held the new elements (the driver times out otherwise): one row per
        // case, each with the 3 VMs' samples and a time.
        let csv = (try? String(contentsOfFile: dir("out/fleet-results.csv"), encoding: .utf8)) ?? ""
        let rows = csv.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        #expect(rows.map { $0.prefix(4).joined(separator: ",") } == ["3,1 member,1,3", "3,10 members,1,3"], "\(csv)")
        #expect(rows.allSatisfy { (Double($0[4]) ?? 0) > 0 }, "\(csv)")
        #expect(FileManager.default.fileExists(atPath: dir("out/fleet-results.md")))
        #expect(try namespaces("fwe-fleetsmoke").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "the scratch directory is left")
        #expect(try leftovers(scratch).isEmpty)
        #expect(seconds < 60, "took \(seconds) s")
    }

    /// SIGTERM once the fleet is up: the driver stops the daemons, watchers and etcd, deletes the
    /// namespaces and its scratch directory.
    @Test func stoppedHalfwayItCleansUp() throws {
        let dir = try DaemonTemporaryDirectory()
        defer { dir.remove() }
        let scratch = dir("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let child = try Fleet.Child(argv(dir("out"), "fwe-fleetstop", rounds: ["--rounds", "50"]), log: URL(fileURLWithPath: dir("log")),
                                    environment: ["TMPDIR": scratch])
        defer { child.stop(SIGKILL) }
        #expect(eventually(30) { child.logText.contains("VMs ready") }, "\(child.logText)")
        #expect(try namespaces("fwe-fleetstop").count == 3)
        #expect(try leftovers(scratch).count >= 7, "etcd, 3 watchers, 3 daemons")
        kill(child.process.processIdentifier, SIGTERM)
        child.process.waitUntilExit()
        #expect(child.process.terminationStatus == 130, "\(child.logText)")
        #expect(try namespaces("fwe-fleetstop").isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch).isEmpty, "the scratch directory is left")
        #expect(try leftovers(scratch).isEmpty)
    }
}
