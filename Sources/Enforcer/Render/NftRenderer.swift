import FoundationEssentials

/// Renders a `Ruleset` in nft syntax, laid out as `nft list table` prints it, so that a plan can be
/// read beside the kernel's view and fed to `nft -c -f` as an independent check.
public enum NftRenderer {
    public static func render(_ r: Ruleset) -> String {
        // The ownership mark fwenforcer creates its table with, as `nft list table` shows it.
        var out = "table inet \(r.tableName) {\n\tcomment \(quote(TableMarker.comment))\n"
        var first = true
        for s in r.sets {
            if !first { out += "\n" }
            first = false
            out += render(set: s)
        }
        for c in r.chains {
            if !first { out += "\n" }
            first = false
            out += render(chain: c)
        }
        out += "}\n"
        return out
    }

    static func render(set s: NamedSet) -> String {
        var out = "\tset \(s.name) {\n\t\ttype \(s.family.nftKeyType)\n"
        if s.interval { out += "\t\tflags interval\n" }
        if let c = s.comment { out += "\t\tcomment \(quote(c))\n" }
        if !s.elements.isEmpty {
            // nft's layout (its `calculate_delim`): IPv4 elements two to a line, IPv6 one.
            let perLine = s.family == .ipv4 ? 2 : 1
            out += "\t\telements = { "
            for (i, r) in s.elements.ranges.enumerated() {
                if i > 0 { out += i % perLine == 0 ? ",\n\t\t\t     " : ", " }
                out += r.description
            }
            out += " }\n"
        }
        out += "\t}\n"
        return out
    }

    static func render(chain c: Chain) -> String {
        var out = "\tchain \(c.name) {\n"
        out += "\t\ttype filter hook \(c.hook.rawValue) priority \(priorityText(c.priority)); policy \(c.policy.rawValue);\n"
        for rule in c.rules { out += "\t\t\(render(rule: rule))\n" }
        out += "\t}\n"
        return out
    }

    static func priorityText(_ p: Int32) -> String {
        p == 0 ? "filter" : (p > 0 ? "filter + \(p)" : "filter - \(-p)")
    }

    /// One rule in nft syntax, without indentation.
    public static func render(rule: Rule) -> String {
        var parts: [String] = rule.matches.map(render(match:))
        parts += rule.statements.map(render(statement:))
        if let v = rule.verdict { parts.append(v.rawValue) }
        if let c = rule.comment { parts.append("comment \(quote(c))") }
        return parts.joined(separator: " ")
    }

    static func render(match m: Match) -> String {
        switch m {
        case .interface(let hook, let name):
            return "\(hook == .input ? "iifname" : "oifname") \(quote(name))"
        case .ctState(let states):
            return "ct state " + states.sorted().map(\.rawValue).joined(separator: ",")
        case .ctDirectionReply:
            return "ct direction reply"
        case .family(let f):
            return "meta nfproto \(f.rawValue)"
        case .transport(let p):
            return "meta l4proto \(p.rawValue)"
        case .addressInSet(let end, let family, let set):
            return "\(family.nftPayloadKeyword) \(end == .source ? "saddr" : "daddr") @\(set)"
        case .ports(let end, let proto, let ports):
            return "\(proto.rawValue) \(end == .source ? "sport" : "dport") \(braced(ports.map(\.description)))"
        case .icmpTypes(let family, let types):
            return "\(family == .ipv4 ? "icmp" : "icmpv6") type \(braced(types.sorted().map(\.nftName)))"
        case .ctStatusDNAT(let dnat):
            return dnat ? "ct status dnat" : "ct status ! dnat"
        case .originalDestinationPort(let proto, let range):
            return "meta l4proto \(proto.rawValue) ct original proto-dst \(range)"
        }
    }

    static func render(statement s: Statement) -> String {
        switch s {
        case .counter:
            return "counter"
        case .limit(let l):
            return "limit rate \(l.rate)/\(l.unit.rawValue) burst \(l.burst) packets"
        case .log(let prefix, let level, let group, let snaplen):
            // nft's own order: prefix, group, snaplen.
            if let group { return "log prefix \(quote(prefix)) group \(group)" + (snaplen.map { " snaplen \($0)" } ?? "") }
            return "log prefix \(quote(prefix)) level \(level.rawValue)"
        }
    }

    static func braced(_ items: [String]) -> String {
        items.count == 1 ? items[0] : "{ " + items.joined(separator: ", ") + " }"
    }

    /// nft strings cannot contain a double quote; the compiler never makes one, a user's catalog
    /// note might, so it becomes a single quote.
    static func quote(_ s: String) -> String {
        "\"" + s.replacingScalars(["\"": "'"]) + "\""
    }
}
