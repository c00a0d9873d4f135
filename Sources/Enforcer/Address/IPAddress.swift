#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The two address families a group can hold. Each group becomes one named set per family.
public enum AddressFamily: String, Sendable, Hashable, Comparable, CaseIterable, Codable {
    case ipv4
    case ipv6

    /// Address width in bits.
    public var bits: Int { self == .ipv4 ? 32 : 128 }
    /// Address width in bytes, as the kernel stores set keys.
    public var byteCount: Int { bits / 8 }
    /// The suffix of a group's set name in this family (`CCM_v4`).
    public var setSuffix: String { self == .ipv4 ? "v4" : "v6" }
    /// The nft keyword for an address of this family in a packet header (`ip`, `ip6`).
    public var nftPayloadKeyword: String { self == .ipv4 ? "ip" : "ip6" }
    /// The nft set key type.
    public var nftKeyType: String { self == .ipv4 ? "ipv4_addr" : "ipv6_addr" }

    public static func < (a: AddressFamily, b: AddressFamily) -> Bool { a == .ipv4 && b == .ipv6 }
}

/// An IPv4 or IPv6 address. IPv4 values live in the low 32 bits of `value`.
public struct IPAddress: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let family: AddressFamily
    public let value: UInt128

    public init(family: AddressFamily, value: UInt128) {
        precondition(family == .ipv6 || value <= UInt128(UInt32.max), "IPv4 value out of range")
        self.family = family
        self.value = value
    }

    /// Parses a textual address strictly (dotted quad without leading zeros, or RFC 4291 IPv6 text).
    /// The corresponding C function is `inet_pton`.
    public init?(_ text: String) {
        // Byte-level checks and no intermediate arrays: a config may list 100,000 addresses
        // (Foundation's `contains` of a String goes through CFStringFind, slower than inet_pton itself).
        if text.utf8.contains(UInt8(ascii: ":")) {
            var raw = in6_addr()
            guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
            self.init(family: .ipv6, value: withUnsafeBytes(of: &raw) { IPAddress.bigEndianValue($0) })
        } else {
            var raw = in_addr()
            guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
            self.init(family: .ipv4, value: withUnsafeBytes(of: &raw) { IPAddress.bigEndianValue($0) })
        }
    }

    private static func bigEndianValue(_ bytes: UnsafeRawBufferPointer) -> UInt128 {
        var v: UInt128 = 0
        for b in bytes { v = (v << 8) | UInt128(b) }
        return v
    }

    /// Builds an address from network-order bytes (4 or 16 of them, as `family` says).
    public init(family: AddressFamily, bytes: [UInt8]) {
        precondition(bytes.count == family.byteCount)
        var v: UInt128 = 0
        for b in bytes { v = (v << 8) | UInt128(b) }
        self.init(family: family, value: v)
    }

    /// Network-order bytes, the form the kernel keeps in set keys and packet headers.
    public var bytes: [UInt8] {
        let n = family.byteCount
        return (0..<n).map { i in UInt8(truncatingIfNeeded: value >> UInt128(8 * (n - 1 - i))) }
    }

    public static func maxValue(_ family: AddressFamily) -> UInt128 {
        family == .ipv4 ? UInt128(UInt32.max) : UInt128.max
    }

    /// Canonical text (RFC 5952 for IPv6). The corresponding C function is `inet_ntop`.
    public var description: String {
        // Stack buffers only: plans render every address of every set.
        let n = family.byteCount
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { b in
            for i in 0..<n { b[i] = UInt8(truncatingIfNeeded: value >> UInt128(8 * (n - 1 - i))) }
            return withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { buf in
                _ = inet_ntop(family == .ipv4 ? AF_INET : AF_INET6, b.baseAddress, buf.baseAddress, socklen_t(buf.count))
                return String(cString: buf.baseAddress!)
            }
        }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.family, a.value) < (b.family, b.value)
    }
}

/// An address prefix (`198.18.0.0/24`, `fd00::/64`); a host is a prefix of full length.
public struct IPPrefix: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    public var family: AddressFamily { address.family }
    public var isHost: Bool { length == family.bits }

    public init(address: IPAddress, length: Int) {
        precondition(length >= 0 && length <= address.family.bits)
        self.address = address
        self.length = length
    }

    /// The mask of the host bits (the bits a prefix leaves free).
    static func hostMask(_ family: AddressFamily, _ length: Int) -> UInt128 {
        let free = family.bits - length
        return free == 0 ? 0 : (free >= 128 ? UInt128.max : (UInt128(1) << UInt128(free)) - 1)
    }

    /// True when the address has no bits set below the prefix length.
    public var isNormalized: Bool { address.value & IPPrefix.hostMask(family, length) == 0 }

    /// The same prefix with host bits cleared.
    public var normalized: IPPrefix {
        IPPrefix(address: IPAddress(family: family, value: address.value & ~IPPrefix.hostMask(family, length)),
                 length: length)
    }

    public var range: AddressRange {
        let m = IPPrefix.hostMask(family, length)
        let lo = address.value & ~m
        return AddressRange(family: family, first: lo, last: lo | m)
    }

    public var description: String { isHost ? address.description : "\(address)/\(length)" }

    public static func < (a: IPPrefix, b: IPPrefix) -> Bool {
        (a.address, a.length) < (b.address, b.length)
    }
}

/// Why a piece of address text was refused; the message is written for the operator.
public enum AddressParseError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case badPrefixLength(String, max: Int)
    case hostBitsSet(String, suggestion: String)

    public var description: String {
        switch self {
        case .malformed(let t): return "\"\(t)\" is not an IPv4 or IPv6 address"
        case .badPrefixLength(let t, let max): return "\"\(t)\" has a prefix length outside 0...\(max)"
        case .hostBitsSet(let t, let s):
            return "\"\(t)\" has host bits set below its prefix length; write \"\(s)\" if that network is meant"
        }
    }
}

extension IPPrefix {
    /// Parses `ADDR` or `ADDR/LEN`. Host bits below the prefix length are an error, never silently
    /// cleared: `198.18.0.7/24` is far more often a typo for a host than a network.
    public static func parse(_ text: String) throws(AddressParseError) -> IPPrefix {
        let slash = text.utf8.firstIndex(of: UInt8(ascii: "/"))
        guard let addr = IPAddress(slash.map { String(text[..<$0]) } ?? text) else { throw .malformed(text) }
        var length = addr.family.bits
        if let slash {
            let lenText = text[text.index(after: slash)...]
            guard !lenText.isEmpty, lenText.allSatisfy({ $0.isASCII && $0.isNumber }), lenText.count <= 3,
                  let l = Int(lenText) else { throw .malformed(text) }
            guard l <= addr.family.bits else { throw .badPrefixLength(text, max: addr.family.bits) }
            length = l
        }
        let p = IPPrefix(address: addr, length: length)
        guard p.isNormalized else { throw .hostBitsSet(text, suggestion: p.normalized.description) }
        return p
    }
}
