#if os(Linux)
import Foundation
import Glibc
import Testing
@testable import Enforcer

/// The shipped code does not link Foundation (its ICU data made three quarters of the binary, issue
/// 14); what it took from Foundation is written out in `PathText`, `String(cFormat:)`,
/// `StringEditing`, `ChildProcess` and `HTMLRenderer.withoutPoints`. These compare each with the
/// Foundation call it replaced, on the inputs the code gives it and on the awkward ones.
@Suite struct FoundationParityTests {
    // Not "//" (NSString gives "", PathText "/"), nor a one-character relative name: NSString's
    // deletingLastPathComponent traps on "a" (a precondition in swift-corelibs-foundation).
    static let paths = ["", "/", "ab", "ab/", "/a", "/a/", "//a//b//", "/etc/fwenforcer/fwenforcer.conf",
                        "etc/fw.conf", "./fw.conf", "../x/../y.conf", "/a/./b/..", "a b/c d", "/é/ü.toml"]
    static let components = ["", "c.toml", "catalogs/c.toml", "./c.toml", "../c.toml", "c/", "a//b", "/abs.toml"]

    @Test func directoriesAreNSStringsLastComponentDeleted() {
        for path in Self.paths {
            #expect(PathText.directory(of: path) == (path as NSString).deletingLastPathComponent, "\(path)")
        }
    }

    @Test func joinedPathsAreNSStringsAppendedComponent() {
        for base in Self.paths {
            for component in Self.components where !component.hasPrefix("/") {
                #expect(PathText.joining(base, component) == (base as NSString).appendingPathComponent(component), "\(base) + \(component)")
            }
        }
    }

    @Test func cFormatIsStringFormat() {
        for ms in [0, 0.004, 0.005, 0.015, 1, 1.25, 2.675, 12.3456, 999.995, 123_456.789, -3.5, 1e-9] {
            #expect(String(cFormat: "%.1f ms", ms) == String(format: "%.1f ms", ms))
            #expect(String(cFormat: "%.2f ms", ms) == String(format: "%.2f ms", ms))
        }
        for (major, minor, inode) in [(UInt64(0), UInt64(0), UInt64(0)), (8, 1, 1234), (0x103, 0xabc, UInt64.max), (259, 3, 42)] {
            #expect(String(cFormat: "%02llx:%02llx:%llu", major, minor, inode) == String(format: "%02llx:%02llx:%llu", major, minor, inode))
        }
        let long = String(repeating: "x", count: 300)
        #expect(String(cFormat: long + "-%.1f", 2.0) == long + "-2.0")
    }

    /// The report and `status` print dates read back from JSON written with `.iso8601` (whole
    /// seconds). Within the last half millisecond of a second the two differ: ICU rounds to the
    /// millisecond first (…:31Z for …:30.9999995), the format style truncates (…:30Z), as the rest
    /// of fwenforcerd's lines already did.
    @Test func timestampsAreISO8601DateFormatters() {
        let formatter = ISO8601DateFormatter()
        for seconds in [0, 1, 59.999, 86_399.5, 951_782_400, 1_764_590_400.25, 4_102_444_800, 1_234_567_890.999] {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(ISO8601Format.string(date) == formatter.string(from: date), "\(seconds)")
        }
    }

    static let texts = ["", "plain", "a&b<c>d\"e", "back\\slash \"quoted\"\nnew line", "\r\n", "é ü 漢字 😀", "&amp;",
                        "  both  ", "\t\n x \u{a0}\u{2028}", "\u{3000}y\u{85}", " \u{301}"]
    /// A character to escape followed by a combining mark: one grapheme, which Foundation's
    /// replacingOccurrences left alone (`<́` reached the HTML page and `"́` the nft string as written).
    static let combined = ["<\u{301}", "\"\u{301}x", "a>\u{20dd}", "\\\u{301}"]

    @Test func scalarReplacementIsReplacingOccurrences() {
        for text in Self.texts {
            #expect(DOTRenderer.escape(text)
                    == text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
                        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;"), "\(text)")
            #expect(text.replacingScalars(["\\": "\\\\", "\"": "\\\"", "\n": "\\n"])
                    == text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
                        .replacingOccurrences(of: "\n", with: "\\n"), "\(text)")
            #expect(NftRenderer.quote(text) == "\"" + text.replacingOccurrences(of: "\"", with: "'") + "\"", "\(text)")
        }
    }

    @Test func markupCharactersAreEscapedEvenUnderACombiningMark() {
        for text in Self.combined {
            let markup = DOTRenderer.escape(text)
            #expect(!markup.unicodeScalars.contains { "<>\"".unicodeScalars.contains($0) }, "\(markup)")
            let nft = NftRenderer.quote(text).dropFirst().dropLast()
            #expect(!nft.unicodeScalars.contains("\""), "\(nft)")
        }
    }

    @Test func trimmingIsTrimmingWhitespacesAndNewlines() {
        for text in Self.texts + Self.combined + ["1234\n", "\n\n", " 7 "] {
            #expect(text.trimmingWhitespace() == text.trimmingCharacters(in: .whitespacesAndNewlines), "\(text.unicodeScalars.map(\.value))")
        }
    }

    @Test func paddingIsNSStringPadding() {
        for text in Self.texts + Self.combined + ["AMQP_v4", "in"] {
            for length in [0, 1, 3, 8, 20] {
                #expect(text.padded(toLength: length) == text.padding(toLength: length, withPad: " ", startingAt: 0), "\(text) \(length)")
            }
        }
    }

    @Test func byteSearchIsRangeOf() {
        for (text, needle) in [("<?xml?>\n<svg width=\"1\">", "<svg"), ("no svg", "<svg"), ("<sv<svg", "<svg"), ("", "<svg"), ("é<svg", "<svg")] {
            let mine = text.firstRange(ofBytes: needle).map { text[$0.lowerBound...] }
            let theirs = text.range(of: needle).map { text[$0.lowerBound...] }
            #expect(mine == theirs, "\(text)")
        }
    }

    @Test func pointsAreDroppedAsTheRegularExpressionDid() {
        let heads = ["<svg width=\"620pt\" height=\"1048.5pt\" viewBox=\"0 0 620 1048\"",
                     "<svg width=\"pt\" height=\"12px\"", "<svg stroke-width=\"1pt\" width=\"2.pt\" width=\"3pt\"", "<svg width=\"1pt",
                     "<svg width=\"1.2.3pt\"height=\"4pt\"", "", "<svg é width=\"5pt\""]
        for head in heads {
            var theirs = head
            for attribute in ["width", "height"] {
                theirs = theirs.replacingOccurrences(of: "\(attribute)=\"([0-9.]+)pt\"", with: "\(attribute)=\"$1\"", options: .regularExpression)
            }
            #expect(HTMLRenderer.withoutPoints(HTMLRenderer.withoutPoints(head, "width"), "height") == theirs, "\(head)")
        }
    }

    /// syslog's `%s` gets the message; before, a Swift String went through `withVaList` as Foundation's
    /// object pointer and the journal got the bytes of the object.
    @Test func syslogGetsTheMessageAsACString() {
        for text in ["rolled back to config sha256 0123456789ab", "", "é 漢字"] {
            var buffer = [CChar](repeating: 0, count: 256)
            let count = SyslogLogHandler.withMessage(text) { vsnprintf(&buffer, buffer.count, "%s", $0) }
            #expect(Int(count) == text.utf8.count)
            #expect(String(cString: buffer) == text)
        }
    }

    @Test func childProcessesAreFedAndDrainedAsProcessDid() throws {
        // More than a pipe holds both ways: cat writes before it has read everything.
        let big = Array(repeating: Array("0123456789abcdef\n".utf8), count: 20_000).joined()
        let cat = try ChildProcess.run("/bin/cat", [], input: Array(big))
        #expect(cat.status == 0 && cat.output == Array(big) && cat.errors.isEmpty)
        let both = try ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], mergingErrors: true)
        #expect(both.status == 3 && String(decoding: both.output, as: UTF8.self) == "out\nerr\n")
        let split = try ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2"])
        #expect(split.output == Array("out\n".utf8) && split.errors == Array("err\n".utf8))
        let stdin = try ChildProcess.run("/bin/sh", ["-c", "wc -c"])
        #expect(String(decoding: stdin.output, as: UTF8.self).trimmingWhitespace() == "0")
        let killed = try ChildProcess.run("/bin/sh", ["-c", "kill -TERM $$"])
        #expect(killed.status == SIGTERM)
        #expect(throws: SystemCallError.self) { try ChildProcess.run("/nonexistent/dot", []) }
        // A program that exits without reading its input: EPIPE ends the feeding, not the process.
        signal(SIGPIPE, SIG_IGN)
        let early = try ChildProcess.run("/bin/true", [], input: Array(big))
        #expect(early.status == 0)
    }
}
#endif
