import ArgumentParser
import Enforcer
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `make bench`: fwenforcer against `nft` on the same ruleset, in the same run, in network
/// namespaces of its own. Method and findings: docs/benchmarks.md.
@main
struct FwenforcerBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fwenforcer-bench",
        abstract: "Benchmark plan, apply, peer replacement, config-to-kernel latency, read-back and the daemon against nft.",
        discussion: """
        Needs root: everything that programs netfilter runs in fresh anonymous network namespaces that \
        disappear with the process; the machine's own firewall is never touched. Writes results.md and \
        results.csv into --output.
        """)

    @Option(help: ArgumentHelp("Peer counts, comma-separated.", valueName: "n,n,..."))
    var sizes: String = "10,1000,10000,100000"

    @Option(help: "Repetitions of each measurement (median and min-max are reported).")
    var repeats: Int = 5

    @Option(help: ArgumentHelp("How long the daemon is watched while idle, per size.", valueName: "seconds"))
    var idleSeconds: Int = 60

    @Flag(help: "A short run: N = 10 and 1,000, 3 repetitions, 5 s idle.")
    var quick = false

    @Option(help: ArgumentHelp("Directory for results.md and results.csv.", valueName: "dir"))
    var output: String = "bench"

    @Option(help: ArgumentHelp("The fwenforcerd binary (default: the one beside this benchmark).", valueName: "path"))
    var fwenforcerd: String?

    @Option(help: ArgumentHelp("The Debian package whose size is reported (default: the newest out/fwenforcer_*.deb, if any).",
                               valueName: "path"))
    var deb: String?

    @Option(help: ArgumentHelp("Only write the config of this many peers to --output/fwenforcer-N.conf (for profiling) and exit.",
                               valueName: "n"))
    var writeConfig: Int?

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard idleSeconds >= 1 else { throw ValidationError("--idle-seconds must be at least 1") }
        guard !parsedSizes.isEmpty, parsedSizes.allSatisfy({ $0 >= 10 }) else {
            throw ValidationError("--sizes must be a comma-separated list of peer counts of at least 10")
        }
    }

    var parsedSizes: [Int] {
        quick ? [10, 1_000] : sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")) }
    }

    func run() throws {
        if let n = writeConfig {
            try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            try PeerGenerator(peers: n).config().write(toFile: output + "/fwenforcer-\(n).conf", atomically: true, encoding: .utf8)
            return
        }
        guard geteuid() == 0 else { throw BenchError("fwenforcer-bench must run as root (it makes network namespaces)") }
        installInterruptHandler()
        let binary = fwenforcerd ?? Self.besideThisExecutable("fwenforcerd")
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw BenchError("no fwenforcerd at \(binary); build it or pass --fwenforcerd") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-bench-\(getpid())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        var bench = Benchmark(fwenforcerd: binary, scratch: scratch, repeats: quick ? 3 : repeats,
                              idleSeconds: quick ? 5 : idleSeconds)
        for row in try Footprint.rows(fwenforcerd: binary, deb: deb ?? Footprint.newestPackage(in: "out"), scratch: scratch) {
            bench.report.add(row)
        }
        for n in parsedSizes {
            FileHandle.standardError.write("N = \(n)\n".data(using: .utf8)!)
            try bench.measure(peers: n)
            try bench.measureSingleGroup(peers: n)
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let header = Self.machineDescription(repeats: bench.repeats, idle: bench.idleSeconds)
        let markdown = "# fwenforcer-bench results\n\n" + header.map { "- \($0)" }.joined(separator: "\n") + "\n\n"
            + bench.report.markdown + "\n" + bench.report.notes.map { "- \($0)" }.joined(separator: "\n") + "\n"
        try markdown.write(toFile: output + "/results.md", atomically: true, encoding: .utf8)
        try bench.report.csv.write(toFile: output + "/results.csv", atomically: true, encoding: .utf8)
        print(bench.report.markdown, terminator: "")
        FileHandle.standardError.write("wrote \(output)/results.md and \(output)/results.csv\n".data(using: .utf8)!)
    }

    static func besideThisExecutable(_ name: String) -> String {
        let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// Kernel, nft, CPU, date: what a later run must match to be comparable.
    static func machineDescription(repeats: Int, idle: Int) -> [String] {
        var u = utsname()
        uname(&u)
        let release = withUnsafeBytes(of: u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }.map { $0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces) } ?? "?"
        return ["date: \(ISO8601DateFormatter().string(from: Date()))",
                "kernel \(release), \(ProcessInfo.processInfo.activeProcessorCount) CPUs (\(model)), load average at the end: \(loadAverage())",
                "\(nftVersionString()), release build, \(repeats) repetitions per figure (median, min – max), daemon idle window \(idle) s",
                "peers: \(PeerGenerator.mixDescription)"]
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    }

    static func nftVersionString() -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-bench-nft-version-\(getpid())").path
        defer { unlink(path) }
        guard (try? Child.run(["nft", "--version"], stdout: path)) != nil else { return "nft ?" }
        return ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "nft ?").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
