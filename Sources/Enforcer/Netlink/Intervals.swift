/// How ranges become the elements of an nftables interval set, and back. Pure: no kernel, no C.
///
/// The kernel's interval sets (rbtree) store boundaries, not ranges: a range `[a, b]` is a start
/// element `a` and an end element `b + 1` flagged `NFT_SET_ELEM_INTERVAL_END`. nft adds two details
/// fwenforcer copies so that the kernel holds exactly what `nft -f` of the same set would leave:
///
/// - a range ending at the top of the key space has no end element (there is no `b + 1`); its start
///   element carries the `NFTNL_SET_ELEM_F_INTERVAL_OPEN` flag in its userdata instead;
/// - when a set is created with elements (or an anonymous set is written), a "first segment" end
///   element at key 0 comes first, unless the first range starts at 0. Kernels before 5.6 needed it
///   to find the lower bound; nft still writes it, and it must not be re-added to a set that has it.
///
/// Ranges are expected sorted, disjoint and not adjacent, as `AddressSet` and `PortRange.normalize`
/// make them.
struct IntervalElement: Hashable, Sendable {
    var key: UInt128
    /// An end element (`NFT_SET_ELEM_INTERVAL_END`): the first key after a range.
    var isEnd: Bool
    /// A start element whose range runs to the top of the key space.
    var isOpen: Bool = false
    /// Index of the range this element belongs to (nil for the first segment), to name it in errors.
    var rangeIndex: Int?
}

enum Intervals {
    /// The elements of `ranges` in a key space of `bits` bits, in the order nft sends them.
    static func encode(_ ranges: [(first: UInt128, last: UInt128)], bits: Int, firstSegment: Bool) -> [IntervalElement] {
        let top: UInt128 = bits >= 128 ? .max : (UInt128(1) << UInt128(bits)) - 1
        var out: [IntervalElement] = []
        out.reserveCapacity(ranges.count * 2 + 1)
        if firstSegment, let first = ranges.first, first.first != 0 {
            out.append(IntervalElement(key: 0, isEnd: true))
        }
        for (i, r) in ranges.enumerated() {
            precondition(r.first <= r.last && r.last <= top)
            if r.last == top {
                out.append(IntervalElement(key: r.first, isEnd: false, isOpen: true, rangeIndex: i))
            } else {
                out.append(IntervalElement(key: r.first, isEnd: false, rangeIndex: i))
                out.append(IntervalElement(key: r.last + 1, isEnd: true, rangeIndex: i))
            }
        }
        return out
    }

    /// The ranges an interval set's elements describe, in any order they come in. End elements
    /// with no start before them (the first segment) are skipped; a start with no end runs to the
    /// top. Returns nil when two starts follow each other, which no correct writer produces.
    static func decode(_ elements: [(key: UInt128, isEnd: Bool)], bits: Int) -> [(first: UInt128, last: UInt128)]? {
        let top: UInt128 = bits >= 128 ? .max : (UInt128(1) << UInt128(bits)) - 1
        // At one key an end sorts before a start: `[a, b]` and `[b + 1, c]` share the key b + 1.
        let sorted = elements.sorted { ($0.key, $0.isEnd ? 0 : 1) < ($1.key, $1.isEnd ? 0 : 1) }
        var out: [(first: UInt128, last: UInt128)] = []
        var open: UInt128?
        for e in sorted {
            if e.isEnd {
                if let start = open {
                    guard e.key > start else { return nil }
                    out.append((start, e.key - 1))
                    open = nil
                }
            } else {
                if open != nil { return nil }
                open = e.key
            }
        }
        if let start = open { out.append((start, top)) }
        return out
    }

    /// Big-endian key bytes of `value` in `byteCount` bytes, as set keys hold addresses and ports.
    static func keyBytes(_ value: UInt128, byteCount: Int) -> [UInt8] {
        (0..<byteCount).map { i in UInt8(truncatingIfNeeded: value >> UInt128(8 * (byteCount - 1 - i))) }
    }

    static func keyValue(_ bytes: some Collection<UInt8>) -> UInt128 {
        bytes.reduce(UInt128(0)) { ($0 << 8) | UInt128($1) }
    }
}
