import CNftables

/// Words for a rule fwenforcer did not write, for the log line of the pass that removes it:
/// `ip saddr 198.18.9.9 tcp dport 2222 accept`.
///
/// Best effort, never used to rebuild anything: the common matches nft writes (addresses, ports,
/// interface names, protocol, set lookups) read as nft prints them, the dependency loads nft adds
/// on its own (`meta nfproto`, `meta l4proto` before a port) are left out, and any other expression
/// is shown as `nft --debug=netlink` would (`[ ct load mark => reg 1 ]`).
enum ForeignRuleText {
    static func describe(_ expressions: [Expression], comment: String?) -> String {
        var words: [String] = []
        var l4: String?
        let e = expressions
        var i = 0
        while i < e.count {
            let next = i + 1 < e.count ? e[i + 1] : nil
            switch (e[i], next) {
            case (.meta(.nfproto, _), .cmp(.eq, _, _)):
                i += 2
            case (.meta(.l4proto, _), .cmp(.eq, _, let data)) where data.count == 1:
                l4 = protocolName(data[0])
                // Shown only when no port match follows to imply it.
                let portFollows = i + 2 < e.count && { if case .payload(.transport, _, _, _) = e[i + 2] { return true } else { return false } }()
                if !portFollows { words.append("meta l4proto \(l4!)") }
                i += 2
            case (.meta(let key, _), .cmp(let op, _, let data)) where key == .iifname || key == .oifname:
                words.append("\(key) \(op == .eq ? "" : "!= ")\"\(String(decoding: data.prefix { $0 != 0 }, as: UTF8.self))\"")
                i += 2
            case (.payload(.network, let offset, let length, _), .cmp(let op, _, let data)) where addressField(offset, length) != nil:
                words.append("\(addressField(offset, length)!) \(op == .eq ? "" : "\(op) ")\(address(data))")
                i += 2
            case (.payload(.network, let offset, let length, _), .lookup(let set, _, _)) where addressField(offset, length) != nil:
                words.append("\(addressField(offset, length)!) @\(set)")
                i += 2
            case (.payload(.transport, let offset, 2, _), .cmp(let op, _, let data)) where (offset == 0 || offset == 2) && data.count == 2:
                let port = UInt16(data[0]) << 8 | UInt16(data[1])
                words.append("\(l4 ?? "th") \(offset == 0 ? "sport" : "dport") \(op == .eq ? "" : "\(op) ")\(port)")
                i += 2
            case (.payload(.transport, let offset, 2, _), .lookup(let set, _, _)) where offset == 0 || offset == 2:
                words.append("\(l4 ?? "th") \(offset == 0 ? "sport" : "dport") @\(set)")
                i += 2
            case (.counter, _):
                words.append("counter")
                i += 1
            case (.verdict(let v), _):
                words.append(v.rawValue)
                i += 1
            case (.log(let prefix, _, let group, _), _):
                words.append("log" + (prefix.map { " prefix \"\($0)\"" } ?? "") + (group.map { " group \($0)" } ?? ""))
                i += 1
            default:
                words.append(e[i].description)
                i += 1
            }
        }
        if let comment { words.append("comment \"\(comment)\"") }
        return words.joined(separator: " ")
    }

    private static func addressField(_ offset: UInt32, _ length: UInt32) -> String? {
        switch (offset, length) {
        case (12, 4): "ip saddr"
        case (16, 4): "ip daddr"
        case (8, 16): "ip6 saddr"
        case (24, 16): "ip6 daddr"
        default: nil
        }
    }

    private static func address(_ data: [UInt8]) -> String {
        var value: UInt128 = 0
        for b in data { value = value << 8 | UInt128(b) }
        switch data.count {
        case 4: return IPAddress(family: .ipv4, value: value).description
        case 16: return IPAddress(family: .ipv6, value: value).description
        default: return data.hex
        }
    }

    private static func protocolName(_ number: UInt8) -> String {
        switch number {
        case 6: "tcp"
        case 17: "udp"
        case 132: "sctp"
        case 1: "icmp"
        case 58: "icmpv6"
        default: "\(number)"
        }
    }
}
