/// Where keys and values sit in a TOML document, so that errors found after parsing (an unknown
/// role, a malformed address) can name a line.
///
/// TOMLKit reports positions only for syntax errors; its values carry none. The document has already
/// been parsed by TOMLKit when this runs, so the scan only needs to recognise table headers and
/// `key =` lines of a valid document, and string values inside a key's extent.
struct SourceMap {
    private struct KeyEntry {
        let line: Int
        var endLine: Int
    }

    private let text: String
    /// The UTF-8 offset at which each line starts; line n (from one) ends before the next one's `\n`.
    private let lineStarts: [Int]
    private var keys: [String: KeyEntry] = [:]
    private var headers: [String: Int] = [:]

    init(text: String) {
        self.text = text
        // One pass over the bytes, no substring a line: a config may list 100,000 addresses, one
        // a line, and a line without `=` or `[` is neither a key nor a header (it can only
        // continue a value).
        var starts = [0]
        var candidates: [Int] = []
        var bytes = text
        bytes.withUTF8 { utf8 in
            var marked = false
            for (i, b) in utf8.enumerated() {
                if b == UInt8(ascii: "\n") {
                    if marked { candidates.append(starts.count - 1) }
                    starts.append(i + 1)
                    marked = false
                } else if b == UInt8(ascii: "=") || b == UInt8(ascii: "[") {
                    marked = true
                }
            }
            if marked { candidates.append(starts.count - 1) }
        }
        lineStarts = starts
        var table = ""
        var arrayCounts: [String: Int] = [:]
        var lastKey: String?
        for index in candidates {
            let lineNo = index + 1
            let line = SourceMap.stripComment(self.line(index)).trimmingCharacters(in: " \t\r")
            if line.hasPrefix("[[") {
                let name = SourceMap.keyPath(String(line.dropFirst(2).prefix { $0 != "]" }))
                let n = arrayCounts[name, default: 0]
                arrayCounts[name] = n + 1
                table = "\(name)[\(n)]"
                headers[table] = lineNo
                closeKey(&lastKey, before: lineNo)
            } else if line.hasPrefix("[") {
                table = SourceMap.keyPath(String(line.dropFirst().prefix { $0 != "]" }))
                headers[table] = lineNo
                closeKey(&lastKey, before: lineNo)
            } else if let eq = SourceMap.assignmentIndex(line) {
                let key = SourceMap.keyPath(String(line[..<eq]))
                let full = table.isEmpty ? key : "\(table).\(key)"
                closeKey(&lastKey, before: lineNo)
                if keys[full] == nil { keys[full] = KeyEntry(line: lineNo, endLine: lineCount) }
                lastKey = full
            }
        }
    }

    private var lineCount: Int { lineStarts.count }

    /// Line `index` (from zero), without its `\n`.
    private func line(_ index: Int) -> Substring {
        let utf8 = text.utf8
        let start = utf8.index(utf8.startIndex, offsetBy: lineStarts[index])
        let end = index + 1 < lineStarts.count ? utf8.index(utf8.startIndex, offsetBy: lineStarts[index + 1] - 1) : utf8.endIndex
        return Substring(utf8[start..<end])
    }

    private mutating func closeKey(_ key: inout String?, before line: Int) {
        if let k = key, var e = keys[k], e.endLine == lineCount {
            e.endLine = line - 1
            keys[k] = e
        }
        key = nil
    }

    /// The line of `path` (`host.roles`, `rule[3].ports`), or of its table header, or nil.
    func line(of path: String) -> Int? {
        if let e = keys[path] { return e.line }
        if let h = headers[path] { return h }
        return nil
    }

    /// The line, within the extent of key `path`, where the string `value` is written; falls back to
    /// the key's own line.
    func line(of path: String, value: String) -> Int? {
        guard let e = keys[path] else { return line(of: path) }
        let needles = ["\"\(value)\"", "'\(value)'"]
        for n in e.line...max(e.line, e.endLine) where n <= lineCount {
            let text = line(n - 1)
            if needles.contains(where: { text.firstRange(ofBytes: $0) != nil }) { return n }
        }
        return e.line
    }

    // MARK: - lexical helpers (for an already-valid document)

    // Every delimiter below is ASCII, so the scans run over UTF-8 bytes: a byte of a multi-byte
    // character is never ASCII, and Character-by-Character iteration (grapheme breaking) cost a
    // 30-line config 1.4 M instructions, a twentieth of a one-shot `apply`.

    /// The line without a trailing comment; `#` inside strings is kept.
    static func stripComment(_ line: Substring) -> Substring {
        var inBasic = false, inLiteral = false, escaped = false
        let utf8 = line.utf8
        for i in utf8.indices {
            let c = utf8[i]
            if inBasic {
                if escaped { escaped = false } else if c == UInt8(ascii: "\\") { escaped = true } else if c == UInt8(ascii: "\"") { inBasic = false }
            } else if inLiteral {
                if c == UInt8(ascii: "'") { inLiteral = false }
            } else if c == UInt8(ascii: "\"") { inBasic = true } else if c == UInt8(ascii: "'") { inLiteral = true } else if c == UInt8(ascii: "#") {
                return line[..<i]
            }
        }
        return line
    }

    /// Index of the `=` of a `key = value` line, if the line starts with a key (letters, digits,
    /// `_ - .`, blanks, quoted parts; bytes of non-ASCII characters count as letters).
    static func assignmentIndex(_ line: String) -> String.Index? {
        var inQuote: UInt8?
        let utf8 = line.utf8
        for i in utf8.indices {
            let c = utf8[i]
            if let q = inQuote {
                if c == q { inQuote = nil }
            } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                inQuote = c
            } else if c == UInt8(ascii: "=") {
                return i
            } else if !(c >= 0x80 || isBareKeyByte(c) || c == UInt8(ascii: ".") || c == UInt8(ascii: " ") || c == UInt8(ascii: "\t")) {
                return nil
            }
        }
        return nil
    }

    private static func isBareKeyByte(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-")
    }

    /// `a . "b c"` → `a.b c`: dotted keys joined, quotes and blanks removed.
    static func keyPath(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        var inQuote: UInt8?
        for c in text.utf8 {
            if let q = inQuote {
                if c == q { inQuote = nil } else { out.append(c) }
            } else if c == UInt8(ascii: "\"") || c == UInt8(ascii: "'") {
                inQuote = c
            } else if c != UInt8(ascii: " ") && c != UInt8(ascii: "\t") {
                out.append(c)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
