import Foundation
import Testing

/// The benchmark harness at the smallest size: it must run end to end (its own namespace, nft,
/// the real daemon) and write a results table with every measurement. Figures are not judged here;
/// `make bench` is the measurement (docs/benchmarks.md).
@Suite(.enabled(if: kernelTestsAvailable, kernelTestsSkipReason))
struct BenchSmokeTests {
    @Test func harnessWritesTheResultsTable() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fwe-bench-smoke-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let r = try run([builtExecutablePath("fwenforcer-bench"), "--sizes", "10", "--repeats", "2", "--idle-seconds", "1",
                         "--output", out, "--fwenforcerd", fwenforcerdPath])
        #expect(r.status == 0, "\(r.stderr)")
        let markdown = try String(contentsOfFile: out + "/results.md", encoding: .utf8)
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8).split(separator: "\n")
        for metric in ["plan (parse + compile + render)", "full apply: netlink transaction, in-process",
                       "replace one peer (hash set): netlink transaction", "replace one peer (interval set): netlink transaction",
                       "replace one peer (hash set, next to a member): netlink transaction",
                       "read-back of the whole table", "config change to enforced", "daemon idle 1 s: CPU"] {
            #expect(markdown.contains("| \(metric)"), "results.md lacks \(metric)")
            #expect(csv.contains { $0.hasPrefix("\"\(metric)") && $0.contains(",10,") }, "results.csv lacks \(metric)")
        }
        // Every row with an nft figure has a ratio (columns: measurement, N, ours, spread, nft, spread, ratio, target).
        for line in markdown.split(separator: "\n") where line.hasPrefix("| ") && line.contains(" | 10 | ") {
            let columns = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            #expect(columns.count == 10, "malformed row \(line)")
            if columns.count == 10, columns[5] != "–" { #expect(Double(columns[7]) != nil, "no ratio in \(line)") }
        }
    }
}
