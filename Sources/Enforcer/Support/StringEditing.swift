/// The few `String` edits the shipped code made with Foundation's `NSString` methods, written on
/// the standard library so the binary does not link the part of Foundation that carries ICU (issue
/// 14). Each gives what its Foundation counterpart gave for the text the code feeds it
/// (`FoundationParityTests` compares them).
extension String {
    /// Every scalar that `replacements` names replaced by its text, all at once (one pass, so a
    /// replacement is never edited again): what a chain of `replacingOccurrences(of:with:)` of single
    /// characters does when no replacement contains a later pattern. Works on scalars, not
    /// characters: a `<` followed by a combining mark is still escaped.
    package func replacingScalars(_ replacements: [Unicode.Scalar: String]) -> String {
        var out = ""
        out.reserveCapacity(utf8.count)
        for scalar in unicodeScalars {
            if let replacement = replacements[scalar] { out += replacement } else { out.unicodeScalars.append(scalar) }
        }
        return out
    }

    /// Without leading and trailing white space and newlines (Unicode's White_Space property, which
    /// is `CharacterSet.whitespacesAndNewlines`): `trimmingCharacters(in: .whitespacesAndNewlines)`.
    package func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }

    /// Padded with spaces to `length` UTF-16 code units, or cut to it: `padding(toLength: length,
    /// withPad: " ", startingAt: 0)`, which counts as NSString does.
    package func padded(toLength length: Int) -> String {
        let units = utf16.count
        if units >= length { return String(decoding: Array(utf16.prefix(length)), as: UTF16.self) }
        return self + String(repeating: " ", count: length - units)
    }
}

extension StringProtocol {
    /// The first occurrence of `text`, compared byte for byte: `range(of:)` (and `contains`) of
    /// ASCII text, without the standard library's string processing, which brings the regex parser.
    package func firstRange(ofBytes text: String) -> Range<Index>? {
        let needle = Array(text.utf8), haystack = utf8
        guard !needle.isEmpty else { return nil }
        var start = haystack.startIndex
        while let found = haystack[start...].firstIndex(of: needle[0]) {
            var end = found, matched = 0
            while matched < needle.count, end != haystack.endIndex, haystack[end] == needle[matched] {
                matched += 1
                end = haystack.index(after: end)
            }
            if matched == needle.count { return found..<end }
            start = haystack.index(after: found)
        }
        return nil
    }
}
