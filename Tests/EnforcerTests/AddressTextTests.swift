import Testing
@testable import Enforcer

/// The config's byte-level address parser against `IPPrefix.parse` (glibc's `inet_pton`): it may
/// only ever answer what `IPPrefix.parse` answers, and it must answer for the text configs hold.
@Suite struct AddressTextTests {
    /// Agreement, or a hand-off: the fast parser's prefix equals `IPPrefix.parse`'s; when it
    /// declines, `IPPrefix.parse` decides (and the config reports its error).
    func agrees(_ text: String) -> Bool {
        guard let fast = AddressText.prefix(text) else { return true }
        return (try? IPPrefix.parse(text)) == fast
    }

    @Test(arguments: [
        "198.18.0.1", "0.0.0.0", "255.255.255.255", "198.18.0.0/15", "198.18.0.1/32", "0.0.0.0/0", "198.18.0.0/032",
        "::", "::1", "1::", "fd00::", "fd00::/8", "fd00:18::1:b16b", "FD00:0:0::20", "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::8", "1:2::7:8", "::ffff:198.18.0.1", "1:2:3:4:5:6:198.18.0.1",
        "::198.18.0.1", "fd00::/64", "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0:0:0:0:0:0:0:0",
    ])
    func acceptsWhatInetPtonAccepts(_ text: String) throws {
        let fast = try #require(AddressText.prefix(text))
        #expect(fast == (try IPPrefix.parse(text)))
    }

    @Test(arguments: [
        "", "x", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04", "256.1.1.1", "1..2.3", ".1.2.3", "1.2.3.4.",
        "198.18.0.1/", "198.18.0.1/33", "198.18.0.1/0333", "198.18.0.1/-1", "198.18.0.7/24", "198.18.0.1 ",
        ":", ":::", "1:::2", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "12345::",
        "1:", ":1", "1:2:3:4:5:6:7", "::ffff:1.2.3", "::ffff:01.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4:5",
        "fd00::/129", "fd00::1/64", "g::1", "fd00::1\u{0}", "198.18.0.1\u{0}x",
    ])
    func declinesWhatItMustNotDecide(_ text: String) {
        #expect(AddressText.prefix(text) == nil)
    }

    /// Random text over the characters addresses are made of, and mutations of real addresses:
    /// wherever the fast parser answers, `IPPrefix.parse` gives the same prefix; and it answers
    /// for every address `IPPrefix.parse` takes (when host bits are clear).
    @Test func agreesWithInetPtonOnRandomText() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789abcdefAF:./")
        let seeds = ["198.18.0.1", "fd00:18::1:b16b", "::ffff:198.19.3.4", "1:2:3:4:5:6:7:8", "fd00::/64", "198.19.128.0/30"]
        var decided = 0
        for i in 0..<200_000 {
            var text: String
            if i % 2 == 0 {
                text = String((0..<Int.random(in: 0...20, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            } else {
                var chars = Array(seeds.randomElement(using: &rng)!)
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let at = Int.random(in: 0...chars.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0 where at < chars.count: chars.remove(at: at)
                    case 1 where at < chars.count: chars[at] = alphabet.randomElement(using: &rng)!
                    default: chars.insert(alphabet.randomElement(using: &rng)!, at: at)
                    }
                }
                text = String(chars)
            }
            let fast = AddressText.prefix(text)
            let slow = try? IPPrefix.parse(text)
            if fast != nil { decided += 1 }
            #expect(fast == slow, "\(text): fast \(String(describing: fast)), inet_pton \(String(describing: slow))")
            if fast != slow { return }
        }
        #expect(decided > 1_000)
    }
}
