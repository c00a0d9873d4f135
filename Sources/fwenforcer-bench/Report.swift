import Foundation

/// Repeated measurements of one quantity: median and spread (min-max).
struct Sample {
    enum Unit: String { case seconds = "s", bytes = "B", percent = "%", count = "" }

    var values: [Double]
    var unit: Unit

    init(_ values: [Double], _ unit: Unit = .seconds) {
        self.values = values.sorted()
        self.unit = unit
    }

    var median: Double {
        let n = values.count
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2
    }
    var min: Double { values.first ?? 0 }
    var max: Double { values.last ?? 0 }

    func format(_ v: Double) -> String {
        switch unit {
        case .seconds:
            if v < 1e-3 { return String(format: "%.0f µs", v * 1e6) }
            if v < 1 { return String(format: v < 0.01 ? "%.2f ms" : "%.1f ms", v * 1e3) }
            return String(format: "%.2f s", v)
        case .bytes: return String(format: "%.1f MiB", v / 1_048_576)
        case .percent: return String(format: "%.2f %%", v)
        case .count: return String(format: "%.0f", v)
        }
    }

    var text: String { format(median) }
    var spread: String { values.count > 1 ? "\(format(min)) – \(format(max))" : "" }
}

/// One line of the results: our figure, nft's figure where there is one, and the target.
struct Row {
    var metric: String
    var peers: Int
    var ours: Sample
    var nft: Sample?
    /// What was compared, when the nft column needs saying (`nft -f` of the two element changes).
    var nftLabel: String = ""
    var target: String = ""
    /// nil: no target for this row.
    var met: Bool?

    /// nft's time over ours: how many times faster fwenforcer is (for memory: how many times less).
    var ratio: Double? {
        guard let nft, ours.median > 0 else { return nil }
        return nft.median / ours.median
    }
}

/// The results table, as Markdown for reading and CSV for comparing runs.
struct Report {
    var rows: [Row] = []
    var notes: [String] = []

    mutating func add(_ row: Row) {
        rows.append(row)
        let nftText = row.nft.map { "  nft \($0.text)\(row.ratio.map { String(format: " (%.1fx)", $0) } ?? "")" } ?? ""
        let verdict = row.met.map { $0 ? "  [met: \(row.target)]" : "  [MISSED: \(row.target)]" } ?? ""
        FileHandle.standardError.write("  \(row.metric) N=\(row.peers): \(row.ours.text)\(nftText)\(verdict)\n".data(using: .utf8)!)
    }

    var markdown: String {
        var out = ["| measurement | N | ours (median) | ours (min – max) | nft (median) | nft (min – max) | nft ÷ ours | target |",
                   "|---|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows {
            let target = r.met.map { ($0 ? "met: " : "**missed**: ") + r.target } ?? r.target
            let nft = r.nft.map { ($0.text + (r.nftLabel.isEmpty ? "" : " (\(r.nftLabel))"), $0.spread) } ?? ("–", "")
            out.append("| \(r.metric) | \(r.peers == 0 ? "–" : r.peers.formatted()) | \(r.ours.text) | \(r.ours.spread) | \(nft.0) | \(nft.1) | "
                       + "\(r.ratio.map { String(format: "%.1f", $0) } ?? "–") | \(target) |")
        }
        return out.joined(separator: "\n") + "\n"
    }

    var csv: String {
        var out = ["measurement,peers,unit,ours_median,ours_min,ours_max,nft,nft_median,nft_min,nft_max,nft_over_ours,target,met"]
        func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        func n(_ v: Double?) -> String { v.map { String(format: "%.9g", $0) } ?? "" }
        for r in rows {
            out.append([q(r.metric), String(r.peers), r.ours.unit.rawValue, n(r.ours.median), n(r.ours.min), n(r.ours.max),
                        q(r.nftLabel), n(r.nft?.median), n(r.nft?.min), n(r.nft?.max), n(r.ratio), q(r.target),
                        r.met.map { $0 ? "yes" : "no" } ?? ""].joined(separator: ","))
        }
        return out.joined(separator: "\n") + "\n"
    }
}
