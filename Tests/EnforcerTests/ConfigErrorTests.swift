import Testing
@testable import Enforcer

/// Bad input gets one clear error naming file, line and key.
@Suite struct ConfigErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let text: String
        let line: Int?
        let key: String?
        let message: String
        var testDescription: String { name }
    }

    /// A valid config whose lines are: 1 [host], 2 roles, 3 catalog, 4 blank, 5 [groups], 6 APP, 7 WEB.
    static func doc(host: String = "roles = [\"APP\"]", extraHost: String = "", groups: String = "APP = [\"198.18.0.20\"]\nWEB = [\"198.18.0.10\"]", tail: String = "") -> String {
        "[host]\n\(host)\ncatalog = \"mini\"\(extraHost)\n\n[groups]\n\(groups)\n\(tail)"
    }

    static let cases: [Case] = [
        Case(name: "TOML syntax error", text: "[host]\nroles = [\"APP\"\n", line: 2, key: nil, message: "TOML syntax"),
        Case(name: "duplicate key", text: "[host]\nroles = [\"APP\"]\nroles = [\"WEB\"]\n", line: 3, key: nil, message: "TOML syntax"),
        Case(name: "duplicate table", text: "[host]\nroles = [\"APP\"]\n[host]\n", line: 3, key: nil, message: "TOML syntax"),
        Case(name: "unknown top-level section", text: doc(tail: "[enforcement]\ningress = \"enforce\"\n"), line: 8, key: "enforcement", message: "unknown key"),
        Case(name: "misspelt host key", text: doc(extraHost: "\nfeatrues = []"), line: 4, key: "host.featrues", message: "did you mean \"features\""),
        Case(name: "unknown enforce key", text: doc(tail: "[enforce]\npolicy = \"drop\"\n"), line: 9, key: "enforce.policy", message: "unknown key"),
        Case(name: "missing host section", text: "[groups]\nAPP = [\"198.18.0.20\"]\n", line: nil, key: "host", message: "missing section [host]"),
        Case(name: "missing roles", text: "[host]\ncatalog = \"mini\"\n", line: 1, key: "host", message: "missing roles"),
        Case(name: "empty role list", text: doc(host: "roles = []"), line: 2, key: "host.roles", message: "is empty"),
        Case(name: "roles as a bare string", text: doc(host: "roles = \"APP\""), line: 2, key: "host.roles", message: "roles = [\"APP\"]"),
        Case(name: "roles not strings", text: doc(host: "roles = [1]"), line: 2, key: "host.roles", message: "must be a string"),
        Case(name: "unknown role", text: doc(host: "roles = [\"APPP\"]"), line: 2, key: "host.roles", message: "unknown role \"APPP\" in catalog mini (did you mean \"APP\"?)"),
        Case(name: "role listed twice", text: doc(host: "roles = [\"APP\", \"APP\"]"), line: 2, key: "host.roles", message: "listed twice"),
        Case(name: "unknown feature", text: doc(extraHost: "\nfeatures = [\"metrix\"]"), line: 4, key: "host.features", message: "unknown feature \"metrix\""),
        Case(name: "bad version", text: doc(extraHost: "\nversion = \"4.x\""), line: 4, key: "host.version", message: "not a dotted version"),
        Case(name: "strict not bool", text: doc(extraHost: "\nstrict = \"yes\""), line: 4, key: "host.strict", message: "must be true or false"),
        Case(name: "bad enforce mode", text: doc(tail: "[enforce]\ningress = \"block\"\n"), line: 9, key: "enforce.ingress", message: "not enforce, audit or off"),
        Case(name: "bad table name", text: doc(tail: "[enforce]\ntable = \"fw enforcer\"\n"), line: 9, key: "enforce.table", message: "not a valid table name"),
        Case(name: "audit group out of range", text: doc(tail: "[enforce]\ningress = \"audit\"\naudit_group = 65536\n"), line: 10, key: "enforce.audit_group", message: "65536 is not an nfnetlink_log group: must be 0-65535"),
        Case(name: "negative audit group", text: doc(tail: "[enforce]\naudit_group = -1\n"), line: 9, key: "enforce.audit_group", message: "must be 0-65535"),
        Case(name: "audit group not an integer", text: doc(tail: "[enforce]\naudit_group = \"6600\"\n"), line: 9, key: "enforce.audit_group", message: "must be an integer"),
        Case(name: "log rate out of range", text: doc(tail: "[enforce]\nlog_rate = 0\n"), line: 9, key: "enforce.log_rate", message: "1-10000"),
        Case(name: "unknown group", text: doc(groups: "APP = [\"198.18.0.20\"]\nWBE = [\"198.18.0.10\"]"), line: 7, key: "groups.WBE", message: "did you mean \"WEB\""),
        Case(name: "IPv4 octet out of range", text: doc(groups: "APP = [\"198.18.0.256\"]"), line: 6, key: "groups.APP", message: "\"198.18.0.256\" is not an IPv4 or IPv6 address"),
        Case(name: "IPv4 prefix too long", text: doc(groups: "APP = [\"198.18.0.1/33\"]"), line: 6, key: "groups.APP", message: "prefix length outside 0...32"),
        Case(name: "IPv6 double ::", text: doc(groups: "APP = [\"fd00::1::2\"]"), line: 6, key: "groups.APP", message: "\"fd00::1::2\" is not an IPv4 or IPv6 address"),
        Case(name: "IPv6 prefix too long", text: doc(groups: "APP = [\"fd00::/129\"]"), line: 6, key: "groups.APP", message: "outside 0...128"),
        Case(name: "host bits set", text: doc(groups: "APP = [\"198.18.0.7/24\"]"), line: 6, key: "groups.APP", message: "write \"198.18.0.0/24\""),
        Case(name: "empty prefix length", text: doc(groups: "APP = [\"198.18.0.0/\"]"), line: 6, key: "groups.APP", message: "not an IPv4 or IPv6 address"),
        Case(name: "hostname instead of address", text: doc(groups: "APP = [\"app.example\"]"), line: 6, key: "groups.APP", message: "not an IPv4 or IPv6 address"),
        Case(name: "group not a list", text: doc(groups: "APP = \"198.18.0.20\""), line: 6, key: "groups.APP", message: "must be a list of strings"),
        Case(name: "address on a later line of a multi-line list",
             text: doc(groups: "APP = [\n  \"198.18.0.20\",\n  \"198.18.0.300\",\n]"), line: 8, key: "groups.APP", message: "198.18.0.300"),
        Case(name: "leading zero octet", text: doc(groups: "APP = [\"198.018.0.1\"]"), line: 6, key: "groups.APP", message: "not an IPv4 or IPv6 address"),
        Case(name: "unknown catalog name", text: "[host]\nroles = [\"APP\"]\ncatalog = \"cloudcentre\"\n", line: 3, key: "host.catalog", message: "no built-in catalog"),
    ]

    @Test(arguments: cases)
    func badInputIsLocated(_ c: Case) {
        // The unknown-catalog case must go through the real lookup; the others use the mini catalog.
        let useReal = c.name == "unknown catalog name"
        do {
            _ = try Config.parse(text: c.text, file: "/etc/fwenforcer/test.conf", catalogOverride: useReal ? nil : Fixtures.miniCatalog)
            Issue.record("accepted bad input: \(c.name)")
        } catch {
            #expect(error.file == "/etc/fwenforcer/test.conf")
            #expect(error.line == c.line, "\(error)")
            #expect(error.key == c.key, "\(error)")
            #expect(error.message.contains(c.message), "\(error)")
            #expect(error.description.hasPrefix("/etc/fwenforcer/test.conf"))
        }
    }

    @Test func atLeastTwentyFiveBadInputs() {
        #expect(Self.cases.count >= 25)
    }

    @Test func duplicateAddressIsAWarningNotAnError() throws {
        let cfg = try Fixtures.config(Self.doc(groups: "APP = [\"198.18.0.20\", \"198.18.0.20\"]"))
        #expect(cfg.addresses(of: "APP").count == 1)
        #expect(cfg.warnings.count == 1 && cfg.warnings[0].contains("test.conf:6"))
    }

    @Test func autoRolesFromHostAddresses() throws {
        let cfg = try Fixtures.config(Self.doc(host: "roles = \"auto\"", groups: "APP = [\"198.18.0.20\"]\nDB = [\"198.18.0.0/29\"]"))
        #expect(try cfg.resolveRoles(hostAddresses: [IPAddress("198.18.0.5")!]) == ["DB"])
        #expect(try cfg.resolveRoles(hostAddresses: [IPAddress("198.18.0.20")!, IPAddress("127.0.0.1")!]) == ["APP"])
        #expect(throws: InputError.self) { try cfg.resolveRoles(hostAddresses: [IPAddress("198.18.9.9")!]) }
    }
}

/// One encoding rule for every reader of a config (`check`, `plan`, `apply`, the daemon).
@Suite struct ConfigTextTests {
    @Test func invalidUTF8IsRefusedNamingItsLine() throws {
        let bytes = Array("[host]\nroles = [\"CCO\"]\n# caf".utf8) + [0xE9] + Array(" au lait\n".utf8)
        let error = try #require(throws: InputError.self) { try Config.text(of: bytes, file: "f.conf") }
        #expect(error.description == "f.conf:3: config file is not UTF-8 text (invalid bytes on this line)")
        // An overlong encoding and a lone surrogate are refused too, not read as something else.
        for bad: [UInt8] in [[0xC0, 0xAF], [0xED, 0xA0, 0x80]] {
            #expect(throws: InputError.self) { try Config.text(of: Array("a = 1\n".utf8) + bad, file: "f.conf") }
        }
        #expect(try Config.text(of: Array("# café\n".utf8), file: "f.conf") == "# café\n")
    }
}
