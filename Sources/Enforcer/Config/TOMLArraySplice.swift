/// Long arrays of plain strings, read here instead of by toml++.
///
/// A group of 100,000 addresses is one TOML array of 100,000 strings; toml++ spends some 4,400
/// instructions on each (a node, a `std::string`, region bookkeeping), then TOMLKit and the
/// reader copy each one out again: 40 % of a daemon's reload. The strings of such an array are
/// plain, so their bytes are their values. This finds every array value of a `key = [` line
/// (outside strings and brackets) whose elements are all plain strings (`"..."` without escapes,
/// or `'...'`, printable ASCII; comments between them ASCII too), takes the strings, and hands
/// toml++ a copy of the text in which the array's inside is one marker string (`"\u0001N"`) and
/// the line breaks it had. toml++ still sees every key and table, so duplicates, types and
/// syntax elsewhere are its to judge as before, at the same lines and columns; only arrays that
/// are valid TOML are replaced, so no error can come from inside one.
///
/// The marker is a string no config holds: the text may not contain a `\u0001` or `\U00000001`
/// escape (else nothing is replaced), and a raw U+0001 is not TOML. Arrays shorter than
/// `minimumCount` are left to toml++.
struct TOMLArraySplice {
    /// The text for toml++ (the original when nothing was replaced).
    let text: String
    /// The strings of each replaced array, by marker number.
    let arrays: [[String]]

    static let defaultMinimumCount = 16

    /// The strings of the array a marker stands for, or nil for any other string.
    func strings(forMarker value: String) -> [String]? {
        guard value.utf8.first == 1, let n = Int(value.dropFirst()), arrays.indices.contains(n) else { return nil }
        return arrays[n]
    }

    init(_ original: String, minimumCount: Int = TOMLArraySplice.defaultMinimumCount) {
        var source = original
        let found: (bytes: [UInt8]?, arrays: [[String]]) = source.withUTF8 { Self.scan($0, minimumCount: minimumCount) }
        arrays = found.arrays
        text = found.bytes.map { String(decoding: $0, as: UTF8.self) } ?? original
    }

    private static let newline = UInt8(ascii: "\n"), space = UInt8(ascii: " "), tab = UInt8(ascii: "\t")
    private static let cr = UInt8(ascii: "\r"), hash = UInt8(ascii: "#"), backslash = UInt8(ascii: "\\")
    private static let quote = UInt8(ascii: "\""), apostrophe = UInt8(ascii: "'")

    private static func isBareKey(_ b: UInt8) -> Bool {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
    }

    private static func scan(_ s: UnsafeBufferPointer<UInt8>, minimumCount: Int) -> (bytes: [UInt8]?, arrays: [[String]]) {
        if containsMarkerEscape(s) { return (nil, []) }
        var out: [UInt8] = []
        var copied = 0  // bytes of `s` up to here are in `out` (or replaced there)
        var arrays: [[String]] = []
        var i = s.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var depth = 0  // open brackets and braces of the value being read
        var atLineStart = true

        // Past a string starting at `i` (on its opening quote); as TOMLPreflight and toml++ read it.
        func skipString() {
            let q = s[i]
            let multiline = i + 2 < s.count && s[i + 1] == q && s[i + 2] == q
            i += multiline ? 3 : 1
            while i < s.count {
                if q == quote && s[i] == backslash { i += 2; continue }
                if s[i] == newline && !multiline { return }
                if s[i] == q && (!multiline || (i + 2 < s.count && s[i + 1] == q && s[i + 2] == q)) {
                    i += multiline ? 3 : 1
                    while multiline && i < s.count && s[i] == q { i += 1 }
                    return
                }
                i += 1
            }
        }

        while i < s.count {
            let c = s[i]
            if c == newline { i += 1; atLineStart = true; continue }
            if atLineStart && (c == space || c == tab) { i += 1; continue }
            if atLineStart && depth == 0 {
                atLineStart = false
                if c == UInt8(ascii: "[") {
                    // A table header: its brackets open no value.
                    while i < s.count && s[i] != newline && s[i] != hash {
                        if s[i] == quote || s[i] == apostrophe { skipString() } else { i += 1 }
                    }
                    continue
                }
                if let open = arrayAfterKey(s, at: i), let array = plainArray(s, open: open), array.strings.count >= minimumCount,
                   let inside = replacement(s, from: open + 1, to: array.close, marker: Array("\"\\u0001\(arrays.count)\"".utf8)) {
                    if out.isEmpty { out.reserveCapacity(s.count / 8) }
                    out += s[copied...open]
                    out += inside
                    copied = array.close
                    arrays.append(array.strings)
                    i = array.close + 1
                    continue
                }
            }
            atLineStart = false
            switch c {
            case hash:
                while i < s.count && s[i] != newline { i += 1 }
                continue
            case quote, apostrophe:
                skipString()
                continue
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            default:
                break
            }
            i += 1
        }
        if arrays.isEmpty { return (nil, []) }
        out += s[copied...]
        return (out, arrays)
    }

    /// `key = [` from `i`: a bare key, blanks, `=`, blanks; the index of the `[`.
    private static func arrayAfterKey(_ s: UnsafeBufferPointer<UInt8>, at start: Int) -> Int? {
        var i = start
        while i < s.count && isBareKey(s[i]) { i += 1 }
        guard i > start else { return nil }
        while i < s.count && (s[i] == space || s[i] == tab) { i += 1 }
        guard i < s.count && s[i] == UInt8(ascii: "=") else { return nil }
        i += 1
        while i < s.count && (s[i] == space || s[i] == tab) { i += 1 }
        return i < s.count && s[i] == UInt8(ascii: "[") ? i : nil
    }

    /// The array opening at `open` when it holds only plain strings, separated by commas, blanks,
    /// line breaks and comments (a trailing comma allowed), and its line ends after the `]`.
    private static func plainArray(_ s: UnsafeBufferPointer<UInt8>, open: Int) -> (strings: [String], close: Int)? {
        var strings: [String] = []
        var i = open + 1
        var expectValue = true  // after `[` or `,`
        func skipSpace() -> Bool {
            while i < s.count {
                switch s[i] {
                case space, tab, newline: i += 1
                case cr:
                    guard i + 1 < s.count && s[i + 1] == newline else { return false }
                    i += 2
                case hash:
                    i += 1
                    while i < s.count && s[i] != newline {
                        let b = s[i]
                        // TOML refuses control characters in comments, except tab; ASCII only, so that
                        // bytes count characters (columns).
                        guard b == tab || (b >= 0x20 && b < 0x7F) else { return false }
                        i += 1
                    }
                default: return true
                }
            }
            return true
        }
        while true {
            guard skipSpace(), i < s.count else { return nil }
            let c = s[i]
            if c == UInt8(ascii: "]") { break }
            guard expectValue, c == quote || c == apostrophe else {
                guard !expectValue, c == UInt8(ascii: ",") else { return nil }
                expectValue = true
                i += 1
                continue
            }
            let start = i + 1
            var j = start
            while j < s.count && s[j] != c {
                let b = s[j]
                guard b >= 0x20 && b < 0x7F && b != backslash else { return nil }
                j += 1
            }
            guard j < s.count else { return nil }
            // `""` then `"`: a multi-line string, not a plain one.
            if j == start && j + 1 < s.count && s[j + 1] == c { return nil }
            strings.append(String(decoding: UnsafeBufferPointer(rebasing: s[start..<j]), as: UTF8.self))
            i = j + 1
            expectValue = false
        }
        let close = i
        // After the `]`: blanks, then a comment or the end of the line.
        var k = close + 1
        while k < s.count && (s[k] == space || s[k] == tab) { k += 1 }
        guard k == s.count || s[k] == newline || s[k] == hash || (s[k] == cr && k + 1 < s.count && s[k + 1] == newline) else {
            return nil
        }
        return (strings, close)
    }

    /// What replaces the inside of an array, `s[from..<to]`, for toml++: the marker, then only
    /// the line breaks (toml++ reads blanks a character at a time, as dear as the strings), and on
    /// the `]`'s line as many blanks as there were characters before it, so that the lines and
    /// the columns of everything after the array stay what they were. nil when a one-line array
    /// is too short to hold the marker.
    private static func replacement(_ s: UnsafeBufferPointer<UInt8>, from: Int, to: Int, marker: [UInt8]) -> [UInt8]? {
        var breaks = 0
        var lastLineStart = from
        for k in from..<to where s[k] == newline {
            breaks += 1
            lastLineStart = k + 1
        }
        let tail = to - lastLineStart  // bytes (ASCII: characters) before the `]` on its line
        if breaks == 0 {
            guard tail >= marker.count else { return nil }
            return marker + [UInt8](repeating: space, count: tail - marker.count)
        }
        return marker + [UInt8](repeating: newline, count: breaks) + [UInt8](repeating: space, count: tail)
    }

    /// Whether the text holds an escape for U+0001 (`\u0001`, `\U00000001`), which a marker could be mistaken for.
    private static func containsMarkerEscape(_ s: UnsafeBufferPointer<UInt8>) -> Bool {
        let short = Array("u0001".utf8), long = Array("U00000001".utf8)
        var i = 0
        while let b = s[i...].firstIndex(of: backslash) {
            let rest = s[(b + 1)...]
            if rest.starts(with: short) || rest.starts(with: long) { return true }
            i = b + 1
        }
        return false
    }
}
