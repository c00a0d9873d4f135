/// What a rule looks like after a round trip through the kernel: what the netlink read-back
/// returns for it, and the form `Diff` compares rules in.
///
/// Several spellings of a rule are the same bytes on the wire, so reading back must pick one:
/// - nft (and fwenforcer's encoder, which writes what nft writes) puts implicit protocol
///   dependencies in front of some matches: `ip saddr @S` needs `meta nfproto ipv4` in an inet
///   table, `tcp dport 22` needs `meta l4proto tcp`, `icmp type ...` needs both. An explicit
///   `meta nfproto ipv4` right before `ip saddr @S` is the same bytes, and is dropped;
/// - the members of `ct state`, port lists and ICMP type lists are sorted (ports merged);
/// - `sport == a` and `dport == b` are one 4-byte compare (nft's statement merge), read back as
///   source port then destination port where the source-port match was;
/// - a log to an nfnetlink_log group has no syslog level on the wire: it reads back as `warn`.
extension Rule {
    public var canonical: Rule { KernelForm.canonical(self) ?? self }
}

extension Match {
    /// The `meta nfproto` an inet rule must check before this match.
    var impliedFamily: AddressFamily? {
        switch self {
        case .addressInSet(_, let family, _), .icmpTypes(let family, _): return family
        default: return nil
        }
    }

    /// The `meta l4proto` (IANA number) an inet rule must check before this match.
    var impliedL4Protocol: UInt8? {
        switch self {
        case .ports(_, let proto, _), .originalDestinationPort(let proto, _): return proto.number
        case .icmpTypes(let family, _): return family == .ipv4 ? ipProtocolICMP : ipProtocolICMPv6
        default: return nil
        }
    }

    /// The same match with unordered members sorted and merged.
    var normalized: Match {
        switch self {
        case .ctState(let states): return .ctState(Array(Set(states)).sorted())
        case .ports(let end, let proto, let ports): return .ports(end, proto, PortRange.normalize(ports))
        case .icmpTypes(let family, let types): return .icmpTypes(family, Array(Set(types)).sorted())
        default: return self
        }
    }

    /// Drops explicit dependencies the encoder would have inserted at the same place anyway.
    static func canonical(_ matches: [Match]) -> [Match] {
        let matches = matches.map(\.normalized)
        var out: [Match] = []
        var state = DependencyState()
        for (i, m) in matches.enumerated() {
            let next = i + 1 < matches.count ? matches[i + 1] : nil
            switch m {
            case .family(let f):
                if let next, next.impliedFamily == f, state.family != f {
                    // The encoder emits exactly this `meta nfproto` in front of `next`.
                    state.family = f
                    continue
                }
            case .transport(let p):
                if let next, next.impliedL4Protocol == p.number, state.l4 != p.number {
                    state.l4 = p.number
                    continue
                }
            default:
                break
            }
            state.advance(over: m)
            out.append(m)
        }
        return out
    }
}

/// IANA protocol numbers of ICMP and ICMPv6, as `meta l4proto` compares them.
let ipProtocolICMP: UInt8 = 1
let ipProtocolICMPv6: UInt8 = 58

/// Which protocol facts the expressions so far have established, so dependencies are not repeated.
struct DependencyState {
    var family: AddressFamily?
    var l4: UInt8?

    mutating func advance(over m: Match) {
        switch m {
        case .family(let f): family = f
        case .transport(let p): l4 = p.number
        default:
            if let f = m.impliedFamily { family = f }
            if let p = m.impliedL4Protocol { l4 = p }
        }
    }
}

extension Ruleset {
    /// The ruleset with every rule in canonical form: what reading it back from the kernel returns.
    public var canonical: Ruleset {
        var out = self
        out.chains = chains.map { c in
            var c = c
            c.rules = c.rules.map(\.canonical)
            return c
        }
        out.chains.sort(by: Chain.kernelOrder)
        return out
    }
}

extension Chain {
    /// The order read-back lists chains in: by hook (input, forward, output: netfilter's hook
    /// numbers), priority, name.
    static func kernelOrder(_ a: Chain, _ b: Chain) -> Bool {
        func hookRank(_ h: Hook) -> Int { h == .input ? 0 : h == .forward ? 1 : 2 }
        return (hookRank(a.hook), a.priority, a.name) < (hookRank(b.hook), b.priority, b.name)
    }
}
