@testable import Enforcer

/// Representative rulesets for backend tests, in the compiler's style: IPv4 and IPv6, hosts and
/// CIDRs and ranges (overlapping in the input, merged by the model), hash and interval sets, two
/// chains, every match kind and statement. Test addresses only (198.18.0.0/15, fd00::/8,
/// 2001:db8::/32).
enum NetlinkFixtures {
    static func prefixes(_ items: [String]) -> [IPPrefix] { items.map { try! IPPrefix.parse($0) } }

    static func range(_ a: String, _ b: String) -> AddressRange {
        let x = IPAddress(a)!, y = IPAddress(b)!
        return AddressRange(family: x.family, first: x.value, last: y.value)
    }

    static func set(_ name: String, _ family: AddressFamily, interval: Bool, _ items: [String], ranges: [AddressRange] = [], comment: String? = nil) -> NamedSet {
        let all = prefixes(items).map(\.range) + ranges
        return NamedSet(name: name, family: family, interval: interval, elements: AddressSet(family: family, ranges: all), comment: comment)
    }

    static let icmpv6Essentials: [ICMPType] = [.packetTooBig, .mldListenerQuery, .mldListenerReport, .mldListenerDone,
                                               .routerSolicit, .routerAdvert, .neighborSolicit, .neighborAdvert, .mld2ListenerReport]

    /// Ruleset A.
    static var a: Ruleset {
        Ruleset(sets: [
            // 198.18.1.0/25 overlaps the /24 and 198.18.3.5-198.18.3.9 overlaps 198.18.3.1-198.18.3.7: merged.
            set("CCM_v4", .ipv4, interval: true, ["198.18.0.7", "198.18.1.0/24", "198.18.1.0/25"],
                ranges: [range("198.18.3.1", "198.18.3.7"), range("198.18.3.5", "198.18.3.9")], comment: "CCM hosts"),
            set("CCM_v6", .ipv6, interval: true, ["fd00::1", "2001:db8::/64"]),
            set("MON_v4", .ipv4, interval: false, ["198.18.5.1", "198.18.5.3", "198.18.5.9"]),
            set("MON_v6", .ipv6, interval: false, ["fd00::5:1"]),
            set("workers_v4", .ipv4, interval: true, ["198.18.128.0/17"]),
        ], chains: [
            Chain(name: "input", hook: .input, policy: .drop, rules: [
                Rule(matches: [.interface(.input, "lo")], verdict: .accept, comment: "loopback"),
                Rule(matches: [.icmpTypes(.ipv6, icmpv6Essentials)], verdict: .accept, comment: "IPv6 neighbour discovery"),
                Rule(matches: [.ctState([.invalid])], statements: [.counter], verdict: .drop, comment: "invalid packets"),
                Rule(matches: [.ctDirectionReply], verdict: .accept, comment: "replies"),
                Rule(matches: [.ctState([.established, .related])], verdict: .accept),
                Rule(matches: [.icmpTypes(.ipv4, [.echoRequest])], verdict: .accept, comment: "ping"),
                Rule(matches: [.icmpTypes(.ipv4, [.destinationUnreachable, .timeExceeded])], verdict: .accept),
                Rule(matches: [.ports(.source, .udp, [PortRange(67)]), .ports(.destination, .udp, [PortRange(68)])], verdict: .accept, comment: "DHCPv4"),
                Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4"), .ports(.destination, .tcp, [PortRange(8443)])],
                     verdict: .accept, comment: "CCO#1 CCM#9: CCM to CCO"),
                Rule(matches: [.addressInSet(.source, .ipv6, set: "CCM_v6"), .ports(.destination, .tcp, [PortRange(80), PortRange(443)])],
                     verdict: .accept),
                Rule(matches: [.addressInSet(.source, .ipv4, set: "CCM_v4"), .ports(.destination, .tcp, [PortRange(22), PortRange(1000, 2000)])],
                     verdict: .accept),
                Rule(matches: [.addressInSet(.source, .ipv4, set: "MON_v4"), .ports(.destination, .udp, [PortRange(5405, 5410)])], verdict: .accept),
                Rule(matches: [.addressInSet(.source, .ipv6, set: "MON_v6"), .transport(.tcp)], verdict: .accept, comment: "MON all tcp"),
                Rule(matches: [.addressInSet(.source, .ipv4, set: "workers_v4"), .ports(.destination, .tcp, [PortRange(5671)])], verdict: .accept),
                Rule(matches: [.family(.ipv6), .ports(.destination, .tcp, [PortRange(9100)])], verdict: .accept, comment: "anywhere (IPv6) to 9100"),
                Rule(matches: [.ports(.destination, .tcp, [PortRange(60000, 65535)])], verdict: .accept),
                Rule(statements: [.limit(RateLimit(rate: 5, per: .second, burst: 10)), .log(prefix: "fwenforcer in drop: ", level: .info, group: nil)],
                     verdict: nil, comment: "log drops (rate-limited)"),
                Rule(statements: [.counter], verdict: .drop, comment: "default deny"),
            ]),
            Chain(name: "output", hook: .output, policy: .accept, rules: [
                Rule(matches: [.interface(.output, "lo")], verdict: .accept, comment: "loopback"),
                Rule(matches: [.ctDirectionReply], verdict: .accept),
                Rule(matches: [.addressInSet(.destination, .ipv4, set: "MON_v4"), .ports(.destination, .tcp, [PortRange(5671), PortRange(53229), PortRange(53333)])],
                     verdict: .accept),
                Rule(matches: [.addressInSet(.destination, .ipv6, set: "CCM_v6"), .ports(.destination, .udp, [PortRange(5405), PortRange(5407, 5410)])],
                     verdict: .accept),
                Rule(statements: [.log(prefix: "fwenforcer out audit: ", level: .warn, group: 5)], verdict: nil),
                Rule(statements: [.counter], verdict: .accept, comment: "audit: would be dropped"),
            ]),
        ])
    }

    /// A with every kind of change: a peer replaced, a range grown, a prefix split off, a new set
    /// with a rule using it, a set turned from interval to hash (and its rules rewritten), a set
    /// removed, the output policy changed.
    static var b: Ruleset {
        var r = a
        r.sets = r.sets.compactMap { s in
            switch s.name {
            case "CCM_v4":
                return set("CCM_v4", .ipv4, interval: true, ["198.18.0.7", "198.18.1.0/25", "198.18.2.0/24"],
                           ranges: [range("198.18.3.1", "198.18.3.20")], comment: "CCM hosts")
            case "CCM_v6": return set("CCM_v6", .ipv6, interval: false, ["fd00::1", "fd00::3"])
            case "MON_v4": return set("MON_v4", .ipv4, interval: false, ["198.18.5.1", "198.18.5.4", "198.18.5.9"])
            case "workers_v4": return nil
            default: return s
            }
        } + [set("AMQP_v4", .ipv4, interval: false, ["198.18.6.1"])]
        r = Ruleset(tableName: r.tableName, sets: r.sets, chains: r.chains)
        r.chains[0].rules.removeAll { $0.matches.first == .addressInSet(.source, .ipv4, set: "workers_v4") }
        r.chains[1].policy = .drop
        r.chains[1].rules.insert(Rule(matches: [.addressInSet(.destination, .ipv4, set: "AMQP_v4"), .ports(.destination, .tcp, [PortRange(5672)])],
                                      verdict: .accept, comment: "AMQP"), at: 2)
        return r
    }

    /// A with one peer of MON_v4 replaced (198.18.5.3 by 198.18.5.4).
    static var aWithPeerReplaced: Ruleset {
        var r = a
        let i = r.sets.firstIndex { $0.name == "MON_v4" }!
        r.sets[i] = set("MON_v4", .ipv4, interval: false, ["198.18.5.1", "198.18.5.4", "198.18.5.9"])
        return r
    }
}
