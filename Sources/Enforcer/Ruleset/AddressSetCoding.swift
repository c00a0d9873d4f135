/// An address set is written as its ranges in address text, `"198.18.0.10"` or
/// `"198.19.0.0-198.19.0.255"`, so a pending-confirmation record reads like `nft list set` and does
/// not depend on how a coder writes 128-bit integers.
extension AddressSet: Codable {
    private enum CodingKeys: String, CodingKey {
        case family, ranges
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(family, forKey: .family)
        try c.encode(ranges.map { $0.isSingleAddress ? "\($0.firstAddress)" : "\($0.firstAddress)-\($0.lastAddress)" }, forKey: .ranges)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let family = try c.decode(AddressFamily.self, forKey: .family)
        var ranges: [AddressRange] = []
        for text in try c.decode([String].self, forKey: .ranges) {
            // IPv6 text never contains "-", so the first one separates the ends.
            let ends = text.split(separator: "-", maxSplits: 1).map(String.init)
            guard let first = ends.first.flatMap(IPAddress.init), let last = IPAddress(ends.last ?? ""),
                  first.family == family, last.family == family, first <= last
            else {
                throw DecodingError.dataCorruptedError(forKey: .ranges, in: c,
                                                       debugDescription: "\"\(text)\" is not an \(family.rawValue) address or range")
            }
            ranges.append(AddressRange(family: family, first: first.value, last: last.value))
        }
        // The layout comes back as it was written: a list of single addresses is a hash set's
        // (hosts layout, adjacent ones kept apart; an interval set's singles never touch, so they
        // read the same either way); any range means the merged layout.
        if ranges.allSatisfy(\.isSingleAddress) {
            self.init(family: family, hosts: ranges.map(\.firstAddress))
        } else {
            self.init(family: family, ranges: ranges)
        }
    }
}
