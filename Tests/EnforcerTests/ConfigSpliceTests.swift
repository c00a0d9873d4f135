import Testing
@testable import Enforcer

/// Long string arrays read without toml++ (`TOMLArraySplice`): the config, its warnings and its
/// errors (file, line, key, message) are exactly those of the document toml++ reads whole.
@Suite struct ConfigSpliceTests {
    /// Twenty addresses, one a line, in the `[groups]` of the mini catalog's config.
    static func addresses(_ n: Int = 20, separator: String = ",\n  ", transform: (Int, String) -> String = { $1 }) -> String {
        (0..<n).map { transform($0, "\"198.18.0.\($0 + 1)\"") }.joined(separator: separator)
    }

    static func doc(groups: String, tail: String = "", newline: String = "\n") -> String {
        ["[host]", "roles = [\"APP\"]", "catalog = \"mini\"", "", "[groups]", groups, tail].joined(separator: newline)
    }

    static let long = addresses()

    static let cases: [(name: String, text: String, spliced: Int)] = [
        ("one a line, comments, trailing comma", doc(groups: "APP = [ # the app tier\n  \(long), # last\n] # end\nWEB = [\"198.18.1.1\"]"), 1),
        ("CRLF line endings", doc(groups: "APP = [\r\n  \(addresses(separator: ",\r\n  "))\r\n]", newline: "\r\n"), 1),
        ("one line", doc(groups: "APP = [\(addresses(separator: ", "))]"), 1),
        ("literal strings", doc(groups: "APP = [\n  \(addresses { _, s in "'" + s.dropFirst().dropLast() + "'" })\n]"), 1),
        ("a bad address on a later line", doc(groups: "APP = [\n  \(addresses { i, s in i == 16 ? "\"198.18.0.300\"" : s })\n]"), 1),
        ("a duplicate address", doc(groups: "APP = [\n  \(addresses { i, s in i == 16 ? "\"198.18.0.1\"" : s })\n]"), 1),
        ("two long groups", doc(groups: "APP = [\n  \(long)\n]\nWEB = [\n  \(addresses { i, _ in "\"198.18.2.\(i + 1)\"" })\n]"), 2),
        ("an unknown group", doc(groups: "APPP = [\n  \(long)\n]"), 1),
        ("the group twice", doc(groups: "APP = [\n  \(long)\n]\nAPP = [\n  \(long)\n]"), 2),
        ("a syntax error after it", doc(groups: "APP = [\n  \(long)\n]", tail: "WEB = [\"198.18.1.1\"\n"), 1),
        ("a syntax error before it", doc(groups: "WEB = [\"198.18.1.1\"\nAPP = [\n  \(long)\n]"), 0),
        ("something after its ]", doc(groups: "APP = [\n  \(long)\n] x"), 0),
        ("a number in it", doc(groups: "APP = [\n  \(addresses { i, s in i == 16 ? "17" : s })\n]"), 0),
        ("an escape in it", doc(groups: "APP = [\n  \(addresses { i, s in i == 16 ? "\"198.18.0.\\u0031\"" : s })\n]"), 0),
        ("a U+0001 escape elsewhere", doc(groups: "APP = [\n  \(long)\n]", tail: "[enforce]\ntable = \"\\u0001\"\n"), 0),
        ("a control character in a comment in it", doc(groups: "APP = [ # \u{7}\n  \(long)\n]"), 0),
        ("a multi-line string", doc(groups: "APP = [\n  \(addresses { i, s in i == 16 ? "\"\"\"198.18.0.17\"\"\"" : s })\n]"), 0),
        ("inside a multi-line string", doc(groups: "APP = [\"198.18.1.1\"]", tail: "[enforce]\ntable = \"\"\"\nAPP = [\n  \(long)\n]\n\"\"\"\n"), 0),
        ("a dotted key", doc(groups: "APP = [\"198.18.1.1\"]", tail: "[enforce]\nx.APP = [\n  \(long)\n]\n"), 0),
        ("in an inline table", doc(groups: "APP = [\"198.18.1.1\"]", tail: "[enforce]\nx = { APP = [\(addresses(separator: ", "))] }\n"), 0),
        ("a roles list", "[host]\nroles = [\(addresses(separator: ", ") { _, _ in "\"APP\"" })]\ncatalog = \"mini\"\n", 1),
        ("a control character in a comment after it", doc(groups: "APP = [\n  \(long)\n  ] # \u{7}"), 1),
        ("one line, a control character after it", doc(groups: "APP = [\(addresses(separator: ", "))] # \u{7}"), 1),
        ("short arrays", doc(groups: "APP = [\"198.18.0.1\", \"198.18.0.2\"]"), 0),
    ]

    func parse(_ text: String, splice: Bool) -> Result<Config, InputError> {
        do {
            let doc = try TOMLDocument(text: text, file: "/etc/fwenforcer/test.conf", spliceLongArrays: splice)
            defer { doc.release() }
            if splice { #expect(doc.splice != nil) }
            return .success(try Config.parse(document: doc, catalogOverride: Fixtures.miniCatalog))
        } catch {
            return .failure(error)
        }
    }

    @Test(arguments: cases.indices)
    func sameConfigAndErrorsAsToml(_ index: Int) {
        let c = Self.cases[index]
        let whole = parse(c.text, splice: false)
        let spliced = parse(c.text, splice: true)
        #expect(whole == spliced, "\(c.name)")
        let splice = TOMLArraySplice(c.text)
        #expect(splice.arrays.count == c.spliced, "\(c.name)")
        // Every line break kept, and every line after an array's `]` as it was.
        #expect(splice.text.utf8.filter { $0 == 10 }.count == c.text.utf8.filter { $0 == 10 }.count)
        let before = c.text.split(separator: "\n", omittingEmptySubsequences: false)
        let after = splice.text.split(separator: "\n", omittingEmptySubsequences: false)
        for (a, b) in zip(before, after) where a != b {
            // A changed line is an array's inside: only blanks, and the marker or the `]` at its place.
            #expect(b.allSatisfy { $0 == " " || $0 == "\r" } || b.contains("\\u0001") || b.drop { $0 == " " }.hasPrefix("]"), "\(c.name): \(b)")
            if let close = b.firstIndex(of: "]"), !b.contains("\\u0001") {
                #expect(b.distance(from: b.startIndex, to: close) == a.distance(from: a.startIndex, to: a.firstIndex(of: "]")!))
            }
        }
    }

    /// Repeats are found whatever the order: interleaved families in increasing order (no
    /// repeats, no hashing), a repeat right after or far from its first, a repeat across a break
    /// in the order; the first occurrence stays and each repeat is one warning, in list order.
    @Test func repeatsAreFoundInAnyOrder() throws {
        let p = { (s: String) in try IPPrefix.parse(s) }
        let cases: [([String], [String], [Int])] = [
            (["198.18.0.1", "fd00::1", "198.18.0.2", "fd00::2"], ["198.18.0.1", "fd00::1", "198.18.0.2", "fd00::2"], []),
            (["198.18.0.1", "198.18.0.1", "fd00::1"], ["198.18.0.1", "fd00::1"], [1]),
            (["fd00::1", "198.18.0.5", "fd00::2", "198.18.0.3", "fd00::1", "198.18.0.5"], ["fd00::1", "198.18.0.5", "fd00::2", "198.18.0.3"], [4, 5]),
            (["198.18.0.0/24", "198.18.0.0/25", "198.18.0.0/24"], ["198.18.0.0/24", "198.18.0.0/25"], [2]),
        ]
        for (input, kept, repeats) in cases {
            var seen: [Int] = []
            let out = Config.withoutRepeats(try input.map(p)) { i, _ in seen.append(i) }
            #expect(out == (try kept.map(p)), "\(input)")
            #expect(seen == repeats, "\(input)")
        }
    }

    /// The cases cover what they claim: some parse, some fail, at a line inside the long array too.
    @Test func casesCoverSuccessAndErrors() throws {
        guard case .failure(let error) = parse(Self.cases[4].text, splice: true) else {
            Issue.record("a bad address was accepted")
            return
        }
        #expect(error.line == 23 && error.key == "groups.APP" && error.message.contains("198.18.0.300"), "\(error)")
        let config = try parse(Self.cases[5].text, splice: true).get()
        #expect(config.addresses(of: "APP").count == 19)
        #expect(config.warnings.count == 1 && config.warnings[0].contains("test.conf:7"), "\(config.warnings)")
        #expect(try parse(Self.cases[0].text, splice: true).get().addresses(of: "APP").count == 20)
    }
}
