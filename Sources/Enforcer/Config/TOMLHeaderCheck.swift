/// The one check toml++ (TOMLKit's parser) leaves to an assertion: a table header's first key
/// character. For `[é]`, `[\u{18}x]`, `[` then a line break or `[ #`, toml++ 3 asserts
/// `is_bare_key_character(*cp) || is_string_delimiter(*cp)` in `parse_key()`: an abort in our builds
/// (`fwenforcerd check`, and the daemon reading the file, ended with SIGABRT), undefined behaviour
/// where NDEBUG makes it an assumption. Found by `make fuzz` (fuzz/corpus/config/regression-*).
///
/// So the text is scanned first, as toml++ reads it: a header is a `[` (or `[[`) that opens a line
/// outside any multi-line string or bracketed value; after it and spaces or tabs, the next
/// character must start a bare key (A-Z a-z 0-9 _ -), open a quoted key, or be toml++'s own
/// error case `]`. Everything else in the document is left to toml++, which reports it.
enum TOMLHeaderCheck {
    struct Failure: Equatable {
        let line: Int
        let column: Int
        /// The character toml++ would have asserted on; nil at a line break.
        let found: Unicode.Scalar?

        var message: String {
            let saw: String
            if let found, found.properties.generalCategory == .control {
                let hex = String(found.value, radix: 16, uppercase: true)
                saw = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
            } else if let found {
                saw = "'\(found)'"
            } else {
                saw = "a line break"
            }
            return "a table header must start with a bare key character or a quote, saw \(saw) (column \(column))"
        }
    }

    /// Scans the UTF-8 bytes in place (a config may list 100,000 addresses): every character
    /// that matters is ASCII, and the one found is decoded only for the message.
    static func firstFailure(in text: String) -> Failure? {
        var text = text
        text.makeContiguousUTF8()
        return text.utf8.withContiguousStorageIfAvailable { scan($0) } ?? nil
    }

    private static func scan(_ s: UnsafeBufferPointer<UInt8>) -> Failure? {
        let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
        let open = UInt8(ascii: "["), backslash = UInt8(ascii: "\\")
        // toml++ skips a byte order mark before the first line.
        var i = s.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0, line = 1, lineStart = i
        // Open brackets and braces of the value being read: a `[` opening a line inside one is an
        // array element, not a header.
        var depth = 0
        var atLineStart = true
        var inHeader = false

        func skipString(_ quote: UInt8, multiline: Bool) {
            while i < s.count {
                if quote == UInt8(ascii: "\"") && s[i] == backslash { i += 2; continue }
                if s[i] == newline {
                    if !multiline { return }
                    line += 1
                    lineStart = i + 1
                } else if s[i] == quote && (!multiline || (i + 2 < s.count && s[i + 1] == quote && s[i + 2] == quote)) {
                    i += multiline ? 3 : 1
                    // Up to two more quotes belong to the string (`""""` ends a string with `"`).
                    while multiline && i < s.count && s[i] == quote { i += 1 }
                    return
                }
                i += 1
            }
        }
        func skipBlanks() { while i < s.count && (s[i] == space || s[i] == tab) { i += 1 } }

        while i < s.count {
            let c = s[i]
            if c == newline {
                line += 1
                i += 1
                lineStart = i
                atLineStart = true
                inHeader = false
                continue
            }
            if atLineStart && (c == space || c == tab) { i += 1; continue }
            if atLineStart && depth == 0 && c == open {
                atLineStart = false
                inHeader = true
                i += 1
                skipBlanks()
                if i < s.count && s[i] == open {
                    i += 1
                    skipBlanks()
                }
                guard i < s.count else { return nil }
                let k = s[i]
                let startsKey = (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(k) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(k)
                    || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(k) || k == UInt8(ascii: "_") || k == UInt8(ascii: "-")
                if !(startsKey || k == UInt8(ascii: "\"") || k == UInt8(ascii: "'") || k == UInt8(ascii: "]")) {
                    // Columns count characters, as toml++'s do.
                    let before = String(decoding: UnsafeBufferPointer(rebasing: s[lineStart..<i]), as: UTF8.self)
                    let found = String(decoding: UnsafeBufferPointer(rebasing: s[i...]), as: UTF8.self).unicodeScalars.first
                    return Failure(line: line, column: before.unicodeScalars.count + 1, found: k == newline ? nil : found)
                }
                continue
            }
            atLineStart = false
            switch c {
            case UInt8(ascii: "#"):
                while i < s.count && s[i] != newline { i += 1 }
                continue
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let multiline = i + 2 < s.count && s[i + 1] == c && s[i + 2] == c
                i += multiline ? 3 : 1
                skipString(c, multiline: multiline)
                continue
            case open, UInt8(ascii: "{"):
                if !inHeader { depth += 1 }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if !inHeader { depth = max(0, depth - 1) }
            default:
                break
            }
            i += 1
        }
        return nil
    }
}
