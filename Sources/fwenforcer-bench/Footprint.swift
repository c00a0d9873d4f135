import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What installing fwenforcer costs on disk, beside what nft costs: the binary as the package ships
/// it (stripped), and the package itself.
enum Footprint {
    /// Rows for the report; `peers` 0 marks a figure that does not depend on N.
    static func rows(fwenforcerd: String, deb: String?, scratch: String) throws -> [Row] {
        let stripped = scratch + "/fwenforcerd.stripped"
        try Child.run(["strip", "-o", stripped, fwenforcerd])
        defer { unlink(stripped) }
        let ours = try size(of: stripped)
        let nftFiles = nftInstalledFiles()
        let nft = try nftFiles.reduce(0) { $0 + (try size(of: $1)) }
        var rows = [Row(metric: "installed binary, stripped (/usr/sbin/fwenforcerd; static Swift runtime)", peers: 0,
                        ours: Sample([Double(ours)], .bytes), nft: Sample([Double(nft)], .bytes),
                        nftLabel: nftFiles.map { ($0 as NSString).lastPathComponent }.joined(separator: " + "),
                        target: "≤ 15 MB (15,000,000 bytes)", met: ours <= 15_000_000)]
        if let deb {
            let bytes = try size(of: deb)
            rows.append(Row(metric: "Debian package (\((deb as NSString).lastPathComponent))", peers: 0,
                            ours: Sample([Double(bytes)], .bytes), target: "≤ 6 MB (6,000,000 bytes)", met: bytes <= 6_000_000))
        }
        return rows
    }

    /// nft's own executable and library, as Debian installs them (its other libraries, libc
    /// included, are shared with the system, as libnftnl and libmnl are for fwenforcerd).
    static func nftInstalledFiles() -> [String] {
        let candidates = ["/usr/sbin/nft"] + ["/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"].map { $0 + "/libnftables.so.1" }
        var files: [String] = []
        for path in candidates where access(path, F_OK) == 0 {
            let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)).map {
                $0.hasPrefix("/") ? $0 : ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent($0)
            } ?? path
            if !files.contains(real) { files.append(real) }
        }
        return files
    }

    static func size(of path: String) throws -> Int {
        var st = stat()
        guard stat(path, &st) == 0 else { throw BenchError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        return Int(st.st_size)
    }

    /// The newest `fwenforcer_*.deb` in `directory`, if any.
    static func newestPackage(in directory: String) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("fwenforcer_") && $0.hasSuffix(".deb") }
            .map { directory + "/" + $0 }
            .max { modified($0) < modified($1) }
    }

    private static func modified(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mtim.tv_sec : 0
    }
}
