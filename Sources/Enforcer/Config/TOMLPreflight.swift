/// The checks toml++ (TOMLKit's parser) leaves to assertions, made before it parses: an abort in
/// our builds (`fwenforcerd check`, and the daemon reading the file, ended with SIGABRT), undefined
/// behaviour where NDEBUG makes them assumptions. Both found by `make fuzz`
/// (fuzz/corpus/config/regression-*):
/// - a table header's first key character: for `[é]`, `[\u{18}x]`, `[` then a line break or
///   `[ #`, toml++ 3 asserts `is_bare_key_character(*cp) || is_string_delimiter(*cp)` in
///   `parse_key()`;
/// - a `}` where an array expects a value (`x = [}`, `[1, }]`): `!is_value_terminator(*cp)` in
///   `parse_value()`.
///
/// The text is scanned as toml++ reads it: a header is a `[` (or `[[`) that opens a line outside
/// any multi-line string or bracketed value; after it and spaces or tabs, the next character must
/// start a bare key (A-Z a-z 0-9 _ -), open a quoted key, or be toml++'s own error case `]`. In an
/// array, after `[` or `,` and blanks, line breaks and comments, a `}` is refused. Everything else
/// is left to toml++, which reports it.
enum TOMLPreflight {
    struct Failure: Equatable {
        let line: Int
        let column: Int
        /// The character toml++ would have asserted on; nil at a line break.
        let found: Unicode.Scalar?

        let problem: Problem

        enum Problem: Equatable {
            case tableHeader
            case arrayValue
        }

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
            switch problem {
            case .tableHeader: return "a table header must start with a bare key character or a quote, saw \(saw) (column \(column))"
            case .arrayValue: return "an array expects a value or ']', saw \(saw) (column \(column))"
            }
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
        let bracket = UInt8(ascii: "["), backslash = UInt8(ascii: "\\")
        // toml++ skips a byte order mark before the first line.
        var i = s.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0, line = 1, lineStart = i
        // Open brackets and braces of the value being read: a `[` opening a line inside one is an
        // array element, not a header.
        var open: [UInt8] = []
        // After an array's `[` or `,`: a value or `]` must come.
        var expectValue = false
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
            if atLineStart && open.isEmpty && c == bracket {
                atLineStart = false
                inHeader = true
                i += 1
                skipBlanks()
                if i < s.count && s[i] == bracket {
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
                    return Failure(line: line, column: before.unicodeScalars.count + 1, found: k == newline ? nil : found, problem: .tableHeader)
                }
                continue
            }
            atLineStart = false
            if c == space || c == tab || c == UInt8(ascii: "\r") { i += 1; continue }
            if c == UInt8(ascii: "#") {
                while i < s.count && s[i] != newline { i += 1 }
                continue
            }
            if expectValue && c == UInt8(ascii: "}") {
                let before = String(decoding: UnsafeBufferPointer(rebasing: s[lineStart..<i]), as: UTF8.self)
                return Failure(line: line, column: before.unicodeScalars.count + 1, found: "}", problem: .arrayValue)
            }
            expectValue = false
            switch c {
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let multiline = i + 2 < s.count && s[i + 1] == c && s[i + 2] == c
                i += multiline ? 3 : 1
                skipString(c, multiline: multiline)
                continue
            case bracket, UInt8(ascii: "{"):
                if !inHeader {
                    open.append(c)
                    expectValue = c == bracket
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if !inHeader { _ = open.popLast() }
            case UInt8(ascii: ","):
                expectValue = !inHeader && open.last == bracket
            default:
                break
            }
            i += 1
        }
        return nil
    }
}
