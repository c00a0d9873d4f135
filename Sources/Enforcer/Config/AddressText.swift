/// Config addresses parsed straight from their UTF-8 bytes.
///
/// A group may list 100,000 addresses; through `IPPrefix.parse` each one cost a substring, a C
/// string and `inet_pton` (about 1,800 instructions an address, 15 % of a 100,000-peer reload).
/// This is glibc's `inet_pton4` and `inet_pton6` rewritten over a byte buffer: it accepts exactly
/// the text they accept and yields the same value (`AddressTextTests` compares the two). It only
/// ever answers "this prefix" or "ask `IPPrefix.parse`": every refusal, and every case it does not
/// decide (a NUL byte, host bits set), goes to `IPPrefix.parse`, so the errors and their messages
/// are that function's, unchanged.
enum AddressText {
    /// The prefix `text` spells (`ADDR` or `ADDR/LEN`, normalized), or nil for `IPPrefix.parse` to judge.
    static func prefix(_ text: String) -> IPPrefix? {
        var text = text
        return text.withUTF8 { prefix($0) }
    }

    static func prefix(_ bytes: UnsafeBufferPointer<UInt8>) -> IPPrefix? {
        var end = bytes.count
        var length: Int?
        // "/LEN": one to three digits, as `IPPrefix.parse` allows.
        if let slash = bytes.firstIndex(of: UInt8(ascii: "/")) {
            let digits = bytes.count - slash - 1
            guard (1...3).contains(digits) else { return nil }
            var l = 0
            for b in bytes[(slash + 1)...] {
                guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { return nil }
                l = l * 10 + Int(b - UInt8(ascii: "0"))
            }
            length = l
            end = slash
        }
        let address: IPAddress
        let body = UnsafeBufferPointer(rebasing: bytes[0..<end])
        if body.contains(UInt8(ascii: ":")) {
            guard let v = ipv6(body) else { return nil }
            address = IPAddress(family: .ipv6, value: v)
        } else {
            guard let v = ipv4(body) else { return nil }
            address = IPAddress(family: .ipv4, value: UInt128(v))
        }
        let bits = address.family.bits
        guard (length ?? bits) <= bits else { return nil }
        let p = IPPrefix(address: address, length: length ?? bits)
        return p.isNormalized ? p : nil
    }

    /// glibc's `inet_pton4`: four decimal octets, each at most 255, no leading zeros.
    static func ipv4(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32? {
        var octets = 0
        var sawDigit = false
        var current: UInt32 = 0
        var value: UInt32 = 0
        for ch in bytes {
            if ch >= UInt8(ascii: "0") && ch <= UInt8(ascii: "9") {
                let new = current * 10 + UInt32(ch - UInt8(ascii: "0"))
                if sawDigit && current == 0 { return nil }
                if new > 255 { return nil }
                current = new
                if !sawDigit {
                    octets += 1
                    if octets > 4 { return nil }
                    sawDigit = true
                }
            } else if ch == UInt8(ascii: "."), sawDigit {
                if octets == 4 { return nil }
                value = value << 8 | current
                current = 0
                sawDigit = false
            } else {
                return nil
            }
        }
        if octets < 4 { return nil }
        return value << 8 | current
    }

    /// glibc's `inet_pton6`: hex groups of at most four digits, one `::` at most, an IPv4 tail.
    static func ipv6(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt128? {
        // The groups so far, 16 bits each; those before a `::` move to `head`.
        var groups: UInt128 = 0
        var head: UInt128 = 0
        var count = 0  // groups written
        var colonAt: Int?  // groups written when `::` was met
        var i = 0
        let n = bytes.count
        if n == 0 { return nil }
        // Leading :: requires some special handling.
        if bytes[0] == UInt8(ascii: ":") {
            i = 1
            if i == n || bytes[i] != UInt8(ascii: ":") { return nil }
        }
        var tokenStart = i
        var digitsSeen = 0
        var value: UInt32 = 0
        while i < n {
            let ch = bytes[i]
            i += 1
            if let digit = hexValue(ch) {
                if digitsSeen == 4 { return nil }
                value = value << 4 | digit
                digitsSeen += 1
                continue
            }
            if ch == UInt8(ascii: ":") {
                tokenStart = i
                if digitsSeen == 0 {
                    if colonAt != nil { return nil }
                    colonAt = count
                    head = groups
                    groups = 0
                    continue
                } else if i == n {
                    return nil
                }
                if count == 8 { return nil }
                groups = groups << 16 | UInt128(value)
                count += 1
                digitsSeen = 0
                value = 0
                continue
            }
            if ch == UInt8(ascii: "."), count + 2 <= 8,
               let v4 = ipv4(UnsafeBufferPointer(rebasing: bytes[tokenStart..<n])) {
                groups = groups << 32 | UInt128(v4)
                count += 2
                digitsSeen = 0
                break
            }
            return nil
        }
        if digitsSeen > 0 {
            if count == 8 { return nil }
            groups = groups << 16 | UInt128(value)
            count += 1
        }
        if let colonAt {
            // :: would expand to a zero-width field.
            if count == 8 { return nil }
            // The groups after `::` stay at the bottom; those before it move to the top.
            return colonAt == 0 ? groups : head << UInt128(16 * (8 - colonAt)) | groups
        }
        return count == 8 ? groups : nil
    }

    private static func hexValue(_ ch: UInt8) -> UInt32? {
        switch ch {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(ch - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(ch - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(ch - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
