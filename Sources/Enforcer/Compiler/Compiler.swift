/// The compiled plan for one host: the ruleset and what it was made from.
public struct Plan: Sendable, Hashable {
    public var ruleset: Ruleset
    public var roles: [String]
    public var flows: [Flow]
}

/// Turns (catalog, config, this host's roles) into the smallest ruleset that lets exactly the
/// catalog's flows through. Pure and deterministic: the same input gives the same value, and so
/// byte-identical renderings.
public enum Compiler {
    /// nft refuses longer rule comments (NFTNL_UDATA_COMMENT_MAXLEN).
    static let maxCommentBytes = 128
    /// Comments of the last rule of each chain: the default deny, or in audit mode the accepting
    /// rule that stands in for it (the metrics read their counters by these).
    public static let denyRuleComment = "default deny"
    public static let auditRuleComment = "audit: would be dropped"

    /// Prefixes of the drop log, so an operator can grep or route them.
    public static func logPrefix(_ direction: Direction, audit: Bool) -> String {
        "fwenforcer \(direction == .ingress ? "in" : "out") \(audit ? "audit" : "drop"): "
    }

    /// ICMPv6 that IPv6 itself needs, in both directions and whatever conntrack thinks of it
    /// (neighbour discovery is not tracked, so these come before the invalid-state drop).
    static let icmpv6Essentials: [ICMPType] = [
        .packetTooBig, .mldListenerQuery, .mldListenerReport, .mldListenerDone,
        .routerSolicit, .routerAdvert, .neighborSolicit, .neighborAdvert, .mld2ListenerReport,
    ]

    /// The ICMP errors conntrack relates to a connection (`nf_conntrack_proto_icmp.c` tracks
    /// destination-unreachable, time-exceeded and parameter-problem; redirects and source quench
    /// are not let through).
    static let icmpRelatedErrors: [ICMPType] = [.destinationUnreachable, .timeExceeded, .parameterProblem]
    /// The ICMPv6 errors conntrack relates to a connection; packet-too-big is accepted earlier
    /// for path MTU discovery whatever its state, and stays listed so this rule reads complete.
    static let icmpv6RelatedErrors: [ICMPType] = [.v6DestinationUnreachable, .packetTooBig, .v6TimeExceeded, .v6ParameterProblem]

    public static func compile(config: Config, roles: [String]) -> Plan {
        let flows = config.catalog.flows(roles: roles, features: Set(config.host.features),
                                         version: config.effectiveVersion, strict: config.host.strict)
            + failsafeFlows(config)
        var sets: [String: NamedSet] = [:]
        var chains: [Chain] = []
        for direction in Direction.allCases {
            let mode = direction == .ingress ? config.enforce.ingress : config.enforce.egress
            guard mode != .off else { continue }
            var rules = baseRules(direction, enforce: config.enforce)
            for rule in catalogRules(flows.filter { $0.direction == direction }, direction: direction, config: config, sets: &sets) {
                rules.append(rule)
            }
            rules += tailRules(direction, mode: mode, enforce: config.enforce)
            chains.append(Chain(name: direction.hook.rawValue, hook: direction.hook, priority: 0,
                                policy: mode == .enforce ? .drop : .accept, rules: rules))
            if direction == .ingress {
                let allow = catalogRules(flows.filter { $0.direction == .ingress }, direction: .ingress, config: config, sets: &sets)
                chains.append(publishedPortsChain(allowing: allow, mode: mode, enforce: config.enforce))
            }
        }
        let ruleset = Ruleset(tableName: config.enforce.table, sets: Array(sets.values), chains: chains)
        return Plan(ruleset: ruleset, roles: roles, flows: flows)
    }

    /// Lockout protection: where administrators' SSH sources are configured, every ruleset lets
    /// them reach port 22, whatever the catalog says of the host's roles.
    static func failsafeFlows(_ config: Config) -> [Flow] {
        guard !config.addresses(of: "admin_ssh").isEmpty else { return [] }
        return [Flow(direction: .ingress, remote: "admin_ssh", proto: .tcp, ports: [PortRange(22)],
                     rowID: "failsafe", derived: false, note: "administrators' SSH is always kept open")]
    }

    // MARK: - fixed rules

    static func baseRules(_ direction: Direction, enforce: Config.Enforce) -> [Rule] {
        let hook = direction.hook
        var rules: [Rule] = [
            Rule(matches: [.interface(hook, "lo")], verdict: .accept, comment: "loopback"),
            Rule(matches: [.icmpTypes(.ipv6, icmpv6Essentials)], verdict: .accept,
                 comment: "IPv6 neighbour discovery, multicast listeners, path MTU"),
            Rule(matches: [.ctState([.invalid])], statements: [.counter], verdict: .drop, comment: "invalid packets"),
            // Replies are accepted by conntrack direction, not by "established": a connection's
            // original-direction packets keep meeting the allow rules, so a peer removed from its
            // group loses its established connections at the next reconcile.
            Rule(matches: [.ctDirectionReply], verdict: .accept, comment: "replies of allowed connections"),
            // Conntrack also marks as related the connections a helper expects (FTP data, SIP
            // media): those must meet the allow rules like any new connection, so only the ICMP
            // errors about an allowed connection pass here.
            Rule(matches: [.icmpTypes(.ipv4, icmpRelatedErrors), .ctState([.related])], verdict: .accept,
                 comment: "ICMP errors related to allowed connections"),
            Rule(matches: [.icmpTypes(.ipv6, icmpv6RelatedErrors), .ctState([.related])], verdict: .accept,
                 comment: "ICMPv6 errors related to allowed connections"),
        ]
        if enforce.ping {
            rules.append(Rule(matches: [.icmpTypes(.ipv4, [.echoRequest])], verdict: .accept, comment: "ping ([enforce] ping)"))
            rules.append(Rule(matches: [.icmpTypes(.ipv6, [.v6EchoRequest])], verdict: .accept, comment: "ping ([enforce] ping)"))
        }
        if enforce.dhcpClient {
            let (v4, v6): ((UInt16, UInt16), (UInt16, UInt16)) = direction == .ingress ? ((67, 68), (547, 546)) : ((68, 67), (546, 547))
            rules.append(Rule(matches: [.ports(.source, .udp, [PortRange(v4.0)]), .ports(.destination, .udp, [PortRange(v4.1)])],
                              verdict: .accept, comment: "DHCPv4 client ([enforce] dhcp_client)"))
            rules.append(Rule(matches: [.ports(.source, .udp, [PortRange(v6.0)]), .ports(.destination, .udp, [PortRange(v6.1)])],
                              verdict: .accept, comment: "DHCPv6 client ([enforce] dhcp_client)"))
        }
        return rules
    }

    /// Bytes of each would-be-dropped packet copied to the audit listener, from the network header:
    /// an IPv6 header (40), a few extension headers and the TCP/UDP ports or ICMP type fit, and no
    /// application data leaves the kernel.
    public static let auditSnaplen: UInt32 = 128

    static func tailRules(_ direction: Direction, mode: EnforceMode, enforce: Config.Enforce) -> [Rule] {
        let audit = mode == .audit
        if audit {
            // Not rate-limited: the report's counts are every packet, not a sample. The daemon's
            // cap on distinct flows bounds its memory; a flood the listener cannot keep up with is
            // dropped by the kernel (and counted from the sequence numbers), never by this rule.
            // A group log has no syslog level on the wire; `.warn` is how it reads back.
            return [Rule(statements: [.counter, .log(prefix: logPrefix(direction, audit: true), level: .warn,
                                                     group: enforce.auditGroup, snaplen: auditSnaplen)],
                         verdict: .accept, comment: auditRuleComment)]
        }
        var rules: [Rule] = []
        if enforce.logDrops {
            let rate = UInt64(enforce.logRate)
            rules.append(Rule(statements: [.limit(RateLimit(rate: rate, per: .second, burst: UInt32(rate * 2))),
                                           .log(prefix: logPrefix(direction, audit: false), level: .info, group: nil)],
                              verdict: nil, comment: "log drops (rate-limited)"))
        }
        rules.append(Rule(statements: [.counter], verdict: .drop, comment: denyRuleComment))
        return rules
    }

    // MARK: - catalog rules

    private struct RuleKey: Hashable, Comparable {
        let remote: String
        let proto: RowProtocol
        static func < (a: RuleKey, b: RuleKey) -> Bool { (a.remote, a.proto) < (b.remote, b.proto) }
    }

    /// One rule per (remote group, protocol, family): equal ports to the same group merge into one
    /// port set, an all-ports flow absorbs the port flows it covers, and a group with no members
    /// produces nothing.
    static func catalogRules(_ flows: [Flow], direction: Direction, config: Config, sets: inout [String: NamedSet]) -> [Rule] {
        var byKey: [RuleKey: [Flow]] = [:]
        for f in flows { byKey[RuleKey(remote: f.remote, proto: f.proto), default: []].append(f) }
        // A group's "any protocol, all ports" flow covers its tcp and udp flows.
        for (key, anyFlows) in byKey where key.proto == .any {
            for p in [RowProtocol.tcp, .udp] {
                let k = RuleKey(remote: key.remote, proto: p)
                if let covered = byKey.removeValue(forKey: k) { byKey[key] = anyFlows + covered }
            }
        }
        let end: PacketEnd = direction == .ingress ? .source : .destination
        var rules: [Rule] = []
        for key in byKey.keys.sorted() {
            let group = byKey[key]!
            var matches: [Match] = []
            if let transport = key.proto.transport {
                if group.contains(where: { $0.ports.isEmpty }) {
                    matches.append(.transport(transport))
                } else {
                    matches.append(.ports(.destination, transport, PortRange.normalize(group.flatMap(\.ports))))
                }
            }
            let comment = ruleComment(group)
            let members = config.addresses(of: key.remote)
            if key.remote == "any" && config.groups["any"] == nil {
                // "Anywhere" needs no set; an explicit [groups] any = [...] narrows it like any group.
                rules.append(Rule(matches: matches, verdict: .accept, comment: comment))
                continue
            }
            for family in AddressFamily.allCases {
                guard let set = groupSet(key.remote, family, members: members) else { continue }
                let name = set.name
                sets[name] = set
                rules.append(Rule(matches: [.addressInSet(end, family, set: name)] + matches, verdict: .accept, comment: comment))
            }
        }
        return rules
    }

    /// The named set of a group's members in one family (`CCM_v4`), nil when it has none there.
    /// The type follows from what the config says, never from the values: hosts only make a hash
    /// set, adjacent hosts separate elements (so replacing one is one element change whatever its
    /// neighbours); any prefix makes an interval set. An explicit /32 or /128 is a host.
    static func groupSet(_ group: String, _ family: AddressFamily, members: [IPPrefix]) -> NamedSet? {
        let own = members.filter { $0.family == family }
        guard !own.isEmpty else { return nil }
        let interval = own.contains { !$0.isHost }
        let elements = interval ? AddressSet(family: family, prefixes: own) : AddressSet(family: family, hosts: own.map(\.address))
        return NamedSet(name: "\(group)_\(family.setSuffix)", family: family, interval: interval, elements: elements)
    }

    /// "CCO#1 CCM#9: For two-way communication between the CCO and CCM VMs." within nft's limit.
    static func ruleComment(_ flows: [Flow]) -> String {
        var ids: [String] = []
        for f in flows.sorted(by: { rowOrder($0.rowID, $1.rowID) }) where !ids.contains(f.rowID) { ids.append(f.rowID) }
        let note = (flows.first { !$0.derived && !$0.note.isEmpty } ?? flows.first { !$0.note.isEmpty })?.note ?? ""
        var text = ids.joined(separator: " ")
        if !note.isEmpty { text += ": " + note }
        return truncate(text, bytes: maxCommentBytes)
    }

    static func truncate(_ s: String, bytes: Int) -> String {
        guard s.utf8.count > bytes else { return s }
        var out = ""
        for ch in s {
            if out.utf8.count + ch.utf8.count > bytes - 3 { break }
            out.append(ch)
        }
        return out + "..."
    }

    /// `CCO#2` before `CCO#10`; roles by name.
    static func rowOrder(_ a: String, _ b: String) -> Bool {
        func split(_ s: String) -> (String, Int) {
            let parts = s.split(separator: "#")
            return (String(parts[0]), parts.count > 1 ? Int(parts[1]) ?? 0 : 0)
        }
        return split(a) < split(b)
    }
}
