import Foundation
import Testing
@_spi(Fuzzing) @testable import Enforcer

/// The committed fuzz corpus (fuzz/corpus/) replayed through the same entry points `make fuzz`
/// drives, in every `swift test`: the seeds and each crash the fuzzer found stay harmless. And the
/// crashes found, stated as behaviour.
@Suite struct FuzzRegressionTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz/corpus")

    static func seeds(_ target: FuzzTarget) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: corpus.appendingPathComponent(target.rawValue), includingPropertiesForKeys: nil)
            .sorted { $0.path < $1.path }
    }

    @Test(arguments: FuzzTarget.allCases)
    func everySeedRunsThroughItsTarget(_ target: FuzzTarget) throws {
        let seeds = try Self.seeds(target)
        #expect(seeds.count >= 4, "\(target.rawValue): \(seeds.count) seeds")
        for seed in seeds {
            // A trap ends the test process: the seed's name is in the log just before.
            let bytes = [UInt8](try Data(contentsOf: seed))
            bytes.withUnsafeBufferPointer { target.run($0) }
        }
    }

    /// toml++ asserted (SIGABRT in `fwenforcerd check` and in the daemon) on a table header whose
    /// first character is not a key's: a control character, a letter outside ASCII, a line break.
    @Test(arguments: [("[\u{18}r.oups]", "U+0018 (column 2)"), ("[é]", "'é' (column 2)"), ("[[ é]]", "'é' (column 4)"),
                      ("[\nx]", "a line break (column 2)"), ("[ # comment", "'#' (column 3)"), ("[\u{7f}]", "U+007F (column 2)")])
    func aTableHeaderThatCannotStartAKeyIsAnErrorWithItsLine(_ header: String, _ saw: String) {
        let text = "[host]\nroles = [\"CCO\"]\n\n\(header)\n"
        #expect(throws: InputError(file: "f.conf", line: 4, key: nil,
                                   message: "TOML syntax: a table header must start with a bare key character or a quote, saw \(saw)")) {
            try Config.parse(text: text, file: "f.conf")
        }
    }

    /// toml++ asserted too on a `}` where an array expects a value: the fuzzer's third find.
    @Test(arguments: [("features = [}", 4, "(column 13)"), ("features = [\"esb\", }]", 4, "(column 20)"),
                      ("features = [ # c\n }]", 5, "(column 2)"), ("features = [[}]]", 4, "(column 14)")])
    func aBraceWhereAnArrayExpectsAValueIsAnErrorWithItsLine(_ value: String, _ line: Int, _ column: String) {
        let text = "[host]\nroles = [\"CCO\"]\ncatalog = \"cloudcenter\"\n\(value)\n"
        #expect(throws: InputError(file: "f.conf", line: line, key: nil,
                                   message: "TOML syntax: an array expects a value or ']', saw '}' \(column)")) {
            try Config.parse(text: text, file: "f.conf")
        }
    }

    /// An unknown quoted key with a `]` before a `[` trapped while its error was being written.
    @Test func anUnknownKeyWithBracketsIsNamedAsItIs() {
        #expect(throws: InputError(file: "f.conf", line: nil, key: "19m]ent ins[h insiGR",
                                   message: "unknown key; allowed here: enforce, groups, host")) {
            try Config.parse(text: "[host]\n [\"19m]ent ins[h insiGR\"]\n", file: "f.conf")
        }
    }

    /// After a byte order mark too (toml++ skips it): the fuzzer's second find.
    @Test func aTableHeaderAfterAByteOrderMarkIsChecked() {
        #expect(throws: InputError(file: "f.conf", line: 1, key: nil,
                                   message: "TOML syntax: a table header must start with a bare key character or a quote, saw '`' (column 2)")) {
            try Config.parse(text: "\u{FEFF}[`host]\nroles = [\"CCO\"]\n", file: "f.conf")
        }
    }

    /// The check reads the document as toml++ does: a `[` opening a line inside a multi-line
    /// string or an array is not a header, and valid headers pass.
    @Test(arguments: ["x = \"\"\"\n[é]\n\"\"\"\n", "x = '''\n[\u{18}\n'''\n", "x = [\n[+1], [{ a = 1 }],\n]\n",
                      "x = \"[\" # [\n[a]\n", "[ \"é\" ]\n[ 'a'.b ]\n[[ -x ]]\n[_]\n[0]\n", "x = \"\\\"\"\n[a]\n",
                      "x = \"\"\"\"\"\"\n[a]\n", "x = [{ a = 1 }, { b = [2] }]\n", "x = [\n  \"a\", # }\n  \"b\",\n]\n",
                      "x = { a = [1, 2], b = \"}\" }\n[t]\n"])
    func documentsWithoutSuchAHeaderPassTheCheck(_ text: String) {
        #expect(TOMLPreflight.firstFailure(in: text) == nil)
    }

    /// libnftnl 1.2 read address 4 (strcmp of a NULL name) for a dumped rule with an expression
    /// that has no NFTA_EXPR_NAME: the read-back refuses the rule instead.
    @Test func aDumpedRuleWithAnUnnamedExpressionIsRefused() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent("netlink-dump/regression-rule-expression-without-name.bin")))
        let error = #expect(throws: BackendError.self) {
            try TableDump(messages: bytes[...]).ruleset(table: "fwenforcer")
        }
        guard case .protocolViolation("undecodable rule")? = error else {
            Issue.record("\(String(describing: error))")
            return
        }
    }

    /// libnftnl 1.2 parses a verdict into an attribute table it never zeroes, then strdup()s the
    /// "chain" of a jump or goto from it: a dumped rule whose jump had no NFTA_VERDICT_CHAIN made it
    /// read a stale stack pointer (SEGV under the fuzzer). The read-back refuses the rule instead.
    @Test func aDumpedRuleWithAJumpWithoutItsChainIsRefused() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent("netlink-dump/regression-jump-without-chain.bin")))
        let error = #expect(throws: BackendError.self) {
            try TableDump(messages: bytes[...]).ruleset(table: "fwenforcer")
        }
        guard case .protocolViolation("undecodable rule")? = error else {
            Issue.record("\(String(describing: error))")
            return
        }
    }

    /// A real dump, as recorded from the kernel, reads back whole.
    @Test func aRecordedDumpOfTheSampleReadsBack() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.corpus.appendingPathComponent("netlink-dump/sample-cco.bin")))
        let ruleset = try TableDump(messages: bytes[...]).ruleset(table: "fwenforcer")
        #expect(ruleset.chains.map(\.name) == ["input", "output"])
        #expect(ruleset.sets.contains { $0.name == "CCM_SA_v4" })
    }
}
