import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Lays a DOT graph out as SVG with Graphviz's `dot`, for the HTML page. Graphviz is optional
/// (fwenforcerd does not depend on it): without it the page says so and still gives the rest.
public enum Graphviz {
    public enum Layout: Sendable, Hashable {
        /// The `<svg>` element, without the XML prologue and doctype, ready to inline in HTML.
        case svg(String)
        /// Why there is no diagram, in words for the page.
        case unavailable(String)
    }

    /// The first executable `dot` on `PATH`.
    public static func findDot(searchPath: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        for dir in (searchPath ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/dot"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `dot -Tsvg` on `dot`. `executable` nil: looked up on PATH.
    public static func layout(_ dot: String, executable: String? = findDot()) -> Layout {
        guard let executable else {
            return .unavailable("Graphviz (dot) is not installed on the machine that made this page")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["-Tsvg"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        do {
            try p.run()
        } catch {
            return .unavailable("\(executable) could not be started: \(error)")
        }
        // Feed and drain concurrently: dot may write before it has read everything, and either
        // pipe filling up would block both processes.
        final class Box: @unchecked Sendable { var data = Data() }
        let err = Box()
        let group = DispatchGroup()
        // A dot that exits before reading all of its input (a broken install) closes the pipe:
        // that must fail the layout (EPIPE, reported below by its exit status), not kill the
        // command with SIGPIPE. `check` is a one-shot command and never writes to a closed pipe
        // on purpose, so ignoring the signal for the process is safe.
        signal(SIGPIPE, SIG_IGN)
        DispatchQueue.global().async(group: group) {
            try? input.fileHandleForWriting.write(contentsOf: Data(dot.utf8))
            try? input.fileHandleForWriting.close()
        }
        DispatchQueue.global().async(group: group) { err.data = errors.fileHandleForReading.readDataToEndOfFile() }
        let svg = output.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        let text = String(decoding: svg, as: UTF8.self)
        guard p.terminationStatus == 0, let start = text.range(of: "<svg") else {
            let why = String(decoding: err.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return .unavailable("\(executable) -Tsvg failed (exit \(p.terminationStatus))\(why.isEmpty ? "" : ": \(why)")")
        }
        return .svg(String(text[start.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
