import FoundationEssentials
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
        // A dot that exits before reading all of its input (a broken install) closes the pipe:
        // that must fail the layout (EPIPE, reported below by its exit status), not kill the
        // command with SIGPIPE. `check` is a one-shot command and never writes to a closed pipe
        // on purpose, so ignoring the signal for the process is safe.
        signal(SIGPIPE, SIG_IGN)
        let run: ChildProcess.Result
        do {
            run = try ChildProcess.run(executable, ["-Tsvg"], input: Array(dot.utf8))
        } catch {
            return .unavailable("\(executable) could not be started: \(error)")
        }
        let text = String(decoding: run.output, as: UTF8.self)
        guard run.status == 0, let start = text.firstRange(ofBytes: "<svg") else {
            let why = String(decoding: run.errors, as: UTF8.self).trimmingWhitespace()
            return .unavailable("\(executable) -Tsvg failed (exit \(run.status))\(why.isEmpty ? "" : ": \(why)")")
        }
        return .svg(String(text[start.lowerBound...]).trimmingWhitespace())
    }
}
