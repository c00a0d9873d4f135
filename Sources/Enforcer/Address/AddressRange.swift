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

/// A normalised set of addresses of one family: sorted, disjoint, non-adjacent ranges.
/// Adding overlapping or adjacent ranges merges them; this is the model an interval set is written from.
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

    public var isEmpty: Bool { ranges.isEmpty }
    /// True when every range is a single address: the set can be a plain hash set.
    public var hostsOnly: Bool { ranges.allSatisfy(\.isSingleAddress) }

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

    /// Single addresses, expanded: used where the kernel set is a hash set of hosts.
    public var hostAddresses: [IPAddress] {
        ranges.flatMap { r in
            stride(from: r.first, through: r.last, by: 1).map { IPAddress(family: family, value: $0) }
        }
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
