import Testing
@testable import Enforcer

@Suite struct AddressTests {
    @Test(arguments: ["198.18.0.256", "198.18.0.1/33", "fd00::1::2", "1.2.3", "01.2.3.4", "198.18.0.0/", "fd00::/129", "", "x"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: AddressParseError.self) { try IPPrefix.parse(text) }
    }

    @Test func hostBitsAreAnError() {
        #expect(throws: AddressParseError.hostBitsSet("198.18.0.7/24", suggestion: "198.18.0.0/24")) {
            try IPPrefix.parse("198.18.0.7/24")
        }
    }

    @Test func canonicalText() throws {
        #expect(try IPPrefix.parse("FD00:0:0::20").description == "fd00::20")
        #expect(try IPPrefix.parse("198.18.128.0/17").description == "198.18.128.0/17")
        #expect(try IPPrefix.parse("::/0").description == "::/0")
    }

    @Test func rangesMergeAndPrint() throws {
        let s = AddressSet(family: .ipv4, prefixes: [
            try IPPrefix.parse("198.18.0.0/25"), try IPPrefix.parse("198.18.0.128/25"),
            try IPPrefix.parse("198.18.0.5"), try IPPrefix.parse("198.18.2.1"), try IPPrefix.parse("198.18.2.2"),
        ])
        #expect(s.ranges.map(\.description) == ["198.18.0.0/24", "198.18.2.1-198.18.2.2"])
        #expect(s.contains(IPAddress("198.18.0.77")!))
        #expect(!s.contains(IPAddress("198.18.2.3")!))
        let all = AddressSet(family: .ipv6, prefixes: [try IPPrefix.parse("::/0"), try IPPrefix.parse("fd00::1")])
        #expect(all.ranges.map(\.description) == ["::/0"])
    }
}
