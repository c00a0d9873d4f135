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

    static func firstFailure(in text: String) -> Failure? {
        let s = Array(text.unicodeScalars)
        // toml++ skips a byte order mark before the first line.
        var i = s.first == "\u{FEFF}" ? 1 : 0, line = 1, lineStart = i
        // Open brackets and braces of the value being read: a `[` opening a line inside one is an
        // array element, not a header.
        var depth = 0
        var atLineStart = true
        var inHeader = false

        func skip(_ quote: Unicode.Scalar, multiline: Bool) {
            let escapes = quote == "\""
            while i < s.count {
                if escapes && s[i] == "\\" { i += 2; continue }
                if s[i] == "\n" {
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

        while i < s.count {
            let c = s[i]
            if c == "\n" {
                line += 1
                i += 1
                lineStart = i
                atLineStart = true
                inHeader = false
                continue
            }
            if atLineStart && (c == " " || c == "\t") { i += 1; continue }
            if atLineStart && depth == 0 && c == "[" {
                atLineStart = false
                inHeader = true
                i += 1
                while i < s.count && (s[i] == " " || s[i] == "\t") { i += 1 }
                if i < s.count && s[i] == "[" {
                    i += 1
                    while i < s.count && (s[i] == " " || s[i] == "\t") { i += 1 }
                }
                guard i < s.count else { return nil }
                let k = s[i]
                let startsKey = k.isASCII && (k.properties.isAlphabetic || ("0"..."9").contains(k) || k == "_" || k == "-")
                if !(startsKey || k == "\"" || k == "'" || k == "]") {
                    return Failure(line: line, column: i - lineStart + 1, found: k == "\n" ? nil : k)
                }
                continue
            }
            atLineStart = false
            switch c {
            case "#":
                while i < s.count && s[i] != "\n" { i += 1 }
                continue
            case "\"", "'":
                let multiline = i + 2 < s.count && s[i + 1] == c && s[i + 2] == c
                i += multiline ? 3 : 1
                skip(c, multiline: multiline)
                continue
            case "[", "{":
                if !inHeader { depth += 1 }
            case "]", "}":
                if !inHeader { depth = max(0, depth - 1) }
            default:
                break
            }
            i += 1
        }
        return nil
    }
}
