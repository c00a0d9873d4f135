/// A closed range of addresses of one family: the unit an interval set stores.
public struct AddressRange: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let family: AddressFamily
    public let first: UInt128
    public let last: UInt128

    public init(family: AddressFamily, first: UInt128, last: UInt128) {
        precondition(first <= last && last <= IPAddress.maxValue(family))
        self.family = family
        self.first = first
        self.last = last
    }

    public var firstAddress: IPAddress { IPAddress(family: family, value: first) }
    public var lastAddress: IPAddress { IPAddress(family: family, value: last) }

    /// The prefix this range is exactly, if it is one.
    public var asPrefix: IPPrefix? {
        // A prefix covers 2^k addresses (count-1 is all ones, which `&+ 1` also handles for the
        // whole 128-bit space) and starts at a multiple of its size.
        let span = last &- first
        guard span & (span &+ 1) == 0, first & span == 0 else { return nil }
        return IPPrefix(address: firstAddress, length: family.bits - span.nonzeroBitCount)
    }

    public var isSingleAddress: Bool { first == last }

    /// nft element syntax: a host, a prefix, or `first-last`.
    public var description: String {
        if let p = asPrefix { return p.description }
        return "\(firstAddress)-\(lastAddress)"
    }

    public static func < (a: AddressRange, b: AddressRange) -> Bool {
        (a.family, a.first, a.last) < (b.family, b.first, b.last)
    }
}

/// A set of addresses of one family, laid out as the kernel set written from it stores them:
/// sorted, disjoint ranges, each one element.
///
/// Two layouts, chosen by the initialiser:
/// - merged (`init(ranges:)`, `init(prefixes:)`): overlapping and adjacent ranges are one range,
///   the model an interval set is written from, as nft's auto-merge writes it;
/// - hosts (`init(hosts:)`): every address its own element, adjacent ones included, as a hash set
///   holds them. Whether a set is a hash set is the config's business, so `198.18.0.30` and
///   `198.18.0.31` stay two elements here and a replacement of one is one element change.
///
/// The layout is part of the value: the same addresses in the two layouts are different kernel
/// contents, and compare unequal.
public struct AddressSet: Sendable, Hashable {
    public let family: AddressFamily
    public private(set) var ranges: [AddressRange]

    public init(family: AddressFamily, ranges: [AddressRange] = []) {
        self.family = family
        self.ranges = AddressSet.normalize(ranges)
    }

    public init(family: AddressFamily, prefixes: [IPPrefix]) {
        self.init(family: family, ranges: prefixes.filter { $0.family == family }.map(\.range))
    }

    /// The hosts layout: each address of `family` in `hosts` one single-address range, sorted, each once.
    public init(family: AddressFamily, hosts: [IPAddress]) {
        self.family = family
        var values = hosts.compactMap { $0.family == family ? $0.value : nil }
        values.sort()
        var out: [AddressRange] = []
        out.reserveCapacity(values.count)
        for (i, v) in values.enumerated() where i == 0 || values[i - 1] != v {
            out.append(AddressRange(family: family, first: v, last: v))
        }
        ranges = out
    }

    public var isEmpty: Bool { ranges.isEmpty }
    /// True when every range is a single address: what a hash set can hold.
    public var hostsOnly: Bool { ranges.allSatisfy(\.isSingleAddress) }

    /// True when no two ranges touch: the merged layout, what an interval set must be written from.
    public var isMerged: Bool {
        zip(ranges, ranges.dropFirst()).allSatisfy { $0.last &+ 1 < $1.first }
    }

    public func contains(_ a: IPAddress) -> Bool {
        guard a.family == family else { return false }
        // Binary search over the sorted, disjoint ranges.
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].last < a.value { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].first <= a.value
    }

    static func normalize(_ input: [AddressRange]) -> [AddressRange] {
        guard !input.isEmpty else { return [] }
        let sorted = input.sorted()
        var out: [AddressRange] = []
        out.reserveCapacity(sorted.count)
        var cur = sorted[0]
        for r in sorted.dropFirst() {
            // Merge overlapping and adjacent ranges (cur.last + 1 >= r.first, without overflow).
            if cur.last == UInt128.max || r.first <= cur.last &+ 1 {
                if r.last > cur.last { cur = AddressRange(family: cur.family, first: cur.first, last: r.last) }
            } else {
                out.append(cur)
                cur = r
            }
        }
        out.append(cur)
        return out
    }
}
