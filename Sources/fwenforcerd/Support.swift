import ArgumentParser
import Enforcer
import FoundationEssentials
import Logging
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// Opens the netlink backend for one command, closes it after, and turns kernel errors into a
/// message and exit 1.
func withBackend(_ body: (NetlinkBackend) throws -> Void) throws {
    let backend: NetlinkBackend
    do {
        backend = try NetlinkBackend()
    } catch {
        printError("error: \(error) (needs root or CAP_NET_ADMIN)")
        throw ExitCode(1)
    }
    defer { backend.close() }
    do {
        try body(backend)
    } catch let e as BackendError {
        printError("error: \(e)")
        throw ExitCode(1)
    }
}

enum TextTable {
    static func render(header: [String], rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for r in rows { for (i, c) in r.enumerated() where i < widths.count - 1 { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in i == cells.count - 1 ? c : c.padded(toLength: widths[i]) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}

func printError(_ s: String) {
    _ = try? FileDescriptor.standardError.writeAll((s + "\n").utf8)
}
